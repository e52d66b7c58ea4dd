package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
)

// Patron mail (welcome, payment failed, trial ending) is decided in the
// transaction of the change that calls for it, once per occasion
// (billing_notifications), and queued in that same transaction as a job:
// a crash after the commit does not lose it, and a mail server that
// refuses or is down has it offered again (jobs.MailQueue,
// jobs.MailAttempts). A mail that would be untrue by its turn (a payment
// since made, a trial over) is dropped.

// MailArgs is one patron mail waiting in the queue. It holds what the
// mail says, not the mail: the member's address and language are read
// when it is sent, so an erasure in between leaves nothing to send.
type MailArgs struct {
	Mail     string    `json:"mail"` // welcome, payment_failed, trial_ending
	MemberID string    `json:"member_id"`
	Tier     string    `json:"tier,omitempty"`
	Amount   int64     `json:"amount,omitempty"`
	Currency string    `json:"currency,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Invoice  string    `json:"invoice,omitempty"` // a failed payment's
}

// Kind names the job in the queue.
func (MailArgs) Kind() string { return "billing_mail" }

// AttachQueue makes patron mail durable: from now on it is queued in the
// transaction that decides it. The queue may be one that only inserts (a
// command's), for a running server's queue to send.
func (s *Service) AttachQueue(q *jobs.Client) { s.queue.Store(q) }

// decideMail queues a in tx. A service with no queue (tests of other
// parts, the demo) sends no patron mail.
func (s *Service) decideMail(ctx context.Context, tx *sql.Tx, a MailArgs) error {
	q := s.queue.Load()
	if q == nil {
		return nil
	}
	if _, err := q.InsertTx(ctx, tx, a, &river.InsertOpts{Queue: jobs.MailQueue, MaxAttempts: jobs.MailAttempts}); err != nil {
		return fmt.Errorf("queue %s mail: %w", a.Mail, err)
	}
	return nil
}

type mailWorker struct {
	river.WorkerDefaults[MailArgs]
	billing *Service
}

// Work renders the mail in the member's language as it is now and hands
// it to the mail server; an error has River try again later.
func (w *mailWorker) Work(ctx context.Context, job *river.Job[MailArgs]) error {
	a := job.Args
	if outdated, err := w.billing.mailOutdated(ctx, a); err != nil || outdated {
		return err
	}
	msg, err := w.billing.renderMail(ctx, a)
	if errs.Is(err, errs.NotFound) {
		// Erased since: there is no one to write to.
		return nil
	}
	if err != nil || msg == nil {
		return err
	}
	return w.billing.members.DeliverQueued(ctx, *msg, a.Mail, a.MemberID, job.Attempt, job.MaxAttempts)
}

// mailOutdated reports whether a mail that waited (a mail server down for
// hours) would now tell its reader something untrue: a failed payment
// since paid or voided, a trial that has already ended.
func (s *Service) mailOutdated(ctx context.Context, a MailArgs) (bool, error) {
	switch a.Mail {
	case "payment_failed":
		if a.Invoice == "" {
			return false, nil
		}
		var status string
		err := s.db.QueryRowContext(ctx, `SELECT status FROM invoices WHERE id = $1`, a.Invoice).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read invoice: %w", err)
		}
		return status == "paid" || status == "void", nil
	case "trial_ending":
		return !a.At.IsZero() && !s.now().Before(a.At), nil
	}
	return false, nil
}

// renderMail is a as a message to its member, in their language; nil
// when the service has no templates or members to mail with.
func (s *Service) renderMail(ctx context.Context, a MailArgs) (*mail.Message, error) {
	if s.templates == nil || s.members == nil {
		return nil, nil
	}
	m, err := s.members.FindMemberByID(ctx, a.MemberID)
	if err != nil {
		return nil, err
	}
	tierName := a.Tier
	if t, err := findTier(ctx, s.db, a.Tier); err == nil {
		tierName = t.Name
	}
	account := s.baseURL.String() + "/account"
	templates := s.templates.In(m.MailLanguage()) // the member's own, else the newsroom's default
	var msg mail.Message
	switch a.Mail {
	case "welcome":
		msg, err = templates.WelcomePatron(m.Email, m.Name, tierName, account)
	case "payment_failed":
		msg, err = templates.PaymentFailed(m.Email, m.Name, a.Amount, a.Currency, account)
	case "trial_ending":
		msg, err = templates.TrialEnding(m.Email, m.Name, tierName, a.At, account)
	default:
		return nil, fmt.Errorf("unknown mail %q", a.Mail)
	}
	if err != nil {
		return nil, err
	}
	return &msg, nil
}
