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
// since made, a trial over) is dropped. Without a queue (tests of other
// parts, the demo) it is sent after the commit, at most once.

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

// pendingMail is a patron mail decided in a transaction.
type pendingMail struct {
	kind     string // welcome, payment_failed, trial_ending
	memberID string
	tier     string
	amount   int64
	currency string
	at       time.Time
	invoice  string
}

// decideMail queues pm in tx, or, with no queue attached, keeps it in fx
// to send after the commit.
func (s *Service) decideMail(ctx context.Context, tx *sql.Tx, fx *effects, pm pendingMail) error {
	q := s.queue.Load()
	if q == nil {
		fx.mails = append(fx.mails, pm)
		return nil
	}
	args := MailArgs{Mail: pm.kind, MemberID: pm.memberID, Tier: pm.tier, Amount: pm.amount, Currency: pm.currency, At: pm.at, Invoice: pm.invoice}
	if _, err := q.InsertTx(ctx, tx, args, &river.InsertOpts{Queue: jobs.MailQueue, MaxAttempts: jobs.MailAttempts}); err != nil {
		return fmt.Errorf("queue %s mail: %w", pm.kind, err)
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
	msg, err := w.billing.renderMail(ctx, pendingMail{kind: a.Mail, memberID: a.MemberID, tier: a.Tier, amount: a.Amount, currency: a.Currency, at: a.At})
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

// sendMail sends pm off the caller's path (the path with no queue).
func (s *Service) sendMail(ctx context.Context, pm pendingMail) error {
	msg, err := s.renderMail(ctx, pm)
	if err != nil || msg == nil {
		return err
	}
	s.members.SendMail(*msg)
	return nil
}

// renderMail is pm as a message to its member, in their language; nil
// when the service has no templates or members to mail with.
func (s *Service) renderMail(ctx context.Context, pm pendingMail) (*mail.Message, error) {
	if s.templates == nil || s.members == nil {
		return nil, nil
	}
	m, err := s.members.FindMemberByID(ctx, pm.memberID)
	if err != nil {
		return nil, err
	}
	tierName := pm.tier
	if t, err := findTier(ctx, s.db, pm.tier); err == nil {
		tierName = t.Name
	}
	account := s.baseURL.String() + "/account"
	templates := s.templates.In(m.MailLanguage()) // the member's own, else the newsroom's default
	var msg mail.Message
	switch pm.kind {
	case "welcome":
		msg, err = templates.WelcomePatron(m.Email, m.Name, tierName, account)
	case "payment_failed":
		msg, err = templates.PaymentFailed(m.Email, m.Name, pm.amount, pm.currency, account)
	case "trial_ending":
		msg, err = templates.TrialEnding(m.Email, m.Name, tierName, pm.at, account)
	default:
		return nil, fmt.Errorf("unknown mail %q", pm.kind)
	}
	if err != nil {
		return nil, err
	}
	return &msg, nil
}
