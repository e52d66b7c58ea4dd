package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/members"
)

// AccessChange is a member's access before and after a change.
type AccessChange struct {
	MemberID string
	Before   Access
	After    Access
}

// OnAccessChange registers fn to hear every change of any member's access,
// after it is committed. Voting subscribes to withdraw votes. fn runs on
// the handler's goroutine and must be quick.
func (s *Service) OnAccessChange(fn func(AccessChange)) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.subscribers = append(s.subscribers, fn)
}

func (s *Service) publish(c AccessChange) {
	s.subMu.Lock()
	subs := append([]func(AccessChange){}, s.subscribers...)
	s.subMu.Unlock()
	for _, fn := range subs {
		fn(c)
	}
}

// AccessOf is a member's access as last computed.
func (s *Service) AccessOf(ctx context.Context, memberID string) (members.Access, error) {
	a, _, err := storedAccess(ctx, s.db, memberID)
	if err != nil {
		return members.Access{}, err
	}
	return members.Access{Active: a.Active, Source: a.Source, Tier: a.Tier, Until: a.Until}, nil
}

// VoterAccess is a member's stored access with the vote weight of their
// tier (1 when they have no tier).
type VoterAccess struct {
	members.Access
	VoteWeight int
}

// AccessShared reads the stored access of members inside the caller's
// transaction and holds their rows until it ends (FOR SHARE): a change of
// their access waits for that transaction, and the transaction sees any
// change committed before it read. Voting stores ballots this way, so a
// member losing access cannot slip a ballot past the withdrawal that
// follows. A member with no row has no access. With weights, their tiers'
// vote weights are read too, in the same transaction: nothing here waits
// for another connection (without, VoteWeight is 1).
func (s *Service) AccessShared(ctx context.Context, tx *sql.Tx, memberIDs []string, weights bool) (map[string]VoterAccess, error) {
	out := make(map[string]VoterAccess, len(memberIDs))
	if len(memberIDs) == 0 {
		return out, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT member_id, active, source, tier_slug, until_at FROM member_access WHERE member_id IN (`+
		sqldb.Placeholders(1, len(memberIDs))+`) ORDER BY member_id`+s.db.Dialect.ForShare(), sqldb.Args(slices.Sorted(slices.Values(memberIDs)))...)
	if err != nil {
		return nil, fmt.Errorf("read access: %w", err)
	}
	tiers := map[string]int{}
	for rows.Next() {
		var id string
		var a members.Access
		var until sql.NullTime
		if err := rows.Scan(&id, &a.Active, &a.Source, &a.Tier, &until); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read access: %w", err)
		}
		a.Until = timePtr(until)
		out[id] = VoterAccess{Access: a, VoteWeight: 1}
		if a.Active && a.Tier != "" {
			tiers[a.Tier] = 1
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read access: %w", err)
	}
	if !weights || len(tiers) == 0 {
		return out, nil
	}
	slugs := slices.Sorted(maps.Keys(tiers))
	wrows, err := tx.QueryContext(ctx, `SELECT slug, vote_weight FROM tiers WHERE slug IN (`+sqldb.Placeholders(1, len(slugs))+`)`, sqldb.Args(slugs)...)
	if err != nil {
		return nil, fmt.Errorf("read tier weights: %w", err)
	}
	defer wrows.Close()
	for wrows.Next() {
		var slug string
		var w int
		if err := wrows.Scan(&slug, &w); err != nil {
			return nil, fmt.Errorf("read tier weights: %w", err)
		}
		tiers[slug] = max(w, 1)
	}
	if err := wrows.Err(); err != nil {
		return nil, fmt.Errorf("read tier weights: %w", err)
	}
	for id, a := range out {
		if a.Active && a.Tier != "" {
			a.VoteWeight = tiers[a.Tier]
			out[id] = a
		}
	}
	return out, nil
}

func storedAccess(ctx context.Context, q querier, memberID string) (Access, bool, error) {
	var a Access
	var until sql.NullTime
	err := q.QueryRowContext(ctx, `SELECT active, source, tier_slug, until_at FROM member_access WHERE member_id = $1`, memberID).
		Scan(&a.Active, &a.Source, &a.Tier, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return Access{}, false, nil
	}
	if err != nil {
		return Access{}, false, fmt.Errorf("read access: %w", err)
	}
	a.Until = timePtr(until)
	return a, true, nil
}

// welcomeWindow is how recent a first activation must be to be welcomed by mail.
const welcomeWindow = 7 * 24 * time.Hour

// recomputeAccess decides a member's access from what is stored and saves
// it. It locks the member's access row first, so two handlers for the same
// member at once take turns and the second sees the first's writes.
func (s *Service) recomputeAccess(ctx context.Context, tx *sql.Tx, memberID string) (effects, error) {
	now := s.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO member_access (member_id, active, changed_at) SELECT id, FALSE, $2 FROM members WHERE id = $1
		ON CONFLICT (member_id) DO NOTHING`, memberID, now); err != nil {
		return effects{}, fmt.Errorf("create access row: %w", err)
	}
	var before Access
	var beforeStatus, beforeInterval string
	var until, welcomed, storedRecheck sql.NullTime
	err := tx.QueryRowContext(ctx, `SELECT active, source, tier_slug, until_at, welcomed_at, recheck_at, membership_status, billing_interval
		FROM member_access WHERE member_id = $1`+s.db.Dialect.ForUpdate(), memberID).
		Scan(&before.Active, &before.Source, &before.Tier, &until, &welcomed, &storedRecheck, &beforeStatus, &beforeInterval)
	if errors.Is(err, sql.ErrNoRows) {
		return effects{}, nil // the member was erased
	}
	if err != nil {
		return effects{}, fmt.Errorf("lock access: %w", err)
	}
	before.Until = timePtr(until)

	subs, err := subscriptionFacts(ctx, tx, memberID)
	if err != nil {
		return effects{}, err
	}
	grants, err := grantsOf(ctx, tx, memberID)
	if err != nil {
		return effects{}, err
	}
	after, recheck := DecideAccess(subs, grants, now, s.grace)
	was, is := membership{Access: before, Status: beforeStatus, Interval: beforeInterval}, membershipOf(after, subs)
	var fx effects
	// The welcome is for a member whose subscription has been active (or
	// trialing) at some point in its history, which does not depend on the
	// order events arrive in, unlike the access computed along the way.
	// An activation older than welcomeWindow (an import of old
	// subscriptions, a long-delayed event) marks the member welcomed without
	// mailing them.
	welcomedNow := false
	if !welcomed.Valid {
		var first time.Time
		var tier sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT h.at, h.tier_slug FROM subscription_history h JOIN subscriptions s ON s.id = h.subscription_id
			WHERE s.member_id = $1 AND h.status IN ('active', 'trialing') ORDER BY h.at LIMIT 1`, memberID).Scan(&first, &tier)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return effects{}, fmt.Errorf("read history: %w", err)
		}
		if err == nil {
			welcomed, welcomedNow = sql.NullTime{Time: now, Valid: true}, true
			if now.Sub(first) <= welcomeWindow {
				if err := s.decideMail(ctx, tx, MailArgs{Mail: "welcome", MemberID: memberID, Tier: tier.String}); err != nil {
					return effects{}, err
				}
			}
		}
	}
	if sameAccess(before, after) && sameTime(timePtr(storedRecheck), recheck) && !welcomedNow && was.Status == is.Status && was.Interval == is.Interval {
		return fx, nil // most events change nothing a member can see
	}
	_, err = tx.ExecContext(ctx, `UPDATE member_access SET active = $2, source = $3, tier_slug = $4, until_at = $5, recheck_at = $6, welcomed_at = $7,
		changed_at = CASE WHEN active <> $2 OR source <> $3 OR tier_slug <> $4 THEN $8 ELSE changed_at END, membership_status = $9, billing_interval = $10
		WHERE member_id = $1`,
		memberID, after.Active, after.Source, after.Tier, nullTime(after.Until), nullTime(recheck), welcomed, now, is.Status, is.Interval)
	if err != nil {
		return effects{}, fmt.Errorf("save access: %w", err)
	}
	if err := s.emitMembership(ctx, tx, memberID, was, is); err != nil {
		return effects{}, err
	}
	if !sameAccess(before, after) {
		fx.changes = append(fx.changes, AccessChange{MemberID: memberID, Before: before, After: after})
	}
	return fx, nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func sameAccess(a, b Access) bool {
	if a.Active != b.Active || a.Source != b.Source || a.Tier != b.Tier {
		return false
	}
	if (a.Until == nil) != (b.Until == nil) {
		return false
	}
	return a.Until == nil || a.Until.Equal(*b.Until)
}

func subscriptionFacts(ctx context.Context, q querier, memberID string) ([]SubscriptionFacts, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, status, tier_slug, billing_interval, current_period_start, current_period_end, trial_end, cancel_at_period_end
		FROM subscriptions WHERE member_id = $1 AND state_at IS NOT NULL`, memberID)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	defer rows.Close()
	var out []SubscriptionFacts
	for rows.Next() {
		var f SubscriptionFacts
		var tier sql.NullString
		var start, end, trial sql.NullTime
		if err := rows.Scan(&f.ID, &f.Status, &tier, &f.Interval, &start, &end, &trial, &f.CancelAtPeriodEnd); err != nil {
			return nil, fmt.Errorf("read subscriptions: %w", err)
		}
		f.Tier, f.CurrentPeriodStart, f.CurrentPeriodEnd, f.TrialEnd = tier.String, timePtr(start), timePtr(end), timePtr(trial)
		out = append(out, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, f := range out {
		// The first paid invoice's charge, refunded in full or disputed.
		var reversed int
		err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM invoices i
			WHERE i.subscription_id = $1 AND i.status = 'paid' AND i.amount_paid > 0
			  AND NOT EXISTS (SELECT 1 FROM invoices e WHERE e.subscription_id = i.subscription_id AND e.status = 'paid' AND e.amount_paid > 0
			                  AND (e.stripe_created_at < i.stripe_created_at OR (e.stripe_created_at = i.stripe_created_at AND e.id < i.id)))
			  AND (EXISTS (SELECT 1 FROM charges c WHERE (c.id = i.charge_id OR c.invoice_id = i.id) AND c.amount_refunded >= c.amount)
			       OR EXISTS (SELECT 1 FROM disputes d JOIN charges c2 ON c2.id = d.charge_id
			                  WHERE (c2.id = i.charge_id OR c2.invoice_id = i.id) AND d.status NOT IN ('won', 'warning_closed'))
			       OR EXISTS (SELECT 1 FROM disputes d WHERE d.charge_id = i.charge_id AND d.status NOT IN ('won', 'warning_closed')))`, f.ID).Scan(&reversed)
		if err != nil {
			return nil, fmt.Errorf("read first payment: %w", err)
		}
		out[i].FirstPaymentReversed = reversed > 0
		if f.Status != "past_due" {
			continue
		}
		// The grace runs from the first failure of the newest unpaid invoice.
		var failed sql.NullTime
		err = q.QueryRowContext(ctx, `SELECT first_failed_at FROM invoices WHERE subscription_id = $1 AND first_failed_at IS NOT NULL
			AND status <> 'paid' AND status <> 'void' ORDER BY stripe_created_at DESC, first_failed_at DESC LIMIT 1`, f.ID).Scan(&failed)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read failed payment: %w", err)
		}
		out[i].PaymentFailedAt = timePtr(failed)
	}
	return out, nil
}

func grantsOf(ctx context.Context, q querier, memberID string) ([]Grant, error) {
	rows, err := q.QueryContext(ctx, `SELECT tier_slug, starts_at, ends_at, revoked_at FROM complimentary_grants WHERE member_id = $1`, memberID)
	if err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var g Grant
		var tier sql.NullString
		var ends, revoked sql.NullTime
		if err := rows.Scan(&tier, &g.StartsAt, &ends, &revoked); err != nil {
			return nil, fmt.Errorf("read grants: %w", err)
		}
		g.Tier, g.EndsAt, g.RevokedAt = tier.String, timePtr(ends), timePtr(revoked)
		out = append(out, g)
	}
	return out, rows.Err()
}

// RecomputeDueAccess recomputes every member whose access may have changed
// by the passing of time (a period, grace or grant ended). The scheduled
// access job calls it; it returns how many members it looked at.
func (s *Service) RecomputeDueAccess(ctx context.Context) (int, error) {
	due, err := sqldb.QueryStrings(ctx, s.db, `SELECT member_id FROM member_access WHERE recheck_at IS NOT NULL AND recheck_at <= $1
		ORDER BY recheck_at LIMIT 1000`, s.now())
	if err != nil {
		return 0, fmt.Errorf("find due access: %w", err)
	}
	for _, id := range due {
		if err := s.RecomputeAccess(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}

// RecomputeAccess recomputes one member's access now.
func (s *Service) RecomputeAccess(ctx context.Context, memberID string) error {
	var fx effects
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		fx, err = s.recomputeAccess(ctx, tx, memberID)
		return err
	})
	if err != nil {
		return err
	}
	s.afterCommit(ctx, fx)
	return nil
}

// claimNotification records that a mail for key is due, and reports
// whether it was the first time (so a handler run twice mails once).
func (s *Service) claimNotification(ctx context.Context, tx *sql.Tx, key, kind, memberID string) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO billing_notifications (key, member_id, kind, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING`,
		key, nullable(memberID), kind, s.now())
	if err != nil {
		return false, fmt.Errorf("record notification: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// afterCommit publishes access changes.
func (s *Service) afterCommit(ctx context.Context, fx effects) {
	for _, c := range fx.changes {
		s.logger.InfoContext(ctx, "access changed", "member_id", c.MemberID, "active", c.After.Active, "source", c.After.Source, "tier", c.After.Tier)
		s.publish(c)
	}
}
