-- Topics patrons may vote on, and what became of them.
CREATE TABLE topics (
	id             TEXT PRIMARY KEY,
	title          TEXT NOT NULL,
	summary        TEXT NOT NULL DEFAULT '',
	status         TEXT NOT NULL CHECK (status IN ('suggested', 'proposed', 'in_round', 'won', 'covered', 'declined')),
	suggested_by   TEXT REFERENCES members (id) ON DELETE SET NULL,
	decline_reason TEXT NOT NULL DEFAULT '',
	article_url    TEXT,
	covered_at     TIMESTAMPTZ,
	created_at     TIMESTAMPTZ NOT NULL,
	updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX topics_status_idx ON topics (status, created_at);

-- A round puts 2–50 topics to the vote between opens_at and closes_at.
CREATE TABLE rounds (
	id               TEXT PRIMARY KEY,
	title            TEXT NOT NULL,
	description      TEXT NOT NULL DEFAULT '',
	opens_at         TIMESTAMPTZ NOT NULL,
	closes_at        TIMESTAMPTZ NOT NULL,
	votes_per_patron INTEGER NOT NULL DEFAULT 3 CHECK (votes_per_patron >= 1),
	weighting        TEXT NOT NULL DEFAULT 'equal' CHECK (weighting IN ('equal', 'tier')),
	results          TEXT NOT NULL DEFAULT 'live' CHECK (results IN ('live', 'sealed')),
	closed_at        TIMESTAMPTZ,
	voters           INTEGER,
	created_at       TIMESTAMPTZ NOT NULL,
	updated_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX rounds_open_idx ON rounds (closed_at, closes_at);

-- final_total is written when the round closes and never changes after.
CREATE TABLE round_topics (
	round_id    TEXT NOT NULL REFERENCES rounds (id) ON DELETE CASCADE,
	topic_id    TEXT NOT NULL REFERENCES topics (id),
	position    INTEGER NOT NULL,
	final_total BIGINT,
	PRIMARY KEY (round_id, topic_id)
);

-- Every ballot: the truth the Redis tallies are rebuilt from. One per round,
-- member and topic; weight is what it counts for (1, or the tier's weight).
CREATE TABLE ballots (
	round_id  TEXT NOT NULL,
	member_id TEXT NOT NULL,
	topic_id  TEXT NOT NULL,
	weight    INTEGER NOT NULL CHECK (weight >= 1),
	cast_at   TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (round_id, member_id, topic_id)
);

CREATE INDEX ballots_round_topic_idx ON ballots (round_id, topic_id);

-- How many votes a member has used in a round: the row a cast locks, so a
-- budget holds under concurrent casts.
CREATE TABLE round_voters (
	round_id  TEXT NOT NULL,
	member_id TEXT NOT NULL,
	used      INTEGER NOT NULL CHECK (used >= 0),
	PRIMARY KEY (round_id, member_id)
);
