package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/members"
)

// Who may call what: every route of the server, taken from the router
// itself, against every kind of caller. A route added without a line in
// access below fails the test, so none escapes the matrix.

// accessClass is who a route is for.
type accessClass int

const (
	public        accessClass = iota // anyone
	signedWebhook                    // Stripe, by signature: everyone else 400
	memberPage                       // a signed-in member's page: others are sent to sign in
	memberAPI                        // a signed-in member: others 401 (withdrawing a vote needs no access: there is nothing to withdraw without one)
	patronAPI                        // a member with access (a patron): others 401 (signed out) or 403
	staffPage                        // staff and admins signed in: readers 403, others sent to sign in
	staffAPI                         // staff and admins (token or session): 401 / 403 for the rest
	adminAPI                         // admins only: staff 403 too
	signOut                          // anyone: sent to the sign-in page
)

// access classifies every route by "METHOD path" as the router lists it.
var access = map[string]accessClass{
	"GET /healthz":                public,
	"GET /readyz":                 public,
	"GET /metrics":                public,
	"GET /api/v1/openapi.yaml":    public,
	"GET /static/*filepath":       public,
	"HEAD /static/*filepath":      public,
	"GET /signin":                 public,
	"POST /signin":                public,
	"POST /signout":               signOut,
	"GET /account":                memberPage,
	"GET /auth/verify":            public,
	"GET /join":                   public,
	"POST /join/subscribe":        public,
	"POST /join/gift":             public,
	"GET /checkout/success":       public,
	"GET /checkout/cancel":        public,
	"POST /account/billing":       memberPage,
	"POST /account/language":      memberPage,
	"GET /vote":                   public,
	"POST /vote/:id":              memberPage,
	"GET /vote/results/:id":       public,
	"GET /topics/suggest":         memberPage,
	"POST /topics/suggest":        memberPage,
	"GET /staff":                  staffPage,
	"GET /staff/dashboard.csv":    staffPage,
	"GET /staff/voting":           staffPage,
	"POST /staff/voting":          staffPage,
	"GET /staff/suggestions":      staffPage,
	"POST /staff/suggestions/:id": staffPage,
	"GET /custom.css":             public,
	"GET /":                       public,
	"POST /webhooks/stripe":       signedWebhook,

	"POST /api/v1/members":                      public,
	"POST /api/v1/auth/magic-link":              public,
	"POST /api/v1/auth/logout":                  public,
	"GET /api/v1/me":                            memberAPI,
	"PATCH /api/v1/me":                          memberAPI,
	"OPTIONS /api/v1/me":                        public,
	"GET /api/v1/me/token":                      memberAPI,
	"OPTIONS /api/v1/me/token":                  public,
	"GET /.well-known/jwks.json":                public,
	"GET /embed/join":                           public,
	"GET /embed/vote":                           public,
	"GET /api/v1/tiers":                         public,
	"POST /api/v1/checkout/subscription":        public,
	"POST /api/v1/checkout/donation":            public,
	"POST /api/v1/billing/portal":               memberAPI,
	"POST /api/v1/topics/suggestions":           patronAPI,
	"GET /api/v1/rounds":                        public,
	"GET /api/v1/rounds/:id":                    public,
	"GET /api/v1/rounds/:id/results":            public,
	"GET /api/v1/rounds/:id/stream":             public,
	"POST /api/v1/rounds/:id/votes":             patronAPI,
	"DELETE /api/v1/rounds/:id/votes/:topic_id": memberAPI,

	"POST /api/v1/staff/members":                     staffAPI,
	"GET /api/v1/staff/members":                      staffAPI,
	"GET /api/v1/staff/members.csv":                  adminAPI,
	"GET /api/v1/staff/members/:id":                  staffAPI,
	"DELETE /api/v1/staff/members/:id":               adminAPI,
	"GET /api/v1/staff/members/:id/billing":          staffAPI,
	"POST /api/v1/staff/members/:id/sign-in-link":    adminAPI,
	"GET /api/v1/staff/members/:id/export":           adminAPI,
	"POST /api/v1/staff/members/:id/complimentary":   adminAPI,
	"DELETE /api/v1/staff/members/:id/complimentary": adminAPI,
	"GET /api/v1/staff/tiers":                        staffAPI,
	"GET /api/v1/staff/audit":                        staffAPI,
	"GET /api/v1/staff/metrics/summary":              staffAPI,
	"GET /api/v1/staff/fx-rates":                     staffAPI,
	"POST /api/v1/staff/fx-rates":                    staffAPI,
	"GET /api/v1/staff/metrics/mrr":                  staffAPI,
	"GET /api/v1/staff/metrics/revenue":              staffAPI,
	"GET /api/v1/staff/metrics/cohorts":              staffAPI,
	"GET /api/v1/staff/metrics/tiers":                staffAPI,
	"POST /api/v1/staff/tiers":                       adminAPI,
	"PATCH /api/v1/staff/tiers/:slug":                adminAPI,
	"GET /api/v1/staff/stripe/drift":                 staffAPI,
	"POST /api/v1/staff/topics":                      staffAPI,
	"PATCH /api/v1/staff/topics/:id":                 staffAPI,
	"GET /api/v1/staff/topics/suggestions":           staffAPI,
	"POST /api/v1/staff/rounds":                      staffAPI,
	"PATCH /api/v1/staff/rounds/:id":                 staffAPI,
	"POST /api/v1/staff/rounds/:id/close":            staffAPI,
	"GET /api/v1/staff/webhooks/events":              staffAPI,
	"POST /api/v1/staff/webhooks/events/:id/retry":   adminAPI,
	// Endpoints receive patrons' names and addresses: admins only.
	"GET /api/v1/staff/webhook-endpoints":                                        adminAPI,
	"POST /api/v1/staff/webhook-endpoints":                                       adminAPI,
	"GET /api/v1/staff/webhook-endpoints/:id":                                    adminAPI,
	"PATCH /api/v1/staff/webhook-endpoints/:id":                                  adminAPI,
	"DELETE /api/v1/staff/webhook-endpoints/:id":                                 adminAPI,
	"POST /api/v1/staff/webhook-endpoints/:id/rotate-secret":                     adminAPI,
	"GET /api/v1/staff/webhook-endpoints/:id/deliveries":                         adminAPI,
	"POST /api/v1/staff/webhook-endpoints/:id/deliveries/:delivery_id/redeliver": adminAPI,
}

// caller is one kind of client: the headers its next request carries (a
// fresh session each time, as signing out ends the one it used).
type caller struct {
	name    string
	headers func() []string
}

// What a caller of each kind must get from a route of each class:
// "allowed" is anything but 401, 403, a redirect to sign in or a 5xx (an
// unknown id's 404 or an empty body's 422 is the route working).
const allowed = 0

func expected(class accessClass, who string) int {
	switch class {
	case public:
		return allowed
	case signedWebhook:
		return http.StatusBadRequest // no caller here signs as Stripe
	case signOut:
		return http.StatusSeeOther
	}
	signedIn := who != "anonymous" && who != "revoked token"
	page := class == memberPage || class == staffPage
	switch {
	case !signedIn && page:
		return http.StatusSeeOther
	case !signedIn:
		return http.StatusUnauthorized
	}
	switch class {
	case memberPage, memberAPI:
		return allowed
	case patronAPI:
		// Only patrons vote or suggest: staff accounts pay nothing.
		if who == "patron" || who == "another patron" {
			return allowed
		}
		return http.StatusForbidden
	case staffPage, staffAPI:
		if who == "staff" || who == "admin" {
			return allowed
		}
		return http.StatusForbidden
	case adminAPI:
		if who == "admin" {
			return allowed
		}
		return http.StatusForbidden
	}
	panic("unknown access class")
}

var pathParam = regexp.MustCompile(`:[a-z_]+|\*[a-z]+`)

// routeFixture is a server's cast for calling its routes: members of every
// kind, staff API tokens, and an open round with two topics.
type routeFixture struct {
	ts                                   testServer
	reader, patron, otherPatron          members.Member
	staff, admin                         members.Member
	staffToken, adminToken, revokedToken string
	topics                               []string
	round                                string
}

func newRouteFixture(t *testing.T, ts testServer) *routeFixture {
	t.Helper()
	ctx := context.Background()
	f := &routeFixture{ts: ts}
	if _, err := ts.db.Exec(`INSERT INTO tiers (slug, name, created_at, updated_at) VALUES ('coffee', 'Coffee', $1, $1)`, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	patron := func(email string) members.Member {
		m := f.member(t, email)
		if _, err := ts.billing.GrantComplimentary(ctx, members.CommandLine, m.ID, billing.GrantInput{Tier: "coffee"}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	f.staffToken, f.staff = staffSetup(t, ts, members.RoleStaff)
	f.adminToken, f.admin = staffSetup(t, ts, members.RoleAdmin)
	revoked, _, err := ts.members.CreateAPIToken(ctx, members.CommandLine, f.admin.ID, "to revoke")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.members.RevokeAPIToken(ctx, members.CommandLine, revoked); err != nil {
		t.Fatal(err)
	}
	f.revokedToken = revoked
	f.reader, f.patron, f.otherPatron = f.member(t, "reader@example.org"), patron("patron@example.org"), patron("other@example.org")

	// An open round with two topics, for the routes that name one: a
	// reader must be refused a well-formed vote, not merely a bad one.
	f.topics = []string{f.topic(t, "Flood defences"), f.topic(t, "School meals")}
	f.round = f.openRound(t, f.topics...)
	return f
}

func (f *routeFixture) member(t *testing.T, email string) members.Member {
	t.Helper()
	m, err := f.ts.members.FindOrCreateMember(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// openRound opens a round of the given topics, which no other round may
// hold, and returns its id.
func (f *routeFixture) openRound(t *testing.T, topics ...string) string {
	t.Helper()
	rec := postJSON(f.ts.Handler(), "/api/v1/staff/rounds", fmt.Sprintf(`{"title":"Next","opens_at":%q,"closes_at":%q,"topic_ids":["%s"]}`,
		time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), strings.Join(topics, `","`)),
		"Authorization", "Bearer "+f.adminToken)
	var round struct{ Round struct{ ID string } }
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &round) != nil {
		t.Fatalf("create round = %d %s", rec.Code, rec.Body)
	}
	return round.Round.ID
}

// topic creates a proposed topic and returns its id.
func (f *routeFixture) topic(t *testing.T, title string) string {
	t.Helper()
	rec := postJSON(f.ts.Handler(), "/api/v1/staff/topics", `{"title":"`+title+`"}`, "Authorization", "Bearer "+f.adminToken)
	var created struct{ Topic struct{ ID string } }
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &created) != nil {
		t.Fatalf("create topic = %d %s", rec.Code, rec.Body)
	}
	return created.Topic.ID
}

// session starts a new session for m and returns its Cookie header.
func (f *routeFixture) session(t *testing.T, m members.Member) string {
	t.Helper()
	id, err := f.ts.members.StartSession(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	return SessionCookie + "=" + id
}

// path fills a route pattern's parameters: the fixture's round and topic
// where the route names them, else ids that name nothing, so a route that
// lets the caller through answers 404 or 422 and changes nothing.
func (f *routeFixture) path(pattern string) string {
	switch {
	case strings.HasPrefix(pattern, "/static/"):
		return "/static/style.css"
	case strings.HasPrefix(pattern, "/api/v1/rounds/:id"), strings.HasPrefix(pattern, "/vote/"):
		return strings.NewReplacer(":id", f.round, ":topic_id", f.topics[0]).Replace(pattern)
	}
	return pathParam.ReplaceAllString(pattern, "nothing-here")
}

func TestEveryRouteAgainstEveryKindOfCaller(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	f := newRouteFixture(t, ts)

	// Callers. Sessions ride on the cookie (writes from our own origin, as
	// a browser sends them); staff also send their API token, so pages see
	// the session and the API the token.
	signedIn := func(m members.Member, token string) func() []string {
		return func() []string {
			h := []string{"Cookie", f.session(t, m), "Sec-Fetch-Site", "same-origin"}
			if token != "" {
				h = append(h, "Authorization", "Bearer "+token)
			}
			return h
		}
	}
	callers := []caller{
		{"anonymous", func() []string { return nil }},
		{"reader", signedIn(f.reader, "")},
		{"patron", signedIn(f.patron, "")},
		{"another patron", signedIn(f.otherPatron, "")},
		{"staff", signedIn(f.staff, f.staffToken)},
		{"admin", signedIn(f.admin, f.adminToken)},
		{"revoked token", func() []string { return []string{"Authorization", "Bearer " + f.revokedToken} }},
	}
	bodies := map[string]string{
		"POST /api/v1/rounds/:id/votes":   `{"topic_id":"` + f.topics[0] + `"}`,
		"POST /api/v1/topics/suggestions": `{"title":"Bus routes"}`,
	}

	routes := ts.engine.Routes()
	seen := map[string]bool{}
	checked, pages := 0, 0
	for _, r := range routes {
		key := r.Method + " " + r.Path
		seen[key] = true
		class, ok := access[key]
		if !ok {
			t.Errorf("route %s has no line in the access matrix: say who may call it", key)
			continue
		}
		path := f.path(r.Path)
		body := bodies[key]
		if body == "" {
			body = "{}"
		}
		for _, who := range callers {
			if strings.HasSuffix(r.Path, "/stream") {
				continue // a stream stays open; its access is the round's, checked by GET /rounds/:id
			}
			rec := do(h, r.Method, path, "application/json", strings.NewReader(body), who.headers()...)
			checked++
			if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				pages++
				wantPageHeaders(t, key+" as "+who.name, rec.Header())
			}
			want := expected(class, who.name)
			got := rec.Code
			switch {
			case got >= 500:
				t.Errorf("%s as %s = %d %s: a 5xx", key, who.name, got, rec.Body)
			case want == allowed && (got == http.StatusUnauthorized || got == http.StatusForbidden ||
				(got == http.StatusSeeOther && strings.HasPrefix(rec.Header().Get("Location"), "/signin"))):
				t.Errorf("%s as %s = %d (%s): refused, want it let through", key, who.name, got, rec.Header().Get("Location")+rec.Body.String())
			case want == http.StatusSeeOther && (got != want || !strings.HasPrefix(rec.Header().Get("Location"), "/signin")):
				t.Errorf("%s as %s = %d to %q, want 303 to /signin", key, who.name, got, rec.Header().Get("Location"))
			case want != allowed && want != http.StatusSeeOther && got != want:
				t.Errorf("%s as %s = %d %s, want %d", key, who.name, got, rec.Body, want)
			}
		}
	}
	var stale []string
	for key := range access {
		if !seen[key] {
			stale = append(stale, key)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("the access matrix lists routes the server does not have: %v", stale)
	}
	if pages == 0 {
		t.Error("no HTML page among the answers: the headers of pages went unchecked")
	}
	t.Log(fmt.Sprintf("FIGURES authorization matrix: %d routes × %d kinds of caller: %d requests checked, %d of them pages", len(routes), len(callers), checked, pages))
}

// wantPageHeaders checks what every HTML page must carry: a
// Content-Security-Policy allowing no inline script or style and no
// framing, no MIME sniffing, and a referrer policy.
func wantPageHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	if csp == "" || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		!strings.Contains(csp, "default-src 'self'") {
		t.Errorf("%s: Content-Security-Policy %q", what, csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
		t.Errorf("%s: X-Content-Type-Options %q, Referrer-Policy %q", what, h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
	}
}
