package billing

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Stripe objects are decoded here from their JSON, by hand and only for the
// fields Patronage keeps, so one decoder reads an object whatever API
// version rendered it: an event at a newer version than stripe-go pins, or
// the same object re-fetched at ours. Where a field moved between versions
// (a subscription's period went onto its items in 2025-03-31; an invoice's
// subscription into parent.subscription_details) both places are read.

// ref is a Stripe reference: an id, or the expanded object carrying one.
type ref string

func (r *ref) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = ref(s)
		return nil
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	*r = ref(obj.ID)
	return nil
}

// unix is a Stripe timestamp; zero or null is "not set".
type unix int64

func (u unix) ptr() *time.Time {
	if u <= 0 {
		return nil
	}
	t := time.Unix(int64(u), 0).UTC()
	return &t
}

func (u unix) time() time.Time { return time.Unix(int64(u), 0).UTC() }

type stripePrice struct {
	ID         string            `json:"id"`
	Product    ref               `json:"product"`
	Currency   string            `json:"currency"`
	UnitAmount *int64            `json:"unit_amount"`
	LookupKey  string            `json:"lookup_key"`
	Active     bool              `json:"active"`
	Metadata   map[string]string `json:"metadata"`
	Recurring  *struct {
		Interval      string `json:"interval"`
		IntervalCount int64  `json:"interval_count"`
	} `json:"recurring"`
}

type stripeCoupon struct {
	PercentOff       *float64 `json:"percent_off"`
	AmountOff        *int64   `json:"amount_off"`
	Duration         string   `json:"duration"`
	DurationInMonths *int64   `json:"duration_in_months"`
}

type stripeDiscount struct {
	Coupon *stripeCoupon `json:"coupon"`
	End    unix          `json:"end"`
}

type stripeSubscription struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Customer           ref               `json:"customer"`
	Status             string            `json:"status"`
	Currency           string            `json:"currency"`
	Created            unix              `json:"created"`
	CurrentPeriodStart unix              `json:"current_period_start"`
	CurrentPeriodEnd   unix              `json:"current_period_end"`
	TrialEnd           unix              `json:"trial_end"`
	CancelAtPeriodEnd  bool              `json:"cancel_at_period_end"`
	CanceledAt         unix              `json:"canceled_at"`
	EndedAt            unix              `json:"ended_at"`
	Metadata           map[string]string `json:"metadata"`
	Discount           *stripeDiscount   `json:"discount"`
	Discounts          []json.RawMessage `json:"discounts"`
	LatestInvoice      ref               `json:"latest_invoice"`
	Items              struct {
		Data []struct {
			Price              stripePrice `json:"price"`
			Quantity           int64       `json:"quantity"`
			CurrentPeriodStart unix        `json:"current_period_start"`
			CurrentPeriodEnd   unix        `json:"current_period_end"`
		} `json:"data"`
	} `json:"items"`
}

// subscriptionState is a subscription as Patronage keeps it.
type subscriptionState struct {
	ID                 string
	CustomerID         string
	MemberHint         string // metadata.member_id, set by our Checkout
	Status             string
	PriceID            string
	Price              stripePrice
	Currency           string
	UnitAmount         int64
	Quantity           int64
	Interval           string
	IntervalCount      int64
	Discount           discount
	TrialEnd           *time.Time
	CurrentPeriodStart *time.Time
	CurrentPeriodEnd   *time.Time
	CancelAtPeriodEnd  bool
	CanceledAt         *time.Time
	EndedAt            *time.Time
	Created            time.Time

	// Tier is the tier the price maps to, once resolved (TierKnown).
	Tier      string
	TierKnown bool
}

// discount is a subscription's coupon; percent off is kept in basis points
// (12.5% = 1250) so it stays an exact integer.
type discount struct {
	PercentOffBps  *int64
	AmountOff      *int64
	Duration       string
	DurationMonths *int64
	End            *time.Time
}

func (d discount) empty() bool { return d.PercentOffBps == nil && d.AmountOff == nil }

func decodeSubscription(raw json.RawMessage) (subscriptionState, error) {
	var o stripeSubscription
	if err := json.Unmarshal(raw, &o); err != nil {
		return subscriptionState{}, fmt.Errorf("decode subscription: %w", err)
	}
	if o.ID == "" || o.Status == "" {
		return subscriptionState{}, fmt.Errorf("decode subscription: no id or status")
	}
	st := subscriptionState{
		ID: o.ID, CustomerID: string(o.Customer), MemberHint: o.Metadata["member_id"], Status: o.Status,
		Currency: strings.ToUpper(o.Currency), Quantity: 1,
		TrialEnd: o.TrialEnd.ptr(), CurrentPeriodStart: o.CurrentPeriodStart.ptr(), CurrentPeriodEnd: o.CurrentPeriodEnd.ptr(),
		CancelAtPeriodEnd: o.CancelAtPeriodEnd, CanceledAt: o.CanceledAt.ptr(), EndedAt: o.EndedAt.ptr(), Created: o.Created.time(),
	}
	if len(o.Items.Data) > 0 {
		// Patronage's Checkout makes one-item subscriptions; a subscription
		// made elsewhere with several items is kept by its first.
		item := o.Items.Data[0]
		st.Price, st.PriceID = item.Price, item.Price.ID
		if item.Quantity > 0 {
			st.Quantity = item.Quantity
		}
		if item.Price.UnitAmount != nil {
			st.UnitAmount = *item.Price.UnitAmount
		}
		if item.Price.Currency != "" {
			st.Currency = strings.ToUpper(item.Price.Currency)
		}
		if item.Price.Recurring != nil {
			st.Interval, st.IntervalCount = item.Price.Recurring.Interval, item.Price.Recurring.IntervalCount
		}
		if st.CurrentPeriodStart == nil {
			st.CurrentPeriodStart = item.CurrentPeriodStart.ptr()
		}
		if st.CurrentPeriodEnd == nil {
			st.CurrentPeriodEnd = item.CurrentPeriodEnd.ptr()
		}
	}
	if st.IntervalCount <= 0 {
		st.IntervalCount = 1
	}
	d := o.Discount
	if d == nil {
		for _, rd := range o.Discounts { // newer versions: a list, of objects when expanded
			var one stripeDiscount
			if json.Unmarshal(rd, &one) == nil && one.Coupon != nil {
				d = &one
				break
			}
		}
	}
	if d != nil && d.Coupon != nil {
		c := d.Coupon
		st.Discount = discount{AmountOff: c.AmountOff, Duration: c.Duration, DurationMonths: c.DurationInMonths, End: d.End.ptr()}
		if c.PercentOff != nil {
			bps := int64(math.Round(*c.PercentOff * 100))
			st.Discount.PercentOffBps = &bps
		}
	}
	return st, nil
}

type stripeInvoice struct {
	ID           string `json:"id"`
	Customer     ref    `json:"customer"`
	Subscription ref    `json:"subscription"`
	Status       string `json:"status"`
	Currency     string `json:"currency"`
	AmountDue    int64  `json:"amount_due"`
	AmountPaid   int64  `json:"amount_paid"`
	Tax          *int64 `json:"tax"`
	TotalTaxes   []struct {
		Amount int64 `json:"amount"`
	} `json:"total_taxes"`
	PeriodStart   unix   `json:"period_start"`
	PeriodEnd     unix   `json:"period_end"`
	BillingReason string `json:"billing_reason"`
	Charge        ref    `json:"charge"`
	AttemptCount  int64  `json:"attempt_count"`
	Created       unix   `json:"created"`
	Parent        *struct {
		SubscriptionDetails *struct {
			Subscription ref `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
	StatusTransitions struct {
		PaidAt unix `json:"paid_at"`
	} `json:"status_transitions"`
	Lines struct {
		Data []struct {
			Period struct {
				Start unix `json:"start"`
				End   unix `json:"end"`
			} `json:"period"`
		} `json:"data"`
	} `json:"lines"`
}

type invoiceState struct {
	ID, CustomerID, SubscriptionID, Status, Currency, BillingReason, ChargeID string
	AmountDue, AmountPaid, Tax                                                int64
	PeriodStart, PeriodEnd, PaidAt                                            *time.Time
	AttemptCount                                                              int64
	Created                                                                   time.Time
}

func decodeInvoice(raw json.RawMessage) (invoiceState, error) {
	var o stripeInvoice
	if err := json.Unmarshal(raw, &o); err != nil {
		return invoiceState{}, fmt.Errorf("decode invoice: %w", err)
	}
	if o.ID == "" {
		return invoiceState{}, fmt.Errorf("decode invoice: no id")
	}
	st := invoiceState{
		ID: o.ID, CustomerID: string(o.Customer), SubscriptionID: string(o.Subscription), Status: o.Status,
		Currency: strings.ToUpper(o.Currency), BillingReason: o.BillingReason, ChargeID: string(o.Charge),
		AmountDue: o.AmountDue, AmountPaid: o.AmountPaid, AttemptCount: o.AttemptCount, Created: o.Created.time(),
		PeriodStart: o.PeriodStart.ptr(), PeriodEnd: o.PeriodEnd.ptr(), PaidAt: o.StatusTransitions.PaidAt.ptr(),
	}
	if st.SubscriptionID == "" && o.Parent != nil && o.Parent.SubscriptionDetails != nil {
		st.SubscriptionID = string(o.Parent.SubscriptionDetails.Subscription)
	}
	if o.Tax != nil {
		st.Tax = *o.Tax
	} else {
		for _, t := range o.TotalTaxes {
			st.Tax += t.Amount
		}
	}
	// A subscription invoice's top-level period is the one before the
	// service period; the line's period is what was paid for.
	if len(o.Lines.Data) > 0 && o.Lines.Data[0].Period.End > 0 {
		st.PeriodStart, st.PeriodEnd = o.Lines.Data[0].Period.Start.ptr(), o.Lines.Data[0].Period.End.ptr()
	}
	return st, nil
}

type chargeState struct {
	ID              string
	CustomerID      string
	InvoiceID       string
	PaymentIntentID string
	Amount          int64
	AmountRefunded  int64
	Currency        string
	Disputed        bool
	Created         time.Time
	Refunds         []refundState // only when the object carries them (expanded)
}

type refundState struct {
	ID       string
	ChargeID string
	Amount   int64
	Currency string
	Status   string
	Created  time.Time
}

func decodeCharge(raw json.RawMessage) (chargeState, error) {
	var o struct {
		ID             string `json:"id"`
		Customer       ref    `json:"customer"`
		Invoice        ref    `json:"invoice"`
		PaymentIntent  ref    `json:"payment_intent"`
		Amount         int64  `json:"amount"`
		AmountRefunded int64  `json:"amount_refunded"`
		Currency       string `json:"currency"`
		Disputed       bool   `json:"disputed"`
		Created        unix   `json:"created"`
		Refunds        *struct {
			Data []json.RawMessage `json:"data"`
		} `json:"refunds"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return chargeState{}, fmt.Errorf("decode charge: %w", err)
	}
	if o.ID == "" {
		return chargeState{}, fmt.Errorf("decode charge: no id")
	}
	st := chargeState{ID: o.ID, CustomerID: string(o.Customer), InvoiceID: string(o.Invoice), PaymentIntentID: string(o.PaymentIntent),
		Amount: o.Amount, AmountRefunded: o.AmountRefunded, Currency: strings.ToUpper(o.Currency), Disputed: o.Disputed, Created: o.Created.time()}
	if o.Refunds != nil {
		for _, r := range o.Refunds.Data {
			rs, err := decodeRefund(r)
			if err != nil {
				return chargeState{}, err
			}
			st.Refunds = append(st.Refunds, rs)
		}
	}
	return st, nil
}

func decodeRefund(raw json.RawMessage) (refundState, error) {
	var o struct {
		ID       string `json:"id"`
		Charge   ref    `json:"charge"`
		Amount   int64  `json:"amount"`
		Currency string `json:"currency"`
		Status   string `json:"status"`
		Created  unix   `json:"created"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.ID == "" {
		return refundState{}, fmt.Errorf("decode refund: %v", err)
	}
	return refundState{ID: o.ID, ChargeID: string(o.Charge), Amount: o.Amount, Currency: strings.ToUpper(o.Currency), Status: o.Status, Created: o.Created.time()}, nil
}

type disputeState struct {
	ID, ChargeID, Currency, Status, Reason string
	Amount                                 int64
	Created                                time.Time
}

func decodeDispute(raw json.RawMessage) (disputeState, error) {
	var o struct {
		ID       string `json:"id"`
		Charge   ref    `json:"charge"`
		Amount   int64  `json:"amount"`
		Currency string `json:"currency"`
		Status   string `json:"status"`
		Reason   string `json:"reason"`
		Created  unix   `json:"created"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.ID == "" {
		return disputeState{}, fmt.Errorf("decode dispute: %v", err)
	}
	return disputeState{ID: o.ID, ChargeID: string(o.Charge), Amount: o.Amount, Currency: strings.ToUpper(o.Currency), Status: o.Status, Reason: o.Reason, Created: o.Created.time()}, nil
}

type checkoutState struct {
	ID                string
	Mode              string
	Status            string
	PaymentStatus     string
	CustomerID        string
	SubscriptionID    string
	PaymentIntentID   string
	ClientReferenceID string
	Metadata          map[string]string
	Email             string
	AmountTotal       int64
	Currency          string
	Created           time.Time
}

func decodeCheckoutSession(raw json.RawMessage) (checkoutState, error) {
	var o struct {
		ID                string            `json:"id"`
		Mode              string            `json:"mode"`
		Status            string            `json:"status"`
		PaymentStatus     string            `json:"payment_status"`
		Customer          ref               `json:"customer"`
		Subscription      ref               `json:"subscription"`
		PaymentIntent     ref               `json:"payment_intent"`
		ClientReferenceID string            `json:"client_reference_id"`
		Metadata          map[string]string `json:"metadata"`
		CustomerEmail     string            `json:"customer_email"`
		CustomerDetails   *struct {
			Email string `json:"email"`
		} `json:"customer_details"`
		AmountTotal int64  `json:"amount_total"`
		Currency    string `json:"currency"`
		Created     unix   `json:"created"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.ID == "" {
		return checkoutState{}, fmt.Errorf("decode checkout session: %v", err)
	}
	st := checkoutState{ID: o.ID, Mode: o.Mode, Status: o.Status, PaymentStatus: o.PaymentStatus, CustomerID: string(o.Customer),
		SubscriptionID: string(o.Subscription), PaymentIntentID: string(o.PaymentIntent), ClientReferenceID: o.ClientReferenceID,
		Metadata: o.Metadata, Email: o.CustomerEmail, AmountTotal: o.AmountTotal, Currency: strings.ToUpper(o.Currency), Created: o.Created.time()}
	if o.CustomerDetails != nil && o.CustomerDetails.Email != "" {
		st.Email = o.CustomerDetails.Email
	}
	return st, nil
}

type customerState struct {
	ID         string
	Email      string
	MemberHint string
	Deleted    bool
}

func decodeCustomer(raw json.RawMessage) (customerState, error) {
	var o struct {
		ID       string            `json:"id"`
		Email    string            `json:"email"`
		Deleted  bool              `json:"deleted"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.ID == "" {
		return customerState{}, fmt.Errorf("decode customer: %v", err)
	}
	return customerState{ID: o.ID, Email: o.Email, MemberHint: o.Metadata["member_id"], Deleted: o.Deleted}, nil
}
