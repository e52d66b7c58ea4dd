package main

import (
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/stripeapi/stripemocktest"
)

var (
	secretPattern = regexp.MustCompile(`whsec_[0-9A-Za-z]+`)
	portalPattern = regexp.MustCompile(`bpc_[0-9A-Za-z]+`)
)

// writesSince are the requests that changed something in the fake after
// the first n requests: every method but GET.
func writesSince(fake *stripefake.Server, n int) []string {
	var out []string
	for _, r := range fake.Requests()[n:] {
		if r.Method != http.MethodGet {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// A newsroom goes live from the command line: setup-webhook makes the
// endpoint with exactly the events Patronage handles at v76's API version
// and prints its secret, setup-portal makes the portal from the tiers, and
// doctor says what is still wrong until nothing is. Each set-up command run
// twice changes nothing the second time.
func TestTheNewsroomSetsUpStripeFromTheCommandLine(t *testing.T) {
	fake := stripefake.New(t)
	const hook = "https://news.example.org/webhooks/stripe"
	env := map[string]string{"DATA_DIR": filepath.Join(t.TempDir(), "data"), "BASE_URL": "https://news.example.org",
		"STRIPE_SECRET_KEY": stripefake.SecretKey, "STRIPE_API_BASE": fake.URL, "NEWSROOM_NAME": "The Daily Example"}
	s := startServer(t, env)
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	token := tokenPattern.FindString(out)
	for _, tier := range []string{
		`{"slug":"coffee","name":"Coffee","prices":[{"currency":"eur","interval":"month","amount":500},{"currency":"eur","interval":"year","amount":5000},{"currency":"jpy","interval":"month","amount":700}]}`,
		`{"slug":"press","name":"Press pass","prices":[{"currency":"eur","interval":"month","amount":1500}]}`,
	} {
		if status, body := call(t, "POST", s.URL+"/api/v1/staff/tiers", token, tier); status != http.StatusCreated || !strings.Contains(body, `"stripe_sync":{"ok":true}`) {
			t.Fatalf("create tier = %d %s", status, body)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// Before anything is set up, doctor names each missing piece and how
	// to make it, and exits 1.
	out, stderr, code = runCommand(t, env, "stripe", "doctor", "--url", hook)
	if code != 1 || !strings.Contains(stderr, "to fix") {
		t.Errorf("doctor before set-up: exit %d, stderr %q; want 1", code, stderr)
	}
	for _, want := range []string{
		"ok   key: test-mode key of account acct_stripefake",
		"FIX  webhook secret: STRIPE_WEBHOOK_SECRET is empty",
		"FIX  webhook endpoint: no endpoint sends events to " + hook,
		"→ Run `patronage stripe setup-webhook --url " + hook + "`.",
		"FIX  billing portal: STRIPE_PORTAL_CONFIGURATION is empty",
		"ok   tier coffee: product ", "with 3 active price(s)",
		"ok   tier press: product ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor before set-up does not say %q:\n%s", want, out)
		}
	}

	// setup-webhook creates the endpoint and prints its secret.
	n := len(fake.Requests())
	out, stderr, code = runCommand(t, env, "stripe", "setup-webhook", "--url", hook)
	if code != 0 {
		t.Fatalf("setup-webhook: exit %d %s", code, stderr)
	}
	if got := writesSince(fake, n); !slices.Equal(got, []string{"POST /v1/webhook_endpoints"}) {
		t.Errorf("setup-webhook wrote %v, want one endpoint created", got)
	}
	endpoints := fake.WebhookEndpoints()
	if len(endpoints) != 1 {
		t.Fatalf("endpoints = %v, want 1", endpoints)
	}
	ep := endpoints[0]
	var events []string
	for _, e := range ep["enabled_events"].([]any) {
		events = append(events, e.(string))
	}
	if !slices.Equal(events, billing.WebhookEvents()) || len(events) != len(billing.EventTypes) {
		t.Errorf("endpoint events = %v, want exactly the %d billing handles", events, len(billing.EventTypes))
	}
	if ep["api_version"] != stripe.APIVersion || ep["url"] != hook || ep["status"] != "enabled" {
		t.Errorf("endpoint = %v, want %s at API version %s, enabled", ep, hook, stripe.APIVersion)
	}
	secret := secretPattern.FindString(out)
	if secret == "" || !strings.Contains(out, "Set STRIPE_WEBHOOK_SECRET="+secret) {
		t.Errorf("setup-webhook did not print the secret to set:\n%s", out)
	}

	// Run twice, it changes nothing and says so.
	// Without the secret configured, it says where to find it again.
	n = len(fake.Requests())
	out, stderr, code = runCommand(t, env, "stripe", "setup-webhook", "--url", hook)
	if code != 0 || !strings.Contains(out, "nothing changed") || secretPattern.MatchString(out) ||
		!strings.Contains(out, "reveal the signing secret of "+ep["id"].(string)+" in the Stripe Dashboard") {
		t.Errorf("second setup-webhook: exit %d %q %q", code, out, stderr)
	}
	if got := writesSince(fake, n); len(got) != 0 {
		t.Errorf("second setup-webhook wrote %v, want nothing", got)
	}

	// An endpoint changed in the Dashboard (an event unticked, disabled) is
	// mended in place: same id, same secret.
	sc := fake.Client(t)
	if _, err := sc.WebhookEndpoints.Update(ep["id"].(string), &stripe.WebhookEndpointParams{
		EnabledEvents: stripe.StringSlice([]string{"invoice.paid", "charge.succeeded"}), Disabled: stripe.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	n = len(fake.Requests())
	out, _, code = runCommand(t, env, "stripe", "setup-webhook", "--url", hook)
	if code != 0 || !strings.Contains(out, "Updated webhook endpoint "+ep["id"].(string)) || secretPattern.MatchString(out) {
		t.Errorf("setup-webhook after a Dashboard edit: exit %d\n%s", code, out)
	}
	if got := writesSince(fake, n); !slices.Equal(got, []string{"POST /v1/webhook_endpoints/" + ep["id"].(string)}) {
		t.Errorf("mending wrote %v, want one update of %s", got, ep["id"])
	}
	if got := fake.WebhookEndpoints(); len(got) != 1 || got[0]["status"] != "enabled" || len(got[0]["enabled_events"].([]any)) != len(billing.EventTypes) {
		t.Errorf("after mending: %v", got)
	}

	// setup-portal makes the portal from the tiers, and prints its id.
	env["STRIPE_WEBHOOK_SECRET"] = secret
	n = len(fake.Requests())
	out, stderr, code = runCommand(t, env, "stripe", "setup-portal", "--privacy-url", "https://news.example.org/privacy")
	if code != 0 {
		t.Fatalf("setup-portal: exit %d %s", code, stderr)
	}
	if got := writesSince(fake, n); !slices.Equal(got, []string{"POST /v1/billing_portal/configurations"}) {
		t.Errorf("setup-portal wrote %v, want one configuration created", got)
	}
	confID := portalPattern.FindString(out)
	if confID == "" || !strings.Contains(out, "Set STRIPE_PORTAL_CONFIGURATION="+confID) {
		t.Fatalf("setup-portal did not print the id to set:\n%s", out)
	}
	conf, _ := fake.PortalConfiguration(confID)
	features := conf["features"].(map[string]any)
	cancel, update := features["subscription_cancel"].(map[string]any), features["subscription_update"].(map[string]any)
	if cancel["enabled"] != true || cancel["mode"] != "at_period_end" {
		t.Errorf("portal cancel = %v, want at the period's end", cancel)
	}
	if update["enabled"] != true || !slices.Equal(update["default_allowed_updates"].([]any), []any{"price"}) {
		t.Errorf("portal update = %v, want price switches", update)
	}
	for _, f := range []string{"payment_method_update", "invoice_history"} {
		if features[f].(map[string]any)["enabled"] != true {
			t.Errorf("portal %s = %v, want enabled", f, features[f])
		}
	}
	if conf["default_return_url"] != "https://news.example.org/account" ||
		conf["business_profile"].(map[string]any)["headline"] != "The Daily Example" ||
		conf["business_profile"].(map[string]any)["privacy_policy_url"] != "https://news.example.org/privacy" {
		t.Errorf("portal return URL and profile = %v %v", conf["default_return_url"], conf["business_profile"])
	}
	// Every price of every tier, by its product, as Stripe holds them.
	want := map[string][]string{}
	for _, p := range fake.Prices() {
		if p["active"] == true {
			want[p["product"].(string)] = append(want[p["product"].(string)], p["id"].(string))
		}
	}
	got := map[string][]string{}
	for _, item := range update["products"].([]any) {
		for _, price := range item.(map[string]any)["prices"].([]any) {
			got[item.(map[string]any)["product"].(string)] = append(got[item.(map[string]any)["product"].(string)], price.(string))
		}
	}
	if len(got) != 2 || len(got) != len(want) {
		t.Errorf("portal products = %v, want the two tiers' %v", got, want)
	}
	for product, prices := range want {
		if !slices.Equal(slices.Sorted(slices.Values(got[product])), slices.Sorted(slices.Values(prices))) {
			t.Errorf("portal prices of %s = %v, want %v", product, got[product], prices)
		}
	}

	// Twice, nothing changes; found again by its id once it is configured.
	for _, configured := range []string{"", confID} {
		env["STRIPE_PORTAL_CONFIGURATION"] = configured
		n = len(fake.Requests())
		out, _, code = runCommand(t, env, "stripe", "setup-portal", "--privacy-url", "https://news.example.org/privacy")
		if code != 0 || !strings.Contains(out, confID+" matches the tiers; nothing changed") {
			t.Errorf("setup-portal again (STRIPE_PORTAL_CONFIGURATION=%q): exit %d\n%s", configured, code, out)
		}
		if got := writesSince(fake, n); len(got) != 0 {
			t.Errorf("setup-portal again wrote %v, want nothing", got)
		}
	}

	// Run without its flags, it keeps the policy URL an earlier run set.
	n = len(fake.Requests())
	out, _, code = runCommand(t, env, "stripe", "setup-portal")
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("setup-portal without its flags: exit %d\n%s", code, out)
	}
	if got := writesSince(fake, n); len(got) != 0 {
		t.Errorf("setup-portal without its flags wrote %v, want nothing", got)
	}
	if conf, _ := fake.PortalConfiguration(confID); conf["business_profile"].(map[string]any)["privacy_policy_url"] != "https://news.example.org/privacy" {
		t.Errorf("the privacy URL after a run without it = %v", conf["business_profile"])
	}

	// Now doctor finds nothing to fix.
	out, stderr, code = runCommand(t, env, "stripe", "doctor", "--url", hook)
	if code != 0 || strings.Contains(out, "FIX") || !strings.Contains(out, "Stripe is ready for Patronage.") {
		t.Errorf("doctor after set-up: exit %d %s\n%s", code, stderr, out)
	}

	// A price archived in the Dashboard and an endpoint left at an old API
	// version are named, each with its fix.
	archived := want[fake.Prices()[0]["product"].(string)][0]
	if _, err := sc.Prices.Update(archived, &stripe.PriceParams{Active: stripe.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	oldHook := "https://old.example.org/webhooks/stripe"
	old, err := sc.WebhookEndpoints.New(&stripe.WebhookEndpointParams{URL: stripe.String(oldHook), EnabledEvents: stripe.StringSlice([]string{"*"})})
	if err != nil {
		t.Fatal(err)
	}
	out, _, code = runCommand(t, env, "stripe", "doctor", "--url", oldHook)
	if code != 1 {
		t.Errorf("doctor with an archived price: exit %d, want 1", code)
	}
	for _, want := range []string{
		"price " + archived + " is archived", "→ Run `patronage stripe push-tiers`.",
		"FIX  webhook endpoint: " + old.ID + " sends to " + oldHook + ", but it also sends every event type (*)",
		"it renders events at the account's default API version, not " + stripe.APIVersion,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor does not say %q:\n%s", want, out)
		}
	}
	// push-tiers replaces the archived price; the portal then offers a
	// price that is gone until setup-portal puts the new one in.
	if out, stderr, code := runCommand(t, env, "stripe", "push-tiers"); code != 0 || !strings.Contains(out, "1 price(s) created") {
		t.Fatalf("push-tiers: exit %d %s %s", code, out, stderr)
	}
	out, _, _ = runCommand(t, env, "stripe", "doctor", "--url", hook)
	if !strings.Contains(out, "FIX  billing portal: "+confID+" differs from the tiers in: the tiers' prices") || strings.Contains(out, "FIX  tier") {
		t.Errorf("doctor after push-tiers does not name the portal's stale price alone:\n%s", out)
	}
	n = len(fake.Requests())
	out, _, code = runCommand(t, env, "stripe", "setup-portal", "--privacy-url", "https://news.example.org/privacy")
	if code != 0 || !strings.Contains(out, "Updated billing portal configuration "+confID+": the tiers' prices.") {
		t.Errorf("setup-portal after push-tiers: exit %d\n%s", code, out)
	}
	if got := writesSince(fake, n); !slices.Equal(got, []string{"POST /v1/billing_portal/configurations/" + confID}) {
		t.Errorf("setup-portal after push-tiers wrote %v, want one update of %s", got, confID)
	}
	if out, _, code := runCommand(t, env, "stripe", "doctor", "--url", hook); code != 0 {
		t.Errorf("doctor after setup-portal: exit %d\n%s", code, out)
	}

	// The old endpoint cannot take the new API version: a new one is made
	// beside it, both deliver until the new secret is deployed, and then
	// --delete-stale removes the old one.
	out, _, code = runCommand(t, env, "stripe", "setup-webhook", "--url", oldHook, "--delete-stale")
	newSecret := secretPattern.FindString(out)
	if code != 0 || newSecret == "" || !strings.Contains(out, "Set STRIPE_WEBHOOK_SECRET="+newSecret+",<the secret you have now>") ||
		!strings.Contains(out, "Nothing was deleted in this run") {
		t.Errorf("setup-webhook over an old version: exit %d\n%s", code, out)
	}
	n = len(fake.Requests())
	out, _, code = runCommand(t, env, "stripe", "setup-webhook", "--url", oldHook)
	if code != 0 || !strings.Contains(out, "nothing changed") || !strings.Contains(out, "--delete-stale") {
		t.Errorf("setup-webhook again beside the old endpoint: exit %d\n%s", code, out)
	}
	if got := writesSince(fake, n); len(got) != 0 {
		t.Errorf("setup-webhook again wrote %v, want nothing", got)
	}
	out, _, code = runCommand(t, env, "stripe", "setup-webhook", "--url", oldHook, "--delete-stale")
	if code != 0 || !strings.Contains(out, "Deleted the old endpoint "+old.ID) {
		t.Errorf("setup-webhook --delete-stale: exit %d\n%s", code, out)
	}
	var at []string
	for _, ep := range fake.WebhookEndpoints() {
		if ep["url"] == oldHook {
			at = append(at, ep["api_version"].(string))
		}
	}
	if !slices.Equal(at, []string{stripe.APIVersion}) {
		t.Errorf("endpoints at %s = %v, want one at %s", oldHook, at, stripe.APIVersion)
	}

	// Given an address Stripe cannot reach, doctor says so and still makes
	// its other checks.
	out, _, code = runCommand(t, env, "stripe", "doctor", "--url", "http://localhost:8080/webhooks/stripe")
	if code != 1 || !strings.Contains(out, "FIX  webhook endpoint: Stripe cannot reach http://localhost:8080/webhooks/stripe") ||
		!strings.Contains(out, "ok   key: ") || !strings.Contains(out, "ok   tier press: ") {
		t.Errorf("doctor --url localhost: exit %d\n%s", code, out)
	}

	// Stripe cannot reach loopback; a bad --url is a usage error.
	for _, url := range []string{"http://127.0.0.1:8080/webhooks/stripe", "http://localhost/webhooks/stripe", "news.example.org"} {
		if _, stderr, code := runCommand(t, env, "stripe", "setup-webhook", "--url", url); code != 2 || stderr == "" {
			t.Errorf("setup-webhook --url %s: exit %d %q, want 2", url, code, stderr)
		}
	}
}

// The set-up commands' requests are ones Stripe's API accepts: stripe-mock
// checks them against Stripe's OpenAPI description. (It keeps no state, so
// what they find there is its fixtures.)
func TestTheSetUpCommandsSpeakStripesAPI(t *testing.T) {
	env := map[string]string{"DATA_DIR": filepath.Join(t.TempDir(), "data"), "BASE_URL": "https://news.example.org",
		"STRIPE_SECRET_KEY": stripemocktest.SecretKey, "STRIPE_API_BASE": stripemocktest.URL(t)}
	s := startServer(t, env)
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	if status, body := call(t, "POST", s.URL+"/api/v1/staff/tiers", tokenPattern.FindString(out),
		`{"slug":"coffee","name":"Coffee","prices":[{"currency":"eur","interval":"month","amount":500}]}`); status != http.StatusCreated {
		t.Fatalf("create tier = %d %s", status, body)
	}
	// stripe-mock's API description (2022-11-15) predates the version v76
	// pins, so it refuses api_version=2023-10-16 that Stripe takes; the
	// endpoint's other params are checked with the newest version it knows.
	sc, err := stripeapi.New(stripeapi.Options{SecretKey: stripemocktest.SecretKey, APIBase: stripemocktest.URL(t), MaxNetworkRetries: stripeapi.NoRetries})
	if err != nil {
		t.Fatal(err)
	}
	params := billing.WebhookEndpointParams("https://news.example.org/webhooks/stripe")
	params.APIVersion = stripe.String("2022-11-15")
	if _, err := sc.WebhookEndpoints.New(params); err != nil {
		t.Errorf("create the webhook endpoint on stripe-mock: %v", err)
	}
	repair, changes := billing.RepairWebhookEndpointParams(&stripe.WebhookEndpoint{EnabledEvents: []string{"invoice.paid"}, Status: "disabled"})
	if len(changes) != 2 {
		t.Errorf("repairing a disabled endpoint with one event changes %v, want the events and its status", changes)
	}
	if _, err := sc.WebhookEndpoints.Update("we_123", repair); err != nil {
		t.Errorf("update the webhook endpoint on stripe-mock: %v", err)
	}
	out, stderr, code = runCommand(t, env, "stripe", "setup-portal", "--terms-url", "https://news.example.org/terms")
	if code != 0 || !strings.Contains(out, "Created billing portal configuration") {
		t.Errorf("setup-portal against stripe-mock: exit %d %s\n%s", code, stderr, out)
	}
	// stripe-mock's fixtures are not our endpoint or prices, so doctor has
	// things to fix; every request it made must still have been accepted.
	out, stderr, code = runCommand(t, env, "stripe", "doctor")
	if code != 1 || !strings.Contains(out, "ok   key: test-mode key of account acct_") || !strings.Contains(stderr, "to fix") ||
		strings.Contains(stderr, "Stripe") {
		t.Errorf("doctor against stripe-mock: exit %d %s\n%s", code, stderr, out)
	}
}
