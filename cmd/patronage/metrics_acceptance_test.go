package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/metrics/metricstest"
)

// Nine months of a patron program played by the Stripe fake — euros,
// dollars and yen; monthly, yearly, weekly, three-monthly and fifteen-day
// prices; quantities; forever and repeating coupons; trials, one paused;
// failed payments, recovered and not; upgrades and downgrades; refunds;
// churn and return — are fed through POST /webhooks/stripe of the real
// server, and every month's staff figures must equal a recomputation from
// the definitions (metricstest) of what the events themselves say, to the
// minor unit. On SQLite the events arrive all at once, shuffled, a sixth
// of them twice, with the payloads trusted; on PostgreSQL each
// operation's events arrive as it happens and the server fetches the
// objects from the fake.
func TestStaffFiguresEqualARecomputationOfTheWebhooks(t *testing.T) {
	type setup struct {
		mode string
		env  func(t *testing.T) map[string]string
	}
	runs := map[string]setup{"sqlite": {"payload", func(t *testing.T) map[string]string {
		return map[string]string{"DATA_DIR": filepath.Join(t.TempDir(), "data")}
	}}}
	if testenv.PostgresURL(t) != "" {
		runs["postgres"] = setup{"fetch", func(t *testing.T) map[string]string {
			return map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": testenv.PostgresSchemaURL(t)}
		}}
	}
	for name, run := range runs {
		t.Run(name+"/"+run.mode, func(t *testing.T) {
			t.Parallel()
			figuresScenario(t, run.mode, run.env(t))
		})
	}
}

const acceptanceSecret = "whsec_acceptance"

func figuresScenario(t *testing.T, mode string, env map[string]string) {
	fake := stripefake.New(t)
	for k, v := range map[string]string{"ENV_FILE": "/dev/null", "STRIPE_SECRET_KEY": stripefake.SecretKey, "STRIPE_API_BASE": fake.URL,
		"STRIPE_WEBHOOK_SECRET": acceptanceSecret, "STRIPE_WEBHOOK_MODE": mode, "STRIPE_SYNC_INTERVAL": "off"} {
		env[k] = v
	}
	s := startServer(t, env)
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	token := tokenPattern.FindString(out)

	// Two tiers through the staff API (their products and prices are made
	// in the fake); three more prices of the coffee tier made in the
	// Dashboard, at intervals the tier form does not offer.
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	fake.SetNow(start.Add(-24 * time.Hour))
	for _, tier := range []string{
		`{"slug":"coffee","name":"Coffee","prices":[{"currency":"eur","interval":"month","amount":500},{"currency":"jpy","interval":"month","amount":800},
			{"currency":"usd","interval":"month","amount":400},{"currency":"usd","interval":"year","amount":4000}]}`,
		`{"slug":"press","name":"Press pass","prices":[{"currency":"eur","interval":"month","amount":1500},{"currency":"eur","interval":"year","amount":15000},
			{"currency":"usd","interval":"month","amount":1200}]}`,
	} {
		if status, body := call(t, "POST", s.URL+"/api/v1/staff/tiers", token, tier); status != http.StatusCreated {
			t.Fatalf("create tier = %d %s", status, body)
		}
	}
	sc := fake.Client(t)
	price := map[string]string{} // "tier currency interval count" → price id
	for _, p := range fake.Prices() {
		rec := p["recurring"].(map[string]any)
		price[fmt.Sprintf("%s %s %s %d", p["metadata"].(map[string]any)["patronage_tier"], p["currency"], rec["interval"], rec["interval_count"])] = p["id"].(string)
	}
	coffee, _ := fake.Price(price["coffee eur month 1"])
	for _, extra := range []struct {
		currency, interval string
		count, amount      int64
	}{{"usd", "week", 1, 300}, {"eur", "month", 3, 1400}, {"jpy", "day", 15, 100}} {
		p, err := sc.Prices.New(&stripe.PriceParams{Currency: stripe.String(extra.currency), UnitAmount: stripe.Int64(extra.amount),
			Product: stripe.String(coffee["product"].(string)), Metadata: map[string]string{"patronage_tier": "coffee"},
			Recurring: &stripe.PriceRecurringParams{Interval: stripe.String(extra.interval), IntervalCount: stripe.Int64(extra.count)}})
		if err != nil {
			t.Fatal(err)
		}
		price[fmt.Sprintf("coffee %s %s %d", extra.currency, extra.interval, extra.count)] = p.ID
	}

	w := &world{t: t, fake: fake, url: s.URL, token: token, live: mode == "fetch", renewals: map[string]int{}, failing: map[string]map[int]bool{},
		ending: map[string]bool{}}
	patron := func(n int) string {
		status, body := call(t, "POST", s.URL+"/api/v1/staff/members", token, fmt.Sprintf(`{"email":"patron%d@example.org"}`, n))
		var created struct{ Member struct{ ID string } }
		if status != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil {
			t.Fatalf("create member = %d %s", status, body)
		}
		cus, err := sc.Customers.New(&stripe.CustomerParams{Email: stripe.String(fmt.Sprintf("patron%d@example.org", n))})
		if err != nil {
			t.Fatal(err)
		}
		w.members = append(w.members, [2]string{cus.ID, created.Member.ID})
		return cus.ID
	}
	day := func(month, d int) time.Time { return time.Date(2026, time.Month(month), d, 9, 0, 0, 0, time.UTC) }
	p1, p2, p3, p4, p5, p6, p7, p8, p9 := patron(1), patron(2), patron(3), patron(4), patron(5), patron(6), patron(7), patron(8), patron(9)

	// p1: two monthly coffees in euros; a forever 20 % coupon; up to press.
	w.at(day(1, 5))
	s1 := w.subscribe(p1, price["coffee eur month 1"], 2, 0)
	w.at(day(3, 10))
	w.do(fake.ApplyCoupon(s1, 20, 0, "forever", 0))
	w.at(day(5, 12))
	w.do(fake.ChangePrice(s1, price["press eur month 1"]))
	// p2: yen, a 14-day trial then paying; the second renewal fails and is
	// paid five days later; the fourth fails and the subscription ends.
	w.at(day(1, 20))
	s2 := w.subscribe(p2, price["coffee jpy month 1"], 1, 14)
	w.at(day(2, 3))
	w.do(fake.EndTrial(s2, true))
	w.failing[s2] = map[int]bool{1: true, 3: true}
	w.at(day(4, 8))
	w.do(fake.PayInvoice(w.latestInvoice(s2)))
	w.at(day(6, 20))
	w.do(fake.EndSubscription(s2))
	// p3: weekly in dollars with a repeating coupon (which never counts),
	// cancelled at a period's end; back in June, monthly.
	w.at(day(2, 2))
	s3 := w.subscribe(p3, price["coffee usd week 1"], 1, 0)
	w.at(day(2, 9))
	w.do(fake.ApplyCoupon(s3, 0, 100, "repeating", 2))
	w.at(day(4, 1))
	w.do(fake.SetCancelAtPeriodEnd(s3, true))
	w.ending[s3] = true
	w.at(day(6, 15))
	w.subscribe(p3, price["coffee usd month 1"], 1, 0)
	// p4: a yearly press pass, part of it refunded, down to monthly coffee.
	w.at(day(2, 14))
	s4 := w.subscribe(p4, price["press eur year 1"], 1, 0)
	w.at(day(3, 1))
	w.refund(s4, 2000)
	w.at(day(7, 1))
	w.do(fake.ChangePrice(s4, price["coffee eur month 1"]))
	// p5: every three months, 12.5 % off for ever; ends in June.
	w.at(day(3, 3))
	s5 := w.subscribe(p5, price["coffee eur month 3"], 1, 0)
	w.at(day(3, 3).Add(time.Hour))
	w.do(fake.ApplyCoupon(s5, 12.5, 0, "forever", 0))
	w.at(day(6, 10))
	w.do(fake.EndSubscription(s5))
	// p6: every fifteen days, in yen.
	w.at(day(3, 15))
	w.subscribe(p6, price["coffee jpy day 15"], 1, 0)
	// p7: three press passes in dollars; a renewal refunded in full; the
	// August renewal fails and stays unpaid.
	w.at(day(4, 2))
	s7 := w.subscribe(p7, price["press usd month 1"], 3, 0)
	w.failing[s7] = map[int]bool{3: true, 4: true}
	w.at(day(5, 5))
	w.refund(s7, 0)
	// p8: yearly coffee in dollars, 500 off for ever.
	w.at(day(5, 20))
	s8 := w.subscribe(p8, price["coffee usd year 1"], 1, 0)
	w.at(day(5, 20).Add(time.Hour))
	w.do(fake.ApplyCoupon(s8, 0, 500, "forever", 0))
	// p9: a trial that ends with no card (paused), resumed in August.
	w.at(day(7, 1))
	s9 := w.subscribe(p9, price["coffee eur month 1"], 1, 14)
	w.at(day(7, 15))
	w.do(fake.EndTrial(s9, false))
	w.at(day(8, 1))
	w.do(fake.ResumeSubscription(s9))
	end := day(9, 20)
	w.at(end)

	events := fake.Events()
	if !w.live {
		w.deliverShuffled(events)
	}
	w.waitProcessed(events)
	if n := w.count(events, "customer.subscription."); n < 40 {
		t.Fatalf("the scenario made %d subscription events, want a season's worth", n)
	}

	rows, revenue, payments := recomputeFrom(t, events, w.memberOf())
	const from, to = "2026-01", "2026-09"
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	// The scenario has every kind of movement, refunds, a past-due patron
	// and a trial, or the comparisons below prove less than they claim.
	var kinds metricstest.Movement
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		for _, cur := range []string{"eur", "jpy", "usd"} {
			mv := metricstest.Movements(rows, m, cur)
			kinds.New += mv.New
			kinds.Reactivation += mv.Reactivation
			kinds.Expansion += mv.Expansion
			kinds.Contraction += mv.Contraction
			kinds.Churn += mv.Churn
		}
	}
	var refunds int64
	for _, v := range revenue {
		refunds += v[1]
	}
	if kinds.New == 0 || kinds.Reactivation == 0 || kinds.Expansion == 0 || kinds.Contraction == 0 || kinds.Churn == 0 || refunds == 0 ||
		metricstest.At(rows, end, "usd").PastDue == 0 || metricstest.At(rows, day(7, 10), "eur").Trialing == 0 {
		t.Fatalf("the scenario lacks a case: movements %+v, refunds %d", kinds, refunds)
	}
	for _, cur := range []string{"eur", "jpy", "usd"} {
		var mrr struct {
			Months []struct {
				Month                                            string
				Start                                            int64 `json:"mrr_start"`
				End                                              int64 `json:"mrr_end"`
				New, Reactivation, Expansion, Contraction, Churn int64
				PayingStart                                      int `json:"paying_patrons_start"`
				PayingEnd                                        int `json:"paying_patrons_end"`
				NewPatrons                                       int `json:"new_patrons"`
				ReactivatedPatrons                               int `json:"reactivated_patrons"`
				ChurnedPatrons                                   int `json:"churned_patrons"`
			}
		}
		w.get("/api/v1/staff/metrics/mrr?from="+from+"&to="+to+"&currency="+cur, &mrr)
		if len(mrr.Months) != 9 {
			t.Fatalf("%s: %d months, want 9", cur, len(mrr.Months))
		}
		for i, m := range mrr.Months {
			month := first.AddDate(0, i, 0)
			want := metricstest.Movements(rows, month, cur)
			got := metricstest.Movement{Month: month, MRRStart: m.Start, MRREnd: m.End, New: m.New, Reactivation: m.Reactivation,
				Expansion: m.Expansion, Contraction: m.Contraction, Churn: m.Churn, PayingStart: m.PayingStart, PayingEnd: m.PayingEnd,
				NewPatrons: m.NewPatrons, ReactivatedPatrons: m.ReactivatedPatrons, ChurnedPatrons: m.ChurnedPatrons}
			if got != want {
				t.Errorf("%s %s movements:\n got %+v\nwant %+v", cur, m.Month, got, want)
			}
		}

		var rev struct {
			Months []struct {
				Month                               string
				Gross, Tax, Refunds, Net, Donations int64
			}
		}
		w.get("/api/v1/staff/metrics/revenue?from="+from+"&to="+to+"&currency="+cur, &rev)
		for _, m := range rev.Months {
			want := revenue[cur+" "+m.Month]
			if m.Gross != want[0] || m.Refunds != want[1] || m.Tax != 0 || m.Net != want[0]-want[1] || m.Donations != 0 {
				t.Errorf("%s %s revenue = %+v, want gross %d, refunds %d", cur, m.Month, m, want[0], want[1])
			}
		}

		var cohorts struct {
			Cohorts []struct {
				Month   string
				Patrons int
				Months  []struct {
					Month    string
					Retained int `json:"retained_patrons"`
					MRR      int64
				}
			}
		}
		w.get("/api/v1/staff/metrics/cohorts?from="+from+"&to="+to+"&currency="+cur, &cohorts)
		want := metricstest.Cohorts(rows, cur, first, last)
		if len(cohorts.Cohorts) != len(want) {
			t.Fatalf("%s: %d cohorts, want %d", cur, len(cohorts.Cohorts), len(want))
		}
		for i, c := range cohorts.Cohorts {
			if c.Patrons != want[i].Patrons || len(c.Months) != len(want[i].Months) {
				t.Errorf("%s cohort %s: %d patrons over %d months, want %d over %d", cur, c.Month, c.Patrons, len(c.Months), want[i].Patrons, len(want[i].Months))
				continue
			}
			for j, m := range c.Months {
				if w := want[i].Months[j]; m.Retained != w.Retained || m.MRR != w.MRR {
					t.Errorf("%s cohort %s at %s: %d patrons, MRR %d; want %d, %d", cur, c.Month, m.Month, m.Retained, m.MRR, w.Retained, w.MRR)
				}
			}
		}
	}

	// The snapshot and the tier split at every month's end and middle, and
	// the instants just around each change.
	var instants []time.Time
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		instants = append(instants, m.AddDate(0, 1, 0).Add(-time.Second), m.AddDate(0, 0, 14))
	}
	for _, r := range rows {
		instants = append(instants, r.At, r.At.Add(-time.Second))
	}
	for _, at := range instants {
		var summary struct {
			Currencies []struct {
				Currency       string
				MRR, ARR, ARPU int64
				Paying         int      `json:"paying_patrons"`
				Trialing       int      `json:"trialing_patrons"`
				PastDue        int      `json:"past_due_patrons"`
				AtRisk         int64    `json:"at_risk_mrr"`
				Net30d         int64    `json:"net_revenue_30d"`
				ChurnRate      *float64 `json:"churn_rate_30d"`
				Churned30d     int      `json:"churned_patrons_30d"`
			}
		}
		w.get("/api/v1/staff/metrics/summary?at="+url.QueryEscape(at.Format(time.RFC3339)), &summary)
		seen := 0
		for _, c := range summary.Currencies {
			want := metricstest.At(rows, at, c.Currency)
			got := metricstest.Snapshot{MRR: c.MRR, AtRiskMRR: c.AtRisk, Paying: c.Paying, PastDue: c.PastDue, Trialing: c.Trialing}
			var arpu int64
			if want.Paying > 0 {
				arpu = metricstest.Round(big.NewRat(want.MRR, int64(want.Paying)))
			}
			if got != want || c.ARR != 12*want.MRR || c.ARPU != arpu {
				t.Errorf("%s at %s:\n got %+v ARR %d ARPU %d\nwant %+v ARR %d ARPU %d", c.Currency, at.Format(time.RFC3339), got, c.ARR, c.ARPU, want, 12*want.MRR, arpu)
			}
			// The 30 days up to the instant: net revenue, and the patrons
			// paying at their start who pay nothing at their end.
			monthAgo := at.Add(-30 * 24 * time.Hour)
			r := revenueIn(payments, monthAgo, at)[c.Currency]
			before, after := metricstest.PatronTotals(rows, monthAgo, false, c.Currency), metricstest.PatronTotals(rows, at, false, c.Currency)
			paying, churned := 0, 0
			for p, m := range before {
				if m > 0 {
					paying++
					if after[p] == 0 {
						churned++
					}
				}
			}
			var rate *float64
			if paying > 0 {
				v := float64(churned) / float64(paying)
				rate = &v
			}
			if c.Net30d != r[0]-r[1] || c.Churned30d != churned || fmt.Sprint(derefRate(c.ChurnRate)) != fmt.Sprint(derefRate(rate)) {
				t.Errorf("%s, 30 days to %s: net %d, churned %d, rate %v; want %d, %d, %v", c.Currency, at.Format(time.RFC3339),
					c.Net30d, c.Churned30d, derefRate(c.ChurnRate), r[0]-r[1], churned, derefRate(rate))
			}
			seen++
		}
		if seen != 3 {
			t.Errorf("summary at %s has %d currencies, want eur, jpy and usd", at, seen)
		}
		var tiers struct {
			Tiers []struct {
				Currency, Tier, Interval string
				IntervalCount            int `json:"interval_count"`
				MRR                      int64
				Patrons                  int `json:"paying_patrons"`
			}
		}
		w.get("/api/v1/staff/metrics/tiers?at="+url.QueryEscape(at.Format(time.RFC3339)), &tiers)
		got := []metricstest.TierFigure{}
		for _, f := range tiers.Tiers {
			got = append(got, metricstest.TierFigure(f))
		}
		if want := metricstest.ByTier(rows, at); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("tiers at %s:\n got %v\nwant %v", at.Format(time.RFC3339), got, want)
		}
	}
}

func derefRate(r *float64) any {
	if r == nil {
		return nil
	}
	return *r
}

// world drives the fake through the scenario: renewals fall due as its
// clock moves, and in live mode each operation's events are delivered
// and processed before the next.
type world struct {
	t        *testing.T
	fake     *stripefake.Server
	url      string
	token    string
	live     bool
	subs     []string
	renewals map[string]int          // renewals so far, by subscription
	failing  map[string]map[int]bool // renewals (0-based) whose payment fails
	ending   map[string]bool         // set to cancel at the period's end
	members  [][2]string             // customer, member
}

func (w *world) do(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	if w.live {
		w.waitProcessed(w.deliver(w.fake.TakeEvents()))
	}
}

// at moves the clock to t, renewing (or ending) every subscription whose
// period ends before it, in order.
func (w *world) at(t time.Time) {
	w.t.Helper()
	for {
		due, dueAt := "", int64(math.MaxInt64)
		for _, id := range w.subs {
			sub, _ := w.fake.Subscription(id)
			if sub["status"] != "active" && sub["status"] != "past_due" {
				continue
			}
			if end := sub["current_period_end"].(int64); end <= t.Unix() && end < dueAt {
				due, dueAt = id, end
			}
		}
		if due == "" {
			break
		}
		if w.ending[due] {
			w.fake.SetNow(time.Unix(dueAt, 0))
			w.do(w.fake.EndSubscription(due))
			continue
		}
		n := w.renewals[due]
		w.renewals[due]++
		_, err := w.fake.RenewSubscription(due, !w.failing[due][n])
		w.do(err)
	}
	w.fake.SetNow(t)
}

func (w *world) subscribe(customer, price string, quantity int64, trialDays int) string {
	w.t.Helper()
	var member string
	for _, m := range w.members {
		if m[0] == customer {
			member = m[1]
		}
	}
	sub, err := w.fake.CreateSubscription(customer, price, stripefake.SubscriptionOptions{Quantity: quantity, TrialDays: trialDays,
		Metadata: map[string]string{"member_id": member}})
	w.do(err)
	id := sub["id"].(string)
	w.subs = append(w.subs, id)
	return id
}

func (w *world) latestInvoice(sub string) string {
	s, _ := w.fake.Subscription(sub)
	return s["latest_invoice"].(string)
}

// refund refunds amount (0: all) of the subscription's latest payment.
func (w *world) refund(sub string, amount int64) {
	w.t.Helper()
	inv, _ := w.fake.Invoice(w.latestInvoice(sub))
	_, err := w.fake.Refund(inv["charge"].(string), amount)
	w.do(err)
}

func (w *world) memberOf() map[string]string {
	out := map[string]string{}
	for _, m := range w.members {
		out[m[0]] = m[1]
	}
	return out
}

func (w *world) post(ev map[string]any) {
	body, header := stripefake.SignedDelivery(ev, acceptanceSecret, time.Now())
	status, resp := call(w.t, "POST", w.url+"/webhooks/stripe", "", string(body), "Stripe-Signature", header)
	if status != http.StatusOK {
		w.t.Errorf("delivery of %s = %d %s", ev["id"], status, resp)
	}
}

func (w *world) deliver(events []map[string]any) []map[string]any {
	for _, ev := range events {
		w.post(ev)
	}
	return events
}

// deliverShuffled delivers every event in a random order, a sixth of them
// twice, from four senders at once.
func (w *world) deliverShuffled(events []map[string]any) {
	rng := rand.New(rand.NewPCG(uint64(len(events)), 6))
	plan := append([]map[string]any(nil), events...)
	for _, ev := range events {
		if rng.IntN(6) == 0 {
			plan = append(plan, ev)
		}
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	var wg sync.WaitGroup
	next := make(chan map[string]any)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range next {
				w.post(ev)
			}
		}()
	}
	for _, ev := range plan {
		next <- ev
	}
	close(next)
	wg.Wait()
}

// waitProcessed waits until the server has worked every event it
// acknowledged (events were, or no delivery would have returned): none is
// pending, and none failed.
func (w *world) waitProcessed(events []map[string]any) {
	w.t.Helper()
	if len(events) == 0 {
		return
	}
	type listed struct {
		Events []struct {
			ID, Type  string
			LastError string `json:"last_error"`
		}
	}
	waitUntil(w.t, 2*time.Minute, func() bool {
		var pending listed
		w.get("/api/v1/staff/webhooks/events?limit=1&status=pending", &pending)
		return len(pending.Events) == 0
	})
	var failed listed
	w.get("/api/v1/staff/webhooks/events?limit=10&status=failed", &failed)
	for _, e := range failed.Events {
		w.t.Fatalf("event %s (%s) failed: %s", e.ID, e.Type, e.LastError)
	}
}

func (w *world) count(events []map[string]any, prefix string) int {
	n := 0
	for _, ev := range events {
		if strings.HasPrefix(ev["type"].(string), prefix) {
			n++
		}
	}
	return n
}

func (w *world) get(path string, v any) {
	w.t.Helper()
	status, body := call(w.t, "GET", w.url+path, w.token, "")
	if status != http.StatusOK {
		w.t.Fatalf("GET %s = %d %s", path, status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		w.t.Fatalf("GET %s: %v", path, err)
	}
}

// payment is money in (a paid invoice) or out (a refund) at an instant.
type payment struct {
	at       time.Time
	currency string
	paid     int64
	refunded int64
}

// revenueIn is each currency's gross and refunds over (from, to].
func revenueIn(payments []payment, from, to time.Time) map[string][2]int64 {
	out := map[string][2]int64{}
	for _, p := range payments {
		if p.at.After(from) && !p.at.After(to) {
			v := out[p.currency]
			v[0] += p.paid
			v[1] += p.refunded
			out[p.currency] = v
		}
	}
	return out
}

// recomputeFrom reads the events alone: each subscription event's object
// is the subscription's state from the event's time on, and each paid
// invoice and refunded charge is revenue on its date. revenue is, by
// "currency YYYY-MM", gross and refunds.
func recomputeFrom(t *testing.T, events []map[string]any, memberOf map[string]string) ([]metricstest.Row, map[string][2]int64, []payment) {
	var rows []metricstest.Row
	var payments []payment
	revenue := map[string][2]int64{}
	refunded := map[string]int64{} // by charge: what earlier events refunded
	for i, ev := range events {
		obj := ev["data"].(map[string]any)["object"].(map[string]any)
		at := time.Unix(ev["created"].(int64), 0).UTC()
		typ := ev["type"].(string)
		switch {
		case strings.HasPrefix(typ, "customer.subscription."):
			item := obj["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
			price := item["price"].(map[string]any)
			rec := price["recurring"].(map[string]any)
			r := metricstest.Row{Patron: memberOf[obj["customer"].(string)], Subscription: obj["id"].(string), At: at, Seq: i,
				Tier: price["metadata"].(map[string]any)["patronage_tier"].(string), Status: obj["status"].(string), Currency: obj["currency"].(string),
				UnitAmount: price["unit_amount"].(int64), Quantity: item["quantity"].(int64), Interval: rec["interval"].(string),
				IntervalCount: int(rec["interval_count"].(int64))}
			if d, ok := obj["discount"].(map[string]any); ok {
				c := d["coupon"].(map[string]any)
				r.Duration = c["duration"].(string)
				if p, ok := c["percent_off"].(float64); ok {
					bps := int64(math.Round(p * 100))
					r.PercentOffBps = &bps
				}
				if a, ok := c["amount_off"].(int64); ok {
					r.AmountOff = &a
				}
			}
			rows = append(rows, r)
		case typ == "invoice.paid":
			paid := time.Unix(obj["status_transitions"].(map[string]any)["paid_at"].(int64), 0).UTC()
			k := obj["currency"].(string) + " " + paid.Format("2006-01")
			v := revenue[k]
			v[0] += obj["amount_paid"].(int64)
			revenue[k] = v
			payments = append(payments, payment{at: paid, currency: obj["currency"].(string), paid: obj["amount_paid"].(int64)})
		case typ == "charge.refunded":
			id := obj["id"].(string)
			step := obj["amount_refunded"].(int64) - refunded[id]
			refunded[id] = obj["amount_refunded"].(int64)
			k := obj["currency"].(string) + " " + at.Format("2006-01")
			v := revenue[k]
			v[1] += step
			revenue[k] = v
			payments = append(payments, payment{at: at, currency: obj["currency"].(string), refunded: step})
		}
	}
	if len(rows) == 0 {
		t.Fatal("no subscription events")
	}
	return rows, revenue, payments
}
