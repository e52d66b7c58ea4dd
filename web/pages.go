package web

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/i18n"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/voting"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// pageData is what every page template receives.
type pageData struct {
	Title       string
	Newsroom    string
	CSSURL      string // the newsroom's own stylesheet, if any
	Member      *members.Member
	Access      members.Access
	Plan        *planView
	Suggestions []voting.Suggestion
	Email       string
	Join        *joinData
	Vote        *voteData
	Staff       *staffVotingData
	Dashboard   *dashboardView
	Wide        bool              // a page of charts and tables, given the window's width
	Form        map[string]string // what a form held, shown again with its errors
	Fields      map[string]string // which fields were wrong, and why
	Next        string
	Message     string
	Error       string
	Languages   []languageOption // what the account page's language menu offers
}

// languageOption is a language a member may choose, named in itself.
type languageOption struct {
	Code string
	Name string
}

// parsePages parses every page once for each language, its template
// functions (t, th, date, …) speaking that language.
func parsePages(catalog *i18n.Catalog) (map[string]map[string]*template.Template, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]map[string]*template.Template{}
	for _, lang := range catalog.Languages() {
		pages[lang] = map[string]*template.Template{}
		for _, name := range names {
			base := strings.TrimPrefix(name, "templates/")
			if base == "layout.html" {
				continue
			}
			t, err := template.New(base).Funcs(catalog.In(lang).Funcs()).ParseFS(templateFiles, "templates/layout.html", name)
			if err != nil {
				return nil, err
			}
			pages[lang][base] = t
		}
	}
	return pages, nil
}

const localizerKey = "localizer"

// loc is the language a request is answered in: the signed-in member's own
// choice, else the best match of the browser's Accept-Language, else the
// newsroom's default (DEFAULT_LANGUAGE).
func (s *Server) loc(c *gin.Context) *i18n.Localizer {
	if v, ok := c.Get(localizerKey); ok {
		return v.(*i18n.Localizer)
	}
	setting := ""
	if m, err := s.currentMember(c); err == nil {
		setting = m.Language
	}
	l := s.catalog.In(s.catalog.Choose(setting, c.GetHeader("Accept-Language")))
	c.Set(localizerKey, l)
	return l
}

// withLanguage is the request's context carrying its language, for mail
// sent on its behalf to a member who has chosen none.
func (s *Server) withLanguage(c *gin.Context) context.Context {
	return i18n.WithLanguage(c.Request.Context(), s.loc(c).Language())
}

func (s *Server) renderPage(c *gin.Context, status int, name string, data pageData) {
	data.Newsroom = s.newsroom
	data.CSSURL = s.customCSS
	loc := s.loc(c)
	var buf bytes.Buffer
	if err := s.pages[loc.Language()][name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.logger.ErrorContext(c.Request.Context(), "render page", "page", name, "language", loc.Language(), "err", err)
		c.String(http.StatusInternalServerError, loc.T("error.render"))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Language", loc.Language())
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// failPage shows an error to a person in a page rather than JSON.
func (s *Server) failPage(c *gin.Context, err error) {
	e := unavailableOrSelf(err)
	status := statusOf[e.Kind]
	if status == 0 || status >= 500 {
		s.logger.ErrorContext(c.Request.Context(), "page failed", "request_id", requestID(c), "route", c.FullPath(), "err", err)
	}
	loc := s.loc(c)
	msg := forPerson(loc, e)
	if e.Kind == errs.Internal {
		status, msg = http.StatusInternalServerError, loc.T("error.internal")
	}
	s.renderPage(c, status, "message.html", pageData{Title: loc.T("message.sorry"), Error: msg})
}

func (s *Server) signInPage(c *gin.Context) {
	s.renderPage(c, http.StatusOK, "signin.html", pageData{Title: s.loc(c).T("signin.heading"), Next: members.SafeNext(c.Query("next"))})
}

// signInForm handles the sign-in page's two forms without JavaScript:
// a sign-in link for an existing reader, or a new account.
func (s *Server) signInForm(c *gin.Context) {
	email, name, next := c.PostForm("email"), c.PostForm("name"), members.SafeNext(c.PostForm("next"))
	loc := s.loc(c)
	err := s.limitSignIn(c, email)
	if err == nil {
		if c.PostForm("create") != "" {
			err = s.members.SignUp(s.withLanguage(c), email, name, next)
		} else {
			err = s.members.RequestSignInLink(s.withLanguage(c), email, next)
		}
	}
	if errs.Is(err, errs.Invalid) || errs.Is(err, errs.RateLimited) {
		e := errs.From(err)
		s.renderPage(c, statusOf[e.Kind], "signin.html", pageData{Title: loc.T("signin.heading"), Email: email, Next: next, Error: forPerson(loc, e)})
		return
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.renderPage(c, http.StatusOK, "check_email.html", pageData{Title: loc.T("check_email.heading"), Email: strings.TrimSpace(email)})
}

// pageMember is the signed-in member for a page; otherwise it has already
// sent the reader to sign in (or shown the error) and reports false.
func (s *Server) pageMember(c *gin.Context) (members.Member, bool) {
	return s.pageMemberFor(c, "/account")
}

// pageMemberFor is pageMember sending a signed-out reader back to next
// (a path of ours) after signing in.
func (s *Server) pageMemberFor(c *gin.Context, next string) (members.Member, bool) {
	m, err := s.currentMember(c)
	if errs.Is(err, errs.Unauthenticated) {
		c.Redirect(http.StatusSeeOther, "/signin?next="+next) // next: one of our own paths, nothing to escape
		return m, false
	}
	if err != nil {
		s.failPage(c, err)
		return m, false
	}
	return m, true
}

func (s *Server) accountPage(c *gin.Context) {
	m, ok := s.pageMember(c)
	if !ok {
		return
	}
	s.renderAccount(c, http.StatusOK, m, "")
}

// renderAccount shows a member their account, with problem (a sentence
// for a person) when a form of it was refused.
func (s *Server) renderAccount(c *gin.Context, status int, m members.Member, problem string) {
	access, err := s.accessOf(c, m.ID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	plan, err := s.planOf(c, m.ID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	var suggestions []voting.Suggestion
	if s.voting != nil {
		if suggestions, err = s.voting.SuggestionsBy(c.Request.Context(), m.ID); err != nil {
			s.failPage(c, err)
			return
		}
	}
	s.renderPage(c, status, "account.html", pageData{Title: s.loc(c).T("account.heading"), Member: &m, Access: access, Plan: plan,
		Suggestions: suggestions, Languages: s.languages, Error: problem})
}

// accountLanguageForm sets the language a member reads pages and mail in,
// from the account page; an empty choice leaves it to their browser.
func (s *Server) accountLanguageForm(c *gin.Context) {
	m, ok := s.pageMember(c)
	if !ok {
		return
	}
	if _, err := s.members.SetLanguage(c.Request.Context(), m.ID, c.PostForm("language")); err != nil {
		e := errs.From(err)
		if status := statusOf[e.Kind]; status == http.StatusUnprocessableEntity {
			s.renderAccount(c, status, m, forPerson(s.loc(c), e))
			return
		}
		s.failPage(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/account")
}

// signOutForm ends the session from the account page, without JavaScript.
func (s *Server) signOutForm(c *gin.Context) {
	if id, err := c.Cookie(SessionCookie); err == nil {
		if err := s.members.EndSession(c.Request.Context(), id); err != nil {
			s.failPage(c, err)
			return
		}
	}
	s.setSessionCookie(c, "", -1)
	c.Redirect(http.StatusSeeOther, "/signin")
}

// securityHeaders keeps pages from being framed, sniffed or leaking URLs
// (sign-in links carry tokens) to other sites.
func (s *Server) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' https:; frame-ancestors 'none'; form-action "+s.formAction()+"; base-uri 'none'; object-src 'none'")
	c.Next()
}

// formAction is where the pages' forms may lead: here, and Stripe's
// Checkout and billing portal, which a form's answer redirects to (also
// where STRIPE_API_BASE serves them, for stripe-mock and tests).
func (s *Server) formAction() string {
	return strings.Join(append([]string{"'self'", "https://checkout.stripe.com", "https://billing.stripe.com"}, s.stripePages...), " ")
}

// planView is the reader's running subscription, worded for the page.
type planView struct {
	Tier       string
	Price      string // "EUR 5.00 a month"
	NextCharge string // "EUR 4.00", the discount applied
	Date       string // when the period ends: the next charge, or the end
	Ending     bool   // cancelled at the period's end
	PastDue    bool   // the last payment failed
}

func (s *Server) planOf(c *gin.Context, memberID string) (*planView, error) {
	if s.billing == nil {
		return nil, nil
	}
	p, found, err := s.billing.CurrentPlan(c.Request.Context(), memberID)
	if err != nil || !found {
		return nil, err
	}
	loc := s.loc(c)
	v := &planView{Tier: p.Tier, Price: pricePer(loc, loc.Money(p.Amount, p.Currency), p.Interval), NextCharge: loc.Money(p.NextCharge, p.Currency),
		Ending: p.CancelAtPeriodEnd, PastDue: p.Status == "past_due" || p.Status == "unpaid"}
	if p.PeriodEnd != nil {
		v.Date = loc.Date(*p.PeriodEnd)
	}
	return v, nil
}

// pricePer is a price and how often it is charged: "EUR 5.00 a month".
func pricePer(loc *i18n.Localizer, price, interval string) string {
	switch interval {
	case "day":
		return loc.T("price.day", "Price", price)
	case "week":
		return loc.T("price.week", "Price", price)
	case "year":
		return loc.T("price.year", "Price", price)
	}
	return loc.T("price.month", "Price", price)
}
