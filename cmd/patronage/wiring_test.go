package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/patronage/patronage/internal/stripeapi/stripemocktest"
)

func call(t *testing.T, method, url, token, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTheBinaryWiresStripeFromItsConfiguration runs the real serve command
// with STRIPE_API_BASE at stripe-mock: the configuration must reach billing
// and the webhook intake, not just the packages' own tests.
func TestTheBinaryWiresStripeFromItsConfiguration(t *testing.T) {
	env := map[string]string{
		"DATA_DIR":              filepath.Join(t.TempDir(), "data"),
		"STRIPE_SECRET_KEY":     stripemocktest.SecretKey,
		"STRIPE_API_BASE":       stripemocktest.URL(t),
		"STRIPE_WEBHOOK_SECRET": "whsec_wiring",
	}
	s := startServer(t, env)
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "ed@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	token := tokenPattern.FindString(out)

	status, body := call(t, "POST", s.URL+"/api/v1/staff/tiers", token,
		`{"slug":"coffee","name":"Coffee","prices":[{"currency":"EUR","interval":"month","amount":500}]}`)
	if status != http.StatusCreated || !strings.Contains(body, `"stripe_sync":{"ok":true}`) {
		t.Fatalf("create tier = %d %s", status, body)
	}
	status, body = call(t, "POST", s.URL+"/api/v1/checkout/subscription", "",
		`{"tier":"coffee","interval":"month","currency":"EUR","email":"reader@example.org"}`)
	if status != http.StatusCreated || !strings.Contains(body, `"url":"https://`) {
		t.Fatalf("checkout = %d %s", status, body)
	}
	if out, stderr, code := runCommand(t, env, "stripe", "push-tiers"); code != 0 || !strings.Contains(out, "Stripe is up to date") {
		t.Errorf("push-tiers: exit %d %s %s", code, out, stderr)
	}
	// Reconciliation's list requests (customers, subscriptions, invoices,
	// events) are ones stripe-mock accepts.
	if out, stderr, code := runCommand(t, env, "stripe", "sync", "--since", "2026-01-01"); code != 0 || !strings.Contains(out, "Checked ") {
		t.Errorf("stripe sync: exit %d %s %s", code, out, stderr)
	}
	if _, stderr, code := runCommand(t, env, "stripe", "sync", "--since", "yesterday"); code != 2 || !strings.Contains(stderr, "YYYY-MM-DD") {
		t.Errorf("stripe sync --since yesterday: exit %d %s, want 2 naming the format", code, stderr)
	}
	if status, body := call(t, "GET", s.URL+"/api/v1/staff/stripe/drift", token, ""); status != 200 || !strings.Contains(body, `"report":{`) {
		t.Errorf("drift = %d %s, want the sync's report", status, body)
	}

	now := time.Now()
	event := fmt.Sprintf(`{"id":"evt_wiring","object":"event","type":"invoice.paid","api_version":"2023-10-16","created":%d,"livemode":false,"data":{"object":{"id":"in_1"}}}`, now.Unix())
	sig := fmt.Sprintf("t=%d,v1=%s", now.Unix(), hex.EncodeToString(webhook.ComputeSignature(now, []byte(event), "whsec_wiring")))
	if status, body := call(t, "POST", s.URL+"/webhooks/stripe", "", event, "Stripe-Signature", sig); status != 200 {
		t.Errorf("signed webhook = %d %s", status, body)
	}
	// The worker re-fetches the invoice (STRIPE_WEBHOOK_MODE=fetch) with a
	// request stripe-mock accepts, and the event is processed.
	var last string
	waitUntil(t, 30*time.Second, func() bool {
		_, last = call(t, "GET", s.URL+"/api/v1/staff/webhooks/events?status=processed", token, "")
		return strings.Contains(last, `"id":"evt_wiring"`)
	})
}
