package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/patronage/patronage/internal/stripeapi/stripemocktest"
	"github.com/patronage/patronage/members"
)

const coffeeTier = `{"slug":"coffee","name":"Coffee","description":"A cup a month.","benefits":["Vote on topics","Patron newsletter"],"vote_weight":1,"sort_order":1,
	"prices":[{"currency":"EUR","interval":"month","amount":500},{"currency":"eur","interval":"year","amount":5000},{"currency":"JPY","interval":"month","amount":500}]}`

func TestTiersAreCreatedValidatedAndListed(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	admin, _ := staffSetup(t, ts, members.RoleAdmin)
	staff, _ := staffSetup(t, ts, members.RoleStaff)
	asAdmin := []string{"Authorization", "Bearer " + admin}

	if rec := postJSON(h, "/api/v1/staff/tiers", coffeeTier, "Authorization", "Bearer "+staff); rec.Code != http.StatusForbidden {
		t.Errorf("staff (not admin) creating a tier = %d, want 403", rec.Code)
	}
	rec := postJSON(h, "/api/v1/staff/tiers", coffeeTier, asAdmin...)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create tier = %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(rec.Body.String(), `"stripe_sync":{"ok":true}`) {
		t.Errorf("without Stripe configured there is nothing to sync: %s", rec.Body)
	}
	if rec := postJSON(h, "/api/v1/staff/tiers", coffeeTier, asAdmin...); rec.Code != http.StatusConflict {
		t.Errorf("duplicate slug = %d, want 409", rec.Code)
	}

	bad := []struct {
		body, field string
	}{
		{`{"slug":"Bad Slug","name":"x","prices":[{"currency":"EUR","interval":"month","amount":500}]}`, "slug"},
		{`{"slug":"x","name":"","prices":[{"currency":"EUR","interval":"month","amount":500}]}`, "name"},
		{`{"slug":"x","name":"X","prices":[]}`, "prices"},
		{`{"slug":"x","name":"X","prices":[{"currency":"XYZ","interval":"month","amount":500}]}`, "prices[0].currency"},
		{`{"slug":"x","name":"X","prices":[{"currency":"EUR","interval":"week","amount":500}]}`, "prices[0].interval"},
		{`{"slug":"x","name":"X","prices":[{"currency":"EUR","interval":"month","amount":0}]}`, "prices[0].amount"},
		{`{"slug":"x","name":"X","prices":[{"currency":"EUR","interval":"month","amount":500},{"currency":"eur","interval":"month","amount":700}]}`, "prices[1]"},
		{`{"slug":"x","name":"X","vote_weight":0,"prices":[{"currency":"EUR","interval":"month","amount":500}]}`, "vote_weight"},
	}
	for _, b := range bad {
		rec := postJSON(h, "/api/v1/staff/tiers", b.body, asAdmin...)
		if rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("%s = %d, want 422", b.body, rec.Code)
			continue
		}
		if e := decodeError(t, rec); e.Fields[b.field] == "" {
			t.Errorf("%s: fields %v lack %q", b.body, e.Fields, b.field)
		}
	}

	rec = do(h, "GET", "/api/v1/tiers", "", nil)
	var public struct {
		Tiers []map[string]any `json:"tiers"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &public); err != nil || len(public.Tiers) != 1 {
		t.Fatalf("public tiers = %s", rec.Body)
	}
	got, _ := json.Marshal(public.Tiers[0]["prices"])
	if string(got) != `[{"amount":500,"currency":"EUR","interval":"month"},{"amount":5000,"currency":"EUR","interval":"year"},{"amount":500,"currency":"JPY","interval":"month"}]` {
		t.Errorf("prices = %s; want normalised currencies and JPY in whole yen", got)
	}
	if _, leaks := public.Tiers[0]["active"]; leaks {
		t.Error("the public list shows staff fields")
	}

	// Archive it: gone from the public list, kept for staff.
	req := do(h, "PATCH", "/api/v1/staff/tiers/coffee", "application/json", strings.NewReader(`{"active":false}`), asAdmin...)
	if req.Code != 200 {
		t.Fatalf("archive = %d %s", req.Code, req.Body)
	}
	if rec := do(h, "GET", "/api/v1/tiers", "", nil); strings.Contains(rec.Body.String(), "coffee") {
		t.Error("an archived tier is still offered")
	}
	if rec := do(h, "GET", "/api/v1/staff/tiers", "", nil, asAdmin...); !strings.Contains(rec.Body.String(), `"active":false`) {
		t.Errorf("staff list lost the archived tier: %s", rec.Body)
	}
	if rec := do(h, "PATCH", "/api/v1/staff/tiers/nope", "application/json", strings.NewReader(`{"active":false}`), asAdmin...); rec.Code != 404 {
		t.Errorf("patch unknown tier = %d", rec.Code)
	}
}

func TestCheckoutWithoutAStripeKeyIs503NamingTheVariable(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	admin, _ := staffSetup(t, ts, members.RoleAdmin)
	postJSON(h, "/api/v1/staff/tiers", coffeeTier, "Authorization", "Bearer "+admin)
	rec := postJSON(h, "/api/v1/checkout/subscription", `{"tier":"coffee","interval":"month","currency":"EUR","email":"r@example.org"}`)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	if e := decodeError(t, rec); e.Code != "payments_not_configured" || !strings.Contains(e.Message, "STRIPE_SECRET_KEY") {
		t.Errorf("error = %+v", e)
	}
}

func TestCheckoutBadInputAnswersBeforeStripeAndWritesNothing(t *testing.T) {
	ts := newStripeTestServer(t, stripemocktest.Client(t))
	h := ts.Handler()
	admin, _ := staffSetup(t, ts, members.RoleAdmin)
	if rec := postJSON(h, "/api/v1/staff/tiers", coffeeTier, "Authorization", "Bearer "+admin); rec.Code != 201 {
		t.Fatalf("create tier = %d %s", rec.Code, rec.Body)
	}
	cases := []struct {
		path, body string
		status     int
		code       string
		field      string
	}{
		{"/api/v1/checkout/subscription", `{"tier":"gold","interval":"month","currency":"EUR","email":"r@example.org"}`, 404, "tier_not_found", ""},
		{"/api/v1/checkout/subscription", `{"tier":"coffee","interval":"year","currency":"JPY","email":"r@example.org"}`, 422, "invalid", "currency"},
		{"/api/v1/checkout/subscription", `{"tier":"coffee","interval":"week","currency":"EUR","email":"r@example.org"}`, 422, "invalid", "interval"},
		{"/api/v1/checkout/subscription", `{"tier":"coffee","interval":"month","currency":"EUR"}`, 422, "invalid", "email"},
		{"/api/v1/checkout/donation", `{"amount":99,"currency":"EUR"}`, 422, "invalid", "amount"},
		{"/api/v1/checkout/donation", `{"amount":1000001,"currency":"JPY"}`, 422, "invalid", "amount"},
		{"/api/v1/checkout/donation", `{"amount":500,"currency":"ZZZ"}`, 422, "invalid", "currency"},
		{"/api/v1/checkout/donation", `{"amount":"5.00","currency":"EUR"}`, 422, "invalid", "amount"},
	}
	for _, c := range cases {
		rec := postJSON(h, c.path, c.body)
		if rec.Code != c.status {
			t.Errorf("%s %s = %d %s, want %d", c.path, c.body, rec.Code, rec.Body, c.status)
			continue
		}
		e := decodeError(t, rec)
		if e.Code != c.code || (c.field != "" && e.Fields[c.field] == "") {
			t.Errorf("%s %s: error %+v, want %s with fields.%s", c.path, c.body, e, c.code, c.field)
		}
	}
	var n int
	ts.db.QueryRow(`SELECT COUNT(*) FROM members WHERE email = 'r@example.org'`).Scan(&n)
	if n != 0 {
		t.Errorf("bad checkouts created %d members", n)
	}
}

func TestCheckoutAgainstStripeMock(t *testing.T) {
	ts := newStripeTestServer(t, stripemocktest.Client(t))
	h := ts.Handler()
	admin, _ := staffSetup(t, ts, members.RoleAdmin)
	if rec := postJSON(h, "/api/v1/staff/tiers", coffeeTier, "Authorization", "Bearer "+admin); rec.Code != 201 {
		t.Fatalf("create tier = %d %s", rec.Code, rec.Body)
	}
	for _, c := range []struct{ path, body string }{
		{"/api/v1/checkout/subscription", `{"tier":"coffee","interval":"month","currency":"EUR","email":"new@example.org"}`},
		{"/api/v1/checkout/subscription", `{"tier":"coffee","interval":"month","currency":"JPY","email":"new@example.org"}`},
		{"/api/v1/checkout/donation", `{"amount":500,"currency":"JPY","email":"giver@example.org","message":"Keep going"}`},
		{"/api/v1/checkout/donation", `{"amount":2500,"currency":"EUR"}`},
	} {
		rec := postJSON(h, c.path, c.body)
		if rec.Code != http.StatusCreated {
			t.Errorf("%s %s = %d %s", c.path, c.body, rec.Code, rec.Body)
			continue
		}
		var out struct {
			URL       string `json:"url"`
			SessionID string `json:"session_id"`
		}
		json.Unmarshal(rec.Body.Bytes(), &out)
		if !strings.HasPrefix(out.URL, "https://") || out.SessionID == "" {
			t.Errorf("%s: answer %s lacks a url or session id", c.path, rec.Body)
		}
	}
	m, err := ts.members.FindMemberByEmail(t.Context(), "new@example.org")
	if err != nil || !strings.HasPrefix(m.StripeCustomerID, "cus_") {
		t.Errorf("the new member = %+v (%v), want a linked Stripe customer", m, err)
	}
}
