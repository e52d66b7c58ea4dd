package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/stripeapi"
)

// Event is a stored Stripe event as billing needs it.
type Event struct {
	ID         string
	Type       string
	APIVersion string
	Created    time.Time
	Object     json.RawMessage
}

// WebhookMode says where a handler takes an object's state from.
type WebhookMode string

const (
	// ModeFetch re-fetches the object from the Stripe API (at our pinned
	// version) and stores what Stripe holds now: order of delivery cannot
	// matter.
	ModeFetch WebhookMode = "fetch"
	// ModePayload trusts the event's own object, keeping for each object the
	// created time of the event it was last written from.
	ModePayload WebhookMode = "payload"
)

// EventTypes are the Stripe event types billing handles; others are stored
// and marked ignored.
var EventTypes = []string{
	"checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed",
	"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
	"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
	"invoice.paid", "invoice.payment_failed", "invoice.payment_action_required",
	"charge.refunded", "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
	"customer.created", "customer.updated", "customer.deleted",
	"product.created", "product.updated", "product.deleted",
	"price.created", "price.updated", "price.deleted",
}

// HandleEvent applies one Stripe event. It is idempotent: the same event
// handled twice, or two events for one object at once, leave one result.
func (s *Service) HandleEvent(ctx context.Context, ev Event) error {
	var fx effects
	var err error
	switch {
	case strings.HasPrefix(ev.Type, "checkout.session."):
		fx, err = s.onCheckoutSession(ctx, ev)
	case strings.HasPrefix(ev.Type, "customer.subscription."):
		fx, err = s.onSubscription(ctx, ev)
	case strings.HasPrefix(ev.Type, "invoice."):
		fx, err = s.onInvoice(ctx, ev)
	case ev.Type == "charge.refunded":
		fx, err = s.onChargeRefunded(ctx, ev)
	case strings.HasPrefix(ev.Type, "charge.dispute."):
		fx, err = s.onDispute(ctx, ev)
	case strings.HasPrefix(ev.Type, "customer."):
		fx, err = s.onCustomer(ctx, ev)
	case strings.HasPrefix(ev.Type, "product."), strings.HasPrefix(ev.Type, "price."):
		err = s.onCatalog(ctx, ev)
	default:
		return fmt.Errorf("billing does not handle %s", ev.Type)
	}
	if err != nil {
		return err
	}
	s.afterCommit(ctx, fx)
	return nil
}

// effects are what a handler's transaction decided should happen once it
// has committed: access changes to publish and mail to send.
type effects struct {
	changes []AccessChange
	mails   []pendingMail
}

func (fx *effects) add(o effects) {
	fx.changes = append(fx.changes, o.changes...)
	fx.mails = append(fx.mails, o.mails...)
}

// fetchRaw gets an object's current JSON from the Stripe API at our pinned
// version. gone is true when Stripe no longer has it.
func (s *Service) fetchRaw(ctx context.Context, get func(ctx context.Context) (*stripe.APIResponse, error)) (raw json.RawMessage, gone bool, err error) {
	if s.stripe == nil {
		return nil, false, errs.WithCode(errs.Unavailable, "payments_not_configured",
			"STRIPE_WEBHOOK_MODE=fetch needs STRIPE_SECRET_KEY to re-fetch objects; set it, or use STRIPE_WEBHOOK_MODE=payload.")
	}
	resp, err := get(ctx)
	var se *stripe.Error
	if errors.As(err, &se) && (se.HTTPStatusCode == 404 || se.Code == stripe.ErrorCodeResourceMissing) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, stripeapi.MapError(err)
	}
	return json.RawMessage(resp.RawJSON), false, nil
}

func (s *Service) fetchSubscription(ctx context.Context, id string) (json.RawMessage, bool, error) {
	return s.fetchRaw(ctx, func(ctx context.Context) (*stripe.APIResponse, error) {
		p := &stripe.SubscriptionParams{}
		p.Context = ctx
		sub, err := s.stripe.Subscriptions.Get(id, p)
		if err != nil {
			return nil, err
		}
		return sub.LastResponse, nil
	})
}

func (s *Service) fetchInvoice(ctx context.Context, id string) (json.RawMessage, bool, error) {
	return s.fetchRaw(ctx, func(ctx context.Context) (*stripe.APIResponse, error) {
		p := &stripe.InvoiceParams{}
		p.Context = ctx
		inv, err := s.stripe.Invoices.Get(id, p)
		if err != nil {
			return nil, err
		}
		return inv.LastResponse, nil
	})
}

func (s *Service) fetchCustomer(ctx context.Context, id string) (json.RawMessage, bool, error) {
	return s.fetchRaw(ctx, func(ctx context.Context) (*stripe.APIResponse, error) {
		p := &stripe.CustomerParams{}
		p.Context = ctx
		c, err := s.stripe.Customers.Get(id, p)
		if err != nil {
			return nil, err
		}
		return c.LastResponse, nil
	})
}

func (s *Service) fetchCharge(ctx context.Context, id string) (json.RawMessage, bool, error) {
	return s.fetchRaw(ctx, func(ctx context.Context) (*stripe.APIResponse, error) {
		p := &stripe.ChargeParams{}
		p.Context = ctx
		c, err := s.stripe.Charges.Get(id, p)
		if err != nil {
			return nil, err
		}
		return c.LastResponse, nil
	})
}

func (s *Service) fetchDispute(ctx context.Context, id string) (json.RawMessage, bool, error) {
	return s.fetchRaw(ctx, func(ctx context.Context) (*stripe.APIResponse, error) {
		p := &stripe.DisputeParams{}
		p.Context = ctx
		d, err := s.stripe.Disputes.Get(id, p)
		if err != nil {
			return nil, err
		}
		return d.LastResponse, nil
	})
}

func (s *Service) fetchCheckoutSession(ctx context.Context, id string) (json.RawMessage, bool, error) {
	return s.fetchRaw(ctx, func(ctx context.Context) (*stripe.APIResponse, error) {
		p := &stripe.CheckoutSessionParams{}
		p.Context = ctx
		cs, err := s.stripe.CheckoutSessions.Get(id, p)
		if err != nil {
			return nil, err
		}
		return cs.LastResponse, nil
	})
}

// listRefunds lists every refund of a charge.
func (s *Service) listRefunds(ctx context.Context, chargeID string) ([]refundState, error) {
	p := &stripe.RefundListParams{Charge: stripe.String(chargeID)}
	p.Context = ctx
	it := s.stripe.Refunds.List(p)
	var out []refundState
	for it.Next() {
		r := it.Refund()
		out = append(out, refundState{ID: r.ID, ChargeID: chargeID, Amount: r.Amount, Currency: strings.ToUpper(string(r.Currency)),
			Status: string(r.Status), Created: time.Unix(r.Created, 0).UTC()})
	}
	if err := it.Err(); err != nil {
		return nil, stripeapi.MapError(err)
	}
	return out, nil
}

// objectID reads the id of an event's object.
func objectID(raw json.RawMessage) string {
	var o struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.ID
}

func nullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}

func timePtr(n sql.NullTime) *time.Time {
	if !n.Valid {
		return nil
	}
	t := n.Time.UTC()
	return &t
}

func nullInt(p *int64) sql.NullInt64 {
	if p == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: *p, Valid: true}
}

func intPtr(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	v := n.Int64
	return &v
}
