package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/money"
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
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		base := strings.TrimPrefix(name, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.ParseFS(templateFiles, "templates/layout.html", name)
		if err != nil {
			return nil, err
		}
		pages[base] = t
	}
	return pages, nil
}

func (s *Server) renderPage(c *gin.Context, status int, name string, data pageData) {
	data.Newsroom = s.newsroom
	data.CSSURL = s.customCSS
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.logger.ErrorContext(c.Request.Context(), "render page", "page", name, "err", err)
		c.String(http.StatusInternalServerError, "Something went wrong on our side.")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// forPerson turns an error into sentences for a page: each offending
// field in turn ("The email must be a valid email address."), else the
// error's own message.
func forPerson(e *errs.Error) string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	parts := make([]string, 0, len(e.Fields))
	for field, problem := range e.Fields {
		parts = append(parts, "The "+strings.ReplaceAll(field, "_", " ")+" "+problem+".")
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// failPage shows an error to a person in a page rather than JSON.
func (s *Server) failPage(c *gin.Context, err error) {
	e := unavailableOrSelf(err)
	status := statusOf[e.Kind]
	if status == 0 || status >= 500 {
		s.logger.ErrorContext(c.Request.Context(), "page failed", "request_id", requestID(c), "route", c.FullPath(), "err", err)
	}
	msg := forPerson(e)
	if e.Kind == errs.Internal {
		status, msg = http.StatusInternalServerError, "Something went wrong on our side. Please try again."
	}
	s.renderPage(c, status, "message.html", pageData{Title: "Sorry", Error: msg})
}

func (s *Server) signInPage(c *gin.Context) {
	s.renderPage(c, http.StatusOK, "signin.html", pageData{Title: "Sign in", Next: members.SafeNext(c.Query("next"))})
}

// signInForm handles the sign-in page's two forms without JavaScript:
// a sign-in link for an existing reader, or a new account.
func (s *Server) signInForm(c *gin.Context) {
	email, name, next := c.PostForm("email"), c.PostForm("name"), members.SafeNext(c.PostForm("next"))
	err := s.limitSignIn(c, email)
	if err == nil {
		if c.PostForm("create") != "" {
			err = s.members.SignUp(c.Request.Context(), email, name, next)
		} else {
			err = s.members.RequestSignInLink(c.Request.Context(), email, next)
		}
	}
	if errs.Is(err, errs.Invalid) || errs.Is(err, errs.RateLimited) {
		e := errs.From(err)
		s.renderPage(c, statusOf[e.Kind], "signin.html", pageData{Title: "Sign in", Email: email, Next: next, Error: forPerson(e)})
		return
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.renderPage(c, http.StatusOK, "check_email.html", pageData{Title: "Check your email", Email: strings.TrimSpace(email)})
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
	s.renderPage(c, http.StatusOK, "account.html", pageData{Title: "Your account", Member: &m, Access: access, Plan: plan, Suggestions: suggestions})
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
	Price      string // "€5.00 a month"
	NextCharge string // "€4.00", the discount applied
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
	v := &planView{Tier: p.Tier, Price: money.Format(p.Amount, p.Currency) + " a " + p.Interval, NextCharge: money.Format(p.NextCharge, p.Currency),
		Ending: p.CancelAtPeriodEnd, PastDue: p.Status == "past_due" || p.Status == "unpaid"}
	if p.PeriodEnd != nil {
		v.Date = p.PeriodEnd.Format("2 January 2006")
	}
	return v, nil
}
