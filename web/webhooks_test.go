package web

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/patronage/patronage/members"
)

const testWebhookSecret = "whsec_test_web"

func signedEvent(id, apiVersion string, at time.Time, secret string) (string, string) {
	body := fmt.Sprintf(`{"id":%q,"object":"event","type":"invoice.paid","api_version":%q,"created":%d,"livemode":false,"data":{"object":{"id":"in_1","object":"invoice"}}}`,
		id, apiVersion, at.Unix())
	sig := webhook.ComputeSignature(at, []byte(body), secret)
	return body, fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(sig))
}

func countRows(t testing.TB, ts testServer, table string) int {
	t.Helper()
	var n int
	if err := ts.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWebhookIntake(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	now := time.Now()

	bad := []struct {
		name, header string
	}{
		{"missing signature", ""},
		{"wrong secret", func() string { _, s := signedEvent("evt_1", "2023-10-16", now, "whsec_wrong"); return s }()},
		{"too old", func() string {
			_, s := signedEvent("evt_1", "2023-10-16", now.Add(-10*time.Minute), testWebhookSecret)
			return s
		}()},
		{"garbage", "t=abc,v1=zz"},
	}
	body, _ := signedEvent("evt_1", "2023-10-16", now, testWebhookSecret)
	for _, b := range bad {
		rec := do(h, "POST", "/webhooks/stripe", "application/json", strings.NewReader(body), "Stripe-Signature", b.header)
		if rec.Code != http.StatusBadRequest || decodeError(t, rec).Code != "invalid_signature" {
			t.Errorf("%s: %d %s, want 400 invalid_signature", b.name, rec.Code, rec.Body)
		}
	}
	if n := countRows(t, ts, "stripe_events") + countRows(t, ts, "river_job"); n != 0 {
		t.Fatalf("refused deliveries wrote %d rows", n)
	}

	body, sig := signedEvent("evt_1", "2025-03-31.basil", now, testWebhookSecret)
	var wg sync.WaitGroup
	codes := make(chan string, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := do(h, "POST", "/webhooks/stripe", "application/json", strings.NewReader(body), "Stripe-Signature", sig)
			codes <- fmt.Sprint(rec.Code, " ", strings.TrimSpace(rec.Body.String()))
		}()
	}
	wg.Wait()
	close(codes)
	fresh := 0
	for c := range codes {
		switch c {
		case `200 {"duplicate":false,"received":true}`:
			fresh++
		case `200 {"duplicate":true,"received":true}`:
		default:
			t.Errorf("delivery answered %s", c)
		}
	}
	if fresh != 1 {
		t.Errorf("%d deliveries were taken as new, want 1", fresh)
	}
	if e, j := countRows(t, ts, "stripe_events"), countRows(t, ts, "river_job"); e != 1 || j != 1 {
		t.Errorf("stored %d events, %d jobs; want 1 and 1", e, j)
	}
}

func TestWebhookWithoutASecretIs503(t *testing.T) {
	ts := newFullTestServer(t, func(d *Deps) { d.WebhookSecrets = nil })
	body, sig := signedEvent("evt_1", "2023-10-16", time.Now(), testWebhookSecret)
	rec := do(ts.Handler(), "POST", "/webhooks/stripe", "application/json", strings.NewReader(body), "Stripe-Signature", sig)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "STRIPE_WEBHOOK_SECRET") {
		t.Errorf("no secret = %d %s", rec.Code, rec.Body)
	}
}

func TestWebhookBodyOverOneMiBIs413(t *testing.T) {
	ts := newFullTestServer(t)
	big := `{"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	rec := do(ts.Handler(), "POST", "/webhooks/stripe", "application/json", strings.NewReader(big), "Stripe-Signature", "t=1,v1=00")
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB event = %d, want 413", rec.Code)
	}
}

func TestStaffSeeAndRetryStoredEvents(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	admin, _ := staffSetup(t, ts, members.RoleAdmin)
	staff, _ := staffSetup(t, ts, members.RoleStaff)
	body, sig := signedEvent("evt_seen", "2023-10-16", time.Now(), testWebhookSecret)
	if rec := do(h, "POST", "/webhooks/stripe", "application/json", strings.NewReader(body), "Stripe-Signature", sig); rec.Code != 200 {
		t.Fatalf("intake = %d", rec.Code)
	}
	rec := do(h, "GET", "/api/v1/staff/webhooks/events?status=pending", "", nil, "Authorization", "Bearer "+staff)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"id":"evt_seen"`) || !strings.Contains(rec.Body.String(), `"status":"pending"`) {
		t.Fatalf("list = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/v1/staff/webhooks/events?status=processed", "", nil, "Authorization", "Bearer "+staff); strings.Contains(rec.Body.String(), "evt_seen") {
		t.Error("the status filter did not filter")
	}
	if rec := do(h, "GET", "/api/v1/staff/webhooks/events?status=sideways", "", nil, "Authorization", "Bearer "+staff); rec.Code != 422 {
		t.Errorf("bad status = %d", rec.Code)
	}
	if rec := do(h, "POST", "/api/v1/staff/webhooks/events/evt_seen/retry", "", nil, "Authorization", "Bearer "+staff); rec.Code != 403 {
		t.Errorf("staff retry = %d, want 403 (admin only)", rec.Code)
	}
	if rec := do(h, "POST", "/api/v1/staff/webhooks/events/evt_seen/retry", "", nil, "Authorization", "Bearer "+admin); rec.Code != 202 {
		t.Errorf("admin retry = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/api/v1/staff/webhooks/events/evt_nope/retry", "", nil, "Authorization", "Bearer "+admin); rec.Code != 404 {
		t.Errorf("retry unknown = %d", rec.Code)
	}
	if n := countRows(t, ts, "river_job"); n != 2 {
		t.Errorf("jobs after one retry = %d, want 2", n)
	}
}
