package billing_test

import (
	"testing"

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
