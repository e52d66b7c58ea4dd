-- API tokens let programs act as a staff member. Only the SHA-256 of a token
-- is kept; the token itself is shown once, when it is made.
CREATE TABLE api_tokens (
	id           TEXT PRIMARY KEY,
	member_id    TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	token_hash   TEXT NOT NULL,
	hint         TEXT NOT NULL,
	created_at   TIMESTAMPTZ NOT NULL,
	last_used_at TIMESTAMPTZ,
	revoked_at   TIMESTAMPTZ
);

CREATE UNIQUE INDEX api_tokens_hash_key ON api_tokens (token_hash);

CREATE INDEX api_tokens_member_idx ON api_tokens (member_id);

-- The audit log records every staff write: who, what, when, before and after.
CREATE TABLE audit_log (
	id           TEXT PRIMARY KEY,
	actor_id     TEXT,
	actor_label  TEXT NOT NULL,
	action       TEXT NOT NULL,
	subject_type TEXT NOT NULL,
	subject_id   TEXT NOT NULL,
	before_json  TEXT,
	after_json   TEXT,
	created_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX audit_log_created_idx ON audit_log (created_at);

CREATE INDEX audit_log_subject_idx ON audit_log (subject_type, subject_id);
