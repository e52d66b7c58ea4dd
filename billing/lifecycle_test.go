package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
)

// world is a newsroom and its Stripe account: the stateful fake plays
// Stripe, emitting the events Stripe would, and the test delivers them to
// billing's handlers in whatever order it likes.
type world struct {
	t       *testing.T
	db      *sqldb.DB
	stripe  *stripefake.Server
	billing *billing.Service
	members *members.Service
	mode    billing.WebhookMode
	mail    *recordingMail
	changes chan billing.AccessChange
	now     time.Time
	// jobsDone hears each job the queue completes, once runQueue runs it.
	jobsDone <-chan *river.Event
}

// recordingMail is the mail server: it keeps what it is sent, after
// refusing the next refuse messages as a server that is down would.
type recordingMail struct {
	sent    chan mail.Message
	refuse  atomic.Int32
	refused atomic.Int32
}

func (r *recordingMail) Send(_ context.Context, m mail.Message) error {
	if r.refuse.Add(-1) >= 0 {
		r.refused.Add(1)
		return errors.New("421 4.3.2 service not available")
	}
	select {
	case r.sent <- m:
	default: // a long scenario sends more than any test reads
	}
	return nil
}

var lifecycleStart = time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)

func newWorld(t *testing.T, db *sqldb.DB, mode billing.WebhookMode, events ...members.EventSink) *world {
	t.Helper()
	w := newWorldWithoutQueue(t, db, mode, events...)
	w.runQueue()
	return w
}

// runQueue starts a job queue working billing's jobs (patron mail) for
// the rest of the test, as a running server does.
func (w *world) runQueue() {
	w.t.Helper()
	workers := river.NewWorkers()
	w.billing.AddJobs(workers, 0, time.Minute)
	q, err := jobs.New(w.db, workers, testenv.Logger(), jobs.Options{PollInterval: 20 * time.Millisecond, Queues: map[string]int{jobs.MailQueue: 2}})
	if err != nil {
		w.t.Fatal(err)
	}
	done, stop := q.Subscribe(river.EventKindJobCompleted)
	w.t.Cleanup(stop)
	w.jobsDone = done
	if err := q.Start(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		if err := q.Stop(context.Background()); err != nil {
			w.t.Error(err)
		}
	})
	w.billing.AttachQueue(q)
}

// newWorldWithoutQueue is a world whose patron mail is queued (the queue
// can insert) but not sent until runQueue.
func newWorldWithoutQueue(t *testing.T, db *sqldb.DB, mode billing.WebhookMode, events ...members.EventSink) *world {
	t.Helper()
	if _, err := jobs.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	var sink members.EventSink
	if len(events) > 0 {
		sink = events[0]
	}
	fake := stripefake.New(t)
	fake.SetNow(lifecycleStart)
	w := &world{t: t, db: db, stripe: fake, mode: mode, mail: &recordingMail{sent: make(chan mail.Message, 100)}, changes: make(chan billing.AccessChange, 1000)}
	base, _ := url.Parse("https://patrons.test")
	templates, err := mail.NewTemplates("The Test Times", i18ntest.Catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	w.members = members.NewService(members.Deps{DB: db, Redis: testenv.EmbeddedRedis(t), Mailer: w.mail, Templates: templates, BaseURL: base, Logger: testenv.Logger(),
		Events: sink, Languages: []string{"en", "uk"}})
	t.Cleanup(func() { w.members.Close(context.Background()) })
	// The service's clock follows Stripe's, so grace and period ends are
	// judged at the scenario's time.
	w.billing = billing.NewService(billing.Deps{DB: db, Stripe: fake.Client(t), Members: w.members, BaseURL: base, Logger: testenv.Logger(),
		Templates: templates, WebhookMode: mode, Now: func() time.Time { return w.now }, Events: sink})
	w.billing.OnAccessChange(func(c billing.AccessChange) {
		select {
		case w.changes <- c:
		default:
		}
	})
	w.now = lifecycleStart
	if _, err := w.billing.CreateTier(context.Background(), members.CommandLine, coffee); err != nil {
		t.Fatal(err)
	}
	if _, err := w.billing.CreateTier(context.Background(), members.CommandLine, billing.TierInput{
		Slug: "press", Name: "Press pass", Prices: []billing.PriceInput{{Currency: "EUR", Interval: "month", Amount: 1500}},
	}); err != nil {
		t.Fatal(err)
	}
	w.stripe.TakeEvents() // catalog events: our own push echoed
	q, err := jobs.New(db, nil, testenv.Logger(), jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.billing.AttachQueue(q)
	return w
}

// eachMode runs a scenario on each database in both webhook modes.
func eachMode(t *testing.T, fn func(t *testing.T, w *world)) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		for _, mode := range []billing.WebhookMode{billing.ModeFetch, billing.ModePayload} {
			t.Run(string(mode), func(t *testing.T) {
				if mode == billing.ModePayload {
					db = freshDB(t, db)
				}
				fn(t, newWorld(t, db, mode))
			})
		}
	})
}

// freshDB gives the second mode its own database of the same engine.
func freshDB(t *testing.T, like *sqldb.DB) *sqldb.DB {
	var db *sqldb.DB
	if like.Dialect == sqldb.Postgres {
		db = testenv.Postgres(t)
	} else {
		db = testenv.SQLite(t)
	}
	if _, err := db.Migrate(context.Background(), sqldb.Migrations()); err != nil {
		t.Fatal(err)
	}
	return db
}

func toEvent(t testing.TB, ev map[string]any) billing.Event {
	t.Helper()
	data := ev["data"].(map[string]any)
	obj, err := json.Marshal(data["object"])
	if err != nil {
		t.Fatal(err)
	}
	created := ev["created"]
	var sec int64
	switch v := created.(type) {
	case int64:
		sec = v
	case float64:
		sec = int64(v)
	case json.Number:
		sec, _ = v.Int64()
	}
	return billing.Event{ID: ev["id"].(string), Type: ev["type"].(string), APIVersion: ev["api_version"].(string), Created: time.Unix(sec, 0).UTC(), Object: obj}
}

// deliver hands events to billing as the queue would, in the given order.
func (w *world) deliver(evs ...map[string]any) {
	w.t.Helper()
	for _, ev := range evs {
		e := toEvent(w.t, ev)
		if !handled(e.Type) {
			continue
		}
		if err := w.billing.HandleEvent(context.Background(), e); err != nil {
			w.t.Fatalf("handle %s %s: %v", e.Type, e.ID, err)
		}
	}
}

func handled(typ string) bool {
	for _, h := range billing.EventTypes {
		if h == typ {
			return true
		}
	}
	return false
}

// step lets Stripe's clock (and ours) move on.
func (w *world) step(d time.Duration) {
	w.stripe.Advance(d)
	w.now = w.now.Add(d)
}

// syncClock sets our clock to Stripe's after an operation moved it.
func (w *world) syncClock(at time.Time) { w.now = at }

// subscribe takes a new reader through Checkout for a tier price and
// returns the member and the Stripe subscription id.
func (w *world) subscribe(email, tier, interval string) (members.Member, string) {
	w.t.Helper()
	ctx := context.Background()
	m, err := w.members.FindOrCreateMember(ctx, email)
	if err != nil {
		w.t.Fatal(err)
	}
	cs, err := w.billing.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{MemberID: m.ID, Tier: tier, Interval: interval, Currency: "EUR"})
	if err != nil {
		w.t.Fatal(err)
	}
	done, err := w.stripe.CompleteCheckoutSession(cs.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	m, _ = w.members.FindMemberByID(ctx, m.ID)
	return m, done["subscription"].(string)
}

func (w *world) access(memberID string) members.Access {
	w.t.Helper()
	a, err := w.billing.AccessOf(context.Background(), memberID)
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

func (w *world) wantAccess(memberID string, active bool, tier string) {
	w.t.Helper()
	a := w.access(memberID)
	if a.Active != active || (active && a.Tier != tier) {
		w.t.Fatalf("access = %+v, want active=%v tier=%q", a, active, tier)
	}
}

// wantLikeStripe checks our copy of a subscription against the fake's.
func (w *world) wantLikeStripe(subID string) {
	w.t.Helper()
	sub, ok := w.stripe.Subscription(subID)
	if !ok {
		w.t.Fatalf("Stripe has no subscription %s", subID)
	}
	var status string
	var amount, quantity int64
	var end time.Time
	var cancel bool
	err := w.db.QueryRow(`SELECT status, unit_amount, quantity, current_period_end, cancel_at_period_end FROM subscriptions WHERE id = $1`, subID).
		Scan(&status, &amount, &quantity, &end, &cancel)
	if err != nil {
		w.t.Fatalf("our subscription %s: %v", subID, err)
	}
	item := sub["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
	price := item["price"].(map[string]any)
	want := fmt.Sprintf("%v %v %v %v %v", sub["status"], price["unit_amount"], item["quantity"], sub["current_period_end"], sub["cancel_at_period_end"])
	got := fmt.Sprintf("%v %v %v %v %v", status, amount, quantity, end.Unix(), cancel)
	if got != want {
		w.t.Errorf("subscription %s: ours %q, Stripe's %q (status amount quantity period_end cancel_at_period_end)", subID, got, want)
	}
}

func (w *world) billingOf(memberID string) billing.MemberBilling {
	w.t.Helper()
	b, err := w.billing.MemberBilling(context.Background(), memberID)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// mailWait bounds the wait for a mail: the queue polls every 20 ms, and
// a mail tried again waits for River's scheduler, which looks every 5 s.
const mailWait = 30 * time.Second

// wantMail waits for a mail whose subject holds subject, passing over
// others.
func (w *world) wantMail(subject string) {
	w.t.Helper()
	for {
		select {
		case m := <-w.mail.sent:
			if strings.Contains(m.Subject, subject) {
				return
			}
		case <-time.After(mailWait):
			w.t.Fatalf("no mail with %q in its subject in %s", subject, mailWait)
		}
	}
}

// A patron who reads Ukrainian is welcomed in Ukrainian.
func TestPatronMailIsInTheMembersLanguage(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db, billing.ModeFetch)
		m, err := w.members.FindOrCreateMember(context.Background(), "olena@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.members.SetLanguage(context.Background(), m.ID, "uk"); err != nil {
			t.Fatal(err)
		}
		w.subscribe("olena@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		w.wantMail("Вітаємо й дякуємо за підтримку редакції «The Test Times»")
	})
}

func TestCheckoutRenewalFailureAndRecovery(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, subID := w.subscribe("ada@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, true, "coffee")
		w.wantLikeStripe(subID)
		w.wantMail("Welcome")

		// A month on: the renewal is paid.
		if _, err := w.stripe.RenewSubscription(subID, true); err != nil {
			t.Fatal(err)
		}
		w.syncClock(w.stripeNow())
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, true, "coffee")
		w.wantLikeStripe(subID)

		// Next month the card is declined: past_due, access through the grace.
		failed, err := w.stripe.RenewSubscription(subID, false)
		if err != nil {
			t.Fatal(err)
		}
		w.syncClock(w.stripeNow())
		w.deliver(w.stripe.TakeEvents()...)
		w.wantLikeStripe(subID)
		a := w.access(m.ID)
		if !a.Active || a.Until == nil || !a.Until.Equal(w.now.Add(billing.DefaultPastDueGrace)) {
			t.Fatalf("past_due access = %+v, want active until %s", a, w.now.Add(billing.DefaultPastDueGrace))
		}
		w.wantMail("payment")

		// Three days later the retry succeeds.
		w.step(3 * 24 * time.Hour)
		if err := w.stripe.PayInvoice(failed); err != nil {
			t.Fatal(err)
		}
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, true, "coffee")
		w.wantLikeStripe(subID)

		b := w.billingOf(m.ID)
		var paid int64
		for _, p := range b.Payments {
			if p.Status == "paid" {
				paid += p.AmountPaid
			}
		}
		if len(b.Payments) != 3 || paid != 3*500 {
			t.Errorf("payments = %d, paid %d; want 3 invoices, 1500 paid", len(b.Payments), paid)
		}
		if len(b.Subscriptions) != 1 || len(b.Subscriptions[0].History) != 3 {
			t.Errorf("history = %+v, want active → past_due → active", b.Subscriptions)
		}
	})
}

func (w *world) stripeNow() time.Time {
	evs := w.stripe.Events()
	if len(evs) == 0 {
		return w.now
	}
	return toEvent(w.t, evs[len(evs)-1]).Created
}

func TestPastDueAccessEndsWithGrace(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, subID := w.subscribe("grace@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		if _, err := w.stripe.RenewSubscription(subID, false); err != nil {
			t.Fatal(err)
		}
		w.syncClock(w.stripeNow())
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, true, "coffee")
		drain(w.changes)

		// Nothing arrives from Stripe; the scheduled recheck ends access.
		w.now = w.now.Add(billing.DefaultPastDueGrace + time.Minute)
		if n, err := w.billing.RecomputeDueAccess(context.Background()); err != nil || n != 1 {
			t.Fatalf("recheck = %d, %v; want 1 member", n, err)
		}
		w.wantAccess(m.ID, false, "")
		select {
		case c := <-w.changes:
			if c.MemberID != m.ID || c.After.Active || !c.Before.Active {
				t.Errorf("published %+v, want %s losing access", c, m.ID)
			}
		default:
			t.Error("the end of access was not published")
		}
	})
}

func drain(ch chan billing.AccessChange) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestUpgradeAndDowngrade(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, subID := w.subscribe("up@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		press := w.priceID("press", "month")
		w.step(time.Hour)
		if err := w.stripe.ChangePrice(subID, press); err != nil {
			t.Fatal(err)
		}
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, true, "press")
		w.wantLikeStripe(subID)

		w.step(time.Hour)
		if err := w.stripe.ChangePrice(subID, w.priceID("coffee", "month")); err != nil {
			t.Fatal(err)
		}
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, true, "coffee")
		w.wantLikeStripe(subID)
		h := w.billingOf(m.ID).Subscriptions[0].History
		var tiers []string
		for _, e := range h {
			tiers = append(tiers, e.Tier+":"+fmt.Sprint(e.UnitAmount))
		}
		if got := strings.Join(tiers, " "); got != "coffee:500 press:1500 coffee:500" {
			t.Errorf("history = %s, want coffee:500 press:1500 coffee:500", got)
		}
	})
}

func (w *world) priceID(tier, interval string) string {
	w.t.Helper()
	t, err := w.billing.FindTier(context.Background(), tier)
	if err != nil {
		w.t.Fatal(err)
	}
	p, ok := t.PriceFor("EUR", billing.Interval(interval))
	if !ok {
		w.t.Fatalf("%s has no EUR %s price", tier, interval)
	}
	return p.StripePriceID
}

func TestCancelAtPeriodEndThenEnded(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, subID := w.subscribe("bye@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		w.step(24 * time.Hour)
		if err := w.stripe.SetCancelAtPeriodEnd(subID, true); err != nil {
			t.Fatal(err)
		}
		w.deliver(w.stripe.TakeEvents()...)
		w.wantLikeStripe(subID)
		a := w.access(m.ID)
		sub, _ := w.stripe.Subscription(subID)
		end := time.Unix(sub["current_period_end"].(int64), 0).UTC()
		if !a.Active || a.Until == nil || !a.Until.Equal(end) {
			t.Fatalf("access = %+v, want active until the period end %s", a, end)
		}
		w.step(end.Sub(w.now))
		if err := w.stripe.EndSubscription(subID); err != nil {
			t.Fatal(err)
		}
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, false, "")
		w.wantLikeStripe(subID)
	})
}

func TestRefundsPartialAndFull(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, _ := w.subscribe("refund@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		charge := w.billingOf(m.ID).Payments[0].ChargeID
		if charge == "" {
			t.Fatal("the first payment has no charge")
		}
		w.step(time.Hour)
		if _, err := w.stripe.Refund(charge, 200); err != nil {
			t.Fatal(err)
		}
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, true, "coffee") // a partial refund leaves access
		w.step(time.Hour)
		if _, err := w.stripe.Refund(charge, 300); err != nil {
			t.Fatal(err)
		}
		evs := w.stripe.TakeEvents()
		// Delivered newest first: the amounts must still come out as steps.
		for i := len(evs) - 1; i >= 0; i-- {
			w.deliver(evs[i])
		}
		refunds := w.billingOf(m.ID).Payments[0].Refunds
		var got []string
		for _, r := range refunds {
			got = append(got, fmt.Sprint(r.Amount, r.Currency))
		}
		if strings.Join(got, " ") != "200EUR 300EUR" {
			t.Errorf("refunds = %v, want 200EUR then 300EUR", got)
		}
		// The first payment, refunded in full, counts as never paid.
		w.wantAccess(m.ID, false, "")
	})
}

func TestDisputeAndItsOutcome(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, _ := w.subscribe("dispute@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		charge := w.billingOf(m.ID).Payments[0].ChargeID
		w.step(time.Hour)
		dp, err := w.stripe.Dispute(charge)
		if err != nil {
			t.Fatal(err)
		}
		w.step(24 * time.Hour)
		if err := w.stripe.CloseDispute(dp, false); err != nil {
			t.Fatal(err)
		}
		evs := w.stripe.TakeEvents()
		w.deliver(evs[1], evs[0]) // the close before the opening
		d := w.billingOf(m.ID).Payments[0].Disputes
		if len(d) != 1 || d[0].Status != "lost" || d[0].Amount != 500 || d[0].ClosedAt == nil {
			t.Errorf("disputes = %+v, want one lost dispute of 500, closed", d)
		}
		w.wantAccess(m.ID, false, "") // a first payment lost to a dispute gave nothing
	})
}

func TestTrialThenActiveOrPaused(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		for _, pay := range []bool{true, false} {
			email := fmt.Sprintf("trial-%v@example.org", pay)
			m, err := w.members.FindOrCreateMember(ctx, email)
			if err != nil {
				t.Fatal(err)
			}
			cus, err := w.billing.CustomerFor(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := w.stripe.CreateSubscription(cus, w.priceID("coffee", "month"), stripefake.SubscriptionOptions{TrialDays: 14, Metadata: map[string]string{"member_id": m.ID}})
			if err != nil {
				t.Fatal(err)
			}
			subID := sub["id"].(string)
			w.deliver(w.stripe.TakeEvents()...)
			w.wantAccess(m.ID, true, "coffee")

			w.step(11 * 24 * time.Hour)
			if err := w.stripe.TrialWillEnd(subID); err != nil {
				t.Fatal(err)
			}
			w.deliver(w.stripe.TakeEvents()...)
			w.wantMail("trial")

			if err := w.stripe.EndTrial(subID, pay); err != nil {
				t.Fatal(err)
			}
			w.syncClock(w.stripeNow())
			w.deliver(w.stripe.TakeEvents()...)
			w.wantAccess(m.ID, pay, "coffee")
			w.wantLikeStripe(subID)
		}
	})
}

func TestCustomerDeletedBeforeItsSubscription(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, subID := w.subscribe("gone@example.org", "coffee", "month")
		checkout := w.stripe.TakeEvents()
		w.deliver(checkout...)
		w.step(time.Hour)
		if err := w.stripe.DeleteCustomer(m.StripeCustomerID); err != nil {
			t.Fatal(err)
		}
		evs := w.stripe.TakeEvents()
		// customer.deleted first, then the subscription's deletion.
		for i := len(evs) - 1; i >= 0; i-- {
			w.deliver(evs[i])
		}
		// A late redelivery of the Checkout must not link the deleted
		// customer again.
		w.deliver(checkout...)
		w.wantAccess(m.ID, false, "")
		w.wantLikeStripe(subID)
		after, err := w.members.FindMemberByID(context.Background(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if after.StripeCustomerID != "" {
			t.Errorf("member still linked to deleted customer %s", after.StripeCustomerID)
		}
		if b := w.billingOf(m.ID); len(b.Subscriptions) != 1 || len(b.Payments) != 1 {
			t.Errorf("the deleted customer's subscription and payments must stay the member's: %+v", b)
		}
	})
}

// A Checkout whose subscription events never arrive still gives access in
// fetch mode (the subscription is fetched), and links the member in both.
func TestCheckoutAloneLinksTheSubscription(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, subID := w.subscribe("only-checkout@example.org", "coffee", "month")
		for _, ev := range w.stripe.TakeEvents() {
			if ev["type"] == "checkout.session.completed" {
				w.deliver(ev)
			}
		}
		var member string
		if err := w.db.QueryRow(`SELECT member_id FROM subscriptions WHERE id = $1`, subID).Scan(&member); err != nil || member != m.ID {
			t.Fatalf("subscription member = %q (%v), want %s", member, err, m.ID)
		}
		w.wantAccess(m.ID, w.mode == billing.ModeFetch, "coffee")
	})
}

// An event rendered at a newer API version than stripe-go's (periods on
// the subscription items, an invoice's subscription under parent) is read
// right, not silently mis-decoded.
func TestNewerAPIVersionEvents(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, subID := w.subscribe("basil@example.org", "coffee", "month")
		for _, ev := range w.stripe.TakeEvents() {
			w.deliver(stripefake.AtAPIVersion(ev, "2025-03-31.basil"))
		}
		w.wantAccess(m.ID, true, "coffee")
		w.wantLikeStripe(subID)
		b := w.billingOf(m.ID)
		if len(b.Payments) != 1 || b.Payments[0].SubscriptionID != subID || b.Payments[0].AmountPaid != 500 {
			t.Errorf("payments = %+v, want one of 500 for %s", b.Payments, subID)
		}
	})
}

func TestSecondSubscriptionIsRefused(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		m, _ := w.subscribe("twice@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		ctx := context.Background()
		_, err := w.billing.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{MemberID: m.ID, Tier: "press", Interval: "month", Currency: "EUR"})
		if e := errs.From(err); err == nil || e.Kind != errs.Conflict || e.Code != "already_subscribed" || e.Details["portal_url"] == "" {
			t.Fatalf("signed-in second checkout = %v, want 409 already_subscribed with a portal url", err)
		}
		_, err = w.billing.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{Email: m.Email, Tier: "press", Interval: "month", Currency: "EUR"})
		if e := errs.From(err); err == nil || e.Code != "already_subscribed" || e.Details["portal_url"] != "" {
			t.Fatalf("second checkout by email = %v, want already_subscribed without a portal url", err)
		}
	})
}

// Changes made in the Stripe dashboard reach the tiers: a product's name,
// and new amounts under our lookup keys, even two in the same second; a
// late event about an older price does not undo a newer one.
func TestDashboardCatalogChangesReachTiers(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		sc := w.stripe.Client(t)
		w.step(time.Minute)
		product, _ := w.billing.FindTier(ctx, "coffee")
		if _, err := sc.Products.Update(product.StripeProductID, &stripe.ProductParams{Name: stripe.String("Espresso")}); err != nil {
			t.Fatal(err)
		}
		newPrice := func(interval string, amount int64) {
			t.Helper()
			_, err := sc.Prices.New(&stripe.PriceParams{Product: stripe.String(product.StripeProductID), Currency: stripe.String("eur"),
				UnitAmount: stripe.Int64(amount), Recurring: &stripe.PriceRecurringParams{Interval: stripe.String(interval)},
				LookupKey: stripe.String(billing.LookupKey("coffee", billing.Interval(interval), "EUR")), TransferLookupKey: stripe.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
		}
		newPrice("month", 600) // the same second as the yearly one
		newPrice("year", 6000)
		first := w.stripe.TakeEvents()
		w.step(time.Minute)
		newPrice("month", 700)
		later := w.stripe.TakeEvents()
		w.deliver(later...) // the newest first,
		w.deliver(first...) // then the older ones, late
		tier, err := w.billing.FindTier(ctx, "coffee")
		if err != nil {
			t.Fatal(err)
		}
		month, _ := tier.PriceFor("EUR", billing.Month)
		year, _ := tier.PriceFor("EUR", billing.Year)
		if tier.Name != "Espresso" || month.Amount != 700 || year.Amount != 6000 {
			t.Errorf("tier = %s, month %d, year %d; want Espresso, 700, 6000", tier.Name, month.Amount, year.Amount)
		}
	})
}
