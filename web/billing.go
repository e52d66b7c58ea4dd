package web

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/members"
)

type priceJSON struct {
	Currency      string  `json:"currency"`
	Interval      string  `json:"interval"`
	Amount        int64   `json:"amount"`
	StripePriceID *string `json:"stripe_price_id,omitempty"`
}

type tierJSON struct {
	Slug        string      `json:"slug"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Benefits    []string    `json:"benefits"`
	VoteWeight  int         `json:"vote_weight"`
	Prices      []priceJSON `json:"prices"`
}

type staffTierJSON struct {
	tierJSON
	Active          bool    `json:"active"`
	SortOrder       int     `json:"sort_order"`
	StripeProductID *string `json:"stripe_product_id"`
	CreatedAt       string  `json:"created_at"`
	UpdatedAt       string  `json:"updated_at"`
}

func toTierJSON(t billing.Tier, staff bool) tierJSON {
	out := tierJSON{Slug: t.Slug, Name: t.Name, Description: t.Description, Benefits: t.Benefits, VoteWeight: t.VoteWeight, Prices: []priceJSON{}}
	if out.Benefits == nil {
		out.Benefits = []string{}
	}
	for _, p := range t.Prices {
		pj := priceJSON{Currency: p.Currency, Interval: string(p.Interval), Amount: p.Amount}
		if staff {
			pj.StripePriceID = optional(p.StripePriceID)
		}
		out.Prices = append(out.Prices, pj)
	}
	return out
}

func toStaffTierJSON(t billing.Tier) staffTierJSON {
	return staffTierJSON{tierJSON: toTierJSON(t, true), Active: t.Active, SortOrder: t.SortOrder,
		StripeProductID: optional(t.StripeProductID), CreatedAt: rfc3339(t.CreatedAt), UpdatedAt: rfc3339(t.UpdatedAt)}
}

// listTiers is the public tier list: active tiers in display order.
func (s *Server) listTiers(c *gin.Context) {
	tiers, err := s.billing.ActiveTiers(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]tierJSON, 0, len(tiers))
	for _, t := range tiers {
		out = append(out, toTierJSON(t, false))
	}
	c.Header("Cache-Control", "public, max-age=5")
	c.JSON(http.StatusOK, gin.H{"tiers": out})
}

func (s *Server) staffListTiers(c *gin.Context) {
	tiers, err := s.billing.AllTiers(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]staffTierJSON, 0, len(tiers))
	for _, t := range tiers {
		out = append(out, toStaffTierJSON(t))
	}
	c.JSON(http.StatusOK, gin.H{"tiers": out})
}

// tierChangeJSON reports a staff change and whether Stripe has it yet.
func tierChangeJSON(ch billing.TierChange) gin.H {
	sync := gin.H{"ok": ch.StripeErr == nil}
	if ch.StripeErr != nil {
		sync["error"] = errs.From(ch.StripeErr).Message
	}
	return gin.H{"tier": toStaffTierJSON(ch.Tier), "stripe_sync": sync}
}

func (s *Server) staffCreateTier(c *gin.Context) {
	var in billing.TierInput
	if err := s.decodeJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	ch, err := s.billing.CreateTier(c.Request.Context(), s.staffActor(c), in)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, tierChangeJSON(ch))
}

func (s *Server) staffUpdateTier(c *gin.Context) {
	var p billing.TierPatch
	if err := s.decodeJSON(c, &p); err != nil {
		s.fail(c, err)
		return
	}
	ch, err := s.billing.UpdateTier(c.Request.Context(), s.staffActor(c), c.Param("slug"), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, tierChangeJSON(ch))
}

type subscriptionCheckoutRequest struct {
	Tier     string `json:"tier"`
	Interval string `json:"interval"`
	Currency string `json:"currency"`
	Email    string `json:"email"`
}

type donationCheckoutRequest struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Email    string `json:"email"`
	Message  string `json:"message"`
}

// signedIn is the signed-in reader, or nil for anyone else.
func (s *Server) signedIn(c *gin.Context) (*members.Member, error) {
	m, err := s.currentMember(c)
	if errs.Is(err, errs.Unauthenticated) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func (s *Server) checkoutSubscription(c *gin.Context) {
	var req subscriptionCheckoutRequest
	s.startCheckout(c, &req, func(ctx context.Context, member *members.Member) (billing.CheckoutSession, error) {
		return s.billing.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{
			Member: member, Email: req.Email, Tier: req.Tier, Interval: req.Interval, Currency: req.Currency,
			RequestKey: c.GetHeader("Idempotency-Key"),
		})
	})
}

func (s *Server) checkoutDonation(c *gin.Context) {
	var req donationCheckoutRequest
	s.startCheckout(c, &req, func(ctx context.Context, member *members.Member) (billing.CheckoutSession, error) {
		return s.billing.StartDonationCheckout(ctx, billing.DonationRequest{
			Member: member, Email: req.Email, Amount: req.Amount, Currency: req.Currency, Message: req.Message,
			RequestKey: c.GetHeader("Idempotency-Key"), ClientIP: c.ClientIP(),
		})
	})
}

// startCheckout is what both checkout endpoints do around billing: read
// the request into req, apply the per-IP limit, find who is signed in,
// start the session and answer 201 with where to send the reader.
func (s *Server) startCheckout(c *gin.Context, req any, start func(ctx context.Context, member *members.Member) (billing.CheckoutSession, error)) {
	if err := s.decodeJSON(c, req); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.allow(c, s.limits.checkoutPerIP, c.ClientIP()); err != nil {
		s.fail(c, err)
		return
	}
	member, err := s.signedIn(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	sess, err := start(s.withLanguage(c), member) // a reader joining here gets mail in this page's language
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"url": sess.URL, "session_id": sess.ID})
}

func (s *Server) billingPortal(c *gin.Context) {
	m, err := s.currentMember(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	url, err := s.billing.PortalURL(c.Request.Context(), m.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"url": url})
}
