-- Exchange rates staff enter for converting totals into the reporting
-- currency: from valid_from on (until the currency's next rate), one major
-- unit of currency is worth rate major units of the reporting currency.
-- The rate is kept as the decimal text staff gave, so it stays exact.
CREATE TABLE fx_rates (
	currency    TEXT NOT NULL,
	reporting   TEXT NOT NULL,
	valid_from  TIMESTAMPTZ NOT NULL,
	rate        TEXT NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (reporting, currency, valid_from)
);
