package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
)

// A subscription that billing learned of shows in /api/v1/me, on /account
// and in the staff billing view, and one that ends takes access away.
func TestAccessShowsToThePatronAndToStaff(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	cookie := signUpAndSignIn(t, ts, "patron@example.org")
	var me struct {
		Member struct {
			ID     string     `json:"id"`
			Access accessJSON `json:"access"`
		} `json:"member"`
	}
	rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(cookie))
	if err := json.Unmarshal(rec.Body.Bytes(), &me); err != nil || me.Member.Access.Active {
		t.Fatalf("me before paying = %s, want inactive", rec.Body)
	}
	if page := do(h, "GET", "/account", "", nil, "Cookie", withCookie(cookie)); !strings.Contains(page.Body.String(), "Not a patron yet") {
		t.Errorf("/account before paying does not say so")
	}

	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	setSubscription(t, ts, me.Member.ID, "active", end)
	rec = do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(cookie))
	if err := json.Unmarshal(rec.Body.Bytes(), &me); err != nil {
		t.Fatal(err)
	}
	a := me.Member.Access
	if !a.Active || a.Source == nil || *a.Source != "subscription" || a.Tier == nil || *a.Tier != "coffee" || a.Until == nil || *a.Until != end.Format(time.RFC3339) {
		t.Fatalf("me while subscribed = %s, want active subscription on coffee until %s", rec.Body, end.Format(time.RFC3339))
	}
	page := do(h, "GET", "/account", "", nil, "Cookie", withCookie(cookie)).Body.String()
	for _, want := range []string{"Patron · coffee", "Coffee · EUR 5.00 a month", "Next charge", "EUR 5.00 on " + end.Format("2 January 2006")} {
		if !strings.Contains(page, want) {
			t.Errorf("/account while subscribed lacks %q:\n%s", want, page)
		}
	}
	token, _ := staffSetup(t, ts, "staff")
	rec = do(h, "GET", "/api/v1/staff/members/"+me.Member.ID+"/billing", "", nil, "Authorization", "Bearer "+token)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"active"`) || !strings.Contains(rec.Body.String(), `"active":true`) {
		t.Errorf("staff billing = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/v1/staff/members/mem_nobody/billing", "", nil, "Authorization", "Bearer "+token); rec.Code != http.StatusNotFound {
		t.Errorf("billing of an unknown member = %d, want 404", rec.Code)
	}

	setSubscription(t, ts, me.Member.ID, "canceled", end)
	rec = do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(cookie))
	if err := json.Unmarshal(rec.Body.Bytes(), &me); err != nil || me.Member.Access.Active {
		t.Errorf("me after cancelling = %s, want inactive", rec.Body)
	}
}

// setSubscription stands in for a processed Stripe event: it writes the
// member's subscription as a handler would and recomputes their access.
func setSubscription(t *testing.T, ts testServer, memberID, status string, end time.Time) {
	t.Helper()
	now := sqldb.Now()
	_, err := ts.db.Exec(`INSERT INTO tiers (slug, name, created_at, updated_at) VALUES ('coffee', 'Coffee', $1, $1) ON CONFLICT (slug) DO NOTHING`, now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.db.Exec(`INSERT INTO subscriptions (id, member_id, customer_id, tier_slug, status, currency, unit_amount, quantity, billing_interval,
		current_period_start, current_period_end, state_at, updated_at)
		VALUES ('sub_' || $1, $1, 'cus_' || $1, 'coffee', $2, 'EUR', 500, 1, 'month', $3, $4, $3, $3)
		ON CONFLICT (id) DO UPDATE SET status = excluded.status`, memberID, status, now, end)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.billing.RecomputeAccess(context.Background(), memberID); err != nil {
		t.Fatal(err)
	}
}
