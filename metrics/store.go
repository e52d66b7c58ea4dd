package metrics

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
)

// Service reads billing's history and ledger for the figures.
type Service struct {
	db *sqldb.DB
}

// NewService builds the metrics service on the database.
func NewService(db *sqldb.DB) *Service { return &Service{db: db} }

// History loads every subscription's history. A subscription whose member
// was erased counts as a patron of its own.
func (s *Service) History(ctx context.Context) (*History, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT subscription_id, seq, at, member_id, status, COALESCE(tier_slug, ''), currency, unit_amount, quantity,
		billing_interval, interval_count, discount_percent_off_bps, discount_amount_off, discount_duration FROM subscription_history`)
	if err != nil {
		return nil, fmt.Errorf("read subscription history: %w", err)
	}
	defer rows.Close()
	var changes []Change
	for rows.Next() {
		var c Change
		var member, duration sql.NullString
		var pct, off sql.NullInt64
		if err := rows.Scan(&c.SubscriptionID, &c.Seq, &c.At, &member, &c.Status, &c.Tier, &c.Currency, &c.UnitAmount, &c.Quantity,
			&c.Interval, &c.IntervalCount, &pct, &off, &duration); err != nil {
			return nil, fmt.Errorf("read subscription history: %w", err)
		}
		c.Patron = member.String
		if !member.Valid || member.String == "" {
			c.Patron = "subscription:" + c.SubscriptionID
		}
		c.Currency = strings.ToLower(c.Currency)
		if pct.Valid {
			c.PercentOffBps = &pct.Int64
		}
		if off.Valid {
			c.AmountOff = &off.Int64
		}
		c.Duration = duration.String
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read subscription history: %w", err)
	}
	return NewHistory(changes), nil
}

// Revenue is what came in over a period in one currency, in minor units.
type Revenue struct {
	Currency  string
	Gross     int64 // invoices' amount_paid, by payment date
	Tax       int64 // their tax
	Refunds   int64 // refunds of invoice payments, by refund date
	Net       int64 // Gross − Tax − Refunds
	Donations int64 // one-time gifts paid, less their refunds, by date
}

// RevenueBetween is each currency's revenue over (from, to].
func (s *Service) RevenueBetween(ctx context.Context, from, to time.Time) (map[string]*Revenue, error) {
	return s.revenue(ctx, from, to, ">", "<=")
}

// RevenueInMonth is each currency's revenue in a calendar month (UTC):
// [its first instant, the next month's).
func (s *Service) RevenueInMonth(ctx context.Context, month time.Time) (map[string]*Revenue, error) {
	start := MonthOf(month)
	return s.revenue(ctx, start, start.AddDate(0, 1, 0), ">=", "<")
}

// revenue sums the ledger over a period bounded by from and to with the
// given comparisons (">" or ">=", "<" or "<="), put in place of {after}
// and {before} in the queries.
func (s *Service) revenue(ctx context.Context, from, to time.Time, fromOp, toOp string) (map[string]*Revenue, error) {
	out := map[string]*Revenue{}
	get := func(currency string) *Revenue {
		currency = strings.ToLower(currency)
		r, ok := out[currency]
		if !ok {
			r = &Revenue{Currency: currency}
			out[currency] = r
		}
		return r
	}
	sum := func(query string, add func(r *Revenue, a, b int64)) error {
		query = strings.NewReplacer("{after}", fromOp, "{before}", toOp).Replace(query)
		rows, err := s.db.QueryContext(ctx, query, from, to)
		if err != nil {
			return fmt.Errorf("read revenue: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var currency string
			var a, b int64
			if err := rows.Scan(&currency, &a, &b); err != nil {
				return fmt.Errorf("read revenue: %w", err)
			}
			add(get(currency), a, b)
		}
		return rows.Err()
	}
	steps := []struct {
		query string
		add   func(r *Revenue, a, b int64)
	}{
		{`SELECT currency, COALESCE(SUM(amount_paid), 0), COALESCE(SUM(tax), 0) FROM invoices
			WHERE paid_at {after} $1 AND paid_at {before} $2 AND amount_paid > 0 GROUP BY currency`,
			func(r *Revenue, paid, tax int64) { r.Gross += paid; r.Tax += tax }},
		{`SELECT r.currency, COALESCE(SUM(r.amount), 0), 0 FROM refunds r JOIN charges c ON c.id = r.charge_id
			WHERE r.refunded_at {after} $1 AND r.refunded_at {before} $2
			  AND (c.invoice_id IS NOT NULL OR EXISTS (SELECT 1 FROM invoices i WHERE i.charge_id = c.id)) GROUP BY r.currency`,
			func(r *Revenue, refunded, _ int64) { r.Refunds += refunded }},
		{`SELECT currency, COALESCE(SUM(amount), 0), 0 FROM donations
			WHERE status = 'paid' AND state_at {after} $1 AND state_at {before} $2 GROUP BY currency`,
			func(r *Revenue, given, _ int64) { r.Donations += given }},
		{`SELECT r.currency, COALESCE(SUM(r.amount), 0), 0 FROM refunds r JOIN charges c ON c.id = r.charge_id
			JOIN donations d ON d.payment_intent_id = c.payment_intent_id
			WHERE r.refunded_at {after} $1 AND r.refunded_at {before} $2
			  AND c.invoice_id IS NULL AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.charge_id = c.id) GROUP BY r.currency`,
			func(r *Revenue, refunded, _ int64) { r.Donations -= refunded }},
	}
	for _, step := range steps {
		if err := sum(step.query, step.add); err != nil {
			return nil, err
		}
	}
	for _, r := range out {
		r.Net = r.Gross - r.Tax - r.Refunds
	}
	return out, nil
}
