-- A synthetic patron program for the staff-figures benchmarks
-- (bench/metrics.sh seed): :members members over the 24 months up to now,
-- written straight into the tables billing keeps (no events), then
-- `patronage metrics rebuild` computes the counters from them.
--
-- Each member has one subscription: 60 % in euros, 30 % in dollars, 10 %
-- in yen (zero-decimal); 90 % monthly, 10 % yearly; tiers coffee, press,
-- patron. 70 % joined in the first two months, the rest at any time; 10 %
-- began with a 14-day trial; 10 % upgraded a tier some months in; 5 % had a
-- payment fail and recover 5 days later; 15 % cancelled. Every period paid
-- has an invoice (tax 20 % of euro ones); 1 % of invoices were refunded in
-- part; members / 20 gifts.
\set ON_ERROR_STOP on
BEGIN;
SELECT setseed(0.42);

INSERT INTO tiers (slug, name, description, sort_order, vote_weight, created_at, updated_at) VALUES
	('coffee', 'Coffee', 'A coffee a month', 1, 1, now(), now()),
	('press', 'Press pass', 'Three coffees', 2, 1, now(), now()),
	('patron', 'Patron', 'Ten coffees', 3, 2, now(), now());

CREATE TEMP TABLE gen AS
SELECT i,
	'mem_bm_' || lpad(i::text, 7, '0') AS member_id,
	'sub_bm_' || lpad(i::text, 7, '0') AS sub_id,
	CASE WHEN r1 < 0.6 THEN 'eur' WHEN r1 < 0.9 THEN 'usd' ELSE 'jpy' END AS currency,
	CASE WHEN r2 < 0.9 THEN 'month' ELSE 'year' END AS billing_interval,
	CASE WHEN r3 < 0.6 THEN 0 WHEN r3 < 0.9 THEN 1 ELSE 2 END AS tier_no,
	date_trunc('second', CASE WHEN r4 < 0.7 THEN now() - interval '730 days' + r5 * interval '60 days'
		ELSE now() - interval '730 days' + r5 * interval '725 days' END) AS start_at,
	r6 < 0.10 AS trial, r7 < 0.10 AS upgrade, r8 < 0.05 AS failed, r9 < 0.15 AS churned, r10
FROM (SELECT i, random() r1, random() r2, random() r3, random() r4, random() r5, random() r6, random() r7, random() r8, random() r9,
	random() r10 FROM generate_series(1, :members) i) x;

-- Price per month (yearly: ten months' worth), by tier and currency.
CREATE TEMP TABLE price AS
SELECT * FROM (VALUES (0, 'eur', 500), (1, 'eur', 1500), (2, 'eur', 5000), (0, 'usd', 500), (1, 'usd', 1500), (2, 'usd', 5000),
	(0, 'jpy', 700), (1, 'jpy', 2000), (2, 'jpy', 7000)) v(tier_no, currency, amount);

CREATE TEMP TABLE life AS
SELECT g.*, (ARRAY['coffee', 'press', 'patron'])[g.tier_no + 1] AS tier, p.amount * CASE WHEN g.billing_interval = 'year' THEN 10 ELSE 1 END AS amount,
	(ARRAY['coffee', 'press', 'patron'])[LEAST(g.tier_no + 1, 2) + 1] AS up_tier,
	up.amount * CASE WHEN g.billing_interval = 'year' THEN 10 ELSE 1 END AS up_amount,
	g.start_at + CASE WHEN g.trial THEN interval '14 days' ELSE interval '0' END AS paid_from,
	g.start_at + (1 + floor(g.r10 * 10)) * interval '1 month' + interval '3 days' AS change_at,
	CASE WHEN g.churned THEN LEAST(now() - interval '1 day', g.start_at + (2 + floor(g.r10 * 20)) * interval '1 month' - interval '2 days') END AS end_at
FROM gen g JOIN price p ON p.tier_no = g.tier_no AND p.currency = g.currency
JOIN price up ON up.tier_no = LEAST(g.tier_no + 1, 2) AND up.currency = g.currency;

INSERT INTO members (id, email, name, role, stripe_customer_id, created_at, updated_at)
SELECT member_id, 'bm' || i || '@example.org', 'Reader ' || i, 'patron', 'cus_bm_' || i, start_at, start_at FROM life;

CREATE TEMP TABLE hist AS
SELECT sub_id, member_id, start_at AS at, CASE WHEN trial THEN 'trialing' ELSE 'active' END AS status, tier, amount, currency, billing_interval, 1 AS o FROM life
UNION ALL SELECT sub_id, member_id, paid_from, 'active', tier, amount, currency, billing_interval, 2 FROM life WHERE trial
UNION ALL SELECT sub_id, member_id, change_at, 'active', up_tier, up_amount, currency, billing_interval, 3 FROM life
	WHERE upgrade AND change_at < now() AND (end_at IS NULL OR change_at < end_at)
UNION ALL SELECT sub_id, member_id, change_at + interval '10 days', 'past_due', tier, amount, currency, billing_interval, 4 FROM life
	WHERE failed AND NOT upgrade AND change_at + interval '15 days' < now() AND (end_at IS NULL OR change_at + interval '15 days' < end_at)
UNION ALL SELECT sub_id, member_id, change_at + interval '15 days', 'active', tier, amount, currency, billing_interval, 5 FROM life
	WHERE failed AND NOT upgrade AND change_at + interval '15 days' < now() AND (end_at IS NULL OR change_at + interval '15 days' < end_at)
UNION ALL SELECT l.sub_id, l.member_id, l.end_at, 'canceled', CASE WHEN l.upgrade AND l.change_at < l.end_at THEN l.up_tier ELSE l.tier END,
	CASE WHEN l.upgrade AND l.change_at < l.end_at THEN l.up_amount ELSE l.amount END, l.currency, l.billing_interval, 6 FROM life l WHERE l.end_at IS NOT NULL;

INSERT INTO subscription_history (subscription_id, seq, at, member_id, status, tier_slug, price_id, currency, unit_amount, quantity,
	billing_interval, interval_count, event_id)
SELECT sub_id, row_number() OVER (PARTITION BY sub_id ORDER BY at, o), at, member_id, status, tier, 'price_' || tier || '_' || currency || '_' || billing_interval,
	currency, amount, 1, billing_interval, 1, 'evt_bm_' || sub_id || '_' || o FROM hist;

INSERT INTO subscriptions (id, member_id, customer_id, tier_slug, price_id, status, currency, unit_amount, quantity, billing_interval, interval_count,
	current_period_start, current_period_end, ended_at, stripe_created_at, state_at, state_event_id, updated_at)
SELECT DISTINCT ON (sub_id) sub_id, member_id, 'cus_bm_' || substr(sub_id, 8)::int, tier, 'price_' || tier || '_' || currency || '_' || billing_interval, status,
	currency, amount, 1, billing_interval, 1, at, at + interval '1 month', CASE WHEN status = 'canceled' THEN at END, at, at, 'evt_bm', now()
FROM hist ORDER BY sub_id, at DESC, o DESC;

INSERT INTO member_access (member_id, active, source, tier_slug, until_at, changed_at)
SELECT member_id, status IN ('active', 'trialing', 'past_due'), 'subscription', COALESCE(tier_slug, ''), current_period_end, now() FROM subscriptions;

-- An invoice for every period paid, at the price in force then.
INSERT INTO invoices (id, subscription_id, customer_id, member_id, status, currency, amount_due, amount_paid, tax, period_start, period_end,
	billing_reason, charge_id, paid_at, attempt_count, stripe_created_at, state_at, updated_at)
SELECT 'in_bm_' || substr(l.sub_id, 8) || '_' || k, l.sub_id, 'cus_bm_' || l.i, l.member_id, 'paid', l.currency, a.amount, a.amount,
	CASE WHEN l.currency = 'eur' THEN a.amount / 6 ELSE 0 END, p.at, p.at + step, CASE WHEN k = 0 THEN 'subscription_create' ELSE 'subscription_cycle' END,
	'ch_bm_' || substr(l.sub_id, 8) || '_' || k, p.at, 1, p.at, p.at, now()
FROM life l
CROSS JOIN LATERAL (SELECT CASE WHEN l.billing_interval = 'year' THEN interval '1 year' ELSE interval '1 month' END AS step) s
CROSS JOIN LATERAL generate_series(0, 30) k
CROSS JOIN LATERAL (SELECT l.paid_from + k * s.step AS at) p
CROSS JOIN LATERAL (SELECT CASE WHEN l.upgrade AND p.at >= l.change_at THEN l.up_amount ELSE l.amount END AS amount) a
WHERE p.at < now() AND (l.end_at IS NULL OR p.at < l.end_at);

INSERT INTO charges (id, customer_id, member_id, invoice_id, amount, amount_refunded, currency, stripe_created_at, updated_at)
SELECT charge_id, customer_id, member_id, id, amount_paid, amount_paid / 2, currency, paid_at, now() FROM invoices
WHERE id LIKE 'in_bm_%' AND random() < 0.01;
INSERT INTO refunds (id, charge_id, amount, currency, refunded_at)
SELECT 're_' || id, id, amount_refunded, currency, stripe_created_at + interval '2 days' FROM charges WHERE stripe_created_at + interval '2 days' < now();

INSERT INTO donations (id, member_id, email, amount, currency, message, status, stripe_created_at, state_at)
SELECT 'cs_bm_' || i, 'mem_bm_' || lpad((1 + floor(random() * :members))::int::text, 7, '0'), 'bm' || i || '@example.org',
	(ARRAY[300, 1000, 2500])[1 + floor(random() * 3)::int], 'eur', '', 'paid', t, t
FROM (SELECT i, date_trunc('second', now() - random() * interval '729 days') AS t FROM generate_series(1, :members / 20) i) x;

COMMIT;
ANALYZE;
