package metrics

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
)

// Sources of figures. A patron is a member, or a subscription whose member
// was erased (or never known); ledger sources are single rows.
const (
	patronPrefix   = "patron:"
	invoicePrefix  = "invoice:"
	refundPrefix   = "refund:"
	donationPrefix = "donation:"
)

// PatronSources names the sources a change to these subscriptions of a
// member (memberID may be empty) can move: the member, and each
// subscription as a patron of its own (which it is while it has no
// member).
func PatronSources(memberID string, subscriptionIDs ...string) []string {
	var out []string
	if memberID != "" {
		out = append(out, patronPrefix+memberID)
	}
	for _, id := range subscriptionIDs {
		out = append(out, patronPrefix+"subscription:"+id)
	}
	return out
}

// Refresh replaces the contributions of sources with what their rows now
// say, in the caller's transaction: a source's row in metric_sources is
// locked, its stored contributions read, and only the difference is added
// to the counters. Call it wherever a source's rows change.
func Refresh(ctx context.Context, tx *sql.Tx, sources []string) error {
	sources = slices.Compact(slices.Sorted(slices.Values(sources)))
	if err := lockSources(ctx, tx, sources); err != nil {
		return err
	}
	for _, source := range sources {
		old, err := storedContributions(ctx, tx, source)
		if err != nil {
			return err
		}
		fresh, err := contributions(ctx, tx, source)
		if err != nil {
			return err
		}
		diff := map[point]int64{}
		for p, v := range fresh {
			if d := v - old[p]; d != 0 {
				diff[p] = d
			}
		}
		for p, v := range old {
			if _, ok := fresh[p]; !ok {
				diff[p] = -v
			}
		}
		if len(diff) == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM metric_deltas WHERE source = $1`, source); err != nil {
			return fmt.Errorf("replace figures of %s: %w", source, err)
		}
		if err := insertDeltas(ctx, tx, source, fresh); err != nil {
			return err
		}
		if err := insertDays(ctx, tx, "metric_pending", byDay(diff)); err != nil {
			return err
		}
	}
	return nil
}

func storedContributions(ctx context.Context, tx *sql.Tx, source string) (map[point]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT key, at, delta FROM metric_deltas WHERE source = $1`, source)
	if err != nil {
		return nil, fmt.Errorf("read figures of %s: %w", source, err)
	}
	defer rows.Close()
	out := map[point]int64{}
	for rows.Next() {
		var key string
		var at time.Time
		var d int64
		if err := rows.Scan(&key, &at, &d); err != nil {
			return nil, fmt.Errorf("read figures of %s: %w", source, err)
		}
		out[point{key, at.UnixMicro()}] = d
	}
	return out, rows.Err()
}

// contributions computes what a source's rows add to the counters now.
func contributions(ctx context.Context, q sqldb.Queryer, source string) (map[point]int64, error) {
	switch {
	case strings.HasPrefix(source, patronPrefix):
		patron := strings.TrimPrefix(source, patronPrefix)
		var changes []Change
		var err error
		if sub, ok := strings.CutPrefix(patron, "subscription:"); ok {
			changes, err = readChanges(ctx, q, `WHERE subscription_id = $1 AND (member_id IS NULL OR member_id = '')`, sub)
		} else {
			changes, err = readChanges(ctx, q, `WHERE member_id = $1`, patron)
		}
		if err != nil {
			return nil, err
		}
		return patronContributions(changes), nil
	default:
		for _, l := range ledgerQueries {
			if id, ok := strings.CutPrefix(source, l.prefix); ok {
				out, err := ledgerContributions(ctx, q, l.prefix, strings.ReplaceAll(l.query, "{where}", "AND "+l.id+" = $1"), id)
				return out[source], err
			}
		}
	}
	return nil, fmt.Errorf("unknown source of figures %q", source)
}

// ledgerQueries read what ledger rows add to the revenue counters: the
// row's id, currency, counter (gross, tax, refunds, donations), amount and
// instant. {where} narrows them to one row.
var ledgerQueries = []struct{ prefix, id, query string }{
	{invoicePrefix, "id", `SELECT id, currency, 'gross', amount_paid, paid_at FROM invoices
		WHERE paid_at IS NOT NULL AND amount_paid > 0 {where}
		UNION ALL SELECT id, currency, 'tax', tax, paid_at FROM invoices
		WHERE paid_at IS NOT NULL AND amount_paid > 0 AND tax <> 0 {where}`},
	// A refund of an invoice's payment counts as a refund; one of a gift is
	// taken off donations; any other is not revenue.
	{refundPrefix, "r.id", `SELECT r.id, r.currency,
		CASE WHEN c.invoice_id IS NOT NULL OR EXISTS (SELECT 1 FROM invoices i WHERE i.charge_id = c.id) THEN 'refunds' ELSE 'donations' END,
		CASE WHEN c.invoice_id IS NOT NULL OR EXISTS (SELECT 1 FROM invoices i WHERE i.charge_id = c.id) THEN r.amount ELSE -r.amount END,
		r.refunded_at
		FROM refunds r JOIN charges c ON c.id = r.charge_id
		WHERE r.refunded_at IS NOT NULL
		  AND (c.invoice_id IS NOT NULL OR EXISTS (SELECT 1 FROM invoices i WHERE i.charge_id = c.id)
		       OR EXISTS (SELECT 1 FROM donations d WHERE d.payment_intent_id = c.payment_intent_id)) {where}`},
	{donationPrefix, "id", `SELECT id, currency, 'donations', amount, state_at FROM donations WHERE status = 'paid' {where}`},
}

// ledgerContributions runs a ledger query and groups what it reads by
// source (prefix + the row's id).
func ledgerContributions(ctx context.Context, q sqldb.Queryer, prefix, query string, args ...any) (map[string]map[point]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read ledger figures: %w", err)
	}
	defer rows.Close()
	out := map[string]map[point]int64{}
	for rows.Next() {
		var id, currency, kind string
		var amount int64
		var at time.Time
		if err := rows.Scan(&id, &currency, &kind, &amount, &at); err != nil {
			return nil, fmt.Errorf("read ledger figures: %w", err)
		}
		if amount == 0 {
			continue
		}
		m := out[prefix+id]
		if m == nil {
			m = map[point]int64{}
			out[prefix+id] = m
		}
		m[point{counter("r", strings.ToLower(currency), kind), at.UnixMicro()}] += amount
	}
	return out, rows.Err()
}

// RefreshLedger refreshes the ledger sources a change to these invoices,
// charges and gifts can move: the invoices and gifts, and every refund of
// a charge that paid one of them (whose kind follows from that link).
//
// A refund's kind depends on rows other transactions may be writing at
// the same moment (the invoice naming its charge, the gift with its
// payment intent), so the charges and payment intents involved are locked
// first, and the refunds looked up after: of two transactions linking and
// refunding the same charge, the second sees the first's rows.
func RefreshLedger(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, invoices, charges, donations []string) error {
	var locks []string
	gather := func(prefix, query string, ids []string) error {
		if len(ids) == 0 {
			return nil
		}
		found, err := sqldb.QueryStrings(ctx, tx, fmt.Sprintf(query, sqldb.Placeholders(1, len(ids))), sqldb.Args(ids)...)
		for _, id := range found {
			locks = append(locks, prefix+id)
		}
		return err
	}
	for _, id := range charges {
		locks = append(locks, "charge:"+id)
	}
	for _, step := range []struct {
		prefix, query string
		ids           []string
	}{
		{"pi:", `SELECT payment_intent_id FROM charges WHERE id IN (%s) AND payment_intent_id IS NOT NULL`, charges},
		{"charge:", `SELECT charge_id FROM invoices WHERE id IN (%s) AND charge_id IS NOT NULL`, invoices},
		{"charge:", `SELECT id FROM charges WHERE invoice_id IN (%s)`, invoices},
		{"pi:", `SELECT payment_intent_id FROM donations WHERE id IN (%s) AND payment_intent_id IS NOT NULL`, donations},
	} {
		if err := gather(step.prefix, step.query, step.ids); err != nil {
			return fmt.Errorf("find what a payment touches: %w", err)
		}
	}
	if err := d.LockKeys(ctx, tx, locks); err != nil {
		return fmt.Errorf("lock payments: %w", err)
	}

	var sources []string
	for _, id := range invoices {
		sources = append(sources, invoicePrefix+id)
	}
	for _, id := range donations {
		sources = append(sources, donationPrefix+id)
	}
	var refunds []string
	find := func(query string, ids []string) error {
		if len(ids) == 0 {
			return nil
		}
		found, err := sqldb.QueryStrings(ctx, tx, fmt.Sprintf(query, sqldb.Placeholders(1, len(ids))), sqldb.Args(ids)...)
		refunds = append(refunds, found...)
		return err
	}
	for _, step := range []struct {
		query string
		ids   []string
	}{
		{`SELECT r.id FROM refunds r WHERE r.charge_id IN (%s)`, charges},
		{`SELECT r.id FROM refunds r JOIN invoices i ON i.charge_id = r.charge_id WHERE i.id IN (%s)`, invoices},
		{`SELECT r.id FROM refunds r JOIN charges c ON c.id = r.charge_id WHERE c.invoice_id IN (%s)`, invoices},
		{`SELECT r.id FROM refunds r JOIN charges c ON c.id = r.charge_id JOIN donations d ON d.payment_intent_id = c.payment_intent_id
			WHERE d.id IN (%s)`, donations},
	} {
		if err := find(step.query, step.ids); err != nil {
			return fmt.Errorf("find refunds: %w", err)
		}
	}
	for _, id := range refunds {
		sources = append(sources, refundPrefix+id)
	}
	return Refresh(ctx, tx, sources)
}

// lockSources takes (making them if need be) the metric_sources rows of
// names, in order, until the transaction ends.
func lockSources(ctx context.Context, tx *sql.Tx, names []string) error {
	now := sqldb.Now()
	for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO metric_sources (source, refreshed_at) VALUES ($1, $2)
			ON CONFLICT (source) DO UPDATE SET refreshed_at = excluded.refreshed_at`, name, now); err != nil {
			return fmt.Errorf("lock figures of %s: %w", name, err)
		}
	}
	return nil
}

// insertDeltas stores a source's contributions.
func insertDeltas(ctx context.Context, tx *sql.Tx, source string, c map[point]int64) error {
	points := slices.SortedFunc(maps.Keys(c), comparePoints)
	const per = 1000
	for len(points) > 0 {
		n := min(per, len(points))
		var b strings.Builder
		args := make([]any, 0, n*5)
		b.WriteString(`INSERT INTO metric_deltas (source, key, at, day, delta) VALUES `)
		for i, p := range points[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			at := microTime(p.at)
			fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d)", len(args)+1, len(args)+2, len(args)+3, len(args)+4, len(args)+5)
			args = append(args, source, p.key, at, dayOf(at), c[p])
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("store figures of %s: %w", source, err)
		}
		points = points[n:]
	}
	return nil
}

func comparePoints(a, b point) int {
	return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.at, b.at))
}

// dayKey is a counter's day.
type dayKey struct {
	key string
	day int64
}

// dayDelta is what a day adds to a counter; month is the day's month.
type dayDelta struct {
	month, delta int64
}

func byDay(c map[point]int64) map[dayKey]dayDelta {
	out := map[dayKey]dayDelta{}
	for p, d := range c {
		at := microTime(p.at)
		k := dayKey{p.key, dayOf(at)}
		v := out[k]
		v.month = monthNumber(at)
		v.delta += d
		out[k] = v
	}
	return out
}

// insertDays writes day sums into metric_pending (plain rows) or
// metric_days (added to what is there), in counter and day order so
// concurrent writers never wait on each other in a cycle.
func insertDays(ctx context.Context, tx *sql.Tx, table string, days map[dayKey]dayDelta) error {
	keys := slices.SortedFunc(maps.Keys(days), func(a, b dayKey) int {
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.day, b.day))
	})
	const per = 1000
	for len(keys) > 0 {
		n := min(per, len(keys))
		var b strings.Builder
		args := make([]any, 0, n*4)
		fmt.Fprintf(&b, `INSERT INTO %s (key, day, month, delta) VALUES `, table)
		for i, k := range keys[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($%d, $%d, $%d, $%d)", len(args)+1, len(args)+2, len(args)+3, len(args)+4)
			args = append(args, k.key, k.day, days[k].month, days[k].delta)
		}
		if table == "metric_days" {
			b.WriteString(` ON CONFLICT (key, day) DO UPDATE SET delta = metric_days.delta + excluded.delta`)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("store figures by day: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// Fold moves what is pending into the day sums. Readers add both, so this
// only keeps their reads short; any number of replicas may fold at once
// (each pending row is deleted, and so folded, once).
func (s *Service) Fold(ctx context.Context) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM metric_pending RETURNING key, day, month, delta`)
		if err != nil {
			return fmt.Errorf("fold figures: %w", err)
		}
		days := map[dayKey]dayDelta{}
		for rows.Next() {
			var k dayKey
			var v dayDelta
			if err := rows.Scan(&k.key, &k.day, &v.month, &v.delta); err != nil {
				rows.Close()
				return fmt.Errorf("fold figures: %w", err)
			}
			cur := days[k]
			cur.month = v.month
			cur.delta += v.delta
			days[k] = cur
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("fold figures: %w", err)
		}
		return insertDays(ctx, tx, "metric_days", days)
	})
}

// FoldEvery folds pending figures every interval until ctx ends.
func (s *Service) FoldEvery(ctx context.Context, interval time.Duration, logf func(format string, args ...any)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Fold(ctx); err != nil && ctx.Err() == nil {
				logf("fold staff figures: %v", err)
			}
		}
	}
}

// EnsureBuilt computes every source's figures if that has never been done
// on this database (an install that had billing data before the counters
// existed). Of several servers starting at once, one computes; the others
// wait for it and find the work done.
func (s *Service) EnsureBuilt(ctx context.Context) error {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM metric_state WHERE name = 'built'`).Scan(&v)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read figures state: %w", err)
	}
	_, err = s.rebuild(ctx, true)
	return err
}

// ledgerIDs page through each kind of ledger row that can count.
var ledgerIDs = map[string]string{
	invoicePrefix:  `SELECT id FROM invoices WHERE paid_at IS NOT NULL AND amount_paid > 0 AND id > $1 ORDER BY id LIMIT 5000`,
	refundPrefix:   `SELECT id FROM refunds WHERE refunded_at IS NOT NULL AND id > $1 ORDER BY id LIMIT 5000`,
	donationPrefix: `SELECT id FROM donations WHERE status = 'paid' AND id > $1 ORDER BY id LIMIT 5000`,
}

// patronPage computes the contributions of the patrons whose history rows
// a WHERE clause picks, by source.
func patronPage(ctx context.Context, q sqldb.Queryer, where string, ids []string) (map[string]map[point]int64, error) {
	changes, err := readChanges(ctx, q, where, sqldb.Args(ids)...)
	if err != nil {
		return nil, err
	}
	byPatron := map[string][]Change{}
	for _, c := range changes {
		byPatron[c.Patron] = append(byPatron[c.Patron], c)
	}
	out := map[string]map[point]int64{}
	for patron, rows := range byPatron {
		out[patronPrefix+patron] = patronContributions(rows)
	}
	return out, nil
}

// RebuildReport says what a rebuild computed.
type RebuildReport struct {
	Patrons, LedgerRows, Contributions int
}

// Rebuild throws the counters away and computes every source again from
// the history and the ledger, in one transaction. Readers go on reading the
// old counters meanwhile; on PostgreSQL every refresh and fold waits until
// it commits, and on SQLite every writer does (run it with the servers
// stopped there: webhooks would wait past the busy timeout and be retried).
func (s *Service) Rebuild(ctx context.Context) (RebuildReport, error) { return s.rebuild(ctx, false) }

func (s *Service) rebuild(ctx context.Context, onlyIfUnbuilt bool) (RebuildReport, error) {
	var rep RebuildReport
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		rep = RebuildReport{}
		if s.db.Dialect == sqldb.Postgres {
			// In the order the others take them — a refresh: sources, deltas,
			// pending; a fold: pending, days — so no two wait in a cycle.
			if _, err := tx.ExecContext(ctx, `LOCK TABLE metric_sources, metric_deltas, metric_pending, metric_days IN EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("lock figures: %w", err)
			}
		}
		if onlyIfUnbuilt {
			var built int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM metric_state WHERE name = 'built'`).Scan(&built); err != nil {
				return fmt.Errorf("read figures state: %w", err)
			}
			if built > 0 {
				return nil
			}
		}
		for _, table := range []string{"metric_sources", "metric_deltas", "metric_days", "metric_pending"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table); err != nil {
				return fmt.Errorf("clear %s: %w", table, err)
			}
		}
		days := map[dayKey]dayDelta{}
		add := func(source string, c map[point]int64) error {
			if len(c) == 0 {
				return nil
			}
			rep.Contributions += len(c)
			for k, v := range byDay(c) {
				cur := days[k]
				cur.month = v.month
				cur.delta += v.delta
				days[k] = cur
			}
			return insertDeltas(ctx, tx, source, c)
		}
		// A page of sources at a time, so memory stays flat however many
		// there are: members by id, then subscriptions without one, then
		// the ledger's rows by kind.
		type pager struct {
			ids     string // the next page of ids after $1
			patrons bool
			compute func(ids []string) (map[string]map[point]int64, error)
		}
		patrons := func(where string) func(ids []string) (map[string]map[point]int64, error) {
			return func(ids []string) (map[string]map[point]int64, error) {
				return patronPage(ctx, tx, fmt.Sprintf(where, sqldb.Placeholders(1, len(ids))), ids)
			}
		}
		pages := []pager{
			{`SELECT DISTINCT member_id FROM subscription_history WHERE member_id > $1 ORDER BY member_id LIMIT 2000`, true,
				patrons(`WHERE member_id IN (%s)`)},
			{`SELECT DISTINCT subscription_id FROM subscription_history WHERE (member_id IS NULL OR member_id = '') AND subscription_id > $1
				ORDER BY subscription_id LIMIT 2000`, true, patrons(`WHERE (member_id IS NULL OR member_id = '') AND subscription_id IN (%s)`)},
		}
		for _, l := range ledgerQueries {
			pages = append(pages, pager{ledgerIDs[l.prefix], false, func(ids []string) (map[string]map[point]int64, error) {
				where := "AND " + l.id + " IN (" + sqldb.Placeholders(1, len(ids)) + ")"
				return ledgerContributions(ctx, tx, l.prefix, strings.ReplaceAll(l.query, "{where}", where), sqldb.Args(ids)...)
			}})
		}
		for _, page := range pages {
			last := ""
			for {
				ids, err := sqldb.QueryStrings(ctx, tx, page.ids, last)
				if err != nil {
					return fmt.Errorf("read sources: %w", err)
				}
				if len(ids) == 0 {
					break
				}
				last = ids[len(ids)-1]
				found, err := page.compute(ids)
				if err != nil {
					return err
				}
				for _, source := range slices.Sorted(maps.Keys(found)) {
					if page.patrons {
						rep.Patrons++
					} else {
						rep.LedgerRows++
					}
					if err := add(source, found[source]); err != nil {
						return err
					}
				}
			}
		}
		if err := insertDays(ctx, tx, "metric_days", days); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO metric_state (name, value) VALUES ('built', $1)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, sqldb.Now().Format(time.RFC3339))
		return err
	})
	return rep, err
}
