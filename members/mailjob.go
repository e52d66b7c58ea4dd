package members

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/sqldb"
)

// Mail that must not be lost to a mail server's bad minute (a covered
// topic, an admin's notice) waits in the job queue (jobs.MailQueue) and is
// offered again while the server refuses it (jobs.MailAttempts). A
// covered topic's mail is queued in the transaction that marks it
// covered. A job
// holds what the mail says, not the mail: the address and the language
// are read when it is sent, so an erasure in between leaves nothing to
// send, and the queue keeps no address. Sign-in links are not queued: they
// expire in minutes, and the reader asks again.

// MailArgs is one mail to a member waiting in the queue.
type MailArgs struct {
	Mail       string `json:"mail"` // topic_covered, endpoint_disabled
	MemberID   string `json:"member_id"`
	Topic      string `json:"topic,omitempty"`
	URL        string `json:"url,omitempty"` // the article's, or the endpoint's
	EndpointID string `json:"endpoint_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// Kind names the job in the queue.
func (MailArgs) Kind() string { return "member_mail" }

// AttachQueue gives the service the queue its mail waits in. It may be
// one that only inserts (a command's), for a running server's queue to
// send.
func (s *Service) AttachQueue(q *jobs.Client) { s.queue.Store(q) }

// AddJobs registers the worker that sends queued mail.
func (s *Service) AddJobs(workers *river.Workers) {
	river.AddWorker(workers, &mailWorker{members: s})
}

// MailTopicCovered queues, in tx (nil: on its own), a mail to each patron
// who voted for a topic telling them it was covered, with the article's
// link, each in their own language when it is sent.
func (s *Service) MailTopicCovered(ctx context.Context, tx *sql.Tx, voterIDs []string, topic, articleURL string) error {
	mails := make([]MailArgs, 0, len(voterIDs))
	for _, id := range voterIDs {
		mails = append(mails, MailArgs{Mail: "topic_covered", MemberID: id, Topic: topic, URL: articleURL})
	}
	return s.queueMail(ctx, tx, mails)
}

// MailEndpointDisabled tells every admin that one of the newsroom's
// webhook endpoints was disabled, and why.
func (s *Service) MailEndpointDisabled(ctx context.Context, endpointID, endpointURL, reason string) error {
	adminIDs, err := sqldb.QueryStrings(ctx, s.db, `SELECT id FROM members WHERE role = $1 ORDER BY id`, string(RoleAdmin))
	if err != nil {
		return fmt.Errorf("list admins: %w", err)
	}
	mails := make([]MailArgs, 0, len(adminIDs))
	for _, id := range adminIDs {
		mails = append(mails, MailArgs{Mail: "endpoint_disabled", MemberID: id, EndpointID: endpointID, URL: endpointURL, Reason: reason})
	}
	return s.queueMail(ctx, nil, mails)
}

// queueMail queues mails in one insert, in tx when it is not nil.
func (s *Service) queueMail(ctx context.Context, tx *sql.Tx, mails []MailArgs) error {
	if len(mails) == 0 {
		return nil
	}
	q := s.queue.Load()
	if q == nil {
		return fmt.Errorf("queue %s mail: no job queue attached", mails[0].Mail)
	}
	params := make([]river.InsertManyParams, 0, len(mails))
	for _, a := range mails {
		params = append(params, river.InsertManyParams{Args: a, InsertOpts: &river.InsertOpts{Queue: jobs.MailQueue, MaxAttempts: jobs.MailAttempts}})
	}
	var err error
	if tx != nil {
		_, err = q.InsertManyTx(ctx, tx, params)
	} else {
		_, err = q.InsertMany(ctx, params)
	}
	if err != nil {
		return fmt.Errorf("queue %s mail: %w", mails[0].Mail, err)
	}
	return nil
}

type mailWorker struct {
	river.WorkerDefaults[MailArgs]
	members *Service
}

// Work renders the mail in the member's language as it is now and hands
// it to the mail server; an error has River try again later.
func (w *mailWorker) Work(ctx context.Context, job *river.Job[MailArgs]) error {
	msg, err := w.members.renderMail(ctx, job.Args)
	if errs.Is(err, errs.NotFound) {
		return nil // erased since: there is no one to write to
	}
	if err != nil || msg == nil {
		return err
	}
	return w.members.DeliverQueued(ctx, *msg, job.Args.Mail, job.Args.MemberID, job.Attempt, job.MaxAttempts)
}

// DeliverQueued hands a queued mail to the mail server and waits for its
// answer, for a job of the queue (attempt of max). Its error is for the
// queue to keep, so it leaves out the address that servers' replies name;
// a refusal for good (5xx) stops the job rather than trying again.
func (s *Service) DeliverQueued(ctx context.Context, msg mail.Message, kind, memberID string, attempt, max int) error {
	err := s.mailer.Send(ctx, msg)
	if err == nil {
		return nil
	}
	kept := mail.WithoutAddress(err, msg.To)
	if mail.RefusedForGood(err) {
		s.logger.ErrorContext(ctx, "mail refused for good; not tried again", "mail", kind, "member_id", memberID, "err", kept)
		return river.JobCancel(kept)
	}
	s.logger.WarnContext(ctx, "mail not sent; it is tried again", "mail", kind, "member_id", memberID, "attempt", attempt, "of", max, "err", kept)
	return kept
}

// renderMail is a as a message to its member; nil without templates.
func (s *Service) renderMail(ctx context.Context, a MailArgs) (*mail.Message, error) {
	if s.templates == nil {
		return nil, nil
	}
	m, err := s.FindMemberByID(ctx, a.MemberID)
	if err != nil {
		return nil, err
	}
	t := s.templates.In(m.MailLanguage())
	var msg mail.Message
	switch a.Mail {
	case "topic_covered":
		msg, err = t.TopicCovered(m.Email, m.Name, a.Topic, a.URL)
	case "endpoint_disabled":
		msg, err = t.EndpointDisabled(m.Email, a.EndpointID, a.URL, a.Reason)
	default:
		return nil, fmt.Errorf("unknown mail %q", a.Mail)
	}
	if err != nil {
		return nil, fmt.Errorf("render %s mail: %w", a.Mail, err)
	}
	return &msg, nil
}
