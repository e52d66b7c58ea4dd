package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SubscriptionView is a subscription as staff see it.
type SubscriptionView struct {
	ID                 string
	CustomerID         string
	Tier               string // "" when unmapped
	PriceID            string
	Status             string
	Currency           string
	UnitAmount         int64
	Quantity           int64
	Interval           string
	IntervalCount      int64
	DiscountPercentBps *int64
	DiscountAmountOff  *int64
	DiscountDuration   string
	TrialEnd           *time.Time
	CurrentPeriodStart *time.Time
	CurrentPeriodEnd   *time.Time
	CancelAtPeriodEnd  bool
	CanceledAt         *time.Time
	EndedAt            *time.Time
	History            []HistoryEntry
}

// HistoryEntry is one state in a subscription's history.
type HistoryEntry struct {
	At         time.Time
	Status     string
	Tier       string
	PriceID    string
	Currency   string
	UnitAmount int64
	Quantity   int64
	Interval   string
}

// PaymentView is a paid or attempted invoice with its refunds and disputes.
type PaymentView struct {
	InvoiceID      string
	SubscriptionID string
	Status         string
	Currency       string
	AmountDue      int64
	AmountPaid     int64
	Tax            int64
	PeriodStart    *time.Time
	PeriodEnd      *time.Time
	PaidAt         *time.Time
	ChargeID       string
	Refunds        []RefundView
	Disputes       []DisputeView
}

// RefundView is money given back.
type RefundView struct {
	ID         string
	Amount     int64
	Currency   string
	RefundedAt time.Time
}

// DisputeView is a chargeback and its outcome.
type DisputeView struct {
	ID       string
	Amount   int64
	Currency string
	Status   string
	Reason   string
	Created  time.Time
	ClosedAt *time.Time
}

// DonationView is a one-time gift.
type DonationView struct {
	ID       string
	Amount   int64
	Currency string
	Message  string
	Status   string
	Created  time.Time
	Refunds  []RefundView
}

// MemberBilling is everything billing knows about one member.
type MemberBilling struct {
	Access        Access
	Subscriptions []SubscriptionView
	Payments      []PaymentView
	Donations     []DonationView
}

// MemberBilling gathers a member's access, subscriptions (with history),
// payments and gifts (those given under their email before they had an
// account too), newest first.
func (s *Service) MemberBilling(ctx context.Context, memberID string) (MemberBilling, error) {
	m, err := s.members.FindMemberByID(ctx, memberID)
	if err != nil {
		return MemberBilling{}, err
	}
	var out MemberBilling
	if out.Access, _, err = storedAccess(ctx, s.db, memberID); err != nil {
		return MemberBilling{}, err
	}
	if out.Subscriptions, err = s.subscriptionsOf(ctx, memberID); err != nil {
		return MemberBilling{}, err
	}
	if out.Payments, err = s.paymentsOf(ctx, memberID); err != nil {
		return MemberBilling{}, err
	}
	if out.Donations, err = s.donationsOf(ctx, memberID, m.Email); err != nil {
		return MemberBilling{}, err
	}
	return out, nil
}

func (s *Service) subscriptionsOf(ctx context.Context, memberID string) ([]SubscriptionView, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, customer_id, tier_slug, price_id, status, currency, unit_amount, quantity, billing_interval, interval_count,
		discount_percent_off_bps, discount_amount_off, discount_duration, trial_end, current_period_start, current_period_end, cancel_at_period_end,
		canceled_at, ended_at FROM subscriptions WHERE member_id = $1 AND state_at IS NOT NULL ORDER BY stripe_created_at DESC, id`, memberID)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	out := []SubscriptionView{}
	for rows.Next() {
		var v SubscriptionView
		var tier, duration sql.NullString
		var pct, off sql.NullInt64
		var trial, start, end, canceled, ended sql.NullTime
		if err := rows.Scan(&v.ID, &v.CustomerID, &tier, &v.PriceID, &v.Status, &v.Currency, &v.UnitAmount, &v.Quantity, &v.Interval, &v.IntervalCount,
			&pct, &off, &duration, &trial, &start, &end, &v.CancelAtPeriodEnd, &canceled, &ended); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read subscriptions: %w", err)
		}
		v.Tier, v.DiscountDuration, v.DiscountPercentBps, v.DiscountAmountOff = tier.String, duration.String, intPtr(pct), intPtr(off)
		v.TrialEnd, v.CurrentPeriodStart, v.CurrentPeriodEnd, v.CanceledAt, v.EndedAt = timePtr(trial), timePtr(start), timePtr(end), timePtr(canceled), timePtr(ended)
		out = append(out, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		h, err := s.historyOf(ctx, out[i].ID)
		if err != nil {
			return nil, err
		}
		out[i].History = h
	}
	return out, nil
}

func (s *Service) historyOf(ctx context.Context, subID string) ([]HistoryEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, status, tier_slug, price_id, currency, unit_amount, quantity, billing_interval
		FROM subscription_history WHERE subscription_id = $1 ORDER BY seq`, subID)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	out := []HistoryEntry{}
	for rows.Next() {
		var h HistoryEntry
		var tier sql.NullString
		if err := rows.Scan(&h.At, &h.Status, &tier, &h.PriceID, &h.Currency, &h.UnitAmount, &h.Quantity, &h.Interval); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		h.Tier = tier.String
		out = append(out, h)
	}
	return out, rows.Err()
}

func (s *Service) paymentsOf(ctx context.Context, memberID string) ([]PaymentView, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, subscription_id, status, currency, amount_due, amount_paid, tax, period_start, period_end, paid_at, charge_id
		FROM invoices WHERE member_id = $1 ORDER BY stripe_created_at DESC, id`, memberID)
	if err != nil {
		return nil, fmt.Errorf("read payments: %w", err)
	}
	out := []PaymentView{}
	for rows.Next() {
		var p PaymentView
		var sub, charge sql.NullString
		var start, end, paid sql.NullTime
		if err := rows.Scan(&p.InvoiceID, &sub, &p.Status, &p.Currency, &p.AmountDue, &p.AmountPaid, &p.Tax, &start, &end, &paid, &charge); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read payments: %w", err)
		}
		p.SubscriptionID, p.ChargeID, p.PeriodStart, p.PeriodEnd, p.PaidAt = sub.String, charge.String, timePtr(start), timePtr(end), timePtr(paid)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		chargeID, err := s.chargeOfInvoice(ctx, out[i])
		if err != nil {
			return nil, err
		}
		if chargeID == "" {
			continue
		}
		out[i].ChargeID = chargeID
		if out[i].Refunds, err = s.refundsOf(ctx, chargeID); err != nil {
			return nil, err
		}
		if out[i].Disputes, err = s.disputesOf(ctx, chargeID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// chargeOfInvoice is the charge that paid an invoice: named on the invoice,
// or (newer API versions drop the field) the charge naming the invoice.
func (s *Service) chargeOfInvoice(ctx context.Context, p PaymentView) (string, error) {
	if p.ChargeID != "" {
		return p.ChargeID, nil
	}
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT id FROM charges WHERE invoice_id = $1 ORDER BY stripe_created_at DESC LIMIT 1`, p.InvoiceID).Scan(&id)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return id, err
}

func (s *Service) refundsOf(ctx context.Context, chargeID string) ([]RefundView, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, amount, currency, refunded_at FROM refunds WHERE charge_id = $1 AND amount > 0 ORDER BY refunded_at, id`, chargeID)
	if err != nil {
		return nil, fmt.Errorf("read refunds: %w", err)
	}
	defer rows.Close()
	out := []RefundView{}
	for rows.Next() {
		var r RefundView
		if err := rows.Scan(&r.ID, &r.Amount, &r.Currency, &r.RefundedAt); err != nil {
			return nil, fmt.Errorf("read refunds: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Service) disputesOf(ctx context.Context, chargeID string) ([]DisputeView, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, amount, currency, status, reason, stripe_created_at, closed_at FROM disputes WHERE charge_id = $1 ORDER BY stripe_created_at, id`, chargeID)
	if err != nil {
		return nil, fmt.Errorf("read disputes: %w", err)
	}
	defer rows.Close()
	out := []DisputeView{}
	for rows.Next() {
		var d DisputeView
		var closed sql.NullTime
		if err := rows.Scan(&d.ID, &d.Amount, &d.Currency, &d.Status, &d.Reason, &d.Created, &closed); err != nil {
			return nil, fmt.Errorf("read disputes: %w", err)
		}
		d.ClosedAt = timePtr(closed)
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *Service) donationsOf(ctx context.Context, memberID, email string) ([]DonationView, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, amount, currency, message, status, stripe_created_at, payment_intent_id FROM donations
		WHERE member_id = $1 OR (member_id IS NULL AND email <> '' AND LOWER(email) = $2)
		ORDER BY stripe_created_at DESC, id`, memberID, strings.ToLower(email))
	if err != nil {
		return nil, fmt.Errorf("read donations: %w", err)
	}
	out := []DonationView{}
	var intents []string
	for rows.Next() {
		var d DonationView
		var pi sql.NullString
		if err := rows.Scan(&d.ID, &d.Amount, &d.Currency, &d.Message, &d.Status, &d.Created, &pi); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read donations: %w", err)
		}
		out = append(out, d)
		intents = append(intents, pi.String)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, pi := range intents {
		out[i].Refunds = []RefundView{}
		if pi == "" {
			continue
		}
		var chargeID string
		err := s.db.QueryRowContext(ctx, `SELECT id FROM charges WHERE payment_intent_id = $1 LIMIT 1`, pi).Scan(&chargeID)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read donation charge: %w", err)
		}
		if out[i].Refunds, err = s.refundsOf(ctx, chargeID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Plan is a member's running subscription as the reader sees it on their
// account page.
type Plan struct {
	Tier              string // the tier's name (its slug when unmapped names are missing)
	Status            string
	Currency          string
	Amount            int64 // what a period costs, before any discount
	NextCharge        int64 // what the next invoice should be, the discount applied
	Interval          string
	PeriodEnd         *time.Time
	CancelAtPeriodEnd bool
}

// CurrentPlan is the member's running subscription (the one that lasts
// longest), if any.
func (s *Service) CurrentPlan(ctx context.Context, memberID string) (Plan, bool, error) {
	var p Plan
	var slug, name, duration sql.NullString
	var quantity int64
	var pct, off sql.NullInt64
	var end, discountEnd sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT s.status, s.tier_slug, t.name, s.currency, s.unit_amount, s.quantity, s.billing_interval,
		s.current_period_end, s.cancel_at_period_end, s.discount_percent_off_bps, s.discount_amount_off, s.discount_duration, s.discount_end
		FROM subscriptions s LEFT JOIN tiers t ON t.slug = s.tier_slug
		WHERE s.member_id = $1 AND s.state_at IS NOT NULL AND s.status IN (`+liveStatuses+`)
		ORDER BY s.current_period_end DESC LIMIT 1`, memberID).
		Scan(&p.Status, &slug, &name, &p.Currency, &p.Amount, &quantity, &p.Interval, &end, &p.CancelAtPeriodEnd, &pct, &off, &duration, &discountEnd)
	if errors.Is(err, sql.ErrNoRows) {
		return Plan{}, false, nil
	}
	if err != nil {
		return Plan{}, false, fmt.Errorf("read plan: %w", err)
	}
	p.Tier = name.String
	if p.Tier == "" {
		p.Tier = slug.String
	}
	p.PeriodEnd = timePtr(end)
	p.Amount *= quantity
	p.NextCharge = p.Amount
	// A discount still running at the next invoice comes off it.
	if (pct.Valid || off.Valid) && duration.String != "once" && (!discountEnd.Valid || end.Valid && discountEnd.Time.After(end.Time)) {
		p.NextCharge = discounted(p.Amount, intPtr(pct), intPtr(off))
	}
	return p, true, nil
}

// discounted applies a coupon as Stripe does: percent off rounded half up
// to the minor unit, or an amount off, never below zero.
func discounted(amount int64, percentBps, amountOff *int64) int64 {
	if percentBps != nil {
		amount -= (amount**percentBps + 5000) / 10000
	}
	if amountOff != nil {
		amount -= *amountOff
	}
	return max(amount, 0)
}
