package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patronage/patronage/internal/money"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
)

// TestDashboardInTheBrowser feeds the real binary signed Stripe events
// through its webhook endpoint, months of subscriptions and invoices, then
// signs in as staff in Chromium, opens /staff, and checks that the charts
// are drawn and that the figures the page shows are the API's. A
// full-page screenshot is kept as a test artifact (TEST_ARTIFACTS_DIR).
func TestDashboardInTheBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	const secret = "whsec_dashboard"
	addr := freeLoopbackAddr(t)
	env := map[string]string{"HTTP_ADDR": addr, "DATA_DIR": filepath.Join(t.TempDir(), "data"), "BASE_URL": "http://" + addr,
		// Trust the events' own objects (no Stripe key to fetch them with),
		// so each state is dated by its event.
		"STRIPE_WEBHOOK_SECRET": secret, "STRIPE_WEBHOOK_MODE": "payload", "STRIPE_SYNC_INTERVAL": "off"}
	s := startServer(t, env)
	const adminEmail = "desk@example.org"
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", adminEmail)
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	token := tokenPattern.FindString(out)
	for _, tier := range []string{"coffee", "lunch"} {
		body := fmt.Sprintf(`{"slug":%q,"name":%q,"prices":[{"currency":"EUR","interval":"month","amount":500},{"currency":"JPY","interval":"month","amount":600}]}`, tier, strings.ToUpper(tier[:1])+tier[1:])
		if status, body := call(t, "POST", s.URL+"/api/v1/staff/tiers", token, body); status != 201 {
			t.Fatalf("create tier %s = %d %s", tier, status, body)
		}
	}

	// Four patrons over the last months: one upgrades, one's card fails
	// now, one leaves, one pays in yen.
	memberID := func(email string) string {
		t.Helper()
		status, body := call(t, "POST", s.URL+"/api/v1/staff/members", token, `{"email":"`+email+`"}`)
		var created struct{ Member struct{ ID string } }
		if status != 201 || json.Unmarshal([]byte(body), &created) != nil {
			t.Fatalf("create member %s = %d %s", email, status, body)
		}
		return created.Member.ID
	}
	now := time.Now().UTC()
	this := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	day := func(monthsAgo, d int) time.Time { return this.AddDate(0, -monthsAgo, d-1).Add(10 * time.Hour) }
	type change struct {
		status string
		qty    int64
		at     time.Time
	}
	type patron struct {
		email, tier, currency string
		amount                int64
		changes               []change
	}
	patrons := []patron{
		{"ann@example.org", "coffee", "eur", 500, []change{{"active", 1, day(5, 3)}, {"active", 2, day(2, 5)}}},
		{"bob@example.org", "lunch", "eur", 1500, []change{{"active", 1, day(4, 8)}, {"past_due", 1, now.Add(-time.Hour)}}},
		{"cat@example.org", "coffee", "eur", 700, []change{{"active", 1, day(6, 10)}, {"canceled", 1, day(2, 12)}}},
		{"dan@example.org", "coffee", "jpy", 600, []change{{"active", 1, day(3, 2)}}},
	}
	var events []map[string]any
	for i, p := range patrons {
		id := memberID(p.email)
		sub, customer := fmt.Sprintf("sub_dash_%d", i), fmt.Sprintf("cus_dash_%d", i)
		for k, ch := range p.changes {
			typ := "customer.subscription.updated"
			switch {
			case k == 0:
				typ = "customer.subscription.created"
			case ch.status == "canceled":
				typ = "customer.subscription.deleted"
			}
			events = append(events, map[string]any{"id": fmt.Sprintf("evt_dash_%d_%d", i, k), "object": "event", "type": typ, "api_version": "2023-10-16",
				"created": ch.at.Unix(), "livemode": false,
				"data": map[string]any{"object": map[string]any{
					"id": sub, "object": "subscription", "customer": customer, "status": ch.status, "currency": p.currency,
					"metadata": map[string]any{"member_id": id}, "created": p.changes[0].at.Unix(),
					"current_period_start": ch.at.Unix(), "current_period_end": ch.at.AddDate(0, 1, 0).Unix(),
					"items": map[string]any{"object": "list", "data": []any{map[string]any{"quantity": ch.qty, "price": map[string]any{
						"id": "price_dash_" + p.tier + "_" + p.currency, "currency": p.currency, "unit_amount": p.amount,
						"metadata":  map[string]any{"patronage_tier": p.tier},
						"recurring": map[string]any{"interval": "month", "interval_count": 1}}}}},
				}},
			})
		}
		// A paid invoice each month the subscription ran, for the revenue.
		paying := p.changes[0].at
		for m := 0; !paying.After(now) && m < 12; m++ {
			if last := p.changes[len(p.changes)-1]; last.status != "active" && !paying.Before(last.at) {
				break
			}
			amount := p.amount
			if len(p.changes) > 1 && p.changes[1].status == "active" && !paying.Before(p.changes[1].at) {
				amount *= p.changes[1].qty
			}
			events = append(events, map[string]any{"id": fmt.Sprintf("evt_dash_inv_%d_%d", i, m), "object": "event", "type": "invoice.paid",
				"api_version": "2023-10-16", "created": paying.Unix(), "livemode": false,
				"data": map[string]any{"object": map[string]any{
					"id": fmt.Sprintf("in_dash_%d_%d", i, m), "object": "invoice", "customer": customer, "subscription": sub, "status": "paid",
					"currency": p.currency, "amount_due": amount, "amount_paid": amount, "tax": amount / 10, "billing_reason": "subscription_cycle",
					"created": paying.Unix(), "status_transitions": map[string]any{"paid_at": paying.Unix()},
					"period_start": paying.Unix(), "period_end": paying.AddDate(0, 1, 0).Unix(),
				}},
			})
			paying = paying.AddDate(0, 1, 0)
		}
	}
	for _, ev := range events {
		body, header := stripefake.SignedDelivery(ev, secret, time.Now())
		if status, answer := call(t, "POST", s.URL+"/webhooks/stripe", "", string(body), "Stripe-Signature", header); status != 200 {
			t.Fatalf("deliver %s = %d %s", ev["id"], status, answer)
		}
	}
	waitUntil(t, 30*time.Second, func() bool {
		status, body := call(t, "GET", s.URL+"/api/v1/staff/webhooks/events?limit=500", token, "")
		var list struct {
			Events []struct {
				ID, Status string
				LastError  *string `json:"last_error"`
			}
		}
		if status != 200 || json.Unmarshal([]byte(body), &list) != nil {
			t.Fatalf("list events = %d %s", status, body)
		}
		done := 0
		for _, e := range list.Events {
			if e.LastError != nil {
				t.Fatalf("event %s failed: %s", e.ID, *e.LastError)
			}
			if e.Status == "processed" {
				done++
			}
		}
		return done == len(events)
	})

	var summary struct {
		Currencies []struct {
			Currency      string
			MRR           int64 `json:"mrr"`
			PayingPatrons int   `json:"paying_patrons"`
		}
	}
	getJSON(t, s.URL+"/api/v1/staff/metrics/summary", token, &summary)
	if len(summary.Currencies) != 2 || summary.Currencies[0].Currency != "eur" || summary.Currencies[0].MRR != 2500 {
		t.Fatalf("summary after the events = %+v; want EUR 25.00 of MRR (ann 2 × 5.00, bob 15.00 past due) and yen", summary)
	}
	eur := summary.Currencies[0]

	// Staff sign in on the page, and come back to the dashboard.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	b := openBrowser(t, ctx, chromium)
	b.run(chromedp.EmulateViewport(1280, 900))
	b.open(s.URL + "/staff")
	b.wantAt("/signin", "/staff")
	signIn := `//form[.//button[normalize-space()="Email me a sign-in link"]]`
	b.fill(signIn, "Email address", adminEmail)
	b.press(signIn, "Email me a sign-in link")
	b.wantHeading("Check your email")
	b.open(waitForSignInLink(t, s, adminEmail))
	b.wantAt("/staff", "")
	b.wantHeading("Dashboard")
	if got := b.text("#dashboard-currency"); got != "EUR" {
		t.Errorf("the dashboard opens in %q, want EUR, the currency with the most MRR", got)
	}

	// Five charts, drawn and labelled.
	var charts []struct {
		ID     string  `json:"id"`
		Title  string  `json:"title"`
		Shapes int     `json:"shapes"`
		Width  float64 `json:"width"`
		Height float64 `json:"height"`
	}
	b.evalInto(`[...document.querySelectorAll("svg.chart")].map(s => {
		const r = s.getBoundingClientRect();
		return {id: s.id, title: (s.querySelector("title") || {}).textContent || "", shapes: s.querySelectorAll("rect, path, circle").length, width: r.width, height: r.height};
	})`, &charts)
	if len(charts) != 5 {
		t.Errorf("the dashboard shows %d charts, want 5: %+v", len(charts), charts)
	}
	for _, c := range charts {
		if c.Title == "" || c.Shapes < 2 || c.Width < 300 || c.Height < 60 {
			t.Errorf("chart %s: title %q, %d shapes, %.0f×%.0fpx; want a titled chart with data, at least 300×60", c.ID, c.Title, c.Shapes, c.Width, c.Height)
		}
	}

	// The figures now: the summary's, to the minor unit, and as people read them.
	var figures map[string]string
	b.evalInto(`Object.fromEntries([...document.querySelectorAll(".kpi[data-figure]")].map(e =>
		[e.dataset.figure, (e.dataset.minor ?? e.dataset.value) + "|" + e.querySelector("dd").innerText]))`, &figures)
	if want := fmt.Sprintf("%d|%s", eur.MRR, money.Format(eur.MRR, "eur")); figures["mrr"] != want {
		t.Errorf("the page's MRR is %q, the API's %q", figures["mrr"], want)
	}
	if want := fmt.Sprintf("%d|%d", eur.PayingPatrons, eur.PayingPatrons); figures["paying_patrons"] != want {
		t.Errorf("the page's paying patrons are %q, the API's %q", figures["paying_patrons"], want)
	}

	// Month by month: the MRR table against the MRR endpoint.
	from, to := this.AddDate(0, -11, 0).Format("2006-01"), this.Format("2006-01")
	var mrr struct {
		Months []struct {
			Month     string
			MRREnd    int64 `json:"mrr_end"`
			New       int64
			Churn     int64
			PayingEnd int `json:"paying_patrons_end"`
		}
	}
	getJSON(t, s.URL+"/api/v1/staff/metrics/mrr?currency=eur&from="+from+"&to="+to, token, &mrr)
	var rows []string
	b.evalInto(`[...document.querySelectorAll("#table-mrr tbody tr")].map(r => [r.dataset.month,
		r.querySelector("[data-field=mrr_end]").dataset.minor, r.querySelector("[data-field=new]").dataset.minor,
		r.querySelector("[data-field=churn]").dataset.minor,
		document.querySelector("#table-paying tr[data-month='" + r.dataset.month + "'] [data-field=paying_patrons_end]").dataset.value].join(" "))`, &rows)
	var want []string
	for _, m := range mrr.Months {
		want = append(want, fmt.Sprintf("%s %d %d %d %d", m.Month, m.MRREnd, m.New, m.Churn, m.PayingEnd))
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("the MRR table (month, end, new, churn, paying):\n%s\nthe API:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	b.wantText("bob@example.org") // at risk: his card failed

	screenshot := b.screenshot()
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(path, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the dashboard: %s", path)

	// The currency switch is a link: yen, shown without decimals.
	b.followLink("JPY")
	b.wantAt("/staff", "")
	if got := b.text("#dashboard-currency"); got != "JPY" {
		t.Errorf("after following JPY the dashboard is in %q", got)
	}
	b.evalInto(`Object.fromEntries([...document.querySelectorAll(".kpi[data-figure]")].map(e =>
		[e.dataset.figure, (e.dataset.minor ?? e.dataset.value) + "|" + e.querySelector("dd").innerText]))`, &figures)
	if figures["mrr"] != "600|JPY 600" {
		t.Errorf("the MRR in yen reads %q, want 600|JPY 600", figures["mrr"])
	}
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	status, body := call(t, "GET", url, token, "")
	if status != 200 || json.Unmarshal([]byte(body), v) != nil {
		t.Fatalf("GET %s = %d %s", url, status, body)
	}
}

// screenshot is the whole page as a PNG.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	return png
}
