-- The keys that sign patron-status tokens (GET /api/v1/me/token), shared
-- by every replica. A key is published at /.well-known/jwks.json from the
-- moment it is made, signs from active_from (a rotation's new key waits
-- until every replica and cache has published it), and stops signing at
-- retired_at; it stays published for an hour after, so tokens it signed
-- verify until they expire. private_key is the Ed25519 seed, base64.
CREATE TABLE signing_keys (
	id          TEXT PRIMARY KEY,
	algorithm   TEXT NOT NULL,
	private_key TEXT NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	active_from TIMESTAMPTZ NOT NULL,
	retired_at  TIMESTAMPTZ
);
