// Package metricstest recomputes the staff figures from the definitions in
// docs/metrics.md alone, the slow way — exact fractions, every row looked
// at for every question, nothing shared with package metrics — so tests
// can hold the real figures to it.
package metricstest

import (
	"cmp"
	"math/big"
	"slices"
	"time"
)

// Row is a subscription's state from At on (until its next row): what a
// Stripe subscription object said at that instant.
type Row struct {
	Patron, Subscription string
	At                   time.Time
	Seq                  int // order of rows of one subscription at the same instant
	Tier                 string
	Status, Currency     string
	UnitAmount, Quantity int64
	Interval             string
	IntervalCount        int
	// A coupon: percent off in basis points or an amount off, and its
	// duration (forever, once, repeating).
	PercentOffBps, AmountOff *int64
	Duration                 string
}

// Monthly is a row's monthly amount before rounding, from the definition's
// table of factors; only forever coupons apply.
func Monthly(r Row) *big.Rat {
	perMonth := map[string]*big.Rat{"month": big.NewRat(1, 1), "year": big.NewRat(1, 12), "week": big.NewRat(52, 12), "day": big.NewRat(365, 12)}
	f, ok := perMonth[r.Interval]
	if !ok || r.IntervalCount < 1 {
		return new(big.Rat)
	}
	amount := new(big.Rat).SetInt64(r.UnitAmount * r.Quantity)
	if r.Duration == "forever" && r.AmountOff != nil {
		amount.Sub(amount, new(big.Rat).SetInt64(*r.AmountOff))
		if amount.Sign() < 0 {
			amount.SetInt64(0)
		}
	}
	if r.Duration == "forever" && r.PercentOffBps != nil {
		amount.Mul(amount, new(big.Rat).Sub(big.NewRat(1, 1), big.NewRat(*r.PercentOffBps, 10000)))
	}
	amount.Mul(amount, f)
	return amount.Quo(amount, new(big.Rat).SetInt64(int64(r.IntervalCount)))
}

// Round rounds a non-negative fraction half to even.
func Round(r *big.Rat) int64 {
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

// Counted is what a row adds to MRR: its monthly amount, rounded, while
// active or past due; 0 otherwise.
func Counted(r Row) int64 {
	if r.Status != "active" && r.Status != "past_due" {
		return 0
	}
	return Round(Monthly(r))
}

// stateAt is each subscription's row in force: the last (by time, then
// sequence) with At ≤ t, or At < t when before is set.
func stateAt(rows []Row, t time.Time, before bool) map[string]Row {
	out := map[string]Row{}
	for _, c := range rows {
		if c.At.After(t) || (before && c.At.Equal(t)) {
			continue
		}
		prev, ok := out[c.Subscription]
		if !ok || c.At.After(prev.At) || (c.At.Equal(prev.At) && c.Seq > prev.Seq) {
			out[c.Subscription] = c
		}
	}
	return out
}

// PatronTotals is each patron's MRR in a currency at t (just before t when
// before is set).
func PatronTotals(rows []Row, t time.Time, before bool, currency string) map[string]int64 {
	out := map[string]int64{}
	for _, c := range stateAt(rows, t, before) {
		if c.Currency == currency {
			out[c.Patron] += Counted(c)
		}
	}
	return out
}

// Snapshot is a currency's figures at an instant.
type Snapshot struct {
	MRR, AtRiskMRR            int64
	Paying, PastDue, Trialing int
}

// At is a currency's figures at t.
func At(rows []Row, t time.Time, currency string) Snapshot {
	var s Snapshot
	for _, m := range PatronTotals(rows, t, false, currency) {
		s.MRR += m
		if m > 0 {
			s.Paying++
		}
	}
	pastDue, trialing := map[string]bool{}, map[string]bool{}
	for _, c := range stateAt(rows, t, false) {
		if c.Currency != currency {
			continue
		}
		switch c.Status {
		case "past_due":
			s.AtRiskMRR += Counted(c)
			pastDue[c.Patron] = true
		case "trialing":
			trialing[c.Patron] = true
		}
	}
	s.PastDue, s.Trialing = len(pastDue), len(trialing)
	return s
}

// Movement is a month's movements in one currency (fields as
// metrics.Movement, so one converts to the other).
type Movement struct {
	Month                                            time.Time
	MRRStart, MRREnd                                 int64
	New, Reactivation, Expansion, Contraction, Churn int64
	PayingStart, PayingEnd                           int
	NewPatrons, ReactivatedPatrons, ChurnedPatrons   int
}

// Movements compares each patron's MRR just before the month with it just
// before the next.
func Movements(rows []Row, month time.Time, currency string) Movement {
	end := month.AddDate(0, 1, 0)
	start := PatronTotals(rows, month, true, currency)
	finish := PatronTotals(rows, end, true, currency)
	// Was a patron's MRR above 0 at any instant before the month? Only
	// instants where something changed need looking at.
	everBefore := map[string]bool{}
	for _, c := range rows {
		if c.At.Before(month) && PatronTotals(rows, c.At, false, currency)[c.Patron] > 0 {
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

// TierFigure is the MRR and paying patrons of a tier and interval (fields
// as metrics.TierFigure).
type TierFigure struct {
	Currency, Tier, Interval string
	IntervalCount            int
	MRR                      int64
	Patrons                  int
}

// ByTier splits the MRR at t by currency, tier and interval, sorted.
func ByTier(rows []Row, at time.Time) []TierFigure {
	type key struct {
		currency, tier, interval string
		count                    int
	}
	perPatron := map[key]map[string]int64{}
	for _, c := range stateAt(rows, at, false) {
		if m := Counted(c); m > 0 {
			k := key{c.Currency, c.Tier, c.Interval, c.IntervalCount}
			if perPatron[k] == nil {
				perPatron[k] = map[string]int64{}
			}
			perPatron[k][c.Patron] += m
		}
	}
	out := []TierFigure{}
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
	return out
}

// Cohort and CohortMonth print as metrics.Cohort and metrics.CohortMonth.
type Cohort struct {
	Month   time.Time
	Patrons int
	Months  []CohortMonth
}

type CohortMonth struct {
	Month    time.Time
	Retained int
	Share    float64
	MRR      int64
}

// Cohorts groups a currency's patrons by the month their MRR first became
// > 0, for cohorts from from to to, each followed to to.
func Cohorts(rows []Row, currency string, from, to time.Time) []Cohort {
	first := map[string]time.Time{}
	for _, c := range rows {
		if PatronTotals(rows, c.At, false, currency)[c.Patron] > 0 {
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
			totals := PatronTotals(rows, k.AddDate(0, 1, 0), true, currency)
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
