package webhooks_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/webhooks"
)

type noMail struct{}

func (noMail) Send(context.Context, mail.Message) error { return nil }

// The whole way in: signed deliveries (some at a 2025 API version, some
// twice at once) are verified, stored with their jobs, worked by River and
// handled by billing, and the patron ends up with access, once.
func TestSignedEventsBecomeMembership(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		for _, mode := range []billing.WebhookMode{billing.ModeFetch, billing.ModePayload} {
			t.Run(string(mode), func(t *testing.T) { runPipeline(t, db, mode) })
		}
	})
}

func runPipeline(t *testing.T, db *sqldb.DB, mode billing.WebhookMode) {
	ctx := context.Background()
	if _, err := jobs.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	fake := stripefake.New(t)
	base, _ := url.Parse("https://patrons.test")
	templates, _ := mail.NewTemplates("The Test Times", i18ntest.Catalog(t))
	ms := members.NewService(members.Deps{DB: db, Redis: testenv.EmbeddedRedis(t), Mailer: noMail{}, Templates: templates, BaseURL: base, Logger: testenv.Logger()})
	defer ms.Close(ctx)
	bs := billing.NewService(billing.Deps{DB: db, Stripe: fake.Client(t), Members: ms, BaseURL: base, Logger: testenv.Logger(), WebhookMode: mode})
	tier := billing.TierInput{Slug: "coffee-" + string(mode), Name: "Coffee", Prices: []billing.PriceInput{{Currency: "EUR", Interval: "month", Amount: 500}}}
	if _, err := bs.CreateTier(ctx, members.CommandLine, tier); err != nil {
		t.Fatal(err)
	}
	m, err := ms.FindOrCreateMember(ctx, string(mode)+"@example.org")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := bs.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{MemberID: m.ID, Tier: tier.Slug, Interval: "month", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fake.CompleteCheckoutSession(cs.ID); err != nil {
		t.Fatal(err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, webhooks.NewWorker(db, webhooks.BillingHandlers(bs), testenv.Logger(), nil))
	queue, err := jobs.New(db, workers, testenv.Logger(), jobs.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := queue.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	if err := queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer queue.Stop(ctx)
	in := webhooks.NewIntake(db, queue, nil)

	// Replay the checkout's events, re-rendered at a newer API version, each
	// delivered twice at once; and an event type nobody handles.
	sub := subscriptionOf(t, db, fake, m.ID)
	var events []map[string]any
	for _, ev := range fake.Events() {
		switch ev["type"] {
		case "customer.subscription.created", "invoice.paid", "checkout.session.completed", "charge.succeeded":
			events = append(events, stripefake.AtAPIVersion(ev, "2025-03-31.basil"))
		}
	}
	if len(events) != 4 {
		t.Fatalf("the checkout made %d events of interest, want 4", len(events))
	}
	var wg sync.WaitGroup
	for _, ev := range events {
		body, header := stripefake.SignedDelivery(ev, secret, time.Now())
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				parsed, err := webhooks.Verify(body, header, []string{secret})
				if err != nil {
					t.Errorf("verify %s: %v", ev["id"], err)
					return
				}
				if _, err := in.Accept(ctx, parsed, body); err != nil {
					t.Errorf("accept %s: %v", ev["id"], err)
				}
			}()
		}
	}
	wg.Wait()

	// Four stored events, four jobs: wait for each to finish.
	for range 4 {
		select {
		case ev := <-done:
			if ev.Kind != river.EventKindJobCompleted {
				t.Fatalf("job %d %s: %v", ev.Job.ID, ev.Kind, ev.Job.Errors)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the queue did not finish the events within 30s")
		}
	}
	all, err := in.ListEvents(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]bool{}
	for _, ev := range events {
		ours[ev["id"].(string)] = true
	}
	statuses := map[string]string{}
	n := 0
	for _, e := range all {
		if !ours[e.ID] {
			continue // the other mode's, in the same database
		}
		n++
		statuses[e.Type] = string(e.Status)
		if e.Attempts != 1 {
			t.Errorf("%s handled %d times, want once", e.ID, e.Attempts)
		}
	}
	if n != 4 || statuses["charge.succeeded"] != "ignored" || statuses["invoice.paid"] != "processed" ||
		statuses["customer.subscription.created"] != "processed" || statuses["checkout.session.completed"] != "processed" {
		t.Fatalf("stored events = %v (%d), want 4: charge.succeeded ignored, the rest processed", statuses, n)
	}
	a, err := bs.AccessOf(ctx, m.ID)
	if err != nil || !a.Active || a.Tier != tier.Slug || a.Until == nil {
		t.Fatalf("access = %+v, %v; want active on %s with an end", a, err, tier.Slug)
	}
	stripeSub, _ := fake.Subscription(sub)
	if a.Until.Unix() != stripeSub["current_period_end"].(int64) {
		t.Errorf("access until %s, Stripe's period ends %v: the 2025 event's period (on its items) was misread", a.Until, stripeSub["current_period_end"])
	}
	b, err := bs.MemberBilling(ctx, m.ID)
	if err != nil || len(b.Payments) != 1 || b.Payments[0].AmountPaid != 500 || b.Payments[0].SubscriptionID != sub {
		t.Errorf("payments = %+v, %v; want one of 500 for %s", b.Payments, err, sub)
	}
}

func subscriptionOf(t *testing.T, db *sqldb.DB, fake *stripefake.Server, memberID string) string {
	t.Helper()
	for _, ev := range fake.Events() {
		if ev["type"] == "customer.subscription.created" {
			obj := ev["data"].(map[string]any)["object"].(map[string]any)
			if meta, _ := obj["metadata"].(map[string]any); meta["member_id"] == memberID {
				return obj["id"].(string)
			}
		}
	}
	t.Fatalf("no subscription for %s", memberID)
	return ""
}
