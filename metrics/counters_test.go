package metrics

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
)

// The counters kept as rows change must answer what the history, read
// whole, answers — at any instant, for any month — however the rows
// arrived: a few at a time with refreshes between, histories rewritten,
// members erased, folds at random moments. A rebuild from scratch must
// then change no counter.
func TestCountersAgreeWithTheHistory(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		svc := NewService(db)
		for seed := range uint64(6) {
			rng := rand.New(rand.NewPCG(seed, 11))
			clear := func() {
				for _, table := range []string{"subscription_history", "metric_sources", "metric_deltas", "metric_days", "metric_pending"} {
					if _, err := db.ExecContext(ctx, `DELETE FROM `+table); err != nil {
						t.Fatal(err)
					}
				}
			}
			clear()
			changes := randomHistory(rng)
			// Deliver in groups; each group refreshes the patrons it touched.
			for len(changes) > 0 {
				n := min(len(changes), 1+rng.IntN(12))
				group := changes[:n]
				changes = changes[n:]
				inTx(t, db, func(tx *sql.Tx) {
					var sources []string
					for _, c := range group {
						insertChange(t, tx, c)
						sources = append(sources, PatronSources(c.Patron, c.SubscriptionID)...)
					}
					if err := Refresh(ctx, tx, sources); err != nil {
						t.Fatal(err)
					}
				})
				if rng.IntN(3) == 0 {
					if err := svc.Fold(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Rewrite a few subscriptions' histories, and erase a member.
			for range 3 {
				sub := fmt.Sprintf("sub_%02d_0", rng.IntN(30))
				inTx(t, db, func(tx *sql.Tx) {
					var patron string
					if err := tx.QueryRowContext(ctx, `SELECT member_id FROM subscription_history WHERE subscription_id = $1 LIMIT 1`, sub).Scan(&patron); err != nil {
						t.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, `UPDATE subscription_history SET unit_amount = unit_amount + 100, status = 'active' WHERE subscription_id = $1 AND seq = 0`, sub); err != nil {
						t.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, `DELETE FROM subscription_history WHERE subscription_id = $1 AND seq = 2`, sub); err != nil {
						t.Fatal(err)
					}
					if err := Refresh(ctx, tx, PatronSources(patron, sub)); err != nil {
						t.Fatal(err)
					}
				})
			}
			erased := fmt.Sprintf("mem_%02d", rng.IntN(30))
			inTx(t, db, func(tx *sql.Tx) {
				subs, err := sqldb.QueryStrings(ctx, tx, `SELECT DISTINCT subscription_id FROM subscription_history WHERE member_id = $1`, erased)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE subscription_history SET member_id = NULL WHERE member_id = $1`, erased); err != nil {
					t.Fatal(err)
				}
				if err := Refresh(ctx, tx, PatronSources(erased, subs...)); err != nil {
					t.Fatal(err)
				}
			})

			h, err := svc.History(ctx)
			if err != nil {
				t.Fatal(err)
			}
			check := func(stage string) {
				t.Helper()
				compareWithHistory(t, ctx, svc, h, rng, fmt.Sprintf("seed %d, %s", seed, stage))
			}
			check("kept as rows arrived")
			before := daySums(t, db)
			if _, err := svc.Rebuild(ctx); err != nil {
				t.Fatal(err)
			}
			if after := daySums(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("seed %d: a rebuild changed the counters:\n kept  %v\n built %v", seed, before, after)
			}
			check("rebuilt")
		}
	})
}

func compareWithHistory(t *testing.T, ctx context.Context, svc *Service, h *History, rng *rand.Rand, where string) {
	t.Helper()
	year := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var instants []time.Time
	for range 12 {
		instants = append(instants, year.Add(time.Duration(rng.Int64N(int64(240*24*time.Hour)))))
	}
	for _, rows := range h.subs {
		instants = append(instants, rows[0].At, rows[len(rows)-1].At.Add(-time.Second))
	}
	for _, at := range instants {
		got, paying, err := svc.Snapshot(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		want := h.At(at)
		for _, cur := range []string{"eur", "jpy"} {
			var g, w Snapshot
			if got[cur] != nil {
				g = *got[cur]
			}
			if want[cur] != nil {
				w = *want[cur]
			}
			w.Currency, g.Currency = cur, cur
			if g != w {
				t.Fatalf("%s, at %s %s:\n got %+v\nwant %+v", where, at, cur, g, w)
			}
			gc, gp, err := svc.ChurnBetween(ctx, at.Add(-30*24*time.Hour), at, cur)
			if err != nil {
				t.Fatal(err)
			}
			if wc, wp := h.ChurnBetween(at.Add(-30*24*time.Hour), at, cur); gc != wc || gp != wp {
				t.Fatalf("%s, 30 days to %s %s: churned %d of %d, want %d of %d", where, at, cur, gc, gp, wc, wp)
			}
		}
		if w := h.PayingPatrons(at); paying != w {
			t.Fatalf("%s, at %s: %d paying in any currency, want %d", where, at, paying, w)
		}
		tiers, err := svc.ByTier(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		if w := h.ByTier(at); fmt.Sprint(tiers) != fmt.Sprint(w) {
			t.Fatalf("%s, at %s by tier:\n got %v\nwant %v", where, at, tiers, w)
		}
	}
	from, to := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for _, cur := range []string{"eur", "jpy"} {
		moves, err := svc.Movements(ctx, from, to, cur)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range moves {
			if w := h.Movements(m.Month, cur); m != w {
				t.Fatalf("%s, %s %s:\n got %+v\nwant %+v", where, m.Month.Format("2006-01"), cur, m, w)
			}
		}
		cohorts, err := svc.Cohorts(ctx, cur, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if w := h.Cohorts(cur, from, to); fmt.Sprint(cohorts) != fmt.Sprint(w) {
			t.Fatalf("%s, %s cohorts:\n got %v\nwant %v", where, cur, cohorts, w)
		}
		at := time.Date(2026, 9, 15, 0, 0, 0, 0, time.UTC)
		gl, gok, err := svc.LTV(ctx, at, cur, 1234)
		if err != nil {
			t.Fatal(err)
		}
		if wl, wok := h.LTV(at, cur, 1234); gl != wl || gok != wok {
			t.Fatalf("%s, %s LTV = %d %v, want %d %v", where, cur, gl, gok, wl, wok)
		}
	}
}

// daySums is every counter's sum per day, folded or not.
func daySums(t *testing.T, db *sqldb.DB) []string {
	rows, err := db.Query(`SELECT key, day, SUM(delta) FROM (SELECT key, day, delta FROM metric_days UNION ALL SELECT key, day, delta FROM metric_pending) x
		GROUP BY key, day HAVING SUM(delta) <> 0 ORDER BY key, day`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var key string
		var day, sum int64
		if err := rows.Scan(&key, &day, &sum); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s@%d=%d", key, day, sum))
	}
	if len(out) == 0 {
		t.Fatal("no counters at all")
	}
	return slices.Clip(out)
}

func inTx(t *testing.T, db *sqldb.DB, fn func(tx *sql.Tx)) {
	t.Helper()
	if err := db.InTx(context.Background(), func(tx *sql.Tx) error { fn(tx); return nil }); err != nil {
		t.Fatal(err)
	}
}

func insertChange(t *testing.T, tx *sql.Tx, c Change) {
	t.Helper()
	var pct, off sql.NullInt64
	if c.PercentOffBps != nil {
		pct = sql.NullInt64{Int64: *c.PercentOffBps, Valid: true}
	}
	if c.AmountOff != nil {
		off = sql.NullInt64{Int64: *c.AmountOff, Valid: true}
	}
	_, err := tx.Exec(`INSERT INTO subscription_history (subscription_id, seq, at, member_id, status, tier_slug, price_id, currency, unit_amount, quantity,
		billing_interval, interval_count, discount_percent_off_bps, discount_amount_off, discount_duration, event_id)
		VALUES ($1, $2, $3, $4, $5, $6, 'price', $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		c.SubscriptionID, c.Seq, c.At, c.Patron, c.Status, c.Tier, c.Currency, c.UnitAmount, c.Quantity, c.Interval, c.IntervalCount,
		pct, off, c.Duration, fmt.Sprintf("evt_%s_%d", c.SubscriptionID, c.Seq))
	if err != nil {
		t.Fatal(err)
	}
}

// The revenue counters kept row by row, in whatever order the ledger's
// rows arrive (a refund before the invoice naming its charge, a gift's
// refund before the gift), equal what the ledger says once all is in.
func TestRevenueCountersWhateverTheOrder(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		svc := NewService(db)
		may := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
		type write struct {
			query                        string
			args                         []any
			invoices, charges, donations []string
		}
		writes := []write{
			{`INSERT INTO invoices (id, customer_id, status, currency, amount_due, amount_paid, tax, charge_id, paid_at, stripe_created_at, state_at, updated_at)
				VALUES ('in_1', 'cus_1', 'paid', 'eur', 6000, 6000, 1000, 'ch_1', $1, $1, $1, $1)`, []any{may}, []string{"in_1"}, nil, nil},
			{`INSERT INTO charges (id, amount, currency, stripe_created_at, updated_at) VALUES ('ch_1', 6000, 'eur', $1, $1)`, []any{may}, nil, []string{"ch_1"}, nil},
			{`INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ('re_1', 'ch_1', 500, 'eur', $1)`, []any{may.AddDate(0, 0, 3)}, nil, []string{"ch_1"}, nil},
			{`INSERT INTO donations (id, amount, currency, status, payment_intent_id, stripe_created_at, state_at) VALUES ('cs_1', 2500, 'eur', 'paid', 'pi_1', $1, $1)`,
				[]any{may.AddDate(0, 1, 0)}, nil, nil, []string{"cs_1"}},
			{`INSERT INTO charges (id, payment_intent_id, amount, currency, stripe_created_at, updated_at) VALUES ('ch_2', 'pi_1', 2500, 'eur', $1, $1)`,
				[]any{may.AddDate(0, 1, 0)}, nil, []string{"ch_2"}, nil},
			{`INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ('re_2', 'ch_2', 1000, 'eur', $1)`, []any{may.AddDate(0, 1, 2)}, nil, []string{"ch_2"}, nil},
			{`INSERT INTO invoices (id, customer_id, status, currency, amount_due, amount_paid, tax, paid_at, stripe_created_at, state_at, updated_at)
				VALUES ('in_2', 'cus_1', 'paid', 'jpy', 800, 800, 0, $1, $1, $1, $1)`, []any{may.AddDate(0, 0, 20)}, []string{"in_2"}, nil, nil},
			{`INSERT INTO charges (id, invoice_id, amount, currency, stripe_created_at, updated_at) VALUES ('ch_3', 'in_2', 800, 'jpy', $1, $1)`,
				[]any{may.AddDate(0, 0, 20)}, nil, []string{"ch_3"}, nil},
			{`INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ('re_3', 'ch_3', 800, 'jpy', $1)`, []any{may.AddDate(0, 1, 0)}, nil, []string{"ch_3"}, nil},
			// A refund of a charge that paid neither an invoice nor a gift
			// is no revenue of ours.
			{`INSERT INTO charges (id, amount, currency, stripe_created_at, updated_at) VALUES ('ch_4', 300, 'eur', $1, $1)`, []any{may}, nil, []string{"ch_4"}, nil},
			{`INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ('re_4', 'ch_4', 300, 'eur', $1)`, []any{may}, nil, []string{"ch_4"}, nil},
		}
		want := map[string]Revenue{
			"eur 2026-05": {Currency: "eur", Gross: 6000, Tax: 1000, Refunds: 500, Net: 4500},
			"jpy 2026-05": {Currency: "jpy", Gross: 800, Net: 800},
			"eur 2026-06": {Currency: "eur", Donations: 1500},
			"jpy 2026-06": {Currency: "jpy", Refunds: 800, Net: -800},
		}
		for seed := range uint64(8) {
			rng := rand.New(rand.NewPCG(seed, 3))
			for _, table := range []string{"invoices", "charges", "refunds", "donations", "metric_sources", "metric_deltas", "metric_days", "metric_pending"} {
				if _, err := db.ExecContext(ctx, `DELETE FROM `+table); err != nil {
					t.Fatal(err)
				}
			}
			order := rng.Perm(len(writes))
			for _, i := range order {
				w := writes[i]
				inTx(t, db, func(tx *sql.Tx) {
					if _, err := tx.ExecContext(ctx, w.query, w.args...); err != nil {
						t.Fatal(err)
					}
					if err := RefreshLedger(ctx, tx, db.Dialect, w.invoices, w.charges, w.donations); err != nil {
						t.Fatal(err)
					}
				})
			}
			months, err := svc.RevenueMonths(ctx, may, may.AddDate(0, 1, 0))
			if err != nil {
				t.Fatal(err)
			}
			for month, byCurrency := range months {
				for _, cur := range []string{"eur", "jpy"} {
					var got Revenue
					if r := byCurrency[cur]; r != nil {
						got = *r
					}
					w := want[cur+" "+month.Format("2006-01")]
					w.Currency, got.Currency = cur, cur
					if got != w {
						t.Errorf("seed %d (order %v), %s %s: %+v, want %+v", seed, order, cur, month.Format("2006-01"), got, w)
					}
				}
			}
			// Over (from, to]: the refund of 3 May is in, the payment of
			// 1 May 10:00 is not when from is that instant.
			between, err := svc.RevenueBetween(ctx, may, may.AddDate(0, 0, 30))
			if err != nil {
				t.Fatal(err)
			}
			if r := between["eur"]; r == nil || r.Gross != 0 || r.Refunds != 500 {
				t.Errorf("seed %d: revenue over (1 May 10:00, 31 May] = %+v, want the refund alone", seed, r)
			}
		}
	})
}

// Counter names are compared as bytes on PostgreSQL whatever the
// database's collation, or the range reads would miss them.
func TestCounterNamesCompareAsBytes(t *testing.T) {
	db := migratedPostgres(t)
	for _, table := range []string{"metric_deltas", "metric_days", "metric_pending"} {
		var collation sql.NullString
		if err := db.QueryRow(`SELECT collation_name FROM information_schema.columns WHERE table_schema = current_schema()
			AND table_name = $1 AND column_name = 'key'`, table).Scan(&collation); err != nil {
			t.Fatal(err)
		}
		if collation.String != "C" {
			t.Errorf("%s.key has collation %q, want C", table, collation.String)
		}
	}
}

// migratedPostgres is a migrated private schema on the test PostgreSQL,
// for what only PostgreSQL has (SQLite compares text as bytes and runs one
// writer at a time); without one, outside CI, the test says it did not run.
func migratedPostgres(t *testing.T) *sqldb.DB {
	t.Helper()
	if testenv.PostgresURL(t) == "" {
		t.Skip("NOT TESTED: PostgreSQL only, and TEST_DATABASE_URL is not set")
	}
	db := testenv.Postgres(t)
	if _, err := db.Migrate(context.Background(), sqldb.Migrations()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// Refreshes, folds and rebuilds running at once on PostgreSQL (where they
// really overlap) leave the counters a rebuild from scratch would make.
func TestCountersUnderConcurrentRefreshFoldAndRebuild(t *testing.T) {
	db := migratedPostgres(t)
	ctx := context.Background()
	svc := NewService(db)
	rng := rand.New(rand.NewPCG(5, 5))
	changes := randomHistory(rng)
	inTx(t, db, func(tx *sql.Tx) {
		for _, c := range changes {
			insertChange(t, tx, c)
		}
	})
	if _, err := svc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for range 40 {
				c := changes[r.IntN(len(changes))]
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, `UPDATE subscription_history SET unit_amount = unit_amount + $1 WHERE subscription_id = $2 AND seq = $3`,
						1+r.IntN(300), c.SubscriptionID, c.Seq); err != nil {
						return err
					}
					return Refresh(ctx, tx, PatronSources(c.Patron, c.SubscriptionID))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	folded := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				folded <- nil
				return
			default:
			}
			if err := svc.Fold(ctx); err != nil {
				folded <- err
				return
			}
		}
	}()
	for range 2 {
		if _, err := svc.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(stop)
	if err := <-folded; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	kept := daySums(t, db)
	if _, err := svc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if built := daySums(t, db); fmt.Sprint(built) != fmt.Sprint(kept) {
		t.Fatalf("after concurrent refreshes, folds and rebuilds the counters differ from a rebuild:\n kept  %v\n built %v", kept, built)
	}
}
