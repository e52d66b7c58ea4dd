package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/money"
	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/members"
)

// CheckoutSession is where to send a reader to pay.
type CheckoutSession struct {
	ID  string
	URL string
}

// SubscriptionRequest starts a subscription: for a signed-in member
// (Member, or MemberID) or for an email, creating the member.
type SubscriptionRequest struct {
	Member     *members.Member // the signed-in member, already loaded
	MemberID   string
	Email      string
	Tier       string
	Interval   string
	Currency   string
	RequestKey string // the client's Idempotency-Key, or the page form's nonce
}

// DonationRequest starts a one-time gift.
type DonationRequest struct {
	Member     *members.Member // the signed-in member, already loaded
	MemberID   string
	Email      string
	Amount     int64
	Currency   string
	Message    string
	RequestKey string // the client's Idempotency-Key, or the page form's nonce
	ClientIP   string // tells anonymous givers apart when there is no RequestKey
}

const maxDonationMessage = 500 // Stripe's limit on a metadata value

// retryWindow groups retries of the same checkout: within it, the same
// request reuses the same Stripe session instead of making a second one.
const retryWindow = 10 * time.Minute

func (s *Service) retryBucket(requestKey string) string {
	if requestKey != "" {
		return "key:" + requestKey
	}
	return "t:" + strconv.FormatInt(s.now().Unix()/int64(retryWindow/time.Second), 10)
}

// StartSubscriptionCheckout makes a Stripe Checkout Session in subscription
// mode for a tier price.
func (s *Service) StartSubscriptionCheckout(ctx context.Context, req SubscriptionRequest) (CheckoutSession, error) {
	if req.Member != nil {
		req.MemberID = req.Member.ID
	}
	t, err := s.activeTier(ctx, strings.TrimSpace(req.Tier))
	if err != nil {
		return CheckoutSession{}, err
	}
	v := validator{}
	currency, cerr := money.Normalize(req.Currency)
	v.check(cerr == nil, "currency", "must be a currency this tier is offered in")
	interval := Interval(strings.ToLower(strings.TrimSpace(req.Interval)))
	v.check(interval == Month || interval == Year, "interval", "must be month or year")
	price, offered := t.PriceFor(currency, interval)
	if len(v) == 0 && !offered {
		v.check(false, "currency", "this tier has no "+string(interval)+"ly price in "+currency)
	}
	if req.MemberID == "" {
		if _, err := members.NormalizeEmail(req.Email); err != nil {
			v.check(false, "email", "is required when not signed in, as a valid email address")
		}
	}
	if err := v.err(); err != nil {
		return CheckoutSession{}, err
	}
	sc, err := s.stripeClient()
	if err != nil {
		return CheckoutSession{}, err
	}
	m, err := s.member(ctx, req.Member, req.MemberID, req.Email)
	if err != nil {
		return CheckoutSession{}, err
	}
	if err := s.refuseSecondSubscription(ctx, sc, m, req.MemberID != ""); err != nil {
		return CheckoutSession{}, err
	}
	if price.StripePriceID == "" {
		// The tier was never pushed (Stripe configured after it was made).
		if _, err := s.pushTier(ctx, t.Slug); err != nil {
			return CheckoutSession{}, err
		}
		if t, err = findTier(ctx, s.db, t.Slug); err != nil {
			return CheckoutSession{}, err
		}
		price, _ = t.PriceFor(currency, interval)
	}
	customerID, err := s.ensureCustomer(ctx, sc, m)
	if err != nil {
		return CheckoutSession{}, err
	}
	meta := map[string]string{"member_id": m.ID, "tier": t.Slug, "interval": string(interval)}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:          stripe.String(customerID),
		ClientReferenceID: stripe.String(m.ID),
		LineItems:         []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price.StripePriceID), Quantity: stripe.Int64(1)}},
		SuccessURL:        stripe.String(s.baseURL.String() + "/checkout/success?session_id={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String(s.baseURL.String() + "/checkout/cancel"),
		Metadata:          meta,
		SubscriptionData:  &stripe.CheckoutSessionSubscriptionDataParams{Metadata: meta},
	}
	if s.opts.AllowPromotionCodes {
		params.AllowPromotionCodes = stripe.Bool(true)
	}
	params.Context = ctx
	params.SetIdempotencyKey(stripeapi.IdempotencyKey("checkout-subscription", m.ID, t.Slug, string(interval), currency, price.StripePriceID, s.retryBucket(req.RequestKey)))
	sess, err := sc.CheckoutSessions.New(params)
	if err != nil {
		return CheckoutSession{}, stripeapi.MapError(err)
	}
	return CheckoutSession{ID: sess.ID, URL: sess.URL}, nil
}

// liveStatuses are the subscription statuses a patron manages in the
// billing portal rather than by subscribing again.
const liveStatuses = `'active', 'trialing', 'past_due', 'unpaid', 'paused'`

// refuseSecondSubscription answers 409 already_subscribed for a member
// whose subscription is still running: a plan change belongs in the billing
// portal, not in a second subscription. Only a signed-in member gets the
// portal link; for an email typed into a form it would hand someone else's
// billing to whoever typed it.
func (s *Service) refuseSecondSubscription(ctx context.Context, sc *client.API, m members.Member, signedIn bool) error {
	if m.StripeCustomerID == "" {
		return nil // never paid, or its customer was deleted (which ends its subscriptions)
	}
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT id FROM subscriptions WHERE member_id = $1 AND state_at IS NOT NULL AND status IN (`+liveStatuses+`) LIMIT 1`, m.ID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find subscription: %w", err)
	}
	e := &errs.Error{Kind: errs.Conflict, Code: "already_subscribed",
		Message: "This account already has a subscription; change the plan in the billing portal instead."}
	if signedIn && m.StripeCustomerID != "" {
		url, err := s.portalURL(ctx, sc, m.StripeCustomerID)
		if err != nil {
			return err
		}
		e.Details = map[string]string{"portal_url": url}
	} else {
		e.Message = "This account already has a subscription; sign in to change the plan in the billing portal."
	}
	return e
}

// StartDonationCheckout makes a Checkout Session in payment mode for a gift
// of any amount within the currency's bounds.
func (s *Service) StartDonationCheckout(ctx context.Context, req DonationRequest) (CheckoutSession, error) {
	v := validator{}
	currency, cerr := money.Normalize(req.Currency)
	if cerr != nil {
		v.check(false, "currency", cerr.Error())
	} else {
		b := s.DonationBounds(currency)
		v.check(req.Amount >= b.Min && req.Amount <= b.Max, "amount",
			"must be from "+money.Format(b.Min, currency)+" to "+money.Format(b.Max, currency)+" ("+strconv.FormatInt(b.Min, 10)+" to "+strconv.FormatInt(b.Max, 10)+" minor units)")
		if err := money.CheckAmount(req.Amount, currency); err != nil {
			v.check(false, "amount", err.Error())
		}
	}
	message := strings.TrimSpace(req.Message)
	v.check(utf8.ValidString(message) && utf8.RuneCountInString(message) <= maxDonationMessage, "message", "must be at most 500 characters")
	if req.MemberID == "" && strings.TrimSpace(req.Email) != "" {
		if _, err := members.NormalizeEmail(req.Email); err != nil {
			v.check(false, "email", "must be a valid email address")
		}
	}
	if err := v.err(); err != nil {
		return CheckoutSession{}, err
	}
	sc, err := s.stripeClient()
	if err != nil {
		return CheckoutSession{}, err
	}
	meta := map[string]string{"kind": "donation"}
	if message != "" {
		meta["message"] = message
	}
	params := &stripe.CheckoutSessionParams{
		Mode: stripe.String(string(stripe.CheckoutSessionModePayment)),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String(strings.ToLower(currency)),
				UnitAmount:  stripe.Int64(req.Amount),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("One-time gift")},
			},
			Quantity: stripe.Int64(1),
		}},
		SubmitType: stripe.String(string(stripe.CheckoutSessionSubmitTypeDonate)),
		SuccessURL: stripe.String(s.baseURL.String() + "/checkout/success?session_id={CHECKOUT_SESSION_ID}"),
		CancelURL:  stripe.String(s.baseURL.String() + "/checkout/cancel"),
	}
	who := "anonymous:" + req.ClientIP
	if req.Member != nil {
		req.MemberID = req.Member.ID
	}
	if req.MemberID != "" || strings.TrimSpace(req.Email) != "" {
		m, err := s.member(ctx, req.Member, req.MemberID, req.Email)
		if err != nil {
			return CheckoutSession{}, err
		}
		customerID, err := s.ensureCustomer(ctx, sc, m)
		if err != nil {
			return CheckoutSession{}, err
		}
		params.Customer = stripe.String(customerID)
		params.ClientReferenceID = stripe.String(m.ID)
		meta["member_id"] = m.ID
		who = m.ID
	} else {
		params.CustomerCreation = stripe.String(string(stripe.CheckoutSessionCustomerCreationAlways))
	}
	params.Metadata = meta
	params.PaymentIntentData = &stripe.CheckoutSessionPaymentIntentDataParams{Metadata: meta}
	params.Context = ctx
	params.SetIdempotencyKey(stripeapi.IdempotencyKey("checkout-donation", who, currency, strconv.FormatInt(req.Amount, 10), message, s.retryBucket(req.RequestKey)))
	sess, err := sc.CheckoutSessions.New(params)
	if err != nil {
		return CheckoutSession{}, stripeapi.MapError(err)
	}
	return CheckoutSession{ID: sess.ID, URL: sess.URL}, nil
}

// DonationBounds are the smallest and largest gift in a currency.
func (s *Service) DonationBounds(currency string) Bounds {
	if b, ok := s.opts.DonationBounds[currency]; ok {
		return b
	}
	return DefaultDonationBounds
}

// PortalURL opens the Stripe billing portal for a member who has paid.
func (s *Service) PortalURL(ctx context.Context, memberID string) (string, error) {
	m, err := s.members.FindMemberByID(ctx, memberID)
	if err != nil {
		return "", err
	}
	if m.StripeCustomerID == "" {
		return "", errs.WithCode(errs.Conflict, "no_billing_account", "There is no billing account yet: nothing has been paid with this account.")
	}
	sc, err := s.stripeClient()
	if err != nil {
		return "", err
	}
	return s.portalURL(ctx, sc, m.StripeCustomerID)
}

func (s *Service) portalURL(ctx context.Context, sc *client.API, customerID string) (string, error) {
	params := &stripe.BillingPortalSessionParams{Customer: stripe.String(customerID), ReturnURL: stripe.String(s.baseURL.String() + "/account")}
	if s.opts.PortalConfiguration != "" {
		params.Configuration = stripe.String(s.opts.PortalConfiguration)
	}
	params.Context = ctx
	params.SetIdempotencyKey(stripeapi.IdempotencyKey("billing-portal", customerID, s.retryBucket("")))
	sess, err := sc.BillingPortalSessions.New(params)
	if err != nil {
		return "", stripeapi.MapError(err)
	}
	return sess.URL, nil
}

func (s *Service) member(ctx context.Context, signedIn *members.Member, memberID, email string) (members.Member, error) {
	if signedIn != nil {
		return *signedIn, nil
	}
	if memberID != "" {
		return s.members.FindMemberByID(ctx, memberID)
	}
	return s.members.FindOrCreateMember(ctx, email)
}

// ensureCustomer returns the member's Stripe customer, creating it on the
// first checkout. The idempotency key makes concurrent first checkouts get
// the same customer; LinkStripeCustomer keeps whichever was linked first.
func (s *Service) ensureCustomer(ctx context.Context, sc *client.API, m members.Member) (string, error) {
	if m.StripeCustomerID != "" {
		return m.StripeCustomerID, nil
	}
	params := &stripe.CustomerParams{Email: stripe.String(m.Email), Metadata: map[string]string{"member_id": m.ID}}
	if m.Name != "" {
		params.Name = stripe.String(m.Name)
	}
	params.Context = ctx
	// The retry window, not just the member: Stripe replays a saved 500 for
	// a key, and one failure must not block the member for a day.
	params.SetIdempotencyKey(stripeapi.IdempotencyKey("customer-create", m.ID, s.retryBucket("")))
	c, err := sc.Customers.New(params)
	if err != nil {
		return "", stripeapi.MapError(err)
	}
	return s.members.LinkStripeCustomer(ctx, m.ID, c.ID)
}

// CustomerFor returns the member's Stripe customer id, creating the customer
// when they have none: for staff and tools that start a subscription
// outside Checkout.
func (s *Service) CustomerFor(ctx context.Context, memberID string) (string, error) {
	sc, err := s.stripeClient()
	if err != nil {
		return "", err
	}
	m, err := s.members.FindMemberByID(ctx, memberID)
	if err != nil {
		return "", err
	}
	return s.ensureCustomer(ctx, sc, m)
}
