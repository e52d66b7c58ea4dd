package members_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/mail/mailtest"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
)

// flakyMail is a mail server that refuses its first refuse messages, then
// keeps what it is sent.
type flakyMail struct {
	mu      sync.Mutex
	refuse  int
	refused int
	sent    []mail.Message
}

func (f *flakyMail) Send(_ context.Context, m mail.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refused < f.refuse {
		f.refused++
		return errors.New("421 4.3.2 service not available")
	}
	f.sent = append(f.sent, m)
	return nil
}

func (f *flakyMail) received() (sent []mail.Message, refused int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mail.Message(nil), f.sent...), f.refused
}

// newMailingService is a members service on db (its job queue's tables
// made) that mails through sender, in English and Ukrainian.
func newMailingService(t *testing.T, db *sqldb.DB, sender mail.Sender) (*members.Service, *mail.Templates) {
	t.Helper()
	if _, err := jobs.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	templates, err := mail.NewTemplates("The Test Times", i18ntest.Catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse("https://patrons.test")
	return members.NewService(members.Deps{DB: db, Mailer: sender, Templates: templates, BaseURL: base, Logger: testenv.Logger(),
		Languages: []string{"en", "uk"}}), templates
}

// runMailQueue runs a queue working s's mail until the test ends; the
// channel hears each job that ends as kind says.
func runMailQueue(t *testing.T, db *sqldb.DB, s *members.Service, kind river.EventKind) (*jobs.Client, <-chan *river.Event) {
	t.Helper()
	workers := river.NewWorkers()
	s.AddJobs(workers)
	q, err := jobs.New(db, workers, testenv.Logger(), jobs.Options{PollInterval: 20 * time.Millisecond, Queues: map[string]int{jobs.MailQueue: 2}})
	if err != nil {
		t.Fatal(err)
	}
	events, stop := q.Subscribe(kind)
	t.Cleanup(stop)
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return q, events
}

// The patrons who voted for a covered topic, and the admins told of a
// disabled endpoint, get their mail even when the mail server refuses it
// at first, each in their own language; a member gone by then gets none.
func TestQueuedMailWaitsOutAMailServerThatRefusesIt(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		server := &flakyMail{refuse: 1}
		s, templates := newMailingService(t, db, server)

		olena, err := s.FindOrCreateMember(ctx, "olena@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetLanguage(ctx, olena.ID, "uk"); err != nil {
			t.Fatal(err)
		}
		admin, _, err := s.EnsureStaff(ctx, members.CommandLine, "desk@example.org", "Desk", members.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}

		// Queued by a process that only inserts, as a staff request does.
		inserter, err := jobs.New(db, nil, testenv.Logger(), jobs.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.AttachQueue(inserter)
		// Queued with the change that marks the topic covered: a change
		// undone queues nothing.
		undone := db.InTx(ctx, func(tx *sql.Tx) error {
			if err := s.MailTopicCovered(ctx, tx, []string{olena.ID}, "Undone", "https://news.example.org/undone"); err != nil {
				return err
			}
			return errors.New("the cover failed")
		})
		var queued int
		if err := db.QueryRow(`SELECT count(*) FROM river_job WHERE kind = $1`, members.MailArgs{}.Kind()).Scan(&queued); err != nil || undone == nil || queued != 0 {
			t.Fatalf("after an undone cover %d mails are queued (%v, %v), want none", queued, undone, err)
		}
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			return s.MailTopicCovered(ctx, tx, []string{olena.ID, "mem_gone"}, "Rents in the old town", "https://news.example.org/rents")
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.MailEndpointDisabled(ctx, "whe_1", "https://hooks.example.org/in", "every attempt failed for 3 days"); err != nil {
			t.Fatal(err)
		}
		if sent, refused := server.received(); len(sent) != 0 || refused != 0 {
			t.Fatalf("%d mails were offered before a queue ran, want them queued", len(sent)+refused)
		}

		_, done := runMailQueue(t, db, s, river.EventKindJobCompleted)
		for completed := 0; completed < 3; {
			select {
			case <-done:
				completed++
			case <-time.After(30 * time.Second):
				t.Fatalf("%d of 3 mail jobs completed in 30s", completed)
			}
		}

		sent, refused := server.received()
		if refused != 1 {
			t.Errorf("the mail server refused %d mails, want 1", refused)
		}
		subjects := map[string]string{}
		for _, m := range sent {
			subjects[m.To] = m.Subject
		}
		if len(sent) != 2 || len(subjects) != 2 {
			t.Fatalf("sent %d mails (%v), want one to the voter and one to the admin", len(sent), subjects)
		}
		uk, err := templates.In("uk").TopicCovered(olena.Email, olena.Name, "Rents in the old town", "https://news.example.org/rents")
		if err != nil {
			t.Fatal(err)
		}
		if subjects[olena.Email] != uk.Subject {
			t.Errorf("the voter's mail is %q, want the Ukrainian %q", subjects[olena.Email], uk.Subject)
		}
		en, err := templates.In("en").EndpointDisabled(admin.Email, "whe_1", "https://hooks.example.org/in", "every attempt failed for 3 days")
		if err != nil {
			t.Fatal(err)
		}
		if subjects[admin.Email] != en.Subject {
			t.Errorf("the admin's mail is %q, want %q", subjects[admin.Email], en.Subject)
		}
	})
}

// A mail server that refuses an address for good (550) is not asked again
// for eleven hours, and the job keeps its error without the address.
func TestAMailRefusedForGoodIsNotTriedAgainAndKeepsNoAddress(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		smtp := mailtest.Start(t, mailtest.PlainOnly)
		sender, err := mail.New("smtp://127.0.0.1:"+smtp.Port(), "Patrons <patrons@example.org>", testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		s, _ := newMailingService(t, db, sender)
		gone, err := s.FindOrCreateMember(ctx, mailtest.RefusedForGood)
		if err != nil {
			t.Fatal(err)
		}
		q, cancelled := runMailQueue(t, db, s, river.EventKindJobCancelled)
		s.AttachQueue(q)
		if err := s.MailTopicCovered(ctx, nil, []string{gone.ID}, "Rents in the old town", "https://news.example.org/rents"); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-cancelled:
			if ev.Job.Attempt != 1 {
				t.Errorf("cancelled at attempt %d, want the first", ev.Job.Attempt)
			}
			if len(ev.Job.Errors) != 1 {
				t.Fatalf("the job kept %d errors, want the refusal", len(ev.Job.Errors))
			}
			kept := ev.Job.Errors[0].Error
			if strings.Contains(kept, mailtest.RefusedForGood) || !strings.Contains(kept, "550") {
				t.Errorf("the job keeps %q: want the 550 without the address", kept)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the refused mail's job was not cancelled in 30s")
		}
	})
}
