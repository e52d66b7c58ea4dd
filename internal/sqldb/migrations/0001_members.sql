-- Members: every reader with an account. Email is stored normalised (trimmed,
-- lower-case) so the unique index compares it case-insensitively on both engines.
CREATE TABLE members (
	id                 TEXT PRIMARY KEY,
	email              TEXT NOT NULL,
	name               TEXT,
	role               TEXT NOT NULL DEFAULT 'patron' CHECK (role IN ('patron', 'staff', 'admin')),
	stripe_customer_id TEXT,
	created_at         TIMESTAMPTZ NOT NULL,
	updated_at         TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX members_email_key ON members (email);

CREATE UNIQUE INDEX members_stripe_customer_key ON members (stripe_customer_id);
