-- Staff figures kept as events arrive (docs/metrics.md, "How the figures
-- are kept"). Every source of figures — a patron's subscription history,
-- an invoice, a refund, a gift — contributes signed amounts to named
-- counters at instants; a counter's value at t is the sum of what was
-- contributed at or before t.
--
-- Counter names are compared as bytes (COLLATE "C"): readers ask for a
-- family of counters as the range ['s|', 's}'), which a linguistic
-- collation would order differently. SQLite compares bytes already.
--
-- metric_sources: one row per source, locked while its contributions are
-- replaced.
CREATE TABLE metric_sources (
	source       TEXT PRIMARY KEY,
	refreshed_at TIMESTAMPTZ NOT NULL
);

-- metric_deltas: each source's current contributions (day = UTC days
-- since 1970 of at).
CREATE TABLE metric_deltas (
	source TEXT NOT NULL,
	key    TEXT COLLATE "C" NOT NULL,
	at     TIMESTAMPTZ NOT NULL,
	day    INTEGER NOT NULL,
	delta  BIGINT NOT NULL,
	PRIMARY KEY (source, key, at)
);
-- By counter and instant, carrying the rest so counting churned patrons
-- over a window reads the index alone.
CREATE INDEX metric_deltas_key_at ON metric_deltas (key, at, source, delta);

-- metric_days: every source's contributions summed per counter and day
-- (month = year × 12 + month − 1). metric_pending holds changes not yet
-- folded into it; readers add both.
CREATE TABLE metric_days (
	key   TEXT COLLATE "C" NOT NULL,
	day   INTEGER NOT NULL,
	month INTEGER NOT NULL,
	delta BIGINT NOT NULL,
	PRIMARY KEY (key, day)
);
CREATE TABLE metric_pending (
	key   TEXT COLLATE "C" NOT NULL,
	day   INTEGER NOT NULL,
	month INTEGER NOT NULL,
	delta BIGINT NOT NULL
);

-- metric_state: 'built' once every source has been computed (existing
-- installs compute theirs at the first start after this migration).
CREATE TABLE metric_state (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- A patron's history is read by member; a refund's kind is found from the
-- invoice its charge paid.
CREATE INDEX subscription_history_member_idx ON subscription_history (member_id);
CREATE INDEX invoices_charge_idx ON invoices (charge_id);
CREATE INDEX donations_payment_intent_idx ON donations (payment_intent_id);

-- The dashboard's at-risk list: the few members with a past-due
-- subscription, without walking every member.
CREATE INDEX subscriptions_past_due_idx ON subscriptions (member_id) WHERE status = 'past_due';

-- A database with no billing data yet has nothing to compute.
INSERT INTO metric_state (name, value)
SELECT 'built', 'empty at migration'
WHERE NOT EXISTS (SELECT 1 FROM subscription_history) AND NOT EXISTS (SELECT 1 FROM invoices)
  AND NOT EXISTS (SELECT 1 FROM refunds) AND NOT EXISTS (SELECT 1 FROM donations);
