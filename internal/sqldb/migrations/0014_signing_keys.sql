-- The keys that sign patron-status tokens (GET /api/v1/me/token), shared
-- by every replica. The newest key not retired signs; the public halves of
-- every key not retired long ago are published at /.well-known/jwks.json,
-- so tokens signed just before a rotation still verify until they expire.
-- private_key is the Ed25519 seed, base64.
CREATE TABLE signing_keys (
	id          TEXT PRIMARY KEY,
	algorithm   TEXT NOT NULL,
	private_key TEXT NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	retired_at  TIMESTAMPTZ
);
