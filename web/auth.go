package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ratelimit"
	"github.com/patronage/patronage/members"
)

// SessionCookie names the cookie holding a reader's session id.
const SessionCookie = "patronage_session"

const memberKey = "member"

// AccessSource says whether a member has paid or granted access. Billing
// satisfies it; until it is wired, everyone reads as having no access.
type AccessSource interface {
	AccessOf(ctx context.Context, memberID string) (members.Access, error)
}

var _ AccessSource = (*billing.Service)(nil)

type signUpRequest struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	Next  string `json:"next"`
}

type magicLinkRequest struct {
	Email string `json:"email"`
	Next  string `json:"next"`
}

var checkEmail = gin.H{"status": "check_email"}

// signUp creates an account (or finds it) and mails a sign-in link.
func (s *Server) signUp(c *gin.Context) {
	var req signUpRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.limitSignIn(c, req.Email); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.members.SignUp(s.withLanguage(c), req.Email, req.Name, req.Next); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, checkEmail)
}

// requestMagicLink mails a sign-in link to a known address; the answer is
// the same for an unknown one.
func (s *Server) requestMagicLink(c *gin.Context) {
	var req magicLinkRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.limitSignIn(c, req.Email); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.members.RequestSignInLink(s.withLanguage(c), req.Email, req.Next); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, checkEmail)
}

// limitSignIn counts a sign-in mail against the client's IP and the email
// address. A malformed address is refused first, uncounted.
func (s *Server) limitSignIn(c *gin.Context, rawEmail string) error {
	email, err := members.NormalizeEmail(rawEmail)
	if err != nil {
		return err
	}
	if err := s.allow(c, s.limits.signInPerIP, c.ClientIP()); err != nil {
		return err
	}
	return s.allow(c, s.limits.signInPerEmail, email)
}

func (s *Server) allow(c *gin.Context, rule ratelimit.Rule, subject string) error {
	ok, retry, err := s.limiter.Allow(c.Request.Context(), rule, subject)
	if err != nil {
		return &errs.Error{Kind: errs.Unavailable, Code: "unavailable", Message: "Please try again in a moment.", Err: err}
	}
	if ok {
		return nil
	}
	secs := int(retry.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	e := errs.WithCode(errs.RateLimited, "rate_limited", "Too many requests; please try again in %s.", humanDuration(retry))
	e.Details = map[string]string{"retry_after": strconv.Itoa(secs)}
	return e
}

// humanDuration is waitWords in English, for the API's messages.
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return "a minute"
	}
	return strconv.Itoa(int(d.Round(time.Minute)/time.Minute)) + " minutes"
}

// verifySignIn redeems a sign-in link: a new session, then on to next.
func (s *Server) verifySignIn(c *gin.Context) {
	m, err := s.members.ConsumeSignInToken(c.Request.Context(), c.Query("token"))
	if errs.Is(err, errs.NotFound) {
		s.renderPage(c, http.StatusBadRequest, "link_invalid.html", pageData{Title: s.loc(c).T("link_invalid.heading")})
		return
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	sessionID, err := s.members.StartSession(c.Request.Context(), m.ID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	// A stale cookie from an earlier session is replaced, never reused.
	if old, err := c.Cookie(SessionCookie); err == nil && old != "" {
		_ = s.members.EndSession(c.Request.Context(), old)
	}
	s.setSessionCookie(c, sessionID, members.SessionAbsoluteLimit)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, members.SafeNext(c.Query("next")))
}

func (s *Server) setSessionCookie(c *gin.Context, value string, maxAge time.Duration) {
	cookie := &http.Cookie{
		Name:     SessionCookie,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.secureCookies,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   int(maxAge / time.Second),
	}
	if maxAge < 0 {
		cookie.MaxAge = -1
	}
	http.SetCookie(c.Writer, cookie)
}

// logout ends the session and clears the cookie.
func (s *Server) logout(c *gin.Context) {
	if id, err := c.Cookie(SessionCookie); err == nil {
		if err := s.members.EndSession(c.Request.Context(), id); err != nil {
			s.fail(c, err)
			return
		}
	}
	s.setSessionCookie(c, "", -1)
	c.Status(http.StatusNoContent)
}

// currentMember resolves the session cookie; nil error means signed in.
func (s *Server) currentMember(c *gin.Context) (members.Member, error) {
	if v, ok := c.Get(memberKey); ok {
		return v.(members.Member), nil
	}
	id, err := c.Cookie(SessionCookie)
	if err != nil || id == "" {
		return members.Member{}, errs.E(errs.Unauthenticated, "Sign in to continue.")
	}
	m, err := s.members.MemberForSession(c.Request.Context(), id)
	if err != nil {
		return members.Member{}, err
	}
	c.Set(memberKey, m)
	return m, nil
}

// requireMember lets a request through only with a valid session.
func (s *Server) requireMember(c *gin.Context) {
	if _, err := s.currentMember(c); err != nil {
		s.fail(c, err)
		return
	}
	c.Next()
}

// requireStaff authenticates staff routes by API token (Authorization:
// Bearer) or session; a reader's session is forbidden.
func (s *Server) requireStaff(c *gin.Context) {
	var m members.Member
	var err error
	if auth := c.GetHeader("Authorization"); auth != "" {
		token, found := strings.CutPrefix(auth, "Bearer ")
		if !found {
			s.fail(c, errs.E(errs.Unauthenticated, "Send the API token as Authorization: Bearer <token>."))
			return
		}
		m, err = s.members.MemberForAPIToken(c.Request.Context(), strings.TrimSpace(token))
		if err == nil {
			c.Set(memberKey, m)
		}
	} else {
		m, err = s.currentMember(c)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if !m.Role.IsStaff() {
		s.fail(c, errs.WithCode(errs.Forbidden, "forbidden", "This needs a staff account."))
		return
	}
	c.Next()
}

// requireAdmin follows requireStaff and narrows to admins.
func (s *Server) requireAdmin(c *gin.Context) {
	m, _ := s.currentMember(c)
	if m.Role != members.RoleAdmin {
		s.fail(c, errs.WithCode(errs.Forbidden, "forbidden", "This needs an admin account."))
		return
	}
	c.Next()
}

func actorOf(m members.Member) members.Actor {
	return members.Actor{MemberID: m.ID, Label: m.Email}
}

// staffActor is the staff member making this request (requireStaff has
// let it through), for the audit log.
func (s *Server) staffActor(c *gin.Context) members.Actor {
	m, _ := s.currentMember(c)
	return actorOf(m)
}

// checkOrigin refuses cross-site writes that ride on the session cookie.
// Browsers say where a request comes from in Sec-Fetch-Site (or, older ones,
// Origin); a write carrying our cookie must come from our own origin. API
// tokens are not sent automatically by browsers, so token requests pass.
func (s *Server) checkOrigin(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		c.Next()
		return
	}
	if _, err := c.Cookie(SessionCookie); err != nil || c.GetHeader("Authorization") != "" {
		c.Next()
		return
	}
	if site := c.GetHeader("Sec-Fetch-Site"); site != "" {
		if site == "same-origin" || site == "none" {
			c.Next()
			return
		}
	} else if origin := c.GetHeader("Origin"); origin != "" && origin == s.origin {
		c.Next()
		return
	}
	writeError(c, http.StatusForbidden, "csrf_failed",
		"This request did not come from "+s.origin+"; reload the page and try again.", nil)
}
