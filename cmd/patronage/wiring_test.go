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
	"github.com/patronage/patronage/internal/testenv"
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

// With DATABASE_READ_URL the staff figures are read from the read replica
// (here a second schema standing in for one, holding figures the primary
// does not) and readiness checks it; exchange rates are written to the
// primary.
func TestStaffFiguresAreReadFromTheReadReplica(t *testing.T) {
	if testenv.PostgresURL(t) == "" {
		t.Skip("!!! NOT TESTED: a read replica needs TEST_DATABASE_URL (PostgreSQL) !!!")
	}
	primary, replica := testenv.PostgresSchemaURL(t), testenv.PostgresSchemaURL(t)
	if _, stderr, code := runCommand(t, map[string]string{"DATABASE_URL": replica, "DATA_DIR": t.TempDir()}, "migrate"); code != 0 {
		t.Fatalf("migrate the replica's schema: %s", stderr)
	}
	// 1,234 (minor units) of EUR MRR from yesterday on, on the replica only.
	rdb := openEnvDB(t, map[string]string{"DATABASE_URL": replica})
	day := time.Now().UTC().Unix()/86400 - 1
	month := int64(time.Now().UTC().Year())*12 + int64(time.Now().UTC().Month()) - 1
	for _, key := range []string{"s|eur|mrr", "s|eur|paying", "s|*|paying"} {
		delta := int64(1)
		if key == "s|eur|mrr" {
			delta = 1234
		}
		if _, err := rdb.Exec(`INSERT INTO metric_days (key, day, month, delta) VALUES ($1, $2, $3, $4)`, key, day, month, delta); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": primary, "DATABASE_READ_URL": replica, "REPORTING_CURRENCY": "EUR"}
	s := startServer(t, env)
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "ed@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	token := tokenPattern.FindString(out)
	if status, body := call(t, "GET", s.URL+"/api/v1/staff/metrics/summary?currency=eur", token, ""); status != 200 || !strings.Contains(body, `"mrr":1234`) {
		t.Errorf("summary = %d %s, want the replica's MRR of 1234", status, body)
	}
	if status, body := get(t, s.URL+"/readyz"); status != 200 || !strings.Contains(body, `"read_database":"ok"`) {
		t.Errorf("/readyz = %d %s, want the read replica checked", status, body)
	}
	if status, body := call(t, "POST", s.URL+"/api/v1/staff/fx-rates", token, `{"currency":"USD","rate":"0.9","valid_from":"2026-01-01T00:00:00Z"}`); status != http.StatusCreated {
		t.Fatalf("set a rate = %d %s", status, body)
	}
	var n int
	if err := openEnvDB(t, map[string]string{"DATABASE_URL": primary}).QueryRow(`SELECT COUNT(*) FROM fx_rates`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rates on the primary: %d %v, want the one just set", n, err)
	}
}
