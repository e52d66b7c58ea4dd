package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/patronage/patronage/members"
)

var linkPattern = regexp.MustCompile(`http://patrons\.test/auth/verify\?[^\s"<>]+`)

// signInLink pulls the sign-in link out of a mail.
func signInLink(t *testing.T, ts testServer) string {
	t.Helper()
	m := ts.outbox.next(t)
	link := linkPattern.FindString(m.Text)
	if link == "" {
		t.Fatalf("mail %q holds no sign-in link:\n%s", m.Subject, m.Text)
	}
	return strings.ReplaceAll(link, "&amp;", "&")
}

func postJSON(h http.Handler, path, body string, headers ...string) *httptest.ResponseRecorder {
	return do(h, "POST", path, "application/json", strings.NewReader(body), headers...)
}

// visit follows a sign-in link and returns the response.
func visit(h http.Handler, link string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	u, _ := url.Parse(link)
	req := httptest.NewRequest("GET", u.RequestURI(), nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func sessionCookie(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookie && c.Value != "" {
			return c
		}
	}
	t.Fatalf("no session cookie set; status %d, headers %v", rec.Code, rec.Header())
	return nil
}

func withCookie(c *http.Cookie) string { return c.Name + "=" + c.Value }

func signUpAndSignIn(t *testing.T, ts testServer, email string) *http.Cookie {
	t.Helper()
	h := ts.Handler()
	if rec := postJSON(h, "/api/v1/members", `{"email":"`+email+`"}`); rec.Code != http.StatusAccepted {
		t.Fatalf("sign-up = %d %s", rec.Code, rec.Body)
	}
	rec := visit(h, signInLink(t, ts))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("verify = %d %s", rec.Code, rec.Body)
	}
	return sessionCookie(t, rec)
}

func TestSignUpSignInAndMe(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()

	rec := postJSON(h, "/api/v1/members", `{"email":"  Reader@Example.ORG ","name":"Ada Reader"}`)
	if rec.Code != http.StatusAccepted || strings.TrimSpace(rec.Body.String()) != `{"status":"check_email"}` {
		t.Fatalf("sign-up = %d %s", rec.Code, rec.Body)
	}
	mail := ts.outbox.next(t)
	if mail.To != "reader@example.org" {
		t.Errorf("mail went to %q, want the normalised address", mail.To)
	}
	link := linkPattern.FindString(mail.Text)
	rec = visit(h, link)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/account" {
		t.Fatalf("verify = %d to %q, want 303 to /account", rec.Code, rec.Header().Get("Location"))
	}
	cookie := sessionCookie(t, rec)
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || cookie.Secure {
		t.Errorf("cookie flags = %+v, want HttpOnly, SameSite=Lax, Path=/, not Secure on http", cookie)
	}
	if len(cookie.Value) < 22 { // 128 bits in base64
		t.Errorf("session id %q is shorter than 128 bits", cookie.Value)
	}

	rec = do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(cookie))
	if rec.Code != 200 {
		t.Fatalf("me = %d %s", rec.Code, rec.Body)
	}
	var me struct {
		Member struct {
			ID, Email, Role string
			Name            *string
			Access          map[string]any
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &me); err != nil {
		t.Fatal(err)
	}
	if me.Member.Email != "reader@example.org" || me.Member.Role != "patron" || me.Member.Name == nil || *me.Member.Name != "Ada Reader" {
		t.Errorf("me = %+v", me.Member)
	}
	wantAccess := map[string]any{"active": false, "source": nil, "tier": nil, "until": nil}
	for k, v := range wantAccess {
		if got, ok := me.Member.Access[k]; !ok || got != v {
			t.Errorf("access[%q] = %v (present %v), want %v", k, got, ok, v)
		}
	}

	page := do(h, "GET", "/account", "", nil, "Cookie", withCookie(cookie))
	if page.Code != 200 || !strings.Contains(page.Body.String(), "Not a patron yet") || !strings.Contains(page.Body.String(), "reader@example.org") {
		t.Errorf("/account = %d, want the reader's email and \"Not a patron yet\"", page.Code)
	}

	// The link worked once; a second click gets a page and no session.
	rec = visit(h, link)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "This link no longer works") {
		t.Errorf("reused link = %d, want 400 and an explanation", rec.Code)
	}
	if len(rec.Result().Cookies()) != 0 {
		t.Error("a reused link set a cookie")
	}
}

func TestMeWithoutASessionIs401(t *testing.T) {
	ts := newFullTestServer(t)
	for _, cookie := range []string{"", SessionCookie + "=forged-session-id"} {
		rec := do(ts.Handler(), "GET", "/api/v1/me", "", nil, "Cookie", cookie)
		if rec.Code != http.StatusUnauthorized || decodeError(t, rec).Code != "unauthenticated" {
			t.Errorf("me with cookie %q = %d %s", cookie, rec.Code, rec.Body)
		}
	}
	if rec := do(ts.Handler(), "GET", "/account", "", nil); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/signin?next=/account" {
		t.Errorf("/account signed out = %d to %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestAnswersDoNotRevealWhetherAnEmailIsKnown(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	unknown := postJSON(h, "/api/v1/auth/magic-link", `{"email":"nobody@example.org"}`)
	signUpAndSignIn(t, ts, "known@example.org")
	known := postJSON(h, "/api/v1/auth/magic-link", `{"email":"known@example.org"}`)
	if unknown.Code != known.Code || unknown.Body.String() != known.Body.String() || known.Code != http.StatusAccepted {
		t.Fatalf("unknown = %d %s, known = %d %s: want identical 202s", unknown.Code, unknown.Body, known.Code, known.Body)
	}
	if m := ts.outbox.next(t); m.To != "known@example.org" {
		t.Errorf("mail went to %s", m.To)
	}
	ts.members.Close(context.Background()) // every send has finished
	ts.outbox.none(t)                      // nothing for the unknown address

	// Signing up again with a known address is the same 202 and a fresh link.
	again := postJSON(h, "/api/v1/members", `{"email":"KNOWN@example.org"}`)
	if again.Code != http.StatusAccepted {
		t.Errorf("repeat sign-up = %d", again.Code)
	}
	if m := ts.outbox.next(t); m.To != "known@example.org" {
		t.Errorf("repeat sign-up mailed %s", m.To)
	}
}

func TestBadEmailsAre422AndWriteNothing(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	for _, body := range []string{`{"email":"not-an-email"}`, `{"email":""}`, `{}`, `{"email":"Ada <ada@example.org>"}`, `{"email":"a@localhost"}`, `{"email":"` + strings.Repeat("a", 250) + `@example.org"}`} {
		for _, path := range []string{"/api/v1/members", "/api/v1/auth/magic-link"} {
			rec := postJSON(h, path, body)
			if rec.Code != http.StatusUnprocessableEntity {
				t.Errorf("%s %s = %d, want 422", path, body, rec.Code)
				continue
			}
			if e := decodeError(t, rec); e.Code != "invalid" || e.Fields["email"] == "" {
				t.Errorf("%s %s: error %+v, want fields.email", path, body, e)
			}
		}
	}
	rec := postJSON(h, "/api/v1/members", `{"email":"ok@example.org","name":"`+strings.Repeat("n", 101)+`"}`)
	if rec.Code != http.StatusUnprocessableEntity || decodeError(t, rec).Fields["name"] == "" {
		t.Errorf("overlong name = %d", rec.Code)
	}
	var n int
	if err := ts.db.QueryRow(`SELECT COUNT(*) FROM members`).Scan(&n); err != nil || n != 0 {
		t.Errorf("members after bad sign-ups = %d (%v), want 0", n, err)
	}
	ts.members.Close(context.Background())
	ts.outbox.none(t)
}

func TestSignInMailsAreRateLimitedPerEmail(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	for i := range 5 {
		if rec := postJSON(h, "/api/v1/auth/magic-link", `{"email":"busy@example.org"}`); rec.Code != http.StatusAccepted {
			t.Fatalf("request %d = %d", i+1, rec.Code)
		}
	}
	rec := postJSON(h, "/api/v1/members", `{"email":"Busy@example.org"}`)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("6th request = %d, want 429", rec.Code)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if e := decodeError(t, rec); e.Code != "rate_limited" {
		t.Errorf("code = %q", e.Code)
	}
	if rec := postJSON(h, "/api/v1/auth/magic-link", `{"email":"calm@example.org"}`); rec.Code != http.StatusAccepted {
		t.Errorf("another address was limited too: %d", rec.Code)
	}
}

func TestSignInMailsAreRateLimitedPerIP(t *testing.T) {
	ts := newFullTestServer(t, func(d *Deps) { d.SignInPerIPPerHour = 3 })
	h := ts.Handler()
	for i := range 3 {
		if rec := postJSON(h, "/api/v1/auth/magic-link", `{"email":"r`+string(rune('a'+i))+`@example.org"}`); rec.Code != http.StatusAccepted {
			t.Fatalf("request %d = %d", i+1, rec.Code)
		}
	}
	if rec := postJSON(h, "/api/v1/auth/magic-link", `{"email":"rz@example.org"}`); rec.Code != http.StatusTooManyRequests {
		t.Errorf("4th request from one IP = %d, want 429", rec.Code)
	}
}

func TestNextLeadsOnlyToThisSite(t *testing.T) {
	tests := []struct{ next, want string }{
		{"/rounds/r1?tab=results", "/rounds/r1?tab=results"},
		{"//evil.example/", "/account"},
		{"https://evil.example/", "/account"},
		{"/\\evil.example", "/account"},
		{"javascript:alert(1)", "/account"},
		{"", "/account"},
	}
	for _, tt := range tests {
		t.Run(tt.next, func(t *testing.T) {
			ts := newFullTestServer(t)
			h := ts.Handler()
			signUpAndSignIn(t, ts, "reader@example.org")
			body, _ := json.Marshal(map[string]string{"email": "reader@example.org", "next": tt.next})
			postJSON(h, "/api/v1/auth/magic-link", string(body))
			link := signInLink(t, ts)
			// Tampering with the link's next is no way round it either.
			u, _ := url.Parse(link)
			q := u.Query()
			q.Set("next", tt.next)
			u.RawQuery = q.Encode()
			rec := visit(h, u.String())
			if got := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || got != tt.want {
				t.Errorf("redirect = %d to %q, want 303 to %q", rec.Code, got, tt.want)
			}
		})
	}
}

func TestEverySignInGetsANewSessionAndEndsTheOldOne(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	first := signUpAndSignIn(t, ts, "reader@example.org")
	postJSON(h, "/api/v1/auth/magic-link", `{"email":"reader@example.org"}`)
	rec := visit(h, signInLink(t, ts), first)
	second := sessionCookie(t, rec)
	if second.Value == first.Value {
		t.Fatal("signing in again kept the same session id")
	}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(first)); rec.Code != http.StatusUnauthorized {
		t.Errorf("the replaced session still works: %d", rec.Code)
	}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(second)); rec.Code != 200 {
		t.Errorf("the new session does not work: %d", rec.Code)
	}
}

func TestTwoClicksOnOneLinkMakeOneSession(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	postJSON(h, "/api/v1/members", `{"email":"reader@example.org"}`)
	link := signInLink(t, ts)
	const clicks = 20
	recs := burst(clicks, func(int) *httptest.ResponseRecorder { return visit(h, link) })
	var sessions []*http.Cookie
	for _, rec := range recs {
		switch {
		case rec.Code == http.StatusSeeOther:
			sessions = append(sessions, sessionCookie(t, rec))
		case rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "This link no longer works"):
			t.Errorf("a losing click = %d, want 400 \"This link no longer works\"", rec.Code)
		case len(rec.Result().Cookies()) != 0:
			t.Errorf("a losing click set cookies %v", rec.Result().Cookies())
		}
	}
	if len(sessions) != 1 {
		t.Fatalf("%d concurrent clicks signed in %d times, want 1", clicks, len(sessions))
	}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(sessions[0])); rec.Code != http.StatusOK {
		t.Errorf("the one session made = %d on /api/v1/me, want 200", rec.Code)
	}
	if rec := visit(h, link); rec.Code != http.StatusBadRequest || len(rec.Result().Cookies()) != 0 {
		t.Errorf("the used link later = %d with cookies %v, want 400 and none", rec.Code, rec.Result().Cookies())
	}
}

func TestLogoutAndCrossSiteWrites(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	cookie := signUpAndSignIn(t, ts, "reader@example.org")
	for _, tt := range otherSites {
		rec := do(h, "POST", "/api/v1/auth/logout", "", nil, append([]string{"Cookie", withCookie(cookie)}, tt.headers...)...)
		if rec.Code != http.StatusForbidden || decodeError(t, rec).Code != "csrf_failed" {
			t.Errorf("%s: logout = %d %s, want 403 csrf_failed", tt.name, rec.Code, rec.Body)
		}
	}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(cookie)); rec.Code != 200 {
		t.Fatalf("a refused cross-site logout ended the session: %d", rec.Code)
	}
	rec := do(h, "POST", "/api/v1/auth/logout", "", nil, "Cookie", withCookie(cookie), "Origin", "http://patrons.test")
	if rec.Code != http.StatusNoContent {
		t.Fatalf("same-origin logout = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(cookie)); rec.Code != http.StatusUnauthorized {
		t.Errorf("after logout me = %d, want 401", rec.Code)
	}
	// A browser's own same-origin request passes too.
	cookie = signUpAndSignIn(t, ts, "reader@example.org")
	if rec := do(h, "POST", "/api/v1/auth/logout", "", nil, "Cookie", withCookie(cookie), "Sec-Fetch-Site", "same-origin"); rec.Code != http.StatusNoContent {
		t.Errorf("Sec-Fetch-Site: same-origin logout = %d", rec.Code)
	}
}

// Every cookie the server sets, the session and its clearing at sign-out
// alike, is HttpOnly, SameSite=Lax (never None), for the whole site, and
// Secure when BASE_URL is https.
func TestCookiesAreSecureOnHTTPS(t *testing.T) {
	for _, base := range []string{"https://patrons.test", "http://patrons.test"} {
		t.Run(base, func(t *testing.T) {
			ts := newFullTestServer(t, func(d *Deps) { d.BaseURL, _ = url.Parse(base) })
			h := ts.Handler()
			secure := strings.HasPrefix(base, "https:")
			var set []*http.Cookie
			signIn := func() *http.Cookie {
				postJSON(h, "/api/v1/auth/magic-link", `{"email":"reader@example.org"}`)
				m := ts.outbox.next(t)
				link := regexp.MustCompile(`/auth/verify\?[^\s"<>]+`).FindString(m.Text)
				rec := visit(h, base+link)
				set = append(set, rec.Result().Cookies()...)
				return sessionCookie(t, rec)
			}
			if _, err := ts.members.FindOrCreateMember(context.Background(), "reader@example.org"); err != nil {
				t.Fatal(err)
			}
			rec := do(h, "POST", "/api/v1/auth/logout", "", nil, "Cookie", withCookie(signIn()), "Origin", base)
			set = append(set, rec.Result().Cookies()...)
			rec = do(h, "POST", "/signout", "", nil, "Cookie", withCookie(signIn()), "Origin", base)
			set = append(set, rec.Result().Cookies()...)
			if len(set) != 4 {
				t.Fatalf("cookies set by two sign-ins, a logout and a sign-out: %v, want 4", set)
			}
			for _, c := range set {
				if c.Name != SessionCookie {
					t.Errorf("unexpected cookie %q: give it a line here", c.Name)
				}
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != secure {
					t.Errorf("cookie %s=%q: HttpOnly %v, SameSite %v, Path %q, Secure %v; want HttpOnly, SameSite=Lax, Path=/, Secure %v",
						c.Name, c.Value, c.HttpOnly, c.SameSite, c.Path, c.Secure, secure)
				}
			}
		})
	}
}

func TestSignInPageFormsWorkWithoutJavaScript(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	page := do(h, "GET", "/signin", "", nil)
	if page.Code != 200 || !strings.Contains(page.Body.String(), `<label for="signin-email">`) {
		t.Fatalf("/signin = %d", page.Code)
	}
	rec := do(h, "POST", "/signin", "application/x-www-form-urlencoded", strings.NewReader("create=1&email=new%40example.org&name=New"), "Origin", "http://patrons.test")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Check your email") {
		t.Fatalf("create form = %d %s", rec.Code, rec.Body)
	}
	if m := ts.outbox.next(t); m.To != "new@example.org" {
		t.Errorf("mail to %s", m.To)
	}
	rec = do(h, "POST", "/signin", "application/x-www-form-urlencoded", strings.NewReader("email=broken"))
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "valid email") {
		t.Errorf("bad email form = %d", rec.Code)
	}
}

func staffSetup(t testing.TB, ts testServer, role members.Role) (token string, m members.Member) {
	t.Helper()
	ctx := context.Background()
	m, _, err := ts.members.EnsureStaff(ctx, members.CommandLine, string(role)+"@newsroom.example", "", role)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err = ts.members.CreateAPIToken(ctx, members.CommandLine, m.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	return token, m
}

func TestStaffAPIAuthentication(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	token, _ := staffSetup(t, ts, members.RoleStaff)
	patron := signUpAndSignIn(t, ts, "reader@example.org")

	cases := []struct {
		name    string
		headers []string
		status  int
		code    string
	}{
		{"anonymous", nil, 401, "unauthenticated"},
		{"patron session", []string{"Cookie", withCookie(patron)}, 403, "forbidden"},
		{"unknown token", []string{"Authorization", "Bearer pat_unknown"}, 401, "unauthenticated"},
		{"not a bearer", []string{"Authorization", "Basic " + token}, 401, "unauthenticated"},
		{"staff token", []string{"Authorization", "Bearer " + token}, 200, ""},
	}
	for _, tt := range cases {
		rec := do(h, "GET", "/api/v1/staff/members?email=reader@example.org", "", nil, tt.headers...)
		if rec.Code != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, rec.Code, tt.status, rec.Body)
			continue
		}
		if tt.code != "" && decodeError(t, rec).Code != tt.code {
			t.Errorf("%s: wrong code", tt.name)
		}
	}

	if _, err := ts.members.RevokeAPIToken(context.Background(), members.CommandLine, token); err != nil {
		t.Fatal(err)
	}
	if rec := do(h, "GET", "/api/v1/staff/members?email=x@example.org", "", nil, "Authorization", "Bearer "+token); rec.Code != http.StatusUnauthorized {
		t.Errorf("revoked token = %d, want 401", rec.Code)
	}
}

func TestStaffMemberTools(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	staffToken, staffMember := staffSetup(t, ts, members.RoleStaff)
	adminToken, _ := staffSetup(t, ts, members.RoleAdmin)
	asStaff := []string{"Authorization", "Bearer " + staffToken}
	asAdmin := []string{"Authorization", "Bearer " + adminToken}

	rec := postJSON(h, "/api/v1/staff/members", `{"email":"Walkin@Example.org","name":"Walk In"}`, asStaff...)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	var created struct{ Member staffMemberJSON }
	json.Unmarshal(rec.Body.Bytes(), &created)
	if created.Member.Email != "walkin@example.org" || created.Member.Role != "patron" {
		t.Errorf("created %+v", created.Member)
	}

	rec = postJSON(h, "/api/v1/staff/members", `{"email":"walkin@example.org"}`, asStaff...)
	if rec.Code != http.StatusConflict {
		t.Fatalf("duplicate = %d", rec.Code)
	}
	if e := decodeError(t, rec); e.Code != "email_taken" || e.Details["existing_id"] != created.Member.ID {
		t.Errorf("duplicate error %+v, want email_taken naming %s", e, created.Member.ID)
	}

	if rec := do(h, "GET", "/api/v1/staff/members/"+created.Member.ID, "", nil, asStaff...); rec.Code != 200 || !strings.Contains(rec.Body.String(), "walkin@example.org") {
		t.Errorf("get = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/v1/staff/members/mem_nope", "", nil, asStaff...); rec.Code != 404 {
		t.Errorf("get unknown = %d", rec.Code)
	}
	rec = do(h, "GET", "/api/v1/staff/members?email=WALKIN@example.org", "", nil, asStaff...)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), created.Member.ID) {
		t.Errorf("lookup by email = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/v1/staff/members?email=none@example.org", "", nil, asStaff...); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"members":[]}` {
		t.Errorf("lookup of unknown email = %d %s", rec.Code, rec.Body)
	}

	path := "/api/v1/staff/members/" + created.Member.ID + "/sign-in-link"
	if rec := do(h, "POST", path, "", nil, asStaff...); rec.Code != http.StatusForbidden {
		t.Errorf("staff asking for a sign-in link = %d, want 403", rec.Code)
	}
	rec = do(h, "POST", path, "", nil, asAdmin...)
	if rec.Code != http.StatusCreated {
		t.Fatalf("admin sign-in link = %d %s", rec.Code, rec.Body)
	}
	var link struct{ URL string }
	json.Unmarshal(rec.Body.Bytes(), &link)
	if rec := visit(h, link.URL); rec.Code != http.StatusSeeOther {
		t.Errorf("the admin-made link does not sign in: %d", rec.Code)
	}
	// A link into a staff account would let one admin become another.
	if rec := do(h, "POST", "/api/v1/staff/members/"+staffMember.ID+"/sign-in-link", "", nil, asAdmin...); rec.Code != http.StatusForbidden {
		t.Errorf("admin asking for a staff member's sign-in link = %d %s, want 403", rec.Code, rec.Body)
	}
	var audited int
	ts.db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'member.sign_in_link' AND subject_id = $1`, created.Member.ID).Scan(&audited)
	if audited != 1 {
		t.Errorf("sign-in link audit entries = %d, want 1", audited)
	}
}
