package metrics

import (
	"cmp"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
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
				want := recomputeMovements(changes, month, currency)
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
			if got, want := h.Cohorts(currency, from, to), recomputeCohorts(changes, currency, from, to); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("seed %d, %s cohorts:\n got %v\nwant %v", seed, currency, got, want)
			}
		}
		for range 10 {
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(240 * 24 * time.Hour))))
			if got, want := h.ByTier(at), recomputeByTier(changes, at); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("seed %d, at %s by tier:\n got %v\nwant %v", seed, at, got, want)
			}
			snap := h.At(at)
			for _, currency := range []string{"eur", "jpy"} {
				mrr, paying := recomputeAt(changes, at, currency)
				var got Snapshot
				if s := snap[currency]; s != nil {
					got = *s
				}
				if got.MRR != mrr || got.PayingPatrons != paying {
					t.Fatalf("seed %d, at %s %s: MRR %d paying %d, want %d and %d", seed, at, currency, got.MRR, got.PayingPatrons, mrr, paying)
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

// What follows recomputes the figures from the definitions alone, the
// slow way: exact fractions, every row looked at for every question.

// monthlyRat is a plan's monthly amount before rounding, from the
// definition's table of factors.
func monthlyRat(p Plan) *big.Rat {
	perMonth := map[string]*big.Rat{"month": big.NewRat(1, 1), "year": big.NewRat(1, 12), "week": big.NewRat(52, 12), "day": big.NewRat(365, 12)}
	f, ok := perMonth[p.Interval]
	if !ok || p.IntervalCount < 1 {
		return new(big.Rat)
	}
	amount := new(big.Rat).SetInt64(p.UnitAmount * p.Quantity)
	if p.Duration == "forever" && p.AmountOff != nil {
		amount.Sub(amount, new(big.Rat).SetInt64(*p.AmountOff))
		if amount.Sign() < 0 {
			amount.SetInt64(0)
		}
	}
	if p.Duration == "forever" && p.PercentOffBps != nil {
		amount.Mul(amount, new(big.Rat).Sub(big.NewRat(1, 1), big.NewRat(*p.PercentOffBps, 10000)))
	}
	amount.Mul(amount, f)
	return amount.Quo(amount, new(big.Rat).SetInt64(int64(p.IntervalCount)))
}

// roundRat rounds a non-negative fraction half to even.
func roundRat(r *big.Rat) int64 {
	floor := new(big.Int).Quo(r.Num(), r.Denom())
	frac := new(big.Rat).Sub(r, new(big.Rat).SetInt(floor))
	switch frac.Cmp(big.NewRat(1, 2)) {
	case 1:
		return floor.Int64() + 1
	case 0:
		if floor.Bit(0) == 1 {
			return floor.Int64() + 1
		}
	}
	return floor.Int64()
}

func counted(p Plan) int64 {
	if p.Status != "active" && p.Status != "past_due" {
		return 0
	}
	return roundRat(monthlyRat(p))
}

// stateAt is each subscription's row in force: the last (by time, then
// sequence) with At ≤ t, or At < t when before is set.
func stateAt(changes []Change, t time.Time, before bool) map[string]Change {
	out := map[string]Change{}
	for _, c := range changes {
		if c.At.After(t) || (before && c.At.Equal(t)) {
			continue
		}
		prev, ok := out[c.SubscriptionID]
		if !ok || c.At.After(prev.At) || (c.At.Equal(prev.At) && c.Seq > prev.Seq) {
			out[c.SubscriptionID] = c
		}
	}
	return out
}

func patronTotals(changes []Change, t time.Time, before bool, currency string) map[string]int64 {
	out := map[string]int64{}
	for _, c := range stateAt(changes, t, before) {
		if c.Currency == currency {
			out[c.Patron] += counted(c.Plan)
		}
	}
	return out
}

func recomputeAt(changes []Change, t time.Time, currency string) (mrr int64, paying int) {
	for _, m := range patronTotals(changes, t, false, currency) {
		mrr += m
		if m > 0 {
			paying++
		}
	}
	return mrr, paying
}

func recomputeMovements(changes []Change, month time.Time, currency string) Movement {
	end := month.AddDate(0, 1, 0)
	start := patronTotals(changes, month, true, currency)
	finish := patronTotals(changes, end, true, currency)
	// Was a patron's MRR above 0 at any instant before the month? Only
	// instants where something changed need looking at.
	everBefore := map[string]bool{}
	for _, c := range changes {
		if c.At.Before(month) && patronTotals(changes, c.At, false, currency)[c.Patron] > 0 {
			everBefore[c.Patron] = true
		}
	}
	m := Movement{Month: month}
	patrons := map[string]bool{}
	for p := range start {
		patrons[p] = true
	}
	for p := range finish {
		patrons[p] = true
	}
	for p := range patrons {
		s, e := start[p], finish[p]
		m.MRRStart += s
		m.MRREnd += e
		if s > 0 {
			m.PayingStart++
		}
		if e > 0 {
			m.PayingEnd++
		}
		switch {
		case s == 0 && e > 0 && everBefore[p]:
			m.Reactivation += e
			m.ReactivatedPatrons++
		case s == 0 && e > 0:
			m.New += e
			m.NewPatrons++
		case s > 0 && e == 0:
			m.Churn += s
			m.ChurnedPatrons++
		case s > 0 && e > s:
			m.Expansion += e - s
		case s > 0 && e < s:
			m.Contraction += s - e
		}
	}
	return m
}

func recomputeByTier(changes []Change, at time.Time) []TierFigure {
	type key struct {
		currency, tier, interval string
		count                    int
	}
	perPatron := map[key]map[string]int64{}
	for _, c := range stateAt(changes, at, false) {
		if m := counted(c.Plan); m > 0 {
			k := key{c.Currency, c.Tier, c.Interval, c.IntervalCount}
			if perPatron[k] == nil {
				perPatron[k] = map[string]int64{}
			}
			perPatron[k][c.Patron] += m
		}
	}
	var out []TierFigure
	for k, patrons := range perPatron {
		f := TierFigure{Currency: k.currency, Tier: k.tier, Interval: k.interval, IntervalCount: k.count, Patrons: len(patrons)}
		for _, m := range patrons {
			f.MRR += m
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b TierFigure) int {
		return cmp.Or(cmp.Compare(a.Currency, b.Currency), cmp.Compare(a.Tier, b.Tier), cmp.Compare(a.Interval, b.Interval), cmp.Compare(a.IntervalCount, b.IntervalCount))
	})
	if out == nil {
		out = []TierFigure{}
	}
	return out
}

func recomputeCohorts(changes []Change, currency string, from, to time.Time) []Cohort {
	// Each patron's first instant with MRR > 0: only instants where
	// something changed can be it.
	first := map[string]time.Time{}
	for _, c := range changes {
		if patronTotals(changes, c.At, false, currency)[c.Patron] > 0 {
			if f, ok := first[c.Patron]; !ok || c.At.Before(f) {
				first[c.Patron] = c.At
			}
		}
	}
	var out []Cohort
	for m := from; !m.After(to); m = m.AddDate(0, 1, 0) {
		var patrons []string
		for p, f := range first {
			if f.Year() == m.Year() && f.Month() == m.Month() {
				patrons = append(patrons, p)
			}
		}
		c := Cohort{Month: m, Patrons: len(patrons)}
		for k := m; !k.After(to); k = k.AddDate(0, 1, 0) {
			totals := patronTotals(changes, k.AddDate(0, 1, 0), true, currency)
			cm := CohortMonth{Month: k}
			for _, p := range patrons {
				if totals[p] > 0 {
					cm.Retained++
					cm.MRR += totals[p]
				}
			}
			if c.Patrons > 0 {
				cm.Share = float64(cm.Retained) / float64(c.Patrons)
			}
			c.Months = append(c.Months, cm)
		}
		out = append(out, c)
	}
	return out
}
