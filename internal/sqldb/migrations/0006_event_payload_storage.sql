-- A Stripe event's payload is written once and read once or twice; PostgreSQL
-- compressing each 2–4 kB payload on insert cost more than the bytes saved,
-- so it is stored as is (out of line when large).
ALTER TABLE stripe_events ALTER COLUMN payload SET STORAGE EXTERNAL;
