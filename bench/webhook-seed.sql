-- Seed for the webhook benchmarks (bench/webhookload.go): the three tiers
-- of bench/README.md with Stripe ids, and :subs members (default 2,000),
-- each the owner of Stripe customer cus_bench_<k> as a completed Checkout
-- would have left them. Run after the server has migrated the database:
--   psql "$DATABASE_URL" -v subs=2000 -f bench/webhook-seed.sql
\if :{?subs}
\else
\set subs 2000
\endif
BEGIN;
INSERT INTO tiers (slug, name, description, sort_order, stripe_product_id, created_at, updated_at)
VALUES ('coffee', 'Coffee', 'A coffee a month', 1, 'prod_bench_coffee', now(), now()),
       ('lunch', 'Lunch', 'A lunch a month', 2, 'prod_bench_lunch', now(), now()),
       ('dinner', 'Dinner', 'A dinner a month', 3, 'prod_bench_dinner', now(), now());
INSERT INTO tier_prices (tier_slug, currency, billing_interval, amount, stripe_price_id)
VALUES ('coffee', 'EUR', 'month', 500, 'price_bench_coffee_month'), ('coffee', 'EUR', 'year', 5000, 'price_bench_coffee_year'),
       ('lunch', 'EUR', 'month', 1500, 'price_bench_lunch_month'), ('lunch', 'EUR', 'year', 15000, 'price_bench_lunch_year'),
       ('dinner', 'EUR', 'month', 5000, 'price_bench_dinner_month'), ('dinner', 'EUR', 'year', 50000, 'price_bench_dinner_year');
INSERT INTO members (id, email, stripe_customer_id, created_at, updated_at)
SELECT format('mem_bench_%s', lpad(k::text, 5, '0')), format('patron-%s@example.org', k),
       format('cus_bench_%s', lpad(k::text, 5, '0')), now(), now()
FROM generate_series(0, :subs - 1) AS k;
COMMIT;
ANALYZE;
