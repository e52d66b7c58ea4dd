-- Every verified Stripe event, stored before it is acknowledged. The id is
-- Stripe's, so a second delivery of the same event finds it here and has no
-- second effect. status: pending → processed | ignored | failed.
CREATE TABLE stripe_events (
	id           TEXT PRIMARY KEY,
	type         TEXT NOT NULL,
	api_version  TEXT NOT NULL,
	object_id    TEXT NOT NULL,
	created_at   TIMESTAMPTZ NOT NULL,
	received_at  TIMESTAMPTZ NOT NULL,
	livemode     BOOLEAN NOT NULL,
	payload      TEXT NOT NULL,
	status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'ignored', 'failed')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT,
	processed_at TIMESTAMPTZ
);

CREATE INDEX stripe_events_status_idx ON stripe_events (status, received_at);

CREATE INDEX stripe_events_object_idx ON stripe_events (object_id, created_at);
