package metrics

import (
	"cmp"
	"maps"
	"math/big"
	"slices"
	"sort"
	"time"
)

// History holds subscriptions' histories and answers MRR questions about
// any instant. The state at an instant t includes every row with At ≤ t;
// a month's start and end are the instants just before it and the next
// month begin, so a change at midnight on the 1st belongs to the month it
// opens.
type History struct {
	subs    map[string][]Change // by subscription, in (At, Seq) order
	patrons map[string][]string // patron → their subscriptions
	// firstPositive is, per patron and currency, the first instant their
	// MRR was above 0.
	firstPositive map[patronCurrency]time.Time
}

type patronCurrency struct{ patron, currency string }

// NewHistory orders the rows and prepares the answers.
func NewHistory(changes []Change) *History {
	h := &History{subs: map[string][]Change{}, patrons: map[string][]string{}, firstPositive: map[patronCurrency]time.Time{}}
	for _, c := range changes {
		if _, seen := h.subs[c.SubscriptionID]; !seen {
			h.patrons[c.Patron] = append(h.patrons[c.Patron], c.SubscriptionID)
		}
		h.subs[c.SubscriptionID] = append(h.subs[c.SubscriptionID], c)
	}
	for _, rows := range h.subs {
		sort.SliceStable(rows, func(i, j int) bool {
			if !rows[i].At.Equal(rows[j].At) {
				return rows[i].At.Before(rows[j].At)
			}
			return rows[i].Seq < rows[j].Seq
		})
	}
	for patron, subs := range h.patrons {
		h.findFirstPositive(patron, subs)
	}
	return h
}

// findFirstPositive walks a patron's rows in time order, all rows of an
// instant together, and notes when each currency's MRR first exceeds 0.
func (h *History) findFirstPositive(patron string, subs []string) {
	var all []Change
	for _, id := range subs {
		all = append(all, h.subs[id]...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	current := map[string]Change{} // subscription → its row in force
	for i := 0; i < len(all); {
		at := all[i].At
		for ; i < len(all) && all[i].At.Equal(at); i++ {
			current[all[i].SubscriptionID] = all[i] // a subscription's rows stay in Seq order
		}
		sums := map[string]int64{}
		for _, c := range current {
			sums[c.Currency] += c.MRR()
		}
		for currency, sum := range sums {
			key := patronCurrency{patron, currency}
			if _, done := h.firstPositive[key]; !done && sum > 0 {
				h.firstPositive[key] = at
			}
		}
	}
}

// row is the subscription's row in force at t (inclusive: At ≤ t), or at
// the instant just before t (exclusive).
func (h *History) row(sub string, t time.Time, inclusive bool) (Change, bool) {
	rows := h.subs[sub]
	n := sort.Search(len(rows), func(i int) bool {
		if inclusive {
			return rows[i].At.After(t)
		}
		return !rows[i].At.Before(t)
	})
	if n == 0 {
		return Change{}, false
	}
	return rows[n-1], true
}

// patronMRR is a patron's MRR in a currency at t (or just before it).
func (h *History) patronMRR(patron, currency string, t time.Time, inclusive bool) int64 {
	var sum int64
	for _, sub := range h.patrons[patron] {
		if c, ok := h.row(sub, t, inclusive); ok && c.Currency == currency {
			sum += c.MRR()
		}
	}
	return sum
}

// Snapshot is a currency's figures at an instant.
type Snapshot struct {
	Currency       string
	MRR            int64
	PayingPatrons  int   // patrons with MRR > 0
	ARPU           int64 // MRR / paying patrons, half to even; 0 with none
	AtRiskMRR      int64 // the MRR of past_due subscriptions
	PastDue        int   // patrons with a past_due subscription
	TrialingPatron int   // patrons with a trialing subscription
}

// At is every currency's snapshot at t, by currency.
func (h *History) At(t time.Time) map[string]*Snapshot {
	out := map[string]*Snapshot{}
	get := func(currency string) *Snapshot {
		s, ok := out[currency]
		if !ok {
			s = &Snapshot{Currency: currency}
			out[currency] = s
		}
		return s
	}
	for _, subs := range h.patrons {
		mrr := map[string]int64{}
		pastDue, trialing := map[string]bool{}, map[string]bool{}
		for _, sub := range subs {
			c, ok := h.row(sub, t, true)
			if !ok {
				continue
			}
			mrr[c.Currency] += c.MRR()
			switch c.Status {
			case "past_due":
				get(c.Currency).AtRiskMRR += c.MRR()
				pastDue[c.Currency] = true
			case "trialing":
				trialing[c.Currency] = true
			}
		}
		for currency, m := range mrr {
			s := get(currency)
			s.MRR += m
			if m > 0 {
				s.PayingPatrons++
			}
		}
		for currency := range pastDue {
			get(currency).PastDue++
		}
		for currency := range trialing {
			get(currency).TrialingPatron++
		}
	}
	for _, s := range out {
		if s.PayingPatrons > 0 {
			s.ARPU = divHalfEven(s.MRR, int64(s.PayingPatrons))
		}
	}
	return out
}

// Movement is a calendar month's change of MRR in one currency, split by
// what each patron did.
type Movement struct {
	Month                                            time.Time // its first instant, UTC
	MRRStart, MRREnd                                 int64
	New, Reactivation, Expansion, Contraction, Churn int64
	PayingStart, PayingEnd                           int
	NewPatrons, ReactivatedPatrons, ChurnedPatrons   int
}

// MonthOf is the month containing t: its first instant, UTC.
func MonthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Movements is the month's movements in a currency; month is any instant
// in it. New + Reactivation + Expansion − Contraction − Churn always
// equals MRREnd − MRRStart.
func (h *History) Movements(month time.Time, currency string) Movement {
	start := MonthOf(month)
	end := start.AddDate(0, 1, 0)
	m := Movement{Month: start}
	for patron := range h.patrons {
		s := h.patronMRR(patron, currency, start, false)
		e := h.patronMRR(patron, currency, end, false)
		m.MRRStart += s
		m.MRREnd += e
		if s > 0 {
			m.PayingStart++
		}
		if e > 0 {
			m.PayingEnd++
		}
		switch {
		case s == 0 && e > 0:
			if first, ok := h.firstPositive[patronCurrency{patron, currency}]; ok && first.Before(start) {
				m.Reactivation += e
				m.ReactivatedPatrons++
			} else {
				m.New += e
				m.NewPatrons++
			}
		case s > 0 && e == 0:
			m.Churn += s
			m.ChurnedPatrons++
		case e > s:
			m.Expansion += e - s
		case e < s:
			m.Contraction += s - e
		}
	}
	return m
}

// DivHalfEven divides a non-negative num by den > 0, rounding half to even.
func DivHalfEven(num, den int64) int64 { return divHalfEven(num, den) }

func divHalfEven(num, den int64) int64 {
	q, r := num/den, num%den
	switch twice := 2 * r; {
	case twice > den, twice == den && q%2 == 1:
		q++
	}
	return q
}

// ChurnBetween counts, in a currency, the patrons paying at from (MRR > 0)
// and those of them whose MRR is 0 at to.
func (h *History) ChurnBetween(from, to time.Time, currency string) (churned, payingAtFrom int) {
	for patron := range h.patrons {
		if h.patronMRR(patron, currency, from, true) == 0 {
			continue
		}
		payingAtFrom++
		if h.patronMRR(patron, currency, to, true) == 0 {
			churned++
		}
	}
	return churned, payingAtFrom
}

// Currencies lists every currency the history has, sorted.
func (h *History) Currencies() []string {
	seen := map[string]bool{}
	for _, rows := range h.subs {
		for _, c := range rows {
			seen[c.Currency] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// TierFigure is the MRR and paying patrons of one tier and billing
// interval in one currency.
type TierFigure struct {
	Currency, Tier, Interval string
	IntervalCount            int
	MRR                      int64
	Patrons                  int // patrons with MRR > 0 on this tier and interval
}

// ByTier splits the MRR at t by currency, tier and interval, sorted.
func (h *History) ByTier(t time.Time) []TierFigure {
	type key struct {
		currency, tier, interval string
		count                    int
	}
	figures := map[key]*TierFigure{}
	for _, subs := range h.patrons {
		mine := map[key]int64{}
		for _, sub := range subs {
			if c, ok := h.row(sub, t, true); ok && c.MRR() > 0 {
				mine[key{c.Currency, c.Tier, c.Interval, c.IntervalCount}] += c.MRR()
			}
		}
		for k, m := range mine {
			f, ok := figures[k]
			if !ok {
				f = &TierFigure{Currency: k.currency, Tier: k.tier, Interval: k.interval, IntervalCount: k.count}
				figures[k] = f
			}
			f.MRR += m
			f.Patrons++
		}
	}
	out := make([]TierFigure, 0, len(figures))
	for _, f := range figures {
		out = append(out, *f)
	}
	sortTiers(out)
	return out
}

// sortTiers orders tier figures by currency, tier, interval and count.
func sortTiers(out []TierFigure) {
	slices.SortFunc(out, func(a, b TierFigure) int {
		return cmp.Or(cmp.Compare(a.Currency, b.Currency), cmp.Compare(a.Tier, b.Tier), cmp.Compare(a.Interval, b.Interval),
			cmp.Compare(a.IntervalCount, b.IntervalCount))
	})
}

// Cohort is the patrons whose MRR in a currency first exceeded 0 in one
// month, followed month by month.
type Cohort struct {
	Month   time.Time // the month they joined
	Patrons int
	Months  []CohortMonth // from the month they joined to the last asked for
}

// CohortMonth is how a cohort stood at the end of a month.
type CohortMonth struct {
	Month    time.Time
	Retained int     // patrons of the cohort with MRR > 0 at the month's end
	Share    float64 // Retained / the cohort's patrons
	MRR      int64   // their MRR then
}

// Cohorts groups a currency's patrons by the month their MRR first became
// > 0, for cohorts from the month of from to the month of to, each
// followed to the month of to.
func (h *History) Cohorts(currency string, from, to time.Time) []Cohort {
	first, last := MonthOf(from), MonthOf(to)
	members := map[time.Time][]string{}
	for key, at := range h.firstPositive {
		if key.currency != currency {
			continue
		}
		m := MonthOf(at)
		if !m.Before(first) && !m.After(last) {
			members[m] = append(members[m], key.patron)
		}
	}
	var out []Cohort
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		patrons := members[m]
		c := Cohort{Month: m, Patrons: len(patrons)}
		for k := m; !k.After(last); k = k.AddDate(0, 1, 0) {
			cm := CohortMonth{Month: k}
			end := k.AddDate(0, 1, 0)
			for _, p := range patrons {
				if mrr := h.patronMRR(p, currency, end, false); mrr > 0 {
					cm.Retained++
					cm.MRR += mrr
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

// PayingPatrons counts the patrons with MRR > 0 at t in any currency, each
// once.
func (h *History) PayingPatrons(t time.Time) int {
	n := 0
	for _, subs := range h.patrons {
		for _, sub := range subs {
			if c, ok := h.row(sub, t, true); ok && c.MRR() > 0 {
				n++
				break
			}
		}
	}
	return n
}

// LTV is a patron's lifetime value in a currency at t: ARPU at t over the
// mean monthly patron churn rate of the six full months before t's month
// (those with paying patrons at their start), rounded half to even; false
// when there is no such month or the mean is 0.
func (h *History) LTV(t time.Time, currency string, arpu int64) (int64, bool) {
	var moves []Movement
	for k := 6; k >= 1; k-- {
		moves = append(moves, h.Movements(MonthOf(t).AddDate(0, -k, 0), currency))
	}
	return ltvOf(moves, arpu)
}

// ltvOf is ARPU over the mean patron churn rate of the months that had
// paying patrons at their start, rounded half to even; false when there is
// no such month or the mean is 0.
func ltvOf(moves []Movement, arpu int64) (int64, bool) {
	sum := new(big.Rat)
	n := int64(0)
	for _, m := range moves {
		if m.PayingStart == 0 {
			continue
		}
		sum.Add(sum, big.NewRat(int64(m.ChurnedPatrons), int64(m.PayingStart)))
		n++
	}
	if n == 0 || sum.Sign() == 0 {
		return 0, false
	}
	// ARPU / (sum / n) = ARPU × n / sum
	v := new(big.Rat).Mul(new(big.Rat).SetInt64(arpu*n), new(big.Rat).Inv(sum))
	return roundHalfEven(new(big.Int).Set(v.Num()), new(big.Int).Set(v.Denom())), true
}
