package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
// has committed: access changes to publish. (Mail is queued in the
// transaction itself: decideMail.)
type effects struct {
	changes []AccessChange
}

func (fx *effects) add(o effects) {
	fx.changes = append(fx.changes, o.changes...)
}

// rawObject keeps a fetched object's JSON as Stripe sent it (in its
// LastResponse), for the version-tolerant decoders in stripeobj.go.
type rawObject struct{ stripe.APIResource }

func (*rawObject) UnmarshalJSON([]byte) error { return nil }

// fetch gets an object's current JSON from the Stripe API, rendered at our
// pinned version, by its path ("/v1/subscriptions/sub_…"). gone is true
// when Stripe no longer has it.
func (s *Service) fetch(ctx context.Context, kind, id string) (raw json.RawMessage, gone bool, err error) {
	if s.stripe == nil {
		return nil, false, errs.WithCode(errs.Unavailable, "payments_not_configured",
			"STRIPE_WEBHOOK_MODE=fetch needs STRIPE_SECRET_KEY to re-fetch objects; set it, or use STRIPE_WEBHOOK_MODE=payload.")
	}
	var out rawObject
	p := &stripe.Params{Context: ctx}
	err = s.stripe.Subscriptions.B.Call(http.MethodGet, "/v1/"+kind+"/"+url.PathEscape(id), s.stripe.Subscriptions.Key, p, &out)
	var se *stripe.Error
	if errors.As(err, &se) && (se.HTTPStatusCode == http.StatusNotFound || se.Code == stripe.ErrorCodeResourceMissing) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, stripeapi.MapError(err)
	}
	return json.RawMessage(out.LastResponse.RawJSON), false, nil
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
