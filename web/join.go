package web

import (
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/money"
)

// joinTier is a tier as the join page shows it for the chosen currency and
// interval.
type joinTier struct {
	Slug, Name, Description string
	Benefits                []string
	Price                   string // formatted, "" when not offered in the choice
}

type joinData struct {
	Tiers      []joinTier
	Currencies []string
	Currency   string
	Interval   string
	SignedIn   bool
	GiftMin    string
	GiftMax    string
	Nonce      string // one per page view: a double-submitted form makes one session
}

// joinPage lists tiers for one currency and interval. The month/year and
// currency switch is a plain GET form, so it works without JavaScript.
func (s *Server) joinPage(c *gin.Context) {
	s.renderJoin(c, http.StatusOK, c.Query("currency"), c.Query("interval"), "")
}

func (s *Server) renderJoin(c *gin.Context, status int, currency, interval, problem string) {
	d, err := s.joinDataFor(c, currency, interval)
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.renderPage(c, status, "join.html", pageData{Title: s.loc(c).T("nav.join"), Join: &d, Error: problem})
}

// joinDataFor is what a join page or box shows for a currency and interval
// (the first currency and monthly when those are not offered).
func (s *Server) joinDataFor(c *gin.Context, currency, interval string) (joinData, error) {
	tiers, err := s.billing.ActiveTiers(c.Request.Context())
	if err != nil {
		return joinData{}, err
	}
	loc := s.loc(c)
	d := joinData{Interval: "month", Nonce: ids.Secret()}
	if interval == "year" {
		d.Interval = "year"
	}
	for _, t := range tiers {
		for _, p := range t.Prices {
			if !slices.Contains(d.Currencies, p.Currency) {
				d.Currencies = append(d.Currencies, p.Currency)
			}
		}
	}
	slices.Sort(d.Currencies)
	d.Currency, _ = money.Normalize(currency)
	if !slices.Contains(d.Currencies, d.Currency) {
		d.Currency = ""
		if len(tiers) > 0 && len(tiers[0].Prices) > 0 {
			d.Currency = tiers[0].Prices[0].Currency
		}
	}
	for _, t := range tiers {
		jt := joinTier{Slug: t.Slug, Name: t.Name, Description: t.Description, Benefits: t.Benefits}
		if p, ok := t.PriceFor(d.Currency, billing.Interval(d.Interval)); ok {
			jt.Price = loc.Money(p.Amount, p.Currency)
		}
		d.Tiers = append(d.Tiers, jt)
	}
	if d.Currency == "" {
		d.Currencies = []string{"EUR", "GBP", "USD"}
		d.Currency = "EUR"
	}
	b := s.billing.DonationBounds(d.Currency)
	d.GiftMin, d.GiftMax = loc.Money(b.Min, d.Currency), loc.Money(b.Max, d.Currency)
	if _, err := s.currentMember(c); err == nil {
		d.SignedIn = true
	}
	return d, nil
}

// joinSubscribe starts Checkout from the join page's form and sends the
// reader to Stripe.
func (s *Server) joinSubscribe(c *gin.Context) {
	member, err := s.signedIn(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	currency, interval := c.PostForm("currency"), c.PostForm("interval")
	if err := s.allow(c, s.limits.checkoutPerIP, c.ClientIP()); err != nil {
		s.joinProblem(c, currency, interval, err)
		return
	}
	sess, err := s.billing.StartSubscriptionCheckout(s.withLanguage(c), billing.SubscriptionRequest{
		Member: member, Email: c.PostForm("email"), Tier: c.PostForm("tier"), Interval: interval, Currency: currency,
		RequestKey: formKey(c),
	})
	if err != nil {
		s.joinProblem(c, currency, interval, err)
		return
	}
	c.Redirect(http.StatusSeeOther, sess.URL)
}

// joinGift starts a one-time gift; the amount is typed in major units.
func (s *Server) joinGift(c *gin.Context) {
	member, err := s.signedIn(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	currency := c.PostForm("currency")
	// Typed as the page's language writes amounts: 5,50 is five and a half
	// euros to a Ukrainian reader, not 550.
	amount, perr := s.loc(c).ParseAmount(c.PostForm("amount"), currency)
	if perr != nil {
		s.renderJoin(c, http.StatusUnprocessableEntity, currency, "", forPerson(s.loc(c), errs.InvalidFields(map[string]string{"gift_amount": perr.Error()})))
		return
	}
	if err := s.allow(c, s.limits.checkoutPerIP, c.ClientIP()); err != nil {
		s.joinProblem(c, currency, "", err)
		return
	}
	sess, err := s.billing.StartDonationCheckout(s.withLanguage(c), billing.DonationRequest{
		Member: member, Email: c.PostForm("email"), Amount: amount, Currency: currency, Message: c.PostForm("message"),
		RequestKey: formKey(c), ClientIP: c.ClientIP(),
	})
	if err != nil {
		s.joinProblem(c, currency, "", err)
		return
	}
	c.Redirect(http.StatusSeeOther, sess.URL)
}

// formKey is the page's nonce, so a double-submitted form makes one
// Checkout Session and two page views make two.
func formKey(c *gin.Context) string {
	if n := c.PostForm("nonce"); n != "" && len(n) <= 100 {
		return "form:" + n
	}
	return ""
}

func (s *Server) joinProblem(c *gin.Context, currency, interval string, err error) {
	e := errs.From(err)
	if e.Kind == errs.Internal {
		s.failPage(c, err)
		return
	}
	s.renderJoin(c, statusOf[e.Kind], currency, interval, forPerson(s.loc(c), e))
}

func (s *Server) checkoutSuccessPage(c *gin.Context) {
	loc := s.loc(c)
	s.renderPage(c, http.StatusOK, "message.html", pageData{Title: loc.T("checkout.thanks_title"), Message: loc.T("checkout.thanks")})
}

func (s *Server) checkoutCancelPage(c *gin.Context) {
	loc := s.loc(c)
	s.renderPage(c, http.StatusOK, "message.html", pageData{Title: loc.T("checkout.cancel_title"), Message: loc.T("checkout.cancel")})
}

// accountBilling sends a signed-in patron to Stripe's billing portal.
func (s *Server) accountBilling(c *gin.Context) {
	m, ok := s.pageMember(c)
	if !ok {
		return
	}
	url, err := s.billing.PortalURL(c.Request.Context(), m.ID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, url)
}

// customCSS serves DATA_DIR/custom.css when the newsroom put one there.
func (s *Server) customCSSFile(c *gin.Context) {
	if s.customCSSPath == "" {
		writeError(c, http.StatusNotFound, "not_found", "There is no custom stylesheet.", nil)
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.File(s.customCSSPath)
}
