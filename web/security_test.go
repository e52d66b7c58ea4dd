package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

// otherSites are the ways a browser marks a request another site made (or
// leaves it unmarked): a write riding on the session cookie is refused in
// each.
var otherSites = []struct {
	name    string
	headers []string
}{
	{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}},
	{"same site, other origin", []string{"Sec-Fetch-Site", "same-site"}},
	{"foreign Origin", []string{"Origin", "https://evil.example"}},
	{"null Origin", []string{"Origin", "null"}},
	{"look-alike Origin", []string{"Origin", "http://patrons.test.evil.example"}},
	{"no provenance at all", nil},
}

// A write of a member's is refused when it rides on the session cookie
// from another site, and writes nothing; from this site it goes through.
// Every route is taken from the router: a write route without a line in
// the access matrix fails, as does one the cookie alone does not reach.
func TestEveryCookieWriteRefusesOtherSites(t *testing.T) {
	ts := newFullTestServer(t, func(d *Deps) { d.ReportingCurrency = "EUR" })
	h := ts.Handler()
	f := newRouteFixture(t, ts)
	free := []string{f.topic(t, "Trams"), f.topic(t, "Cycling")}
	victim, erased := f.member(t, "victim@example.org"), f.member(t, "erased@example.org")
	closing := f.openRound(t, f.topic(t, "Parks"), f.topic(t, "Buses"))

	// Who signs in for a route: the least the route's class lets through.
	owner := func(class accessClass) members.Member {
		switch class {
		case staffPage, staffAPI:
			return f.staff
		case adminAPI:
			return f.admin
		}
		return f.patron
	}
	// Requests that, let through, change something a user would see.
	const form = "application/x-www-form-urlencoded"
	type write struct{ path, contentType, body string }
	writes := map[string]write{
		"POST /signin":                                   {"", form, "create=1&email=joiner%40example.org"},
		"POST /vote/:id":                                 {"", form, "topic_id=" + f.topics[1]},
		"POST /topics/suggest":                           {"", form, "title=Bus+routes"},
		"POST /account/language":                         {"", form, "language=uk"},
		"PATCH /api/v1/me":                               {"", "", `{"language":"uk"}`},
		"POST /staff/voting":                             {"", form, "action=topic&title=Libraries"},
		"POST /api/v1/members":                           {"", "", `{"email":"new@example.org"}`},
		"POST /api/v1/auth/magic-link":                   {"", "", `{"email":"patron@example.org"}`},
		"POST /api/v1/topics/suggestions":                {"", "", `{"title":"Bus routes"}`},
		"POST /api/v1/rounds/:id/votes":                  {"", "", `{"topic_id":"` + f.topics[0] + `"}`},
		"POST /api/v1/staff/members":                     {"", "", `{"email":"walkin@example.org"}`},
		"DELETE /api/v1/staff/members/:id":               {"/api/v1/staff/members/" + erased.ID, "", ""},
		"POST /api/v1/staff/members/:id/sign-in-link":    {"/api/v1/staff/members/" + victim.ID + "/sign-in-link", "", ""},
		"POST /api/v1/staff/members/:id/complimentary":   {"/api/v1/staff/members/" + victim.ID + "/complimentary", "", `{"tier":"coffee"}`},
		"DELETE /api/v1/staff/members/:id/complimentary": {"/api/v1/staff/members/" + f.otherPatron.ID + "/complimentary", "", ""},
		"POST /api/v1/staff/fx-rates":                    {"", "", `{"currency":"usd","rate":"0.9","valid_from":"2026-01-01T00:00:00Z"}`},
		"POST /api/v1/staff/tiers":                       {"", "", `{"slug":"press","name":"Press pass","prices":[{"currency":"eur","interval":"month","amount":1500}]}`},
		"PATCH /api/v1/staff/tiers/:slug":                {"/api/v1/staff/tiers/coffee", "", `{"name":"Espresso"}`},
		"POST /api/v1/staff/topics":                      {"", "", `{"title":"Libraries"}`},
		"PATCH /api/v1/staff/topics/:id":                 {"/api/v1/staff/topics/" + f.topics[1], "", `{"title":"School dinners"}`},
		"POST /api/v1/staff/rounds":                      {"", "", `{"title":"Later","opens_at":"2030-01-01T00:00:00Z","closes_at":"2030-02-01T00:00:00Z","topic_ids":["` + strings.Join(free, `","`) + `"]}`},
		"PATCH /api/v1/staff/rounds/:id":                 {"/api/v1/staff/rounds/" + closing, "", `{"title":"Renamed"}`},
		"POST /api/v1/staff/rounds/:id/close":            {"/api/v1/staff/rounds/" + closing + "/close", "", ""},
	}
	request := func(method string, r write, headers ...string) *httptest.ResponseRecorder {
		ct := r.contentType
		if ct == "" && r.body != "" {
			ct = "application/json"
		}
		return do(h, method, r.path, ct, strings.NewReader(r.body), headers...)
	}

	ownSite := [][]string{{"Sec-Fetch-Site", "same-origin"}, {"Origin", "http://patrons.test"}}

	var routes []string
	for _, r := range ts.engine.Routes() {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			continue
		}
		routes = append(routes, r.Method+" "+r.Path)
	}
	slices.Sort(routes)
	refused, passed, changed := 0, 0, 0
	for _, key := range routes {
		class, ok := access[key]
		if !ok {
			t.Errorf("write route %s has no line in the access matrix: say who may call it, and its CSRF check follows", key)
			continue
		}
		method, pattern, _ := strings.Cut(key, " ")
		w := writes[key]
		if w.path == "" {
			w.path = f.path(pattern)
		}
		if w.body == "" && w.contentType == "" && method != http.MethodDelete {
			w.body = "{}"
		}
		who := owner(class)

		cookies := make([]string, len(otherSites))
		for i := range cookies {
			cookies[i] = f.session(t, who)
		}
		before := snapshot(t, ts)
		for i, site := range otherSites {
			rec := request(method, w, append([]string{"Cookie", cookies[i]}, site.headers...)...)
			refused++
			if rec.Code != http.StatusForbidden || decodeError(t, rec).Code != "csrf_failed" {
				t.Errorf("%s from %s with a session cookie = %d %s, want 403 csrf_failed", key, site.name, rec.Code, rec.Body)
			}
		}
		if after := snapshot(t, ts); after != before {
			t.Errorf("%s: refused requests from other sites changed the database or Redis:\n%s", key, changes(before, after))
		}

		for i, site := range ownSite {
			cookie := f.session(t, who)
			before := snapshot(t, ts)
			rec := request(method, w, append([]string{"Cookie", cookie}, site...)...)
			passed++
			// Mail goes out, and its sign-in token is stored, after the
			// answer: let it finish, so it is not taken for a later
			// route's doing.
			ts.members.Close(context.Background())
			got := rec.Code
			if got == http.StatusForbidden || got == http.StatusUnauthorized || got >= 500 ||
				(got == http.StatusSeeOther && strings.HasPrefix(rec.Header().Get("Location"), "/signin") && key != "POST /signout") {
				t.Errorf("%s from this site (%s) as the route's own caller = %d %s, want it let through", key, site[0], got, rec.Body)
			}
			if _, real := writes[key]; i == 0 && real {
				// The request is a real write, so its refusal above counts.
				if snapshot(t, ts) == before {
					t.Errorf("%s from this site = %d %s but changed nothing: the request is not the write it stands for", key, got, rec.Body)
				} else {
					changed++
				}
			}
		}
	}
	for key := range writes {
		if !slices.Contains(routes, key) {
			t.Errorf("writes lists %s, which the server does not have", key)
		}
	}
	t.Logf("FIGURES CSRF: %d write routes: %d requests from other sites refused, %d from this site let through, %d of them real writes seen to change the database or Redis", len(routes), refused, passed, changed)
}

// changes lists the lines of one snapshot missing from the other.
func changes(before, after string) string {
	var out []string
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// snapshot is everything a write could change: every row of every table,
// and every key in Redis under the test's prefix but rate counters.
func snapshot(t *testing.T, ts testServer) string {
	t.Helper()
	ctx := context.Background()
	var sum strings.Builder
	rows, err := ts.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		rows, err := ts.db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sum, "%s %v\n", table, vals)
		}
		rows.Close()
	}
	keys, err := ts.redis.Client.Keys(ctx, ts.redis.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	for _, k := range keys {
		// Rate counters expire on their own, mid-test.
		if !strings.HasPrefix(k, ts.redis.Prefix+"rate:") {
			fmt.Fprintf(&sum, "redis %s\n", k)
		}
	}
	return sum.String()
}

// burst sends n requests at once and returns their answers.
func burst(n int, send func(i int) *httptest.ResponseRecorder) []*httptest.ResponseRecorder {
	out := make([]*httptest.ResponseRecorder, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = send(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// limited counts the answers let through and checks every other one is a
// 429 rate_limited with a Retry-After of at least a second.
func limited(t *testing.T, what string, recs []*httptest.ResponseRecorder) (through int) {
	t.Helper()
	for _, rec := range recs {
		if rec.Code != http.StatusTooManyRequests {
			through++
			continue
		}
		if secs, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || secs < 1 {
			t.Errorf("%s: 429 with Retry-After %q, want a number of seconds", what, rec.Header().Get("Retry-After"))
		}
		if e := decodeError(t, rec); e.Code != "rate_limited" {
			t.Errorf("%s: 429 with code %q, want rate_limited", what, e.Code)
		}
	}
	return through
}

// Limits hold when the requests come all at once, on the real Redis when
// the test command provides one.
func TestRateLimitsHoldUnderConcurrency(t *testing.T) {
	const n, limit = 50, 5

	t.Run("sign-in mails per email", func(t *testing.T) {
		ts := newFullTestServer(t, func(d *Deps) { d.SignInPerEmailPerHour = limit; d.SignInPerIPPerHour = 1000 })
		h := ts.Handler()
		if _, err := ts.members.FindOrCreateMember(context.Background(), "busy@example.org"); err != nil {
			t.Fatal(err)
		}
		recs := burst(n, func(i int) *httptest.ResponseRecorder {
			return postJSON(h, "/api/v1/auth/magic-link", `{"email":"busy@example.org"}`)
		})
		if got := limited(t, "magic link", recs); got != limit {
			t.Errorf("%d sign-in requests at once for one email: %d accepted, want %d", n, got, limit)
		}
		for _, rec := range recs {
			if rec.Code != http.StatusTooManyRequests && rec.Code != http.StatusAccepted {
				t.Errorf("an accepted sign-in request = %d %s, want 202", rec.Code, rec.Body)
			}
		}
		ts.members.Close(context.Background()) // every send has finished
		for range limit {
			if m := ts.outbox.next(t); m.To != "busy@example.org" {
				t.Errorf("mail to %s", m.To)
			}
		}
		ts.outbox.none(t)
	})

	t.Run("checkouts per IP", func(t *testing.T) {
		ts := newFullTestServer(t, func(d *Deps) { d.CheckoutPerIPPerHour = limit })
		h := ts.Handler()
		recs := burst(n, func(i int) *httptest.ResponseRecorder {
			return postJSON(h, "/api/v1/checkout/donation", fmt.Sprintf(`{"amount":500,"currency":"EUR","email":"giver%d@example.org"}`, i))
		})
		if got := limited(t, "checkout", recs); got != limit {
			t.Errorf("%d checkouts at once from one IP: %d let through, want %d", n, got, limit)
		}
	})

	t.Run("votes per member per second", func(t *testing.T) {
		ts := newFullTestServer(t, func(d *Deps) { d.VotesPerMemberPerSec = limit })
		h := ts.Handler()
		f := newRouteFixture(t, ts)
		cookie := f.session(t, f.patron)
		began := time.Now()
		recs := burst(n, func(i int) *httptest.ResponseRecorder {
			return postJSON(h, "/api/v1/rounds/"+f.round+"/votes", `{"topic_id":"`+f.topics[i%2]+`"}`, "Cookie", cookie, "Sec-Fetch-Site", "same-origin")
		})
		elapsed := time.Since(began)
		// limit a second with a burst of limit: at most limit, plus one
		// for each 1/limit of a second the burst itself took.
		most := limit + int(elapsed*limit/time.Second) + 1
		got := limited(t, "vote", recs)
		if got < limit || got > most {
			t.Errorf("%d votes at once by one member over %v: %d let through, want %d to %d", n, elapsed, got, limit, most)
		}
		t.Logf("%d votes at once over %v: %d let through (limit %d a second)", n, elapsed, got, limit)
	})
}

// A session id planted in the browser before sign-in (session fixation) is
// never the one signing in makes, and never starts to work.
func TestSigningInNeverAdoptsAPlantedSessionID(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	if _, err := ts.members.FindOrCreateMember(context.Background(), "reader@example.org"); err != nil {
		t.Fatal(err)
	}
	planted := &http.Cookie{Name: SessionCookie, Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	postJSON(h, "/api/v1/auth/magic-link", `{"email":"reader@example.org"}`)
	got := sessionCookie(t, visit(h, signInLink(t, ts), planted))
	if got.Value == planted.Value {
		t.Fatal("signing in kept the session id the browser brought")
	}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(planted)); rec.Code != http.StatusUnauthorized {
		t.Errorf("the planted id after sign-in = %d on /api/v1/me, want 401", rec.Code)
	}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(got)); rec.Code != http.StatusOK {
		t.Errorf("the session made at sign-in = %d on /api/v1/me, want 200", rec.Code)
	}
}
