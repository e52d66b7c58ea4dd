-- Outgoing webhooks (docs/outgoing-webhooks.md): the newsroom's own
-- endpoints, the events Patronage tells them about, and every delivery and
-- attempt.
--
-- webhook_endpoints: events is the space-separated list of event types the
-- endpoint hears. The signing secret is kept as it is (an HMAC needs it);
-- after a rotation the previous one signs too until previous_expires_at.
-- failing_since: the first failed attempt since the last success.
CREATE TABLE webhook_endpoints (
	id                  TEXT PRIMARY KEY,
	url                 TEXT NOT NULL,
	description         TEXT NOT NULL DEFAULT '',
	events              TEXT NOT NULL,
	secret              TEXT NOT NULL,
	previous_secret     TEXT,
	previous_expires_at TIMESTAMPTZ,
	disabled_at         TIMESTAMPTZ,
	disabled_reason     TEXT,
	failing_since       TIMESTAMPTZ,
	created_at          TIMESTAMPTZ NOT NULL,
	updated_at          TIMESTAMPTZ NOT NULL
);

-- outgoing_events: each event once, with the exact body every endpoint
-- receives. member_id names the member it is about, so erasing them can
-- scrub it.
CREATE TABLE outgoing_events (
	id         TEXT PRIMARY KEY,
	type       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	member_id  TEXT,
	payload    TEXT NOT NULL
);

CREATE INDEX outgoing_events_member_idx ON outgoing_events (member_id);

-- webhook_deliveries: one event to one endpoint. status: pending →
-- succeeded | failed (its retries ran out, or its endpoint was disabled or
-- deleted); a redelivery makes it pending again, with a new job_token:
-- only the job carrying the current token works the delivery.
CREATE TABLE webhook_deliveries (
	id              TEXT PRIMARY KEY,
	endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
	event_id        TEXT NOT NULL REFERENCES outgoing_events (id),
	status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	created_at      TIMESTAMPTZ NOT NULL,
	first_try_at    TIMESTAMPTZ,
	last_attempt_at TIMESTAMPTZ,
	next_attempt_at TIMESTAMPTZ,
	job_token       TEXT NOT NULL DEFAULT '',
	UNIQUE (endpoint_id, event_id)
);

CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at);

-- webhook_attempts: every attempt, as the endpoint answered it (status
-- NULL: no answer; error says why).
CREATE TABLE webhook_attempts (
	id               TEXT PRIMARY KEY,
	delivery_id      TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
	attempted_at     TIMESTAMPTZ NOT NULL,
	duration_ms      INTEGER NOT NULL,
	response_status  INTEGER,
	response_excerpt TEXT NOT NULL DEFAULT '',
	error            TEXT NOT NULL DEFAULT ''
);

CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at);

-- What the events are derived from, kept so each is told once: a round's
-- opening; a donation's payment; the status (active, trialing, past_due,
-- complimentary) and billing interval of a member's access. No endpoint
-- exists before this migration, so what is marked here only decides what
-- a first endpoint hears: closed rounds and paid gifts are old news, and
-- each patron's current status is the one their next change is told from
-- (the paying subscription first, as billing decides it).
ALTER TABLE rounds ADD COLUMN open_announced BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE rounds SET open_announced = TRUE WHERE closed_at IS NOT NULL;
ALTER TABLE donations ADD COLUMN announced BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE donations SET announced = TRUE WHERE status = 'paid';
ALTER TABLE member_access ADD COLUMN membership_status TEXT NOT NULL DEFAULT '';
ALTER TABLE member_access ADD COLUMN billing_interval TEXT NOT NULL DEFAULT '';
UPDATE member_access SET
	membership_status = CASE WHEN source = 'complimentary' THEN 'complimentary' ELSE COALESCE((SELECT s.status FROM subscriptions s
		WHERE s.member_id = member_access.member_id AND s.tier_slug = member_access.tier_slug AND s.status IN ('active', 'trialing', 'past_due')
		ORDER BY CASE WHEN s.status = 'past_due' THEN 1 ELSE 0 END, s.id LIMIT 1), 'active') END,
	billing_interval = CASE WHEN source = 'complimentary' THEN '' ELSE COALESCE((SELECT s.billing_interval FROM subscriptions s
		WHERE s.member_id = member_access.member_id AND s.tier_slug = member_access.tier_slug AND s.status IN ('active', 'trialing', 'past_due')
		ORDER BY CASE WHEN s.status = 'past_due' THEN 1 ELSE 0 END, s.id LIMIT 1), '') END
WHERE active;
