package web

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

// Fuzzing the edges a stranger can reach. The seeds below run with every
// `go test`; `go test -fuzz=FuzzX ./web` explores from them (the test
// command runs each for a few seconds). Whatever comes in: no 5xx, no
// stack or SQL in the answer, and nothing stored that should not be.

// An event body and signature header from anyone: refused (400) unless
// signed with our secret, and nothing stored when refused.
func FuzzStripeWebhook(f *testing.F) {
	now := time.Now()
	body, header := signedEvent("evt_seed", "2023-10-16", now, testWebhookSecret)
	f.Add(body, header)
	f.Add(body, "")
	f.Add(body, "t=abc,v1=zz")
	f.Add("", header)
	f.Add(`{"id":"evt_x","object":"event"`, header)
	f.Add(`{"id":`+strings.Repeat("[", 10000)+`}`, "t=1,v1=00")
	f.Add(body, strings.Repeat("v1=", 3000))
	ts := newFullTestServer(f)
	h := ts.Handler()
	f.Fuzz(func(t *testing.T, body, header string) {
		before := countRows(t, ts, "stripe_events")
		rec := do(h, "POST", "/webhooks/stripe", "application/json", strings.NewReader(body), "Stripe-Signature", header)
		wantClean(t, rec.Code, rec.Body.String())
		if rec.Code != http.StatusOK && countRows(t, ts, "stripe_events") != before {
			t.Fatalf("a refused delivery (%d) stored an event", rec.Code)
		}
	})
}

// Any sign-in token and next path: a session only for the one token
// issued, once; a redirect only to a path on this site; never a 5xx.
func FuzzSignInToken(f *testing.F) {
	ts := newFullTestServer(f)
	h := ts.Handler()
	m, err := ts.members.FindOrCreateMember(context.Background(), "fuzz@example.org")
	if err != nil {
		f.Fatal(err)
	}
	link, err := ts.members.SignInLink(context.Background(), m.ID, "/vote")
	if err != nil {
		f.Fatal(err)
	}
	u, _ := url.Parse(link)
	issued := u.Query().Get("token")
	f.Add(issued, "/vote")
	f.Add(issued+"x", "/account")
	f.Add("", "//evil.example/")
	f.Add(strings.Repeat("A", 5000), "https://evil.example/")
	f.Add("../../etc/passwd", "/\\evil.example")
	f.Add("%00", "/account?x=\r\nSet-Cookie:")
	used := false
	f.Fuzz(func(t *testing.T, token, next string) {
		rec := do(h, "GET", "/auth/verify?"+url.Values{"token": {token}, "next": {next}}.Encode(), "", nil)
		wantClean(t, rec.Code, rec.Body.String())
		if loc := rec.Header().Get("Location"); loc != "" && (!strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.ContainsAny(loc, "\\\r\n")) {
			t.Fatalf("token %q, next %q: redirected to %q, off this site", token, next, loc)
		}
		if strings.Contains(rec.Header().Get("Set-Cookie"), "patronage_session=") {
			if token != issued || used {
				t.Fatalf("token %q (issued %q, used before: %v) started a session", token, issued, used)
			}
			used = true
		}
	})
}

// Any JSON body at every route that takes one, sent by an admin (who may
// call them all): a clear 4xx for what is wrong, never a 5xx.
func FuzzJSONBodies(f *testing.F) {
	ts := newFullTestServer(f)
	h := ts.Handler()
	token, _ := staffSetup(f, ts, members.RoleAdmin)
	var routes []string
	for _, r := range ts.engine.Routes() {
		if (r.Method == http.MethodPost || r.Method == http.MethodPatch) && strings.HasPrefix(r.Path, "/api/v1/") && !strings.Contains(r.Path, "/auth/") {
			routes = append(routes, r.Method+" "+pathParam.ReplaceAllString(r.Path, "nothing-here"))
		}
	}
	for _, body := range []string{`{}`, `{"email":"a@b.c"}`, `{"title":"x","opens_at":"2026-01-01T00:00:00Z","closes_at":"2025-01-01T00:00:00Z","topic_ids":[]}`,
		`{"slug":"c","name":"C","prices":[{"currency":"jpy","interval":"month","amount":-1}]}`, `{"currency":"eur","rate":"1e999","valid_from":"x"}`,
		`{"tier":"","until":"not a time"}`, `[`, `null`, `"\u0000"`, `{"email":"` + strings.Repeat("a", 5000) + `"}`, "{\"title\":\"\xff\xfe\"}"} {
		for i := range routes {
			f.Add(i, body)
		}
	}
	f.Fuzz(func(t *testing.T, route int, body string) {
		if route < 0 {
			route = -route
		}
		method, path, _ := strings.Cut(routes[route%len(routes)], " ")
		rec := do(h, method, path, "application/json", strings.NewReader(body), "Authorization", "Bearer "+token)
		wantClean(t, rec.Code, rec.Body.String())
	})
}

// Any query string at the staff figures and member lists.
func FuzzStaffQueries(f *testing.F) {
	ts := newFullTestServer(f)
	h := ts.Handler()
	token, _ := staffSetup(f, ts, members.RoleAdmin)
	paths := []string{"/api/v1/staff/metrics/summary", "/api/v1/staff/metrics/mrr", "/api/v1/staff/metrics/revenue", "/api/v1/staff/metrics/cohorts",
		"/api/v1/staff/metrics/tiers", "/api/v1/staff/members", "/api/v1/staff/members.csv", "/api/v1/staff/audit", "/api/v1/staff/webhooks/events"}
	for _, q := range []string{"", "at=2026-01-01T00:00:00Z", "at=yesterday", "from=2026-13&to=2026-01&currency=eur", "from=0001-01&to=9999-12&currency=eur",
		"currency=zzz", "currency=%00", "status=past_due&tier=x&q=%25_%5C&cursor=zz", "limit=-1", "limit=99999999999999999999", "cursor=" + strings.Repeat("x", 3000)} {
		for i := range paths {
			f.Add(i, q)
		}
	}
	f.Fuzz(func(t *testing.T, path int, query string) {
		if path < 0 {
			path = -path
		}
		if _, err := url.ParseQuery(query); err != nil || strings.IndexFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }) >= 0 {
			return // not a query string a client could put in a request line
		}
		rec := do(h, "GET", paths[path%len(paths)]+"?"+query, "", nil, "Authorization", "Bearer "+token)
		wantClean(t, rec.Code, rec.Body.String())
	})
}

// A hostile name in the members' CSV stays one cell and never starts a
// formula.
func FuzzCSVCells(f *testing.F) {
	for _, s := range []string{"=HYPERLINK(\"x\")", "+1", "-1+1", "-1500", "@SUM(A1)", "\tx", "\rx", "a,b", "\"quoted\"", "line\nbreak", "Ada"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		var b strings.Builder
		w := csv.NewWriter(&b)
		_ = w.Write(safeCells("mem_1", name))
		w.Flush()
		got, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
		if err != nil || len(got) != 1 || len(got[0]) != 2 {
			t.Fatalf("%q: written as %q, read back as %q, %v", name, b.String(), got, err)
		}
		cell := got[0][1]
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) && !plainNumber.MatchString(cell) {
			t.Fatalf("%q: the cell %q starts a formula", name, cell)
		}
	})
}

// wantClean fails on a 5xx or an answer that leaks how the server works.
func wantClean(t *testing.T, status int, body string) {
	t.Helper()
	if status >= 500 && status != http.StatusServiceUnavailable {
		t.Fatalf("%d: %s", status, body)
	}
	for _, leak := range []string{"goroutine ", "panic", "runtime/", "SQLSTATE", "sql: ", "SELECT ", "INSERT INTO"} {
		if strings.Contains(body, leak) {
			t.Fatalf("the answer (%d) shows %q: %s", status, leak, body)
		}
	}
}
