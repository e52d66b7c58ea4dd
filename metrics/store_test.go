package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/metrics"
)

// The history and the ledger read back from both databases: coupons, a
// subscription whose member was erased, invoices net of tax and of their
// refunds, donations net of theirs, each by its own date.
func TestHistoryAndRevenueFromTheDatabase(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.ExecContext(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		jan := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
		exec(`INSERT INTO subscription_history (subscription_id, seq, at, member_id, status, price_id, currency, unit_amount, quantity,
			billing_interval, interval_count, discount_percent_off_bps, discount_duration, event_id)
			VALUES ('sub_1', 1, $1, 'mem_1', 'active', 'p', 'EUR', 1000, 1, 'month', 1, 2500, 'forever', 'evt_1')`, jan)
		exec(`INSERT INTO subscription_history (subscription_id, seq, at, member_id, status, price_id, currency, unit_amount, quantity,
			billing_interval, interval_count, discount_amount_off, discount_duration, event_id)
			VALUES ('sub_2', 1, $1, NULL, 'active', 'p', 'eur', 6000, 1, 'year', 1, 6000, 'once', 'evt_2')`, jan)
		h, err := metrics.NewService(db).History(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s := h.At(jan)["eur"]
		if s == nil || s.MRR != 750+500 || s.PayingPatrons != 2 {
			t.Fatalf("snapshot = %+v, want MRR 1250 from 2 patrons (a forever 25%% coupon; a once coupon ignored)", s)
		}

		may := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
		exec(`INSERT INTO invoices (id, customer_id, status, currency, amount_due, amount_paid, tax, paid_at, stripe_created_at, state_at, updated_at)
			VALUES ('in_1', 'cus_1', 'paid', 'eur', 6000, 6000, 1000, $1, $1, $1, $1)`, may)
		exec(`INSERT INTO invoices (id, customer_id, status, currency, amount_due, amount_paid, tax, paid_at, stripe_created_at, state_at, updated_at)
			VALUES ('in_2', 'cus_1', 'paid', 'eur', 700, 700, 0, $1, $1, $1, $1)`, may.AddDate(0, 1, 0))
		exec(`INSERT INTO charges (id, invoice_id, amount, currency, stripe_created_at, updated_at) VALUES ('ch_1', 'in_1', 6000, 'eur', $1, $1)`, may)
		exec(`INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ('re_1', 'ch_1', 500, 'eur', $1)`, may.Add(time.Hour))
		exec(`INSERT INTO donations (id, amount, currency, status, payment_intent_id, stripe_created_at, state_at) VALUES ('cs_1', 2500, 'eur', 'paid', 'pi_1', $1, $1)`, may)
		exec(`INSERT INTO donations (id, amount, currency, status, stripe_created_at, state_at) VALUES ('cs_2', 900, 'eur', 'failed', $1, $1)`, may)
		exec(`INSERT INTO charges (id, payment_intent_id, amount, currency, stripe_created_at, updated_at) VALUES ('ch_2', 'pi_1', 2500, 'eur', $1, $1)`, may)
		exec(`INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ('re_2', 'ch_2', 1000, 'eur', $1)`, may.Add(time.Hour))
		// A charge linked to its invoice only from the invoice's side.
		exec(`INSERT INTO invoices (id, customer_id, status, currency, amount_due, amount_paid, tax, charge_id, paid_at, stripe_created_at, state_at, updated_at)
			VALUES ('in_3', 'cus_1', 'paid', 'eur', 300, 300, 0, 'ch_3', $1, $1, $1, $1)`, may)
		exec(`INSERT INTO charges (id, amount, currency, stripe_created_at, updated_at) VALUES ('ch_3', 300, 'eur', $1, $1)`, may)
		exec(`INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ('re_3', 'ch_3', 200, 'eur', $1)`, may.Add(time.Hour))
		svc := metrics.NewService(db)
		if _, err := svc.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		if sn, _, err := svc.Snapshot(ctx, jan); err != nil || sn["eur"] == nil || *sn["eur"] != *s {
			t.Fatalf("counters' snapshot = %+v, %v; want %+v", sn["eur"], err, s)
		}
		rev, err := svc.RevenueBetween(ctx, may.Add(-time.Hour), may.AddDate(0, 0, 7))
		if err != nil {
			t.Fatal(err)
		}
		want := metrics.Revenue{Currency: "eur", Gross: 6300, Tax: 1000, Refunds: 700, Net: 4600, Donations: 1500}
		if r := rev["eur"]; r == nil || *r != want {
			t.Errorf("revenue = %+v, want %+v", r, want)
		}
	})
}

// Rates are stored exactly, replaced for the same instant, found by the
// instant measured, and convert between currencies of different decimals.
func TestExchangeRates(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s := metrics.NewService(db)
		jan, may := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC)
		for _, r := range []metrics.Rate{
			{Currency: "JPY", Reporting: "eur", ValidFrom: jan, Rate: "0.0070"},
			{Currency: "jpy", Reporting: "eur", ValidFrom: jan, Rate: "0.0061"}, // replaces the one before
			{Currency: "jpy", Reporting: "eur", ValidFrom: may, Rate: "0.0062"},
		} {
			if _, err := s.SetRate(ctx, members.CommandLine, r); err != nil {
				t.Fatal(err)
			}
		}
		rates, err := s.Rates(ctx, "EUR")
		if err != nil || len(rates) != 2 {
			t.Fatalf("rates = %+v, %v", rates, err)
		}
		if r, ok := metrics.RateAt(rates, "jpy", may.Add(-time.Second)); !ok || r.Rate != "0.0061" {
			t.Errorf("rate just before May 5 = %+v", r)
		}
		if r, ok := metrics.RateAt(rates, "jpy", may); !ok || r.Rate != "0.0062" {
			t.Errorf("rate on May 5 = %+v", r)
		}
		if _, ok := metrics.RateAt(rates, "jpy", jan.Add(-time.Second)); ok {
			t.Error("a rate before any was entered")
		}
	})
	for _, tt := range []struct {
		amount   int64
		from, to string
		rate     string
		want     int64
	}{
		{1000, "jpy", "eur", "0.0062", 620},   // ¥1,000 → €6.20
		{1250, "eur", "jpy", "162.5", 2031},   // €12.50 → ¥2,031.25 → ¥2,031
		{1, "eur", "kwd", "0.33", 3},          // €0.01 → 0.0033 KWD → 3 fils
		{25, "eur", "usd", "1.1", 28},         // 27.5 cents, ties to even → 28
		{35, "eur", "usd", "0.5", 18},         // 17.5 → 18
		{-1000, "jpy", "eur", "0.0062", -620}, // refunds larger than payments
	} {
		if got := metrics.Convert(tt.amount, tt.from, tt.to, tt.rate); got != tt.want {
			t.Errorf("Convert(%d %s → %s at %s) = %d, want %d", tt.amount, tt.from, tt.to, tt.rate, got, tt.want)
		}
	}
}
