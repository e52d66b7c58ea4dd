package billing_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
)

// recordingSink stands in for the intake: it keeps replayed events by id,
// reporting a repeat as not new, and handles each as the queue would.
type recordingSink struct {
	mu   sync.Mutex
	seen map[string]bool
	w    *world
}

func (r *recordingSink) store(ctx context.Context, ev billing.Event, _ bool, _ []byte) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[ev.ID] {
		return false, nil
	}
	r.seen[ev.ID] = true
	return true, r.w.billing.HandleEvent(ctx, ev)
}

// The scheduled reconciliation is due from the last report, whoever made
// it: a server restarted every hour still reconciles once a day.
func TestScheduledSyncRunsWhenTheLastIsOlderThanTheInterval(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		day := 24 * time.Hour
		if _, ran, err := w.billing.SyncStripeIfDue(ctx, day); err != nil || !ran {
			t.Fatalf("first scheduled check: ran %v, %v; want a reconciliation (none on record)", ran, err)
		}
		w.step(23 * time.Hour)
		if _, ran, err := w.billing.SyncStripeIfDue(ctx, day); err != nil || ran {
			t.Fatalf("23 h later: ran %v, %v; want none (the last is not a day old)", ran, err)
		}
		w.step(time.Hour)
		if _, ran, err := w.billing.SyncStripeIfDue(ctx, day); err != nil || !ran {
			t.Fatalf("a day later: ran %v, %v; want a reconciliation", ran, err)
		}
	})
}

func TestSyncRepairsDriftAndASecondRunChangesNothing(t *testing.T) {
	eachMode(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		sink := &recordingSink{seen: map[string]bool{}, w: w}
		w.billing.SetEventSink(sink.store)

		// Only the Checkout's completion is delivered; the rest is lost.
		m, subID := w.subscribe("drift@example.org", "coffee", "month")
		for _, ev := range w.stripe.TakeEvents() {
			if ev["type"] == "checkout.session.completed" {
				sink.seen[ev["id"].(string)] = true
				w.deliver(ev)
			}
		}
		// Later the patron cancels at period end; that event is lost too.
		w.step(time.Hour)
		if err := w.stripe.SetCancelAtPeriodEnd(subID, true); err != nil {
			t.Fatal(err)
		}
		w.stripe.TakeEvents()

		rep, err := w.billing.SyncStripe(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, d := range rep.Drift {
			kinds[d.Kind]++
		}
		if kinds["subscription"] != 1 || kinds["event"] == 0 || rep.Subscriptions != 1 || rep.Invoices != 1 {
			t.Fatalf("report = %+v, want the subscription repaired and the missed events queued", rep)
		}
		w.wantLikeStripe(subID)
		a := w.access(m.ID)
		if !a.Active || a.Tier != "coffee" {
			t.Errorf("access after sync = %+v, want active on coffee", a)
		}
		if b := w.billingOf(m.ID); len(b.Payments) != 1 || b.Payments[0].AmountPaid != 500 {
			t.Errorf("payments after sync = %+v, want the first invoice", b.Payments)
		}

		w.step(time.Minute)
		again, err := w.billing.SyncStripe(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Drift) != 0 || again.EventsReplayed != 0 {
			t.Errorf("second sync found %v, want nothing", again.Drift)
		}
		last, found, err := w.billing.LastSyncReport(ctx)
		if err != nil || !found || last.ID != again.ID {
			t.Errorf("last report = %v %v %v, want the second run's", last.ID, found, err)
		}
		for _, d := range rep.Drift {
			if d.Kind == "subscription" && !strings.Contains(d.What, "not known here") && !strings.Contains(d.What, "cancel_at_period_end") {
				t.Errorf("subscription drift %q does not say what differed", d.What)
			}
		}
	})
}
