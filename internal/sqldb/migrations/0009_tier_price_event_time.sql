-- The created time of the Stripe event a price was last taken from, so a
-- late event about an older price cannot overwrite a newer one.
ALTER TABLE tier_prices ADD COLUMN stripe_event_at TIMESTAMPTZ;
