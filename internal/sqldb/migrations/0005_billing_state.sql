-- What Stripe tells us about a patron's money, mirrored from webhooks (and
-- repaired by `patronage stripe sync`). Amounts are int64 minor units with
-- their currency. state_at is the instant the stored state was true in
-- Stripe: the created time of the event it came from, or the moment it was
-- fetched; an older state never overwrites a newer one.

CREATE TABLE stripe_customers (
	id         TEXT PRIMARY KEY,
	member_id  TEXT REFERENCES members (id) ON DELETE SET NULL,
	email      TEXT NOT NULL DEFAULT '',
	deleted    BOOLEAN NOT NULL DEFAULT FALSE,
	state_at   TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX stripe_customers_member_idx ON stripe_customers (member_id);

-- One row per Stripe subscription: its current state. tier_slug is NULL when
-- the price is not one of our tiers' (kept, marked unmapped, never dropped).
-- A row with state_at NULL is a link from a completed Checkout whose
-- subscription state has not arrived yet.
CREATE TABLE subscriptions (
	id                       TEXT PRIMARY KEY,
	member_id                TEXT REFERENCES members (id) ON DELETE SET NULL,
	customer_id              TEXT NOT NULL,
	tier_slug                TEXT,
	price_id                 TEXT NOT NULL DEFAULT '',
	status                   TEXT NOT NULL,
	currency                 TEXT NOT NULL DEFAULT '',
	unit_amount              BIGINT NOT NULL DEFAULT 0,
	quantity                 BIGINT NOT NULL DEFAULT 1,
	billing_interval         TEXT NOT NULL DEFAULT '',
	interval_count           INTEGER NOT NULL DEFAULT 1,
	discount_percent_off_bps BIGINT,
	discount_amount_off      BIGINT,
	discount_duration        TEXT,
	discount_duration_months INTEGER,
	discount_end             TIMESTAMPTZ,
	trial_end                TIMESTAMPTZ,
	current_period_start     TIMESTAMPTZ,
	current_period_end       TIMESTAMPTZ,
	cancel_at_period_end     BOOLEAN NOT NULL DEFAULT FALSE,
	canceled_at              TIMESTAMPTZ,
	ended_at                 TIMESTAMPTZ,
	stripe_created_at        TIMESTAMPTZ,
	state_at                 TIMESTAMPTZ,
	state_event_id           TEXT,
	updated_at               TIMESTAMPTZ NOT NULL
);

CREATE INDEX subscriptions_member_idx ON subscriptions (member_id);

CREATE INDEX subscriptions_customer_idx ON subscriptions (customer_id);

-- Each event's own snapshot of a subscription, at that event's created time.
-- subscription_history is rebuilt from these, so a late or shuffled delivery
-- still yields the right past.
CREATE TABLE subscription_snapshots (
	event_id                 TEXT PRIMARY KEY,
	subscription_id          TEXT NOT NULL,
	at                       TIMESTAMPTZ NOT NULL,
	status                   TEXT NOT NULL,
	tier_slug                TEXT,
	price_id                 TEXT NOT NULL,
	currency                 TEXT NOT NULL,
	unit_amount              BIGINT NOT NULL,
	quantity                 BIGINT NOT NULL,
	billing_interval         TEXT NOT NULL,
	interval_count           INTEGER NOT NULL,
	discount_percent_off_bps BIGINT,
	discount_amount_off      BIGINT,
	discount_duration        TEXT,
	current_period_end       TIMESTAMPTZ
);

CREATE INDEX subscription_snapshots_sub_idx ON subscription_snapshots (subscription_id, at);

-- A row whenever status, price, quantity, amount or discount changed, at the
-- instant it changed. The staff metrics compute MRR and its movements from it.
CREATE TABLE subscription_history (
	subscription_id          TEXT NOT NULL,
	seq                      INTEGER NOT NULL,
	at                       TIMESTAMPTZ NOT NULL,
	member_id                TEXT,
	status                   TEXT NOT NULL,
	tier_slug                TEXT,
	price_id                 TEXT NOT NULL,
	currency                 TEXT NOT NULL,
	unit_amount              BIGINT NOT NULL,
	quantity                 BIGINT NOT NULL,
	billing_interval         TEXT NOT NULL,
	interval_count           INTEGER NOT NULL,
	discount_percent_off_bps BIGINT,
	discount_amount_off      BIGINT,
	discount_duration        TEXT,
	event_id                 TEXT NOT NULL,
	PRIMARY KEY (subscription_id, seq)
);

CREATE INDEX subscription_history_at_idx ON subscription_history (at);

-- The payment ledger: invoices, the charges that paid them (and one-time
-- gifts), refunds and disputes.
CREATE TABLE invoices (
	id                TEXT PRIMARY KEY,
	subscription_id   TEXT,
	customer_id       TEXT NOT NULL,
	member_id         TEXT REFERENCES members (id) ON DELETE SET NULL,
	status            TEXT NOT NULL,
	currency          TEXT NOT NULL,
	amount_due        BIGINT NOT NULL,
	amount_paid       BIGINT NOT NULL,
	tax               BIGINT NOT NULL DEFAULT 0,
	period_start      TIMESTAMPTZ,
	period_end        TIMESTAMPTZ,
	billing_reason    TEXT NOT NULL DEFAULT '',
	charge_id         TEXT,
	paid_at           TIMESTAMPTZ,
	first_failed_at   TIMESTAMPTZ,
	attempt_count     INTEGER NOT NULL DEFAULT 0,
	stripe_created_at TIMESTAMPTZ NOT NULL,
	state_at          TIMESTAMPTZ NOT NULL,
	updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX invoices_member_idx ON invoices (member_id, stripe_created_at);

CREATE INDEX invoices_subscription_idx ON invoices (subscription_id, stripe_created_at);

CREATE TABLE charges (
	id                TEXT PRIMARY KEY,
	customer_id       TEXT,
	member_id         TEXT REFERENCES members (id) ON DELETE SET NULL,
	invoice_id        TEXT,
	payment_intent_id TEXT,
	amount            BIGINT NOT NULL,
	amount_refunded   BIGINT NOT NULL DEFAULT 0,
	currency          TEXT NOT NULL,
	disputed          BOOLEAN NOT NULL DEFAULT FALSE,
	stripe_created_at TIMESTAMPTZ NOT NULL,
	updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX charges_member_idx ON charges (member_id);

CREATE INDEX charges_payment_intent_idx ON charges (payment_intent_id);

-- Refunds by Stripe id. In payload mode a charge's events carry only its
-- running refunded total, so refunds are derived from those totals: id
-- "<charge>@<total>", amount the step from the total before it.
CREATE TABLE refunds (
	id          TEXT PRIMARY KEY,
	charge_id   TEXT NOT NULL,
	amount      BIGINT NOT NULL,
	currency    TEXT NOT NULL,
	refunded_at TIMESTAMPTZ NOT NULL,
	derived     BOOLEAN NOT NULL DEFAULT FALSE,
	total_after BIGINT
);

CREATE INDEX refunds_charge_idx ON refunds (charge_id);

CREATE TABLE disputes (
	id                TEXT PRIMARY KEY,
	charge_id         TEXT NOT NULL,
	amount            BIGINT NOT NULL,
	currency          TEXT NOT NULL,
	status            TEXT NOT NULL,
	reason            TEXT NOT NULL DEFAULT '',
	stripe_created_at TIMESTAMPTZ NOT NULL,
	closed_at         TIMESTAMPTZ,
	state_at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX disputes_charge_idx ON disputes (charge_id);

-- One-time gifts, by Checkout Session id.
CREATE TABLE donations (
	id                TEXT PRIMARY KEY,
	member_id         TEXT REFERENCES members (id) ON DELETE SET NULL,
	email             TEXT NOT NULL DEFAULT '',
	amount            BIGINT NOT NULL,
	currency          TEXT NOT NULL,
	message           TEXT NOT NULL DEFAULT '',
	payment_intent_id TEXT,
	status            TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
	stripe_created_at TIMESTAMPTZ NOT NULL,
	state_at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX donations_member_idx ON donations (member_id);

-- Access given by staff rather than paid for.
CREATE TABLE complimentary_grants (
	id         TEXT PRIMARY KEY,
	member_id  TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
	tier_slug  TEXT,
	starts_at  TIMESTAMPTZ NOT NULL,
	ends_at    TIMESTAMPTZ,
	reason     TEXT NOT NULL DEFAULT '',
	created_by TEXT,
	created_at TIMESTAMPTZ NOT NULL,
	revoked_at TIMESTAMPTZ
);

CREATE INDEX complimentary_grants_member_idx ON complimentary_grants (member_id);

-- Each member's access as last computed, so a read is one lookup and a
-- change can be noticed and published. recheck_at is the next instant it may
-- change by itself (a period or grace ending); a scheduled job recomputes
-- members whose recheck_at has passed.
CREATE TABLE member_access (
	member_id   TEXT PRIMARY KEY REFERENCES members (id) ON DELETE CASCADE,
	active      BOOLEAN NOT NULL,
	source      TEXT NOT NULL DEFAULT '',
	tier_slug   TEXT NOT NULL DEFAULT '',
	until_at    TIMESTAMPTZ,
	recheck_at  TIMESTAMPTZ,
	welcomed_at TIMESTAMPTZ,
	changed_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX member_access_recheck_idx ON member_access (recheck_at);

-- The last reconciliation with Stripe, for staff.
CREATE TABLE stripe_sync_reports (
	id          TEXT PRIMARY KEY,
	started_at  TIMESTAMPTZ NOT NULL,
	finished_at TIMESTAMPTZ NOT NULL,
	report_json TEXT NOT NULL
);

-- Mail sent because of a billing event, by a key naming the occasion, so a
-- handler run twice does not mail twice.
CREATE TABLE billing_notifications (
	key        TEXT PRIMARY KEY,
	member_id  TEXT,
	kind       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);
