-- Tiers are what a reader can become a patron of; prices are one amount per
-- (currency, interval), in minor units. Each mirrors a Stripe Product and
-- Price; the Stripe ids are filled in when tiers are pushed.
CREATE TABLE tiers (
	slug              TEXT PRIMARY KEY,
	name              TEXT NOT NULL,
	description       TEXT NOT NULL DEFAULT '',
	benefits_json     TEXT NOT NULL DEFAULT '[]',
	vote_weight       INTEGER NOT NULL DEFAULT 1 CHECK (vote_weight >= 1),
	active            BOOLEAN NOT NULL DEFAULT TRUE,
	sort_order        INTEGER NOT NULL DEFAULT 0,
	stripe_product_id TEXT,
	created_at        TIMESTAMPTZ NOT NULL,
	updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE tier_prices (
	tier_slug       TEXT NOT NULL REFERENCES tiers (slug) ON DELETE CASCADE,
	currency        TEXT NOT NULL,
	billing_interval TEXT NOT NULL CHECK (billing_interval IN ('month', 'year')),
	amount          BIGINT NOT NULL CHECK (amount > 0),
	stripe_price_id TEXT,
	PRIMARY KEY (tier_slug, currency, billing_interval)
);

CREATE UNIQUE INDEX tier_prices_stripe_key ON tier_prices (stripe_price_id);
