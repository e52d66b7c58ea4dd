-- Grows with every change of a round's definition, so a replica can tell
-- whether its copy of the round is still current.
ALTER TABLE rounds ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
