package metrics

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The figures are kept as counters: named sums that sources (a patron's
// subscription history, an invoice, a refund, a gift) add signed amounts
// to at instants. A counter's value at t is the sum of what was added at
// or before t. The names:
//
//	s|CUR|mrr, s|CUR|paying, s|CUR|at_risk, s|CUR|past_due, s|CUR|trialing
//	s|*|paying                          a patron paying in any currency
//	t|CUR|TIER|INTERVAL|COUNT|mrr       and …|patrons: the tier split
//	m|CUR|KIND                          a month's movements, added at the
//	                                    month's first instant (KIND: new,
//	                                    reactivation, expansion, contraction,
//	                                    churn, new_patrons,
//	                                    reactivated_patrons, churned_patrons)
//	c|CUR|YYYY-MM|size, …|paying, …|mrr a cohort's size and how its patrons
//	                                    stand
//	r|CUR|gross, r|CUR|tax, r|CUR|refunds, r|CUR|donations
//
// Per patron and currency, paying, past_due and trialing are 0 or 1, so
// their sums count patrons.

// point is a contribution's counter and instant (Unix microseconds).
type point struct {
	key string
	at  int64
}

func counter(parts ...string) string { return strings.Join(parts, "|") }

// keyRange is the half-open range of counter names starting with prefix
// and a separator: every name "prefix|…".
func keyRange(prefix string) (lo, hi string) { return prefix + "|", prefix + "}" }

// dayOf is t's UTC day: days since 1970-01-01.
func dayOf(t time.Time) int64 {
	return floorDiv(t.Unix(), 86400)
}

// monthNumber is t's UTC month as year × 12 + month − 1.
func monthNumber(t time.Time) int64 {
	t = t.UTC()
	return int64(t.Year())*12 + int64(t.Month()) - 1
}

func monthFromNumber(n int64) time.Time {
	return time.Date(int(floorDiv(n, 12)), time.Month(n-floorDiv(n, 12)*12+1), 1, 0, 0, 0, 0, time.UTC)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func microTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

// patronFigures is a patron's counters at t (or just before it), the zero
// ones left out.
func (h *History) patronFigures(patron string, t time.Time, inclusive bool) map[string]int64 {
	out := map[string]int64{}
	mrr := map[string]int64{}
	tiers := map[string]int64{}
	for _, sub := range h.patrons[patron] {
		c, ok := h.row(sub, t, inclusive)
		if !ok {
			continue
		}
		m := c.MRR()
		mrr[c.Currency] += m
		switch c.Status {
		case "past_due":
			out[counter("s", c.Currency, "past_due")] = 1
			if m != 0 {
				out[counter("s", c.Currency, "at_risk")] += m
			}
		case "trialing":
			out[counter("s", c.Currency, "trialing")] = 1
		}
		if m > 0 {
			tiers[counter("t", c.Currency, c.Tier, c.Interval, strconv.Itoa(c.IntervalCount))] += m
		}
	}
	for cur, m := range mrr {
		if m > 0 {
			out[counter("s", cur, "mrr")] = m
			out[counter("s", cur, "paying")] = 1
			out["s|*|paying"] = 1
		}
	}
	for k, m := range tiers {
		out[k+"|mrr"] = m
		out[k+"|patrons"] = 1
	}
	return out
}

// patronContributions is what one patron's history adds to the counters.
// changes are all rows of the patron's subscriptions.
func patronContributions(changes []Change) map[point]int64 {
	out := map[point]int64{}
	if len(changes) == 0 {
		return out
	}
	h := NewHistory(changes)
	patron := changes[0].Patron
	seen := map[int64]bool{}
	var instants []time.Time
	currencies := map[string]bool{}
	for _, c := range changes {
		currencies[c.Currency] = true
		if us := c.At.UnixMicro(); !seen[us] {
			seen[us] = true
			instants = append(instants, c.At.UTC())
		}
	}
	slices.SortFunc(instants, func(a, b time.Time) int { return a.Compare(b) })

	// The snapshot and tier counters change where the patron's rows do.
	prev := map[string]int64{}
	for _, t := range instants {
		cur := h.patronFigures(patron, t, true)
		us := t.UnixMicro()
		for k, v := range cur {
			if d := v - prev[k]; d != 0 {
				out[point{k, us}] += d
			}
		}
		for k, v := range prev {
			if _, ok := cur[k]; !ok {
				out[point{k, us}] -= v
			}
		}
		prev = cur
	}

	// A cohort follows its patrons' paying and MRR counters from the
	// instant they joined it (before that both are 0).
	snapshot := maps.Clone(out)
	for key, first := range h.firstPositive {
		cohort := counter("c", key.currency, MonthOf(first).Format("2006-01"))
		out[point{cohort + "|size", first.UnixMicro()}]++
		for p, d := range snapshot {
			switch p.key {
			case counter("s", key.currency, "paying"):
				out[point{cohort + "|paying", p.at}] += d
			case counter("s", key.currency, "mrr"):
				out[point{cohort + "|mrr", p.at}] += d
			}
		}
	}

	// Movements, in the months the patron's rows fall in (in others the
	// MRR at the start equals the MRR at the end).
	for m := MonthOf(instants[0]); !m.After(MonthOf(instants[len(instants)-1])); m = m.AddDate(0, 1, 0) {
		end := m.AddDate(0, 1, 0)
		at := m.UnixMicro()
		for cur := range currencies {
			s, e := h.patronMRR(patron, cur, m, false), h.patronMRR(patron, cur, end, false)
			add := func(kind string, amount int64, patrons string) {
				out[point{counter("m", cur, kind), at}] += amount
				if patrons != "" {
					out[point{counter("m", cur, patrons), at}]++
				}
			}
			switch {
			case s == 0 && e > 0:
				if first, ok := h.firstPositive[patronCurrency{patron, cur}]; ok && first.Before(m) {
					add("reactivation", e, "reactivated_patrons")
				} else {
					add("new", e, "new_patrons")
				}
			case s > 0 && e == 0:
				add("churn", s, "churned_patrons")
			case e > s:
				add("expansion", e-s, "")
			case e < s:
				add("contraction", s-e, "")
			}
		}
	}
	for p, d := range out {
		if d == 0 {
			delete(out, p)
		}
	}
	return out
}

// splitKey splits a counter name into its parts.
func splitKey(key string) []string { return strings.Split(key, "|") }
