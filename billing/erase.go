package billing

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/metrics"
)

// ScrubMember blanks what billing holds about a member being erased, in
// their erasure's transaction: the email and messages of their gifts, the
// email of their Stripe customers, and the stored payloads of Stripe events
// that carry their email (a scan of every payload: erasures are rare; the
// events stay, marked, so a redelivery is still known). Amounts, dates and subscription
// history stay, without the person, for the figures. A member who still
// has a live subscription is refused: it must be cancelled first, or
// Stripe would go on charging someone the newsroom no longer knows.
func (s *Service) ScrubMember(ctx context.Context, tx *sql.Tx, m members.Member) error {
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM subscriptions WHERE member_id = $1
		AND status IN ('active', 'past_due', 'trialing', 'unpaid', 'incomplete', 'paused')`, m.ID).Scan(&live); err != nil {
		return fmt.Errorf("check subscriptions: %w", err)
	}
	if live > 0 {
		return errs.WithCode(errs.Conflict, "subscription_active", "This member still has a subscription; cancel it in Stripe first, then erase them.")
	}
	// The stored events carrying the email, matched as a whole JSON string
	// (so another address containing it is left alone).
	email := strings.ToLower(m.Email)
	pattern := `%"` + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(email) + `"%`
	steps := []struct {
		what, query string
		args        []any
	}{
		// Their subscriptions' history keeps its amounts but no longer
		// names them: each counts as a patron of its own (docs/metrics.md),
		// as a rebuild of the history from the unlinked subscriptions would.
		{"unlink subscription history", `UPDATE subscription_history SET member_id = NULL WHERE member_id = $1`, []any{m.ID}},
		{"scrub gifts", `UPDATE donations SET email = '', message = '' WHERE member_id = $1 OR (email <> '' AND LOWER(email) = $2)`, []any{m.ID, email}},
		{"scrub Stripe customers", `UPDATE stripe_customers SET email = '' WHERE member_id = $1 OR (email <> '' AND LOWER(email) = $2)`, []any{m.ID, email}},
		{"scrub stored Stripe events", `UPDATE stripe_events SET payload = '{"erased":true}' WHERE LOWER(payload) LIKE $1 ESCAPE '\'`, []any{pattern}},
	}
	subs, err := sqldb.QueryStrings(ctx, tx, `SELECT DISTINCT subscription_id FROM subscription_history WHERE member_id = $1`, m.ID)
	if err != nil {
		return fmt.Errorf("read subscription history: %w", err)
	}
	for _, st := range steps {
		if _, err := tx.ExecContext(ctx, st.query, st.args...); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	// Each subscription now counts as a patron of its own: paying
	// patrons, cohorts and new or returning patrons change with it.
	return metrics.Refresh(ctx, tx, metrics.PatronSources(m.ID, subs...))
}
