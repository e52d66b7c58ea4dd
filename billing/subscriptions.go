package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/metrics"
)

// The order of a subscription's states within one second. Stripe's created
// is whole seconds, so two events for a subscription can tie; the tie goes
// to the state later in the lifecycle, and the ended states are final: a
// canceled or incomplete_expired subscription is never revived.
var lifecycleRank = map[string]int{
	"incomplete": 0, "trialing": 1, "active": 2, "past_due": 3, "unpaid": 4, "paused": 5,
	"canceled": 9, "incomplete_expired": 9,
}

func terminal(status string) bool { return status == "canceled" || status == "incomplete_expired" }

// stateVersion places a subscription state in time: when it was true, and
// the tie-breakers for states of the same second.
type stateVersion struct {
	At        time.Time
	Status    string
	PeriodEnd *time.Time
	EventID   string
}

// supersedes reports whether state a replaces state b as the current one.
// The rule, in order: an ended state is never replaced by one that is not;
// a later time wins; within the same second the later lifecycle state
// wins, then the later period end (a renewal moves it forward), then the
// greater event id (arbitrary, but the same whatever the arrival order).
func (a stateVersion) supersedes(b stateVersion) bool {
	if terminal(b.Status) && !terminal(a.Status) {
		return false
	}
	if !a.At.Equal(b.At) {
		return a.At.After(b.At)
	}
	if ra, rb := lifecycleRank[a.Status], lifecycleRank[b.Status]; ra != rb {
		return ra > rb
	}
	if pa, pb := unixOr0(a.PeriodEnd), unixOr0(b.PeriodEnd); pa != pb {
		return pa > pb
	}
	return a.EventID > b.EventID
}

func unixOr0(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

func (s *Service) onSubscription(ctx context.Context, ev Event) (effects, error) {
	snap, err := decodeSubscription(ev.Object)
	if err != nil {
		return effects{}, err
	}
	if ev.Type == "customer.subscription.trial_will_end" {
		return s.trialWillEnd(ctx, ev, snap)
	}
	current, at, sourceID := snap, ev.Created, ev.ID
	if s.mode == ModeFetch {
		at = s.now()
		raw, gone, err := s.fetch(ctx, "subscriptions", snap.ID)
		if err != nil {
			return effects{}, err
		}
		if !gone {
			if current, err = decodeSubscription(raw); err != nil {
				return effects{}, err
			}
			sourceID = "fetch:" + ev.ID
		} else {
			at = ev.Created // Stripe has forgotten it: the event is all we have
		}
	}
	var fx effects
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.insertSnapshot(ctx, tx, ev.ID, ev.Created, &snap); err != nil {
			return err
		}
		if current.PriceID == snap.PriceID {
			current.Tier, current.TierKnown = snap.Tier, true
		}
		memberID, err := s.applySubscription(ctx, tx, current, at, sourceID)
		if err != nil {
			return err
		}
		if memberID != "" {
			fx, err = s.recomputeAccess(ctx, tx, memberID)
		}
		return err
	})
	return fx, err
}

// applySubscription writes a subscription's state if it is newer than the
// stored one, rebuilds its history, and returns its member ("" if unknown).
// Two handlers for one subscription at once never make two rows: the row
// is created with ON CONFLICT DO NOTHING, then locked.
func (s *Service) applySubscription(ctx context.Context, tx *sql.Tx, st subscriptionState, at time.Time, sourceID string) (string, error) {
	memberID, err := s.memberForCustomer(ctx, tx, st.CustomerID, st.MemberHint)
	if err != nil {
		return "", err
	}
	now := s.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (id, member_id, customer_id, status, updated_at) VALUES ($1, $2, $3, 'incomplete', $4)
		ON CONFLICT (id) DO NOTHING`, st.ID, nullable(memberID), st.CustomerID, now); err != nil {
		return "", fmt.Errorf("create subscription row: %w", err)
	}
	var stored stateVersion
	var storedAt, storedEnd sql.NullTime
	var storedEvent, storedMember sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT state_at, status, current_period_end, state_event_id, member_id FROM subscriptions WHERE id = $1`+s.db.Dialect.ForUpdate(), st.ID).
		Scan(&storedAt, &stored.Status, &storedEnd, &storedEvent, &storedMember)
	if err != nil {
		return "", fmt.Errorf("lock subscription: %w", err)
	}
	if memberID == "" {
		memberID = storedMember.String
	}
	next := stateVersion{At: at, Status: st.Status, PeriodEnd: st.CurrentPeriodEnd, EventID: sourceID}
	stored.At, stored.PeriodEnd, stored.EventID = storedAt.Time, timePtr(storedEnd), storedEvent.String
	if !storedAt.Valid || next.supersedes(stored) {
		tier, err := st.tier(ctx, tx)
		if err != nil {
			return "", err
		}
		d := st.Discount
		_, err = tx.ExecContext(ctx, `UPDATE subscriptions SET member_id = $2, customer_id = $3, tier_slug = $4, price_id = $5, status = $6,
			currency = $7, unit_amount = $8, quantity = $9, billing_interval = $10, interval_count = $11,
			discount_percent_off_bps = $12, discount_amount_off = $13, discount_duration = $14, discount_duration_months = $15, discount_end = $16,
			trial_end = $17, current_period_start = $18, current_period_end = $19, cancel_at_period_end = $20, canceled_at = $21, ended_at = $22,
			stripe_created_at = $23, state_at = $24, state_event_id = $25, updated_at = $26 WHERE id = $1`,
			st.ID, nullable(memberID), st.CustomerID, nullable(tier), st.PriceID, st.Status,
			st.Currency, st.UnitAmount, st.Quantity, st.Interval, st.IntervalCount,
			nullInt(d.PercentOffBps), nullInt(d.AmountOff), nullable(d.Duration), nullInt(d.DurationMonths), nullTime(d.End),
			nullTime(st.TrialEnd), nullTime(st.CurrentPeriodStart), nullTime(st.CurrentPeriodEnd), st.CancelAtPeriodEnd, nullTime(st.CanceledAt), nullTime(st.EndedAt),
			st.Created, at, sourceID, now)
		if err != nil {
			return "", fmt.Errorf("update subscription: %w", err)
		}
	} else if memberID != "" && !storedMember.Valid {
		if _, err := tx.ExecContext(ctx, `UPDATE subscriptions SET member_id = $2 WHERE id = $1`, st.ID, memberID); err != nil {
			return "", fmt.Errorf("link subscription: %w", err)
		}
	}
	return memberID, s.rebuildHistory(ctx, tx, st.ID, nullable(memberID))
}

// insertSnapshot keeps an event's own view of a subscription for history.
func (s *Service) insertSnapshot(ctx context.Context, tx *sql.Tx, eventID string, at time.Time, st *subscriptionState) error {
	tier, err := st.tier(ctx, tx)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO subscription_snapshots (event_id, subscription_id, at, status, tier_slug, price_id, currency, unit_amount,
		quantity, billing_interval, interval_count, discount_percent_off_bps, discount_amount_off, discount_duration, current_period_end)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (event_id) DO NOTHING`,
		eventID, st.ID, at, st.Status, nullable(tier), st.PriceID, st.Currency, st.UnitAmount, st.Quantity, st.Interval, st.IntervalCount,
		nullInt(st.Discount.PercentOffBps), nullInt(st.Discount.AmountOff), nullable(st.Discount.Duration), nullTime(st.CurrentPeriodEnd))
	if err != nil {
		return fmt.Errorf("store subscription snapshot: %w", err)
	}
	return nil
}

// historyRow is one state in a subscription's history.
type historyRow struct {
	version    stateVersion
	Tier       sql.NullString
	PriceID    string
	Currency   string
	UnitAmount int64
	Quantity   int64
	Interval   string
	Count      int64
	PercentBps sql.NullInt64
	AmountOff  sql.NullInt64
	Duration   sql.NullString
}

// sameMoney reports whether two states count the same for revenue: history
// keeps a row only where one of these changes.
func (h historyRow) sameMoney(o historyRow) bool {
	return h.version.Status == o.version.Status && h.Tier == o.Tier && h.PriceID == o.PriceID && h.Currency == o.Currency &&
		h.UnitAmount == o.UnitAmount && h.Quantity == o.Quantity && h.Interval == o.Interval && h.Count == o.Count &&
		h.PercentBps == o.PercentBps && h.AmountOff == o.AmountOff && h.Duration == o.Duration
}

// rebuildHistory recomputes a subscription's history from every snapshot
// received so far plus its current state, in time order, whatever order
// they arrived in. The caller holds the subscription's row lock.
func (s *Service) rebuildHistory(ctx context.Context, tx *sql.Tx, subID string, memberID sql.NullString) error {
	rows, err := tx.QueryContext(ctx, `SELECT at, status, current_period_end, event_id, tier_slug, price_id, currency, unit_amount, quantity,
		billing_interval, interval_count, discount_percent_off_bps, discount_amount_off, discount_duration
		FROM subscription_snapshots WHERE subscription_id = $1
		UNION ALL
		SELECT state_at, status, current_period_end, state_event_id, tier_slug, price_id, currency, unit_amount, quantity,
		billing_interval, interval_count, discount_percent_off_bps, discount_amount_off, discount_duration
		FROM subscriptions WHERE id = $1 AND state_at IS NOT NULL`, subID)
	if err != nil {
		return fmt.Errorf("read subscription snapshots: %w", err)
	}
	var all []historyRow
	for rows.Next() {
		var h historyRow
		var end sql.NullTime
		if err := rows.Scan(&h.version.At, &h.version.Status, &end, &h.version.EventID, &h.Tier, &h.PriceID, &h.Currency, &h.UnitAmount,
			&h.Quantity, &h.Interval, &h.Count, &h.PercentBps, &h.AmountOff, &h.Duration); err != nil {
			rows.Close()
			return fmt.Errorf("read subscription snapshots: %w", err)
		}
		h.version.PeriodEnd = timePtr(end)
		all = append(all, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read subscription snapshots: %w", err)
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i].version, all[j].version
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		return b.supersedes(a) && !a.supersedes(b)
	})
	var kept []historyRow
	for _, h := range all {
		if n := len(kept); n > 0 {
			last := kept[n-1]
			if terminal(last.version.Status) && !terminal(h.version.Status) {
				continue // never revived
			}
			if last.sameMoney(h) {
				continue
			}
		}
		kept = append(kept, h)
	}
	same, err := historyIs(ctx, tx, subID, memberID, kept)
	if err != nil || same {
		return err // most events change nothing in the past: no rewrite
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM subscription_history WHERE subscription_id = $1`, subID); err != nil {
		return fmt.Errorf("clear subscription history: %w", err)
	}
	for i, h := range kept {
		_, err := tx.ExecContext(ctx, `INSERT INTO subscription_history (subscription_id, seq, at, member_id, status, tier_slug, price_id, currency,
			unit_amount, quantity, billing_interval, interval_count, discount_percent_off_bps, discount_amount_off, discount_duration, event_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			subID, i+1, h.version.At, memberID, h.version.Status, h.Tier, h.PriceID, h.Currency, h.UnitAmount, h.Quantity, h.Interval, h.Count,
			h.PercentBps, h.AmountOff, h.Duration, h.version.EventID)
		if err != nil {
			return fmt.Errorf("write subscription history: %w", err)
		}
	}
	return metrics.Refresh(ctx, tx, metrics.PatronSources(memberID.String, subID))
}

// historyIs reports whether the stored history is already rows.
func historyIs(ctx context.Context, tx *sql.Tx, subID string, memberID sql.NullString, rows []historyRow) (bool, error) {
	stored, err := tx.QueryContext(ctx, `SELECT at, member_id, status, tier_slug, price_id, currency, unit_amount, quantity, billing_interval, interval_count,
		discount_percent_off_bps, discount_amount_off, discount_duration, event_id FROM subscription_history WHERE subscription_id = $1 ORDER BY seq`, subID)
	if err != nil {
		return false, fmt.Errorf("read subscription history: %w", err)
	}
	defer stored.Close()
	i := 0
	for stored.Next() {
		var h historyRow
		var member sql.NullString
		if err := stored.Scan(&h.version.At, &member, &h.version.Status, &h.Tier, &h.PriceID, &h.Currency, &h.UnitAmount, &h.Quantity, &h.Interval,
			&h.Count, &h.PercentBps, &h.AmountOff, &h.Duration, &h.version.EventID); err != nil {
			return false, fmt.Errorf("read subscription history: %w", err)
		}
		if i >= len(rows) || member != memberID || !h.version.At.Equal(rows[i].version.At) || h.version.EventID != rows[i].version.EventID || !h.sameMoney(rows[i]) {
			return false, nil
		}
		i++
	}
	return i == len(rows), stored.Err()
}

// tier resolves the subscription's tier once.
func (st *subscriptionState) tier(ctx context.Context, q querier) (string, error) {
	if !st.TierKnown {
		t, err := tierForPrice(ctx, q, st.Price)
		if err != nil {
			return "", err
		}
		st.Tier, st.TierKnown = t, true
	}
	return st.Tier, nil
}

// tierForPrice finds the tier a Stripe price belongs to: by the
// patronage_tier metadata our prices carry (old, archived prices too), by
// the price id, by our lookup key, or by the tier's product. "" means
// unmapped: the subscription is kept, without a tier.
func tierForPrice(ctx context.Context, q querier, p stripePrice) (string, error) {
	byName := []string{p.Metadata["patronage_tier"], "", ""}
	if slug, _, _, ok := parseLookupKey(p.LookupKey); ok {
		byName[1] = slug
	}
	if slug, ok := strings.CutPrefix(string(p.Product), "patronage_"); ok {
		byName[2] = slug
	}
	// One query, the candidates in order of trust.
	var slug string
	err := q.QueryRowContext(ctx, `SELECT slug FROM (
			SELECT slug, 1 AS rank FROM tiers WHERE slug = $1
			UNION ALL SELECT slug, 2 FROM tiers WHERE slug = $2
			UNION ALL SELECT slug, 3 FROM tiers WHERE slug = $3
			UNION ALL SELECT tier_slug, 4 FROM tier_prices WHERE stripe_price_id = $4
			UNION ALL SELECT slug, 5 FROM tiers WHERE stripe_product_id = $5
		) candidates ORDER BY rank LIMIT 1`, byName[0], byName[1], byName[2], p.ID, string(p.Product)).Scan(&slug)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find tier: %w", err)
	}
	return slug, nil
}

// parseLookupKey splits patronage_<slug>_<interval>_<currency>.
func parseLookupKey(key string) (slug, interval, currency string, ok bool) {
	rest, found := strings.CutPrefix(key, "patronage_")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "_")
	if len(parts) != 3 || parts[0] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], strings.ToUpper(parts[2]), true
}

// memberForCustomer finds the member a Stripe customer belongs to: the
// member linked to it, else the member our metadata names (linking the
// customer to them when they have none yet), else "" (a customer made
// outside Patronage, linked later by a Checkout or by sync).
func (s *Service) memberForCustomer(ctx context.Context, tx *sql.Tx, customerID, hint string) (string, error) {
	if customerID != "" {
		var id string
		err := tx.QueryRowContext(ctx, `SELECT id FROM members WHERE stripe_customer_id = $1`, customerID).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("find member by customer: %w", err)
		}
		var linked sql.NullString
		err = tx.QueryRowContext(ctx, `SELECT member_id FROM stripe_customers WHERE id = $1`, customerID).Scan(&linked)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("find member by customer: %w", err)
		}
		if linked.Valid {
			return linked.String, nil
		}
	}
	if hint == "" {
		return "", nil
	}
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM members WHERE id = $1`, hint).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find member: %w", err)
	}
	if customerID != "" {
		if err := s.linkCustomer(ctx, tx, id, customerID); err != nil {
			return "", err
		}
	}
	return id, nil
}

// linkCustomer records that a customer is a member's: the member's own
// customer id when they have none, and the customer's member, and it
// gives the member every subscription, invoice and charge of that customer
// that had none.
func (s *Service) linkCustomer(ctx context.Context, tx *sql.Tx, memberID, customerID string) error {
	now := s.now()
	// A deleted customer is never linked again, whatever arrives late.
	if _, err := tx.ExecContext(ctx, `UPDATE members SET stripe_customer_id = $1, updated_at = $2 WHERE id = $3 AND stripe_customer_id IS NULL
		AND NOT EXISTS (SELECT 1 FROM members WHERE stripe_customer_id = $1)
		AND NOT EXISTS (SELECT 1 FROM stripe_customers WHERE id = $1 AND deleted)`, customerID, now, memberID); err != nil {
		return fmt.Errorf("link customer: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO stripe_customers (id, member_id, state_at, updated_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (id) DO UPDATE SET member_id = COALESCE(stripe_customers.member_id, excluded.member_id)`, customerID, memberID, time.Unix(0, 0).UTC()); err != nil {
		return fmt.Errorf("link customer: %w", err)
	}
	for _, table := range []string{"subscriptions", "invoices", "charges"} {
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET member_id = $1 WHERE customer_id = $2 AND member_id IS NULL`, memberID, customerID); err != nil {
			return fmt.Errorf("link customer's %s: %w", table, err)
		}
	}
	linked, err := sqldb.QueryStrings(ctx, tx, `SELECT DISTINCT subscription_id FROM subscription_history WHERE member_id IS NULL
		AND subscription_id IN (SELECT id FROM subscriptions WHERE customer_id = $1)`, customerID)
	if err != nil || len(linked) == 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE subscription_history SET member_id = $1 WHERE member_id IS NULL
		AND subscription_id IN (SELECT id FROM subscriptions WHERE customer_id = $2)`, memberID, customerID); err != nil {
		return fmt.Errorf("link customer's history: %w", err)
	}
	return metrics.Refresh(ctx, tx, metrics.PatronSources(memberID, linked...))
}
