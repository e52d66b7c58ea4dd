package metrics

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
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
