package metrics

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
)

// The staff figures, read from the counters (counters.go). Each answer is
// a handful of indexed reads of day sums, whatever the number of members.

// q is what the readers query: the database, or the transaction of
// Consistent.
func (s *Service) q() sqldb.Queryer {
	if s.tx != nil {
		return s.tx
	}
	return s.db
}

// Consistent runs fn with a Service whose reads all see one state of the
// counters, so figures read one after another agree with each other (a
// refresh committing between two of them cannot split a summary). On
// PostgreSQL that is one read-only repeatable-read transaction; SQLite's
// transactions here take the write lock, so there the reads go to the
// database as they are.
func (s *Service) Consistent(ctx context.Context, fn func(r *Service) error) error {
	if s.db.Dialect != sqldb.Postgres || s.tx != nil {
		return fn(s)
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin reading figures: %w", err)
	}
	defer tx.Rollback()
	return fn(&Service{db: s.db, tx: tx})
}

// values is every counter named prefix|… at t: what was added at or
// before t (inclusive), or before t. Whole days before t's come from the
// day sums. t's own day comes from its contributions: those of the day
// up to t, or — when t is late in its day, or today, where nearly every
// contribution is already in the past — the day's sum less those after t,
// so a dashboard read stays short on a day of many events.
func (s *Service) values(ctx context.Context, prefix string, t time.Time, inclusive bool) (map[string]int64, error) {
	lo, hi := keyRange(prefix)
	day := dayOf(t)
	rows, err := s.q().QueryContext(ctx, `SELECT key, SUM(CASE WHEN day < $3 THEN delta ELSE 0 END), SUM(CASE WHEN day = $3 THEN delta ELSE 0 END),
		MAX(CASE WHEN day = $3 THEN 1 ELSE 0 END) FROM (
		SELECT key, day, delta FROM metric_days WHERE key >= $1 AND key < $2 AND day <= $3
		UNION ALL SELECT key, day, delta FROM metric_pending WHERE key >= $1 AND key < $2 AND day <= $3) x GROUP BY key`, lo, hi, day)
	if err != nil {
		return nil, fmt.Errorf("read figures: %w", err)
	}
	out, dayTotal := map[string]int64{}, map[string]int64{}
	var today []string
	for rows.Next() {
		var key string
		var sum, onDayTotal, onDay int64
		if err := rows.Scan(&key, &sum, &onDayTotal, &onDay); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read figures: %w", err)
		}
		out[key] = sum
		if onDay == 1 {
			today = append(today, key)
			dayTotal[key] = onDayTotal
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read figures: %w", err)
	}
	if len(today) == 0 {
		return out, nil
	}
	start := time.Unix(day*86400, 0).UTC()
	end := start.Add(24 * time.Hour)
	fromEnd := t.Sub(start) >= 12*time.Hour || dayOf(time.Now()) <= day
	q, args := `SELECT key, SUM(delta) FROM metric_deltas WHERE at >= $1 AND at `+map[bool]string{true: "<=", false: "<"}[inclusive]+` $2`, []any{start, t.UTC()}
	if fromEnd {
		q, args = `SELECT key, SUM(delta) FROM metric_deltas WHERE at `+map[bool]string{true: ">", false: ">="}[inclusive]+` $1 AND at < $2`, []any{t.UTC(), end}
		for _, key := range today {
			out[key] += dayTotal[key]
		}
	}
	args = append(args, sqldb.Args(today)...)
	rows, err = s.q().QueryContext(ctx, q+` AND key IN (`+sqldb.Placeholders(3, len(today))+`) GROUP BY key`, args...)
	if err != nil {
		return nil, fmt.Errorf("read figures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var sum int64
		if err := rows.Scan(&key, &sum); err != nil {
			return nil, fmt.Errorf("read figures: %w", err)
		}
		if fromEnd {
			out[key] -= sum
		} else {
			out[key] += sum
		}
	}
	return out, rows.Err()
}

// monthly is what each month added to every counter named prefix|…, by
// counter and month number.
func (s *Service) monthly(ctx context.Context, prefix string) (map[string]map[int64]int64, error) {
	lo, hi := keyRange(prefix)
	return s.monthlyBetween(ctx, lo, hi)
}

// monthlyBetween is monthly for the counters named in [lo, hi).
func (s *Service) monthlyBetween(ctx context.Context, lo, hi string) (map[string]map[int64]int64, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT key, month, SUM(delta) FROM (
		SELECT key, month, delta FROM metric_days WHERE key >= $1 AND key < $2
		UNION ALL SELECT key, month, delta FROM metric_pending WHERE key >= $1 AND key < $2) x GROUP BY key, month`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read monthly figures: %w", err)
	}
	defer rows.Close()
	out := map[string]map[int64]int64{}
	for rows.Next() {
		var key string
		var month, sum int64
		if err := rows.Scan(&key, &month, &sum); err != nil {
			return nil, fmt.Errorf("read monthly figures: %w", err)
		}
		if out[key] == nil {
			out[key] = map[int64]int64{}
		}
		out[key][month] += sum
	}
	return out, rows.Err()
}

// upTo sums a counter's months up to and including month.
func upTo(months map[int64]int64, month int64) int64 {
	var sum int64
	for m, v := range months {
		if m <= month {
			sum += v
		}
	}
	return sum
}

// total sums a counter's months.
func total(months map[int64]int64) int64 {
	var sum int64
	for _, v := range months {
		sum += v
	}
	return sum
}

// Snapshot is every currency's figures at t (as History.At), and the
// patrons paying in any currency then.
func (s *Service) Snapshot(ctx context.Context, t time.Time) (map[string]*Snapshot, int, error) {
	vals, err := s.values(ctx, "s", t, true)
	if err != nil {
		return nil, 0, err
	}
	out := map[string]*Snapshot{}
	for key, v := range vals {
		parts := splitKey(key)
		if len(parts) != 3 || parts[1] == "*" {
			continue
		}
		sn := out[parts[1]]
		if sn == nil {
			sn = &Snapshot{Currency: parts[1]}
			out[parts[1]] = sn
		}
		switch parts[2] {
		case "mrr":
			sn.MRR = v
		case "paying":
			sn.PayingPatrons = int(v)
		case "at_risk":
			sn.AtRiskMRR = v
		case "past_due":
			sn.PastDue = int(v)
		case "trialing":
			sn.TrialingPatron = int(v)
		}
	}
	for _, sn := range out {
		if sn.PayingPatrons > 0 {
			sn.ARPU = divHalfEven(sn.MRR, int64(sn.PayingPatrons))
		}
	}
	return out, int(vals["s|*|paying"]), nil
}

// ChurnBetween counts, in a currency, the patrons paying at from and
// those of them paying nothing at to (as History.ChurnBetween): a patron's
// paying counter is 0 or 1, so theirs went from 1 to 0 exactly when what
// they added over (from, to] sums to −1.
func (s *Service) ChurnBetween(ctx context.Context, from, to time.Time, currency string) (churned, payingAtFrom int, err error) {
	key := counter("s", currency, "paying")
	vals, err := s.values(ctx, "s|"+currency, from, true)
	if err != nil {
		return 0, 0, err
	}
	err = s.q().QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT source FROM metric_deltas WHERE key = $1 AND at > $2 AND at <= $3
		GROUP BY source HAVING SUM(delta) < 0) x`, key, from.UTC(), to.UTC()).Scan(&churned)
	if err != nil {
		return 0, 0, fmt.Errorf("count churned patrons: %w", err)
	}
	return churned, int(vals[key]), nil
}

// Movements is a currency's movements for each month from from to to (as
// History.Movements).
func (s *Service) Movements(ctx context.Context, from, to time.Time, currency string) ([]Movement, error) {
	moves, err := s.monthly(ctx, "m|"+currency)
	if err != nil {
		return nil, err
	}
	base, err := s.monthly(ctx, "s|"+currency)
	if err != nil {
		return nil, err
	}
	mrr, paying := base[counter("s", currency, "mrr")], base[counter("s", currency, "paying")]
	var out []Movement
	for m := MonthOf(from); !m.After(MonthOf(to)); m = m.AddDate(0, 1, 0) {
		n := monthNumber(m)
		get := func(kind string) int64 { return moves[counter("m", currency, kind)][n] }
		out = append(out, Movement{Month: m,
			MRRStart: upTo(mrr, n-1), MRREnd: upTo(mrr, n),
			PayingStart: int(upTo(paying, n-1)), PayingEnd: int(upTo(paying, n)),
			New: get("new"), Reactivation: get("reactivation"), Expansion: get("expansion"), Contraction: get("contraction"), Churn: get("churn"),
			NewPatrons: int(get("new_patrons")), ReactivatedPatrons: int(get("reactivated_patrons")), ChurnedPatrons: int(get("churned_patrons"))})
	}
	return out, nil
}

// LTV is as History.LTV, from the six full months before t's.
func (s *Service) LTV(ctx context.Context, t time.Time, currency string, arpu int64) (int64, bool, error) {
	month := MonthOf(t)
	moves, err := s.Movements(ctx, month.AddDate(0, -6, 0), month.AddDate(0, -1, 0), currency)
	if err != nil {
		return 0, false, err
	}
	ltv, ok := ltvOf(moves, arpu)
	return ltv, ok, nil
}

// Cohorts is as History.Cohorts.
func (s *Service) Cohorts(ctx context.Context, currency string, from, to time.Time) ([]Cohort, error) {
	// Only the cohorts asked for: c|CUR|FROM… up to c|CUR|TO}.
	counters, err := s.monthlyBetween(ctx, counter("c", currency, MonthOf(from).Format("2006-01")), counter("c", currency, MonthOf(to).Format("2006-01"))+"}")
	if err != nil {
		return nil, err
	}
	var out []Cohort
	for m := MonthOf(from); !m.After(MonthOf(to)); m = m.AddDate(0, 1, 0) {
		name := counter("c", currency, m.Format("2006-01"))
		c := Cohort{Month: m, Patrons: int(total(counters[name+"|size"]))}
		for k := m; !k.After(MonthOf(to)); k = k.AddDate(0, 1, 0) {
			n := monthNumber(k)
			cm := CohortMonth{Month: k, Retained: int(upTo(counters[name+"|paying"], n)), MRR: upTo(counters[name+"|mrr"], n)}
			if c.Patrons > 0 {
				cm.Share = float64(cm.Retained) / float64(c.Patrons)
			}
			c.Months = append(c.Months, cm)
		}
		out = append(out, c)
	}
	return out, nil
}

// ByTier is as History.ByTier.
func (s *Service) ByTier(ctx context.Context, t time.Time) ([]TierFigure, error) {
	vals, err := s.values(ctx, "t", t, true)
	if err != nil {
		return nil, err
	}
	figures := map[string]*TierFigure{}
	for key, v := range vals {
		parts := splitKey(key) // t, currency, tier, interval, count, figure
		if len(parts) != 6 {
			continue
		}
		name := strings.Join(parts[:5], "|")
		f := figures[name]
		if f == nil {
			count, _ := strconv.Atoi(parts[4])
			f = &TierFigure{Currency: parts[1], Tier: parts[2], Interval: parts[3], IntervalCount: count}
			figures[name] = f
		}
		switch parts[5] {
		case "mrr":
			f.MRR = v
		case "patrons":
			f.Patrons = int(v)
		}
	}
	out := []TierFigure{}
	for _, f := range figures {
		if f.Patrons > 0 {
			out = append(out, *f)
		}
	}
	sortTiers(out)
	return out, nil
}

// Currencies lists every currency with figures (MRR or revenue) at any
// time, sorted.
func (s *Service) Currencies(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	for _, prefix := range []string{"s", "r"} {
		lo, hi := keyRange(prefix)
		keys, err := sqldb.QueryStrings(ctx, s.q(), `SELECT DISTINCT key FROM metric_days WHERE key >= $1 AND key < $2
			UNION SELECT DISTINCT key FROM metric_pending WHERE key >= $1 AND key < $2`, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("read currencies: %w", err)
		}
		for _, key := range keys {
			if parts := splitKey(key); len(parts) == 3 && parts[1] != "*" {
				seen[parts[1]] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// RevenueBetween is each currency's revenue over (from, to].
func (s *Service) RevenueBetween(ctx context.Context, from, to time.Time) (map[string]*Revenue, error) {
	end, err := s.values(ctx, "r", to, true)
	if err != nil {
		return nil, err
	}
	start, err := s.values(ctx, "r", from, true)
	if err != nil {
		return nil, err
	}
	out := map[string]*Revenue{}
	for key, v := range end {
		addRevenue(out, key, v-start[key])
	}
	finishRevenue(out)
	return out, nil
}

// RevenueMonths is each currency's revenue in each calendar month (UTC)
// from from to to, by the month's first instant.
func (s *Service) RevenueMonths(ctx context.Context, from, to time.Time) (map[time.Time]map[string]*Revenue, error) {
	counters, err := s.monthly(ctx, "r")
	if err != nil {
		return nil, err
	}
	out := map[time.Time]map[string]*Revenue{}
	for m := MonthOf(from); !m.After(MonthOf(to)); m = m.AddDate(0, 1, 0) {
		month := map[string]*Revenue{}
		for key, months := range counters {
			addRevenue(month, key, months[monthNumber(m)])
		}
		finishRevenue(month)
		out[m] = month
	}
	return out, nil
}

// RevenueInMonth is each currency's revenue in the calendar month of month.
func (s *Service) RevenueInMonth(ctx context.Context, month time.Time) (map[string]*Revenue, error) {
	all, err := s.RevenueMonths(ctx, month, month)
	if err != nil {
		return nil, err
	}
	return all[MonthOf(month)], nil
}

func addRevenue(out map[string]*Revenue, key string, v int64) {
	parts := splitKey(key) // r, currency, kind
	if len(parts) != 3 {
		return
	}
	r := out[parts[1]]
	if r == nil {
		r = &Revenue{Currency: parts[1]}
		out[parts[1]] = r
	}
	switch parts[2] {
	case "gross":
		r.Gross += v
	case "tax":
		r.Tax += v
	case "refunds":
		r.Refunds += v
	case "donations":
		r.Donations += v
	}
}

func finishRevenue(out map[string]*Revenue) {
	for _, r := range out {
		r.Net = r.Gross - r.Tax - r.Refunds
	}
}
