package billing

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patronage/patronage/members"
)

// The outgoing webhooks' membership and donation events
// (docs/outgoing-webhooks.md), emitted inside the transactions that change
// access or record a paid gift.

// membership is a member's access as the events describe it.
type membership struct {
	Access
	Status   string // active, trialing, past_due, complimentary; "" without access, or stored before events were kept
	Interval string // the paying subscription's billing interval (month, year)
}

type membershipJSON struct {
	Active   bool    `json:"active"`
	Status   string  `json:"status"` // active, trialing, past_due, complimentary, none
	Source   string  `json:"source,omitempty"`
	Tier     string  `json:"tier,omitempty"`
	Interval string  `json:"interval,omitempty"`
	Until    *string `json:"until,omitempty"`
}

func (m membership) json() membershipJSON {
	j := membershipJSON{Active: m.Active, Status: m.Status, Source: m.Source, Tier: m.Tier, Interval: m.Interval}
	if !m.Active || j.Status == "" {
		j.Status = "none"
		if m.Active {
			j.Status = m.Source
		}
	}
	if m.Until != nil {
		u := m.Until.UTC().Format(time.RFC3339)
		j.Until = &u
	}
	return j
}

// membershipOf names the status and interval of the access decided from
// subs: those of the subscription that gives it, a paying one before a
// failing one, the first by id among equals (the migration that added
// the columns decides the same way).
func membershipOf(a Access, subs []SubscriptionFacts) membership {
	m := membership{Access: a}
	switch {
	case !a.Active:
		return m
	case a.Source == SourceComplimentary:
		m.Status = SourceComplimentary
		return m
	}
	sorted := slices.SortedFunc(slices.Values(subs), func(x, y SubscriptionFacts) int {
		return cmp.Or(cmp.Compare(pastDue(x), pastDue(y)), strings.Compare(x.ID, y.ID))
	})
	for _, s := range sorted {
		if !s.FirstPaymentReversed && s.Tier == a.Tier && (s.Status == "active" || s.Status == "trialing" || s.Status == "past_due") {
			m.Status, m.Interval = s.Status, s.Interval
			return m
		}
	}
	m.Status = "active"
	return m
}

func pastDue(s SubscriptionFacts) int {
	if s.Status == "past_due" {
		return 1
	}
	return 0
}

// membershipEvents are the events a change of membership makes.
func membershipEvents(before, after membership) []string {
	switch {
	case !before.Active && after.Active:
		return []string{"membership.activated"}
	case before.Active && !after.Active:
		return []string{"membership.ended"}
	case !after.Active || before.Status == "":
		return nil
	}
	var out []string
	if after.Status == "past_due" && before.Status != "past_due" {
		out = append(out, "membership.past_due")
	}
	if before.Status == "past_due" && after.Status != "past_due" {
		out = append(out, "membership.activated") // the payment went through
	}
	if before.Tier != after.Tier || before.Interval != after.Interval || before.Source != after.Source {
		out = append(out, "membership.changed")
	}
	return out
}

func (s *Service) emitMembership(ctx context.Context, tx *sql.Tx, memberID string, before, after membership) error {
	types := membershipEvents(before, after)
	if s.events == nil || len(types) == 0 {
		return nil
	}
	member, err := memberJSON(ctx, tx, memberID)
	if err != nil {
		return err
	}
	data := map[string]any{"member": member, "membership": after.json(), "previous": before.json()}
	for _, typ := range types {
		if err := s.events.Emit(ctx, tx, typ, memberID, data); err != nil {
			return err
		}
	}
	return nil
}

func memberJSON(ctx context.Context, tx *sql.Tx, memberID string) (*members.MemberJSON, error) {
	m := members.MemberJSON{ID: memberID}
	var name sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT email, name FROM members WHERE id = $1`, memberID).Scan(&m.Email, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read member: %w", err)
	}
	m.Name = name.String
	return &m, nil
}

// announceDonation emits donation.received the first time a gift is paid.
func (s *Service) announceDonation(ctx context.Context, tx *sql.Tx, id string) error {
	if s.events == nil {
		return nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE donations SET announced = TRUE WHERE id = $1 AND status = 'paid' AND NOT announced`, id)
	if err != nil {
		return fmt.Errorf("announce donation: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	var d struct {
		ID       string `json:"id"`
		Amount   int64  `json:"amount"`
		Currency string `json:"currency"`
		Email    string `json:"email"`
		Message  string `json:"message,omitempty"`
		Created  string `json:"created"`
	}
	var memberID, message sql.NullString
	var created time.Time
	if err := tx.QueryRowContext(ctx, `SELECT id, amount, currency, email, message, member_id, stripe_created_at FROM donations WHERE id = $1`, id).
		Scan(&d.ID, &d.Amount, &d.Currency, &d.Email, &message, &memberID, &created); err != nil {
		return fmt.Errorf("read donation: %w", err)
	}
	d.Currency, d.Message, d.Created = strings.ToLower(d.Currency), message.String, created.UTC().Format(time.RFC3339)
	var member *members.MemberJSON
	if memberID.Valid {
		if member, err = memberJSON(ctx, tx, memberID.String); err != nil {
			return err
		}
	}
	return s.events.Emit(ctx, tx, "donation.received", memberID.String, map[string]any{"donation": d, "member": member})
}
