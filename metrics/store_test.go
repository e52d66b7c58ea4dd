package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
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
		rev, err := metrics.NewService(db).RevenueBetween(ctx, may.Add(-time.Hour), may.AddDate(0, 0, 7))
		if err != nil {
			t.Fatal(err)
		}
		want := metrics.Revenue{Currency: "eur", Gross: 6000, Tax: 1000, Refunds: 500, Net: 4500, Donations: 1500}
		if r := rev["eur"]; r == nil || *r != want {
			t.Errorf("revenue = %+v, want %+v", r, want)
		}
	})
}
