package metrics

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/patronage/patronage/internal/sqldb"
)

// Service reads billing's history and ledger for the figures.
type Service struct {
	db *sqldb.DB
	tx *sql.Tx // reads go here inside Consistent
}

// NewService builds the metrics service on the database.
func NewService(db *sqldb.DB) *Service { return &Service{db: db} }

// History loads every subscription's history. A subscription whose member
// was erased counts as a patron of its own. It is the direct computation
// the counters are checked against; the endpoints read the counters.
func (s *Service) History(ctx context.Context) (*History, error) {
	changes, err := readChanges(ctx, s.db, "")
	if err != nil {
		return nil, err
	}
	return NewHistory(changes), nil
}

// changeColumns reads subscription_history as Changes (scanChange).
const changeColumns = `SELECT subscription_id, seq, at, member_id, status, COALESCE(tier_slug, ''), currency, unit_amount, quantity,
	billing_interval, interval_count, discount_percent_off_bps, discount_amount_off, discount_duration FROM subscription_history`

// patronOf is the patron of a subscription_history row, as scanChange
// names it.
const patronOf = `COALESCE(NULLIF(member_id, ''), 'subscription:' || subscription_id)`

// readChanges reads the history rows a WHERE clause picks.
func readChanges(ctx context.Context, q sqldb.Queryer, where string, args ...any) ([]Change, error) {
	rows, err := q.QueryContext(ctx, changeColumns+" "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read subscription history: %w", err)
	}
	defer rows.Close()
	var changes []Change
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, err
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read subscription history: %w", err)
	}
	return changes, nil
}

func scanChange(rows *sql.Rows) (Change, error) {
	var c Change
	var member, duration sql.NullString
	var pct, off sql.NullInt64
	if err := rows.Scan(&c.SubscriptionID, &c.Seq, &c.At, &member, &c.Status, &c.Tier, &c.Currency, &c.UnitAmount, &c.Quantity,
		&c.Interval, &c.IntervalCount, &pct, &off, &duration); err != nil {
		return c, fmt.Errorf("read subscription history: %w", err)
	}
	c.At = c.At.UTC()
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
	return c, nil
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
