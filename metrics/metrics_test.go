package metrics

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/patronage/patronage/metrics/metricstest"
)

func ptr(v int64) *int64 { return &v }

// Monthly amounts by the definition's examples: every interval, interval
// counts, quantities, coupons of each kind and duration, zero-decimal
// currencies, and ties rounded to even.
func TestMonthlyAmount(t *testing.T) {
	tests := []struct {
		name string
		p    Plan
		want int64
	}{
		{"monthly", Plan{UnitAmount: 500, Quantity: 1, Interval: "month", IntervalCount: 1}, 500},
		{"quarterly", Plan{UnitAmount: 1000, Quantity: 1, Interval: "month", IntervalCount: 3}, 333},
		{"yearly", Plan{UnitAmount: 5000, Quantity: 1, Interval: "year", IntervalCount: 1}, 417}, // 416.67
		{"two-yearly", Plan{UnitAmount: 12000, Quantity: 1, Interval: "year", IntervalCount: 2}, 500},
		{"weekly", Plan{UnitAmount: 300, Quantity: 1, Interval: "week", IntervalCount: 1}, 1300},     // 300 × 52/12
		{"fortnightly", Plan{UnitAmount: 300, Quantity: 1, Interval: "week", IntervalCount: 2}, 650}, // 300 × 52/24
		{"daily", Plan{UnitAmount: 12, Quantity: 1, Interval: "day", IntervalCount: 1}, 365},         // 12 × 365/12
		{"quantity", Plan{UnitAmount: 500, Quantity: 3, Interval: "month", IntervalCount: 1}, 1500},
		{"tie rounds to even (down)", Plan{UnitAmount: 1, Quantity: 1, Interval: "month", IntervalCount: 2}, 0}, // 0.5
		{"tie rounds to even (up)", Plan{UnitAmount: 3, Quantity: 1, Interval: "month", IntervalCount: 2}, 2},   // 1.5
		{"yen, yearly", Plan{Currency: "jpy", UnitAmount: 6000, Quantity: 1, Interval: "year", IntervalCount: 1}, 500},
		{"forever 25% off", Plan{UnitAmount: 1000, Quantity: 1, Interval: "month", IntervalCount: 1, PercentOffBps: ptr(2500), Duration: "forever"}, 750},
		{"forever 12.5% off, yearly", Plan{UnitAmount: 5000, Quantity: 1, Interval: "year", IntervalCount: 1, PercentOffBps: ptr(1250), Duration: "forever"}, 365}, // 364.58
		{"forever amount off before the factor", Plan{UnitAmount: 5000, Quantity: 2, Interval: "year", IntervalCount: 1, AmountOff: ptr(1000), Duration: "forever"}, 750},
		{"amount off never below 0", Plan{UnitAmount: 500, Quantity: 1, Interval: "month", IntervalCount: 1, AmountOff: ptr(900), Duration: "forever"}, 0},
		{"once coupon ignored", Plan{UnitAmount: 1000, Quantity: 1, Interval: "month", IntervalCount: 1, PercentOffBps: ptr(5000), Duration: "once"}, 1000},
		{"repeating coupon ignored", Plan{UnitAmount: 1000, Quantity: 1, Interval: "month", IntervalCount: 1, AmountOff: ptr(300), Duration: "repeating"}, 1000},
		{"unknown interval", Plan{UnitAmount: 1000, Quantity: 1, Interval: "fortnight", IntervalCount: 1}, 0},
	}
	for _, tt := range tests {
		if got := tt.p.MonthlyAmount(); got != tt.want {
			t.Errorf("%s: monthly amount = %d, want %d", tt.name, got, tt.want)
		}
	}
	p := Plan{Status: "trialing", UnitAmount: 500, Quantity: 1, Interval: "month", IntervalCount: 1}
	for status, counts := range map[string]bool{"active": true, "past_due": true, "trialing": false, "incomplete": false,
		"incomplete_expired": false, "paused": false, "unpaid": false, "canceled": false} {
		p.Status = status
		if got := p.MRR(); (got == 500) != counts {
			t.Errorf("MRR of a %s subscription = %d", status, got)
		}
	}
}

// Random histories against an independent recomputation: for every month,
// each movement, the MRR at both ends, the patron counts, and the identity
// new + reactivation + expansion − contraction − churn = end − start; and
// the snapshot at random instants.
func TestHistoryAgreesWithARecomputationFromTheDefinitions(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		changes := randomHistory(rng)
		h := NewHistory(changes)
		for m := range 8 {
			month := time.Date(2026, time.Month(1+m), 1, 0, 0, 0, 0, time.UTC)
			for _, currency := range []string{"eur", "jpy"} {
				got := h.Movements(month, currency)
				want := Movement(metricstest.Movements(rows(changes), month, currency))
				if got != want {
					t.Fatalf("seed %d, %s %s:\n got %+v\nwant %+v", seed, month.Format("2006-01"), currency, got, want)
				}
				if got.New+got.Reactivation+got.Expansion-got.Contraction-got.Churn != got.MRREnd-got.MRRStart {
					t.Fatalf("seed %d, %s %s: movements do not add up: %+v", seed, month.Format("2006-01"), currency, got)
				}
			}
		}
		for _, currency := range []string{"eur", "jpy"} {
			from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
			if got, want := h.Cohorts(currency, from, to), metricstest.Cohorts(rows(changes), currency, from, to); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("seed %d, %s cohorts:\n got %v\nwant %v", seed, currency, got, want)
			}
		}
		for range 10 {
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(240 * 24 * time.Hour))))
			if got, want := h.ByTier(at), metricstest.ByTier(rows(changes), at); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("seed %d, at %s by tier:\n got %v\nwant %v", seed, at, got, want)
			}
			snap := h.At(at)
			for _, currency := range []string{"eur", "jpy"} {
				want := metricstest.At(rows(changes), at, currency)
				var got Snapshot
				if s := snap[currency]; s != nil {
					got = *s
				}
				if g := (metricstest.Snapshot{MRR: got.MRR, AtRiskMRR: got.AtRiskMRR, Paying: got.PayingPatrons, PastDue: got.PastDue, Trialing: got.TrialingPatron}); g != want {
					t.Fatalf("seed %d, at %s %s:\n got %+v\nwant %+v", seed, at, currency, g, want)
				}
			}
		}
	}
}

// randomHistory makes 30 patrons' subscriptions over 2026, in euros and
// yen, changing plan, quantity, coupon and status at random instants —
// some exactly at midnight on the 1st, some several at the same instant.
func randomHistory(rng *rand.Rand) []Change {
	statuses := []string{"active", "active", "active", "past_due", "trialing", "canceled", "unpaid", "paused", "incomplete"}
	intervals := []string{"month", "month", "year", "week", "day"}
	durations := []string{"forever", "once", "repeating", ""}
	var out []Change
	for p := range 30 {
		patron := fmt.Sprintf("mem_%02d", p)
		for s := range 1 + rng.IntN(2) {
			sub := fmt.Sprintf("sub_%02d_%d", p, s)
			currency := "eur"
			if rng.IntN(4) == 0 {
				currency = "jpy"
			}
			at := time.Date(2026, time.Month(1+rng.IntN(6)), 1+rng.IntN(28), rng.IntN(24), 0, 0, 0, time.UTC)
			if rng.IntN(4) == 0 {
				at = time.Date(2026, time.Month(1+rng.IntN(7)), 1, 0, 0, 0, 0, time.UTC)
			}
			for seq := range 1 + rng.IntN(6) {
				plan := Plan{Status: statuses[rng.IntN(len(statuses))], Currency: currency, UnitAmount: int64(100 + rng.IntN(5000)),
					Quantity: int64(1 + rng.IntN(3)), Interval: intervals[rng.IntN(len(intervals))], IntervalCount: 1 + rng.IntN(3)}
				switch rng.IntN(4) {
				case 0:
					plan.PercentOffBps, plan.Duration = ptr(int64(rng.IntN(10001))), durations[rng.IntN(len(durations))]
				case 1:
					plan.AmountOff, plan.Duration = ptr(int64(rng.IntN(3000))), durations[rng.IntN(len(durations))]
				}
				tier := []string{"coffee", "lunch"}[rng.IntN(2)]
				out = append(out, Change{SubscriptionID: sub, Patron: patron, Seq: seq, At: at, Tier: tier, Plan: plan})
				switch rng.IntN(5) {
				case 0: // the next row at the same instant
				case 1:
					at = time.Date(at.Year(), at.Month()+1, 1, 0, 0, 0, 0, time.UTC)
				default:
					at = at.Add(time.Duration(1+rng.IntN(60*24)) * time.Hour)
				}
			}
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// rows turns history rows into metricstest's, which recomputes the
// figures from the definitions alone.
func rows(changes []Change) []metricstest.Row {
	out := make([]metricstest.Row, 0, len(changes))
	for _, c := range changes {
		out = append(out, metricstest.Row{Patron: c.Patron, Subscription: c.SubscriptionID, At: c.At, Seq: c.Seq, Tier: c.Tier,
			Status: c.Status, Currency: c.Currency, UnitAmount: c.UnitAmount, Quantity: c.Quantity, Interval: c.Interval,
			IntervalCount: c.IntervalCount, PercentOffBps: c.PercentOffBps, AmountOff: c.AmountOff, Duration: c.Duration})
	}
	return out
}
