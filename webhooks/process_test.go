package webhooks_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/webhooks"
)

func storeEvent(t *testing.T, db *sqldb.DB, id, typ string) *webhooks.Intake {
	t.Helper()
	ctx := context.Background()
	if _, err := jobs.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	queue, err := jobs.New(db, nil, testenv.Logger(), jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := webhooks.NewIntake(db, queue, nil)
	body := []byte(`{"id":"` + id + `","object":"event","type":"` + typ + `","api_version":"2023-10-16","created":1764000000,"livemode":false,"data":{"object":{"id":"sub_1"}}}`)
	ev, err := webhooks.Verify(body, sign(body, secret, time.Now()), []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Accept(ctx, ev, body); err != nil {
		t.Fatal(err)
	}
	return in
}

func job(id string, attempt, max int) *river.Job[webhooks.ProcessArgs] {
	return &river.Job[webhooks.ProcessArgs]{JobRow: &rivertype.JobRow{Attempt: attempt, MaxAttempts: max}, Args: webhooks.ProcessArgs{EventID: id}}
}

func statusOf(t *testing.T, in *webhooks.Intake, id string) webhooks.StoredEvent {
	t.Helper()
	list, err := in.ListEvents(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("event %s not listed", id)
	return webhooks.StoredEvent{}
}

func TestEventsAreProcessedIgnoredOrDeadLettered(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		calls := 0
		fail := true
		w := webhooks.NewWorker(db, webhooks.Handlers{
			"customer.subscription.updated": func(ctx context.Context, ev webhooks.Event) error {
				calls++
				if string(ev.Object) != `{"id":"sub_1"}` {
					t.Errorf("handler got object %s", ev.Object)
				}
				if fail {
					return errs.WithCode(errs.Unavailable, "payments_unavailable", "Stripe is down.")
				}
				return nil
			},
		}, testenv.Logger(), nil)

		in := storeEvent(t, db, "evt_handled", "customer.subscription.updated")
		if err := w.Work(ctx, job("evt_handled", 1, 3)); err == nil {
			t.Fatal("a failing handler's error was swallowed: River would not retry")
		}
		if e := statusOf(t, in, "evt_handled"); e.Status != webhooks.StatusPending || e.LastError != "Stripe is down." || e.Attempts != 1 {
			t.Errorf("after a failed attempt: %+v", e)
		}
		w.Work(ctx, job("evt_handled", 3, 3))
		if e := statusOf(t, in, "evt_handled"); e.Status != webhooks.StatusFailed {
			t.Errorf("after the last attempt: %+v, want failed", e)
		}
		if failed, _ := in.ListEvents(ctx, "failed", 10); len(failed) != 1 {
			t.Errorf("failed list = %v", failed)
		}

		fail = false
		if err := in.Retry(ctx, "evt_handled"); err != nil {
			t.Fatal(err)
		}
		if err := w.Work(ctx, job("evt_handled", 1, 3)); err != nil {
			t.Fatal(err)
		}
		if e := statusOf(t, in, "evt_handled"); e.Status != webhooks.StatusProcessed || e.ProcessedAt == nil {
			t.Errorf("after a retry: %+v", e)
		}
		before := calls
		if err := w.Work(ctx, job("evt_handled", 1, 3)); err != nil || calls != before {
			t.Errorf("a processed event was handled again (%v)", err)
		}

		storeEvent(t, db, "evt_other", "balance.available")
		if err := w.Work(ctx, job("evt_other", 1, 3)); err != nil {
			t.Fatal(err)
		}
		if e := statusOf(t, in, "evt_other"); e.Status != webhooks.StatusIgnored {
			t.Errorf("an unhandled type = %+v, want ignored", e)
		}
		if err := in.Retry(ctx, "evt_nope"); err == nil {
			t.Error("retrying an unknown event succeeded")
		}
		if _, err := in.ListEvents(ctx, "exploded", 10); err == nil {
			t.Error("an unknown status filter was accepted")
		}
	})
}
