package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/members"
)

type discountJSON struct {
	PercentOff *float64 `json:"percent_off"`
	AmountOff  *int64   `json:"amount_off"`
	Duration   string   `json:"duration"`
}

type historyJSON struct {
	At         string  `json:"at"`
	Status     string  `json:"status"`
	Tier       *string `json:"tier"`
	PriceID    string  `json:"price_id"`
	Currency   string  `json:"currency"`
	UnitAmount int64   `json:"unit_amount"`
	Quantity   int64   `json:"quantity"`
	Interval   string  `json:"interval"`
}

type subscriptionJSON struct {
	ID                 string        `json:"id"`
	CustomerID         string        `json:"customer_id"`
	Tier               *string       `json:"tier"`
	Unmapped           bool          `json:"unmapped"`
	PriceID            string        `json:"price_id"`
	Status             string        `json:"status"`
	Currency           string        `json:"currency"`
	UnitAmount         int64         `json:"unit_amount"`
	Quantity           int64         `json:"quantity"`
	Interval           string        `json:"interval"`
	IntervalCount      int64         `json:"interval_count"`
	Discount           *discountJSON `json:"discount"`
	TrialEnd           *string       `json:"trial_end"`
	CurrentPeriodStart *string       `json:"current_period_start"`
	CurrentPeriodEnd   *string       `json:"current_period_end"`
	CancelAtPeriodEnd  bool          `json:"cancel_at_period_end"`
	CanceledAt         *string       `json:"canceled_at"`
	EndedAt            *string       `json:"ended_at"`
	History            []historyJSON `json:"history"`
}

type refundJSON struct {
	ID         string `json:"id"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	RefundedAt string `json:"refunded_at"`
}

type disputeJSON struct {
	ID       string  `json:"id"`
	Amount   int64   `json:"amount"`
	Currency string  `json:"currency"`
	Status   string  `json:"status"`
	Reason   string  `json:"reason"`
	Created  string  `json:"created"`
	ClosedAt *string `json:"closed_at"`
}

type paymentJSON struct {
	InvoiceID      string        `json:"invoice_id"`
	SubscriptionID *string       `json:"subscription_id"`
	Status         string        `json:"status"`
	Currency       string        `json:"currency"`
	AmountDue      int64         `json:"amount_due"`
	AmountPaid     int64         `json:"amount_paid"`
	Tax            int64         `json:"tax"`
	PeriodStart    *string       `json:"period_start"`
	PeriodEnd      *string       `json:"period_end"`
	PaidAt         *string       `json:"paid_at"`
	ChargeID       *string       `json:"charge_id"`
	Refunds        []refundJSON  `json:"refunds"`
	Disputes       []disputeJSON `json:"disputes"`
}

type donationJSON struct {
	ID       string       `json:"id"`
	Amount   int64        `json:"amount"`
	Currency string       `json:"currency"`
	Message  *string      `json:"message"`
	Status   string       `json:"status"`
	Created  string       `json:"created"`
	Refunds  []refundJSON `json:"refunds"`
}

func optionalTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := rfc3339(*t)
	return &s
}

func toRefundsJSON(rs []billing.RefundView) []refundJSON {
	out := make([]refundJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, refundJSON{ID: r.ID, Amount: r.Amount, Currency: r.Currency, RefundedAt: rfc3339(r.RefundedAt)})
	}
	return out
}

// staffMemberBilling shows staff a member's access, subscriptions with
// their history, payments with refunds and disputes, and gifts.
func (s *Server) staffMemberBilling(c *gin.Context) {
	b, err := s.billing.MemberBilling(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, memberBillingJSON(b))
}

// memberBillingJSON is a member's billing as staff see it.
func memberBillingJSON(b billing.MemberBilling) gin.H {
	subs := make([]subscriptionJSON, 0, len(b.Subscriptions))
	for _, v := range b.Subscriptions {
		j := subscriptionJSON{ID: v.ID, CustomerID: v.CustomerID, Tier: optional(v.Tier), Unmapped: v.Tier == "", PriceID: v.PriceID, Status: v.Status,
			Currency: v.Currency, UnitAmount: v.UnitAmount, Quantity: v.Quantity, Interval: v.Interval, IntervalCount: v.IntervalCount,
			TrialEnd: optionalTime(v.TrialEnd), CurrentPeriodStart: optionalTime(v.CurrentPeriodStart), CurrentPeriodEnd: optionalTime(v.CurrentPeriodEnd),
			CancelAtPeriodEnd: v.CancelAtPeriodEnd, CanceledAt: optionalTime(v.CanceledAt), EndedAt: optionalTime(v.EndedAt), History: []historyJSON{}}
		if v.DiscountPercentBps != nil || v.DiscountAmountOff != nil {
			d := &discountJSON{AmountOff: v.DiscountAmountOff, Duration: v.DiscountDuration}
			if v.DiscountPercentBps != nil {
				pct := float64(*v.DiscountPercentBps) / 100
				d.PercentOff = &pct
			}
			j.Discount = d
		}
		for _, h := range v.History {
			j.History = append(j.History, historyJSON{At: rfc3339(h.At), Status: h.Status, Tier: optional(h.Tier), PriceID: h.PriceID,
				Currency: h.Currency, UnitAmount: h.UnitAmount, Quantity: h.Quantity, Interval: h.Interval})
		}
		subs = append(subs, j)
	}
	payments := make([]paymentJSON, 0, len(b.Payments))
	for _, p := range b.Payments {
		j := paymentJSON{InvoiceID: p.InvoiceID, SubscriptionID: optional(p.SubscriptionID), Status: p.Status, Currency: p.Currency,
			AmountDue: p.AmountDue, AmountPaid: p.AmountPaid, Tax: p.Tax, PeriodStart: optionalTime(p.PeriodStart), PeriodEnd: optionalTime(p.PeriodEnd),
			PaidAt: optionalTime(p.PaidAt), ChargeID: optional(p.ChargeID), Refunds: toRefundsJSON(p.Refunds), Disputes: []disputeJSON{}}
		for _, d := range p.Disputes {
			j.Disputes = append(j.Disputes, disputeJSON{ID: d.ID, Amount: d.Amount, Currency: d.Currency, Status: d.Status, Reason: d.Reason,
				Created: rfc3339(d.Created), ClosedAt: optionalTime(d.ClosedAt)})
		}
		payments = append(payments, j)
	}
	donations := make([]donationJSON, 0, len(b.Donations))
	for _, d := range b.Donations {
		donations = append(donations, donationJSON{ID: d.ID, Amount: d.Amount, Currency: d.Currency, Message: optional(d.Message), Status: d.Status,
			Created: rfc3339(d.Created), Refunds: toRefundsJSON(d.Refunds)})
	}
	a := b.Access
	return gin.H{"access": toAccessJSON(members.Access{Active: a.Active, Source: a.Source, Tier: a.Tier, Until: a.Until}),
		"subscriptions": subs, "payments": payments, "donations": donations}
}

// staffStripeDrift shows the last reconciliation with Stripe and what it
// repaired; report is null before the first run.
func (s *Server) staffStripeDrift(c *gin.Context) {
	rep, found, err := s.billing.LastSyncReport(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	if !found {
		c.JSON(http.StatusOK, gin.H{"report": nil})
		return
	}
	c.JSON(http.StatusOK, gin.H{"report": rep})
}

// staffGrantComplimentary gives a member access without payment (admins).
func (s *Server) staffGrantComplimentary(c *gin.Context) {
	var req struct {
		Tier   string     `json:"tier"`
		Until  *time.Time `json:"until"`
		Reason string     `json:"reason"`
	}
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	a, err := s.billing.GrantComplimentary(c.Request.Context(), s.staffActor(c), c.Param("id"), billing.GrantInput{Tier: req.Tier, Until: req.Until, Reason: req.Reason})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"access": toAccessJSON(a)})
}

// staffRevokeComplimentary ends a member's complimentary access (admins).
func (s *Server) staffRevokeComplimentary(c *gin.Context) {
	a, err := s.billing.RevokeComplimentary(c.Request.Context(), s.staffActor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"access": toAccessJSON(a)})
}

// staffExportMember gives an admin everything Patronage holds about a
// member, as one JSON document (for the member's request for their data):
// the account, billing, suggestions, how many votes they have standing and
// the audit entries about them. Which topics they voted for is not in it:
// ballots are shown to no one but the member (on /vote).
func (s *Server) staffExportMember(c *gin.Context) {
	ctx := c.Request.Context()
	m, err := s.members.FindMemberByID(ctx, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	b, err := s.billing.MemberBilling(ctx, m.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	type suggestionExport struct {
		Title         string `json:"title"`
		Summary       string `json:"summary"`
		Status        string `json:"status"`
		DeclineReason string `json:"decline_reason,omitempty"`
		CreatedAt     string `json:"created_at"`
	}
	suggestions := []suggestionExport{}
	var votes *int
	if s.voting != nil {
		list, err := s.voting.SuggestionsBy(ctx, m.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		for _, sg := range list {
			suggestions = append(suggestions, suggestionExport{Title: sg.Title, Summary: sg.Summary, Status: sg.Status, DeclineReason: sg.DeclineReason, CreatedAt: rfc3339(sg.CreatedAt)})
		}
		n, err := s.voting.VotesCast(ctx, m.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		votes = &n
	}
	audit := []auditEntryJSON{}
	q := members.AuditQuery{SubjectType: "member", SubjectID: m.ID, Limit: 1000}
	for {
		entries, err := s.members.AuditLog(ctx, q)
		if err != nil {
			s.fail(c, err)
			return
		}
		for _, e := range entries {
			audit = append(audit, toAuditEntryJSON(e))
		}
		if len(entries) < q.Limit {
			break
		}
		q.After = &entries[len(entries)-1]
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Disposition", `attachment; filename="member-`+m.ID+`.json"`)
	c.JSON(http.StatusOK, gin.H{"exported_at": rfc3339(time.Now()), "member": toStaffMemberJSON(m), "billing": memberBillingJSON(b),
		"suggestions": suggestions, "votes_cast": votes, "audit": audit})
}
