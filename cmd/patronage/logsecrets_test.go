package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/mail/mailtest"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/web"
)

// The real server, logging everything at debug level, goes through a
// reader's and the newsroom's whole day: mail over SMTP with a password,
// Stripe with a secret key (one request failing once), signed webhooks and
// a forged one, staff API calls with a token, sign-in links used, reused
// and replaced, a vote, a sign-out. Not one secret it was given or made may
// appear anywhere in what it logged.
func TestNoSecretReachesTheLogs(t *testing.T) {
	smtp := mailtest.Start(t, mailtest.StartTLS)
	fake := stripefake.New(t)
	addr := freeLoopbackAddr(t)
	base := "http://" + addr
	const (
		stripeKey     = "sk_test_logsecretsKey7c1e2b9a4d"
		webhookSecret = "whsec_logsecretsHook5f3a8e2c71"
		metricsToken  = "metrics-logsecrets-94b1c0de"
	)
	env := map[string]string{
		"HTTP_ADDR":             addr,
		"BASE_URL":              base,
		"DATA_DIR":              filepath.Join(t.TempDir(), "data"),
		"ENV_FILE":              "/dev/null",
		"LOG_LEVEL":             "debug",
		"SMTP_URL":              "smtp://" + mailtest.User + ":" + url.PathEscape(mailtest.Password) + "@" + smtp.Addr + "?tls_skip_verify=true",
		"MAIL_FROM":             "The Log Times <patrons@example.org>",
		"STRIPE_SECRET_KEY":     stripeKey,
		"STRIPE_API_BASE":       fake.URL,
		"STRIPE_WEBHOOK_SECRET": webhookSecret,
		"STRIPE_SYNC_INTERVAL":  "off",
		"METRICS_TOKEN":         metricsToken,
	}
	s := startServer(t, env)
	secrets := map[string]string{
		"the Stripe secret key":        stripeKey,
		"the webhook secret":           webhookSecret,
		"the metrics token":            metricsToken,
		"the SMTP password":            mailtest.Password,
		"the SMTP password as written": url.PathEscape(mailtest.Password),
	}
	tokens := 0
	keepLinkToken := func(link string) {
		u, err := url.Parse(link)
		if err != nil || u.Query().Get("token") == "" {
			t.Fatalf("sign-in link %q holds no token", link)
		}
		tokens++
		secrets[fmt.Sprintf("sign-in token %d", tokens)] = u.Query().Get("token")
	}
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	staffToken := tokenPattern.FindString(out)
	secrets["the staff API token"] = staffToken
	if link := signInLinkPattern.FindString(out); link != "" {
		keepLinkToken(link)
	}

	// A browser without redirects, so every Set-Cookie is seen.
	sessions := 0
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, path, body string, headers ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			if c.Name == web.SessionCookie && c.Value != "" {
				sessions++
				secrets[fmt.Sprintf("session id %d", sessions)] = c.Value
			}
		}
		return resp.StatusCode, string(b)
	}
	mailed := map[string]int{}
	signIn := func(email string, cookie ...string) string {
		t.Helper()
		m := smtp.Await(t, email, mailed[email])
		mailed[email]++
		link := signInLinkPattern.FindString(m.Text)
		keepLinkToken(link)
		u, _ := url.Parse(link)
		status, body := send("GET", u.RequestURI(), "", cookie...)
		if status != http.StatusSeeOther {
			t.Fatalf("sign-in link = %d %s", status, body)
		}
		if status, _ := send("GET", u.RequestURI(), ""); status != http.StatusBadRequest {
			t.Errorf("the used sign-in link again = %d, want 400", status)
		}
		return web.SessionCookie + "=" + secrets[fmt.Sprintf("session id %d", sessions)]
	}
	staff := func(method, path, body string) string {
		t.Helper()
		status, resp := call(t, method, base+path, staffToken, body)
		if status >= 300 {
			t.Fatalf("%s %s = %d %s", method, path, status, resp)
		}
		return resp
	}

	// The newsroom sets up a tier (Stripe is asked, and fails once) and a
	// round to vote in.
	fake.FailNext(1, http.StatusInternalServerError)
	staff("POST", "/api/v1/staff/tiers", `{"slug":"coffee","name":"Coffee","prices":[{"currency":"eur","interval":"month","amount":500}]}`)
	var topics []string
	for _, title := range []string{"Flood defences", "School meals"} {
		var created struct{ Topic struct{ ID string } }
		json.Unmarshal([]byte(staff("POST", "/api/v1/staff/topics", `{"title":"`+title+`"}`)), &created)
		topics = append(topics, created.Topic.ID)
	}
	var round struct{ Round struct{ ID string } }
	json.Unmarshal([]byte(staff("POST", "/api/v1/staff/rounds", fmt.Sprintf(`{"title":"Next","opens_at":%q,"closes_at":%q,"topic_ids":["%s","%s"]}`,
		time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), topics[0], topics[1]))), &round)

	// A reader signs up, signs in by the mailed link, then again by a
	// second link over the first session.
	if status, body := send("POST", "/api/v1/members", `{"email":"reader@example.org","name":"Ada"}`); status != http.StatusAccepted {
		t.Fatalf("sign-up = %d %s", status, body)
	}
	first := signIn("reader@example.org")
	if status, body := send("POST", "/api/v1/auth/magic-link", `{"email":"reader@example.org"}`); status != http.StatusAccepted {
		t.Fatalf("magic link = %d %s", status, body)
	}
	cookie := signIn("reader@example.org", "Cookie", first)
	own := []string{"Cookie", cookie, "Origin", base}

	// They subscribe through Checkout; Stripe's events arrive signed, and
	// one forged.
	status, body := send("POST", "/api/v1/checkout/subscription", `{"tier":"coffee","interval":"month","currency":"EUR"}`, own...)
	var checkout struct {
		SessionID string `json:"session_id"`
	}
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &checkout) != nil {
		t.Fatalf("checkout = %d %s", status, body)
	}
	if _, err := fake.CompleteCheckoutSession(checkout.SessionID); err != nil {
		t.Fatal(err)
	}
	events := fake.TakeEvents()
	for _, ev := range events {
		body, header := stripefake.SignedDelivery(ev, webhookSecret, time.Now())
		if status, resp := send("POST", "/webhooks/stripe", string(body), "Stripe-Signature", header); status != http.StatusOK {
			t.Errorf("delivery of %s = %d %s", ev["id"], status, resp)
		}
	}
	forged, header := stripefake.SignedDelivery(events[0], "whsec_not_the_secret", time.Now())
	if status, _ := send("POST", "/webhooks/stripe", string(forged), "Stripe-Signature", header); status != http.StatusBadRequest {
		t.Errorf("a forged delivery = %d, want 400", status)
	}
	waitUntil(t, 30*time.Second, func() bool {
		_, me := send("GET", "/api/v1/me", "", own...)
		return strings.Contains(me, `"active":true`)
	})

	// They vote; staff look them up and mail them a link; they sign out.
	if status, body := send("POST", "/api/v1/rounds/"+round.Round.ID+"/votes", `{"topic_id":"`+topics[0]+`"}`, own...); status != http.StatusCreated {
		t.Errorf("vote = %d %s", status, body)
	}
	var found struct{ Members []struct{ ID string } }
	json.Unmarshal([]byte(staff("GET", "/api/v1/staff/members?email=reader@example.org", "")), &found)
	if len(found.Members) != 1 {
		t.Fatalf("staff lookup found %d members", len(found.Members))
	}
	var link struct{ URL string }
	json.Unmarshal([]byte(staff("POST", "/api/v1/staff/members/"+found.Members[0].ID+"/sign-in-link", "")), &link)
	keepLinkToken(link.URL)
	staff("GET", "/api/v1/staff/webhooks/events", "")
	if status, _ := call(t, "GET", base+"/metrics", metricsToken, ""); status != http.StatusOK {
		t.Errorf("metrics with the token = %d", status)
	}
	if status, _ := send("POST", "/api/v1/auth/logout", "", own...); status != http.StatusNoContent {
		t.Errorf("logout = %d", status)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	logs := s.logs.String()
	if tokens < 3 || sessions < 2 {
		t.Fatalf("the scenario issued %d sign-in tokens and %d sessions, want at least 3 and 2", tokens, sessions)
	}
	if msgs, auth := smtp.Received(); len(msgs) < 2 || len(auth) < 2 {
		t.Errorf("the SMTP server received %d messages and %d logins, want the sign-in mails, sent with the password", len(msgs), len(auth))
	}
	// The logs are there to look in: a line for the sign-in link's
	// request, with its path but not its query.
	var verifyLines int
	for _, line := range strings.Split(logs, "\n") {
		var entry struct{ Msg, Route, Path string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "request" && entry.Route == "/auth/verify" {
			verifyLines++
			if entry.Path != "/auth/verify" {
				t.Errorf("the sign-in request is logged with path %q, want /auth/verify alone", entry.Path)
			}
		}
	}
	if verifyLines < 4 {
		t.Errorf("%d request lines for /auth/verify, want one for each of the 4 visits", verifyLines)
	}
	if strings.Contains(logs, "token=") {
		t.Error("the logs hold a token= query parameter")
	}
	for what, secret := range secrets {
		if i := strings.Index(logs, secret); i >= 0 {
			start := strings.LastIndex(logs[:i], "\n") + 1
			end := i + strings.Index(logs[i:], "\n")
			t.Errorf("%s (%s) is in the logs:\n%s", what, secret, logs[start:max(end, i+len(secret))])
		}
	}
	t.Logf("%d bytes of logs checked for %d secrets: %d sign-in tokens, %d session ids", len(logs), len(secrets), tokens, sessions)
}
