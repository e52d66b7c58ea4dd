package billing_test

import (
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
)

// billingMailJobs counts the queue's patron mail jobs in a state.
func (w *world) billingMailJobs(state string) int {
	w.t.Helper()
	var n int
	if err := w.db.QueryRow(`SELECT count(*) FROM river_job WHERE kind = $1 AND state = $2`, billing.MailArgs{}.Kind(), state).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// A mail server that is down when a reader becomes a patron does not cost
// them their welcome: the queue offers it again.
func TestPatronMailIsSentAgainWhenTheMailServerRefusesIt(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t, db, billing.ModeFetch)
		w.mail.refuse.Store(1)
		w.subscribe("ines@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		w.wantMail("Welcome")
		if n := w.mail.refused.Load(); n != 1 {
			t.Fatalf("the mail server refused %d messages, want the welcome's first try", n)
		}
	})
}

// A process that decides a mail and dies before sending it does not lose
// it: the mail is a job, committed with the change, and the next process
// sends it.
func TestPatronMailDecidedBeforeACrashIsSentByTheNextProcess(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorldWithoutQueue(t, db, billing.ModeFetch)
		m, _ := w.subscribe("oskar@example.org", "coffee", "month")
		events := w.stripe.TakeEvents()
		w.deliver(events...)
		w.wantAccess(m.ID, true, "coffee")
		if n := w.billingMailJobs("available"); n != 1 {
			t.Fatalf("%d patron mails wait in the queue, want the welcome", n)
		}
		select {
		case msg := <-w.mail.sent:
			t.Fatalf("%q was sent by the process that decided it, not the queue", msg.Subject)
		default:
		}

		// The same events again, as Stripe redelivers them: still one mail.
		w.deliver(events...)
		if n := w.billingMailJobs("available"); n != 1 {
			t.Fatalf("%d patron mails wait after the events came twice, want 1", n)
		}

		w.runQueue()
		w.wantMail("Welcome")
	})
}

// A mail that waited in the queue (a mail server down for hours) is not
// sent once it would be untrue: a failed payment paid since is not
// announced as failed.
func TestAPaymentFailedMailIsDroppedOnceTheInvoiceIsPaid(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorldWithoutQueue(t, db, billing.ModeFetch)
		m, subID := w.subscribe("pilar@example.org", "coffee", "month")
		w.deliver(w.stripe.TakeEvents()...)
		failed, err := w.stripe.RenewSubscription(subID, false)
		if err != nil {
			t.Fatal(err)
		}
		w.syncClock(w.stripeNow())
		w.deliver(w.stripe.TakeEvents()...)
		if n := w.billingMailJobs("available"); n != 2 {
			t.Fatalf("%d patron mails wait, want the welcome and the failed payment", n)
		}
		w.step(24 * time.Hour)
		if err := w.stripe.PayInvoice(failed); err != nil {
			t.Fatal(err)
		}
		w.deliver(w.stripe.TakeEvents()...)
		w.wantAccess(m.ID, true, "coffee")

		w.runQueue()
		for done := 0; done < 2; done++ {
			select {
			case <-w.jobsDone:
			case <-time.After(mailWait):
				t.Fatalf("%d of 2 mail jobs done in %s", done, mailWait)
			}
		}
		var subjects []string
		for len(w.mail.sent) > 0 {
			subjects = append(subjects, (<-w.mail.sent).Subject)
		}
		if len(subjects) != 1 || !strings.Contains(subjects[0], "Welcome") {
			t.Errorf("sent %q, want the welcome alone", subjects)
		}
	})
}
