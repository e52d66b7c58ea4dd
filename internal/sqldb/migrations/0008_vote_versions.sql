-- Every cast or withdrawal by a member in a round bumps their version, in
-- the transaction that changes the ballot (the member's row is locked
-- there, so versions follow commit order). The Redis tally applies each
-- change with its version and ignores an older one that arrives late.
ALTER TABLE round_voters ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
