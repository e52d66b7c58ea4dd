package billing_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/testenv"
)

// recordScenario plays a season of a small newsroom through the fake and
// returns every event Stripe sent, in order: renewals, a coupon, a failed
// payment and its recovery, an upgrade, refunds, a dispute, cancellations,
// trials that convert, pause and resume, a gift and a deleted customer.
func recordScenario(t *testing.T, w *world) []map[string]any {
	t.Helper()
	ctx := context.Background()
	day := 24 * time.Hour
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	renew := func(sub string, pay bool) string {
		t.Helper()
		inv, err := w.stripe.RenewSubscription(sub, pay)
		must(err)
		w.syncClock(w.stripeNow())
		w.step(time.Minute)
		return inv
	}

	a, subA := w.subscribe("ada@example.org", "coffee", "month")
	w.step(time.Hour)
	firstCharge := w.chargeOfLatestInvoice(subA)
	renew(subA, true)
	w.step(day)
	must(w.stripe.ApplyCoupon(subA, 20, 0, "repeating", 3))
	renew(subA, true)
	failed := renew(subA, false)
	w.step(2 * day)
	must(w.stripe.PayInvoice(failed))
	w.step(time.Hour)
	must(w.stripe.ChangePrice(subA, w.priceID("press", "month")))
	w.step(time.Hour)
	_, err := w.stripe.Refund(firstCharge, 100)
	must(err)
	w.step(time.Hour)
	_, err = w.stripe.Refund(firstCharge, 400)
	must(err)
	w.step(time.Hour)
	disputed := w.chargeOfLatestInvoice(subA)
	dp, err := w.stripe.Dispute(disputed)
	must(err)
	w.step(3 * day)
	must(w.stripe.CloseDispute(dp, true))
	w.step(time.Hour)
	must(w.stripe.SetCancelAtPeriodEnd(subA, true))
	w.step(time.Hour)
	must(w.stripe.SetCancelAtPeriodEnd(subA, false))
	w.step(time.Hour)
	must(w.stripe.SetCancelAtPeriodEnd(subA, true))
	renewEnd, _ := w.stripe.Subscription(subA)
	w.step(time.Unix(renewEnd["current_period_end"].(int64), 0).Sub(w.now))
	must(w.stripe.EndSubscription(subA))
	w.step(time.Hour)

	// Two trials: one converts then lapses and its customer is deleted,
	// one pauses for want of a card and resumes.
	for i, pay := range []bool{true, false} {
		m, err := w.members.FindOrCreateMember(ctx, fmt.Sprintf("trial%d@example.org", i))
		must(err)
		cus, err := w.billing.CustomerFor(ctx, m.ID)
		must(err)
		sub, err := w.stripe.CreateSubscription(cus, w.priceID("coffee", "year"), stripefake.SubscriptionOptions{TrialDays: 14, Metadata: map[string]string{"member_id": m.ID}})
		must(err)
		id := sub["id"].(string)
		w.step(11 * day)
		must(w.stripe.TrialWillEnd(id))
		w.step(time.Hour)
		must(w.stripe.EndTrial(id, pay))
		w.syncClock(w.stripeNow())
		w.step(time.Hour)
		if pay {
			renew(id, true)
			renew(id, false)
			w.step(day)
			must(w.stripe.DeleteCustomer(cus))
		} else {
			w.step(5 * day)
			must(w.stripe.ResumeSubscription(id))
		}
		w.step(time.Hour)
	}

	// A one-time gift, later partly refunded.
	cs, err := w.billing.StartDonationCheckout(ctx, billing.DonationRequest{Email: "giver@example.org", Amount: 2500, Currency: "EUR", Message: "Keep digging"})
	must(err)
	done, err := w.stripe.CompleteCheckoutSession(cs.ID)
	must(err)
	w.step(day)
	pi, _ := w.stripe.PaymentIntent(done["payment_intent"].(string))
	_, err = w.stripe.Refund(pi["latest_charge"].(string), 1000)
	must(err)
	w.step(time.Hour)
	_ = a
	return w.stripe.TakeEvents()
}

// chargeOfLatestInvoice is the charge that paid a subscription's newest invoice.
func (w *world) chargeOfLatestInvoice(subID string) string {
	w.t.Helper()
	sub, _ := w.stripe.Subscription(subID)
	inv, ok := w.stripe.Invoice(sub["latest_invoice"].(string))
	if !ok {
		w.t.Fatalf("subscription %s has no latest invoice", subID)
	}
	ch, _ := inv["charge"].(string)
	if ch == "" {
		w.t.Fatalf("invoice %v has no charge", inv["id"])
	}
	return ch
}

// Whatever order Stripe's events arrive in — shuffled, duplicated, some
// twice at once, some together — the end state is the state in-order
// delivery gives, and that is Stripe's state.
func TestAnyDeliveryOrderEndsInStripesState(t *testing.T) {
	orders := 100
	if v := os.Getenv("PATRONAGE_ORDER_RUNS"); v != "" {
		orders, _ = strconv.Atoi(v)
	}
	t.Parallel()
	testenv.EachMigratedDB(t, func(t *testing.T, shared *sqldb.DB) {
		for _, mode := range []billing.WebhookMode{billing.ModeFetch, billing.ModePayload} {
			t.Run(string(mode), func(t *testing.T) {
				t.Parallel()
				db := shared
				if mode == billing.ModePayload {
					db = freshDB(t, shared)
				}
				w := newWorld(t, db, mode)
				events := recordScenario(t, w)
				if len(events) < 50 {
					t.Fatalf("scenario has %d events, want at least 50", len(events))
				}
				t.Logf("%d events in the recorded scenario", len(events))
				links := w.customerLinks()
				w.deliver(events...)
				want := w.dump()
				for _, sub := range w.stripeSubscriptions() {
					w.wantLikeStripe(sub)
				}
				for _, c := range []string{"counter: s|eur|mrr", "counter: m|eur|churn", "counter: r|eur|gross", "counter: r|eur|refunds", "counter: r|eur|donations"} {
					if !strings.Contains(want, c) {
						t.Fatalf("the season kept no %q figures:\n%s", strings.TrimPrefix(c, "counter: "), want)
					}
				}
				rng := rand.New(rand.NewPCG(uint64(len(events)), 42))
				for run := range orders {
					w.reset(links)
					plan := shuffledWithDuplicates(rng, events)
					w.deliverConcurrently(rng, plan)
					if got := w.dump(); got != want {
						t.Fatalf("order %d of %d ends in a different state:\n%s", run+1, orders, diffLines(want, got))
					}
				}
			})
		}
	})
}

// shuffledWithDuplicates returns the events in random order with about one
// in six delivered twice.
func shuffledWithDuplicates(rng *rand.Rand, events []map[string]any) []map[string]any {
	plan := append([]map[string]any(nil), events...)
	for _, ev := range events {
		if rng.IntN(6) == 0 {
			plan = append(plan, ev)
		}
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	return plan
}

// deliverConcurrently delivers the plan in groups of one to four handled
// at once; a duplicate sometimes lands in the same group as its original.
func (w *world) deliverConcurrently(rng *rand.Rand, plan []map[string]any) {
	w.t.Helper()
	for i := 0; i < len(plan); {
		n := min(1+rng.IntN(4), len(plan)-i)
		group := plan[i : i+n]
		if rng.IntN(8) == 0 {
			group = append(append([]map[string]any(nil), group...), group[0]) // the same event twice at once
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(group))
		for _, ev := range group {
			e := toEvent(w.t, ev)
			if !handled(e.Type) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A handler that loses a race (a deadlock, a serialisation
				// failure) is retried by the queue; so here.
				var err error
				for range 5 {
					if err = w.billing.HandleEvent(context.Background(), e); err == nil {
						return
					}
				}
				errs <- fmt.Errorf("%s %s: %w", e.Type, e.ID, err)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			w.t.Fatal(err)
		}
		i += n
	}
}

var billingTables = []string{"subscriptions", "subscription_snapshots", "subscription_history", "invoices", "charges", "refunds", "disputes",
	"donations", "member_access", "billing_notifications", "stripe_customers", "metric_deltas"}

// counterTables hold the staff figures' sums, which must come out the same
// however the events arrived; compared as each counter's total per day.
var counterTables = []string{"metric_sources", "metric_days", "metric_pending"}

func (w *world) customerLinks() map[string]string {
	w.t.Helper()
	rows, err := w.db.Query(`SELECT id, stripe_customer_id FROM members WHERE stripe_customer_id IS NOT NULL`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, cus string
		if err := rows.Scan(&id, &cus); err != nil {
			w.t.Fatal(err)
		}
		out[id] = cus
	}
	return out
}

// reset forgets everything the events wrote, back to the moment before
// the first delivery.
func (w *world) reset(links map[string]string) {
	w.t.Helper()
	for _, table := range append(slices.Clone(billingTables), counterTables...) {
		if _, err := w.db.Exec(`DELETE FROM ` + table); err != nil {
			w.t.Fatal(err)
		}
	}
	if _, err := w.db.Exec(`UPDATE members SET stripe_customer_id = NULL`); err != nil {
		w.t.Fatal(err)
	}
	for id, cus := range links {
		if _, err := w.db.Exec(`UPDATE members SET stripe_customer_id = $1 WHERE id = $2`, cus, id); err != nil {
			w.t.Fatal(err)
		}
	}
}

// dump is every billing row, one line each, in a stable order; bookkeeping
// times that say when we wrote a row (not what Stripe said) are left out.
func (w *world) dump() string {
	w.t.Helper()
	var b strings.Builder
	for _, table := range append(billingTables, "members") {
		rows, err := w.db.Query(`SELECT * FROM ` + table)
		if err != nil {
			w.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				w.t.Fatal(err)
			}
			var parts []string
			for i, c := range cols {
				if c == "updated_at" || c == "created_at" {
					continue
				}
				v := vals[i]
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				if tm, ok := v.(time.Time); ok {
					v = tm.UTC().Format(time.RFC3339Nano)
				}
				parts = append(parts, fmt.Sprintf("%s=%v", c, v))
			}
			lines = append(lines, table+": "+strings.Join(parts, " "))
		}
		rows.Close()
		sort.Strings(lines)
		b.WriteString(strings.Join(lines, "\n"))
		b.WriteString("\n")
	}
	rows, err := w.db.Query(`SELECT key, day, SUM(delta) FROM (SELECT key, day, delta FROM metric_days UNION ALL SELECT key, day, delta FROM metric_pending) x
		GROUP BY key, day HAVING SUM(delta) <> 0 ORDER BY key, day`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var day, sum int64
		if err := rows.Scan(&key, &day, &sum); err != nil {
			w.t.Fatal(err)
		}
		fmt.Fprintf(&b, "counter: %s day=%d sum=%d\n", key, day, sum)
	}
	return b.String()
}

func (w *world) stripeSubscriptions() []string {
	var ids []string
	for _, ev := range w.stripe.Events() {
		if strings.HasPrefix(ev["type"].(string), "customer.subscription.") {
			id := ev["data"].(map[string]any)["object"].(map[string]any)["id"].(string)
			if !contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func diffLines(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	inGot := map[string]bool{}
	for _, l := range gl {
		inGot[l] = true
	}
	inWant := map[string]bool{}
	for _, l := range wl {
		inWant[l] = true
	}
	var b strings.Builder
	for _, l := range wl {
		if !inGot[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range gl {
		if !inWant[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
