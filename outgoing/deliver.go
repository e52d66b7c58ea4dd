package outgoing

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/members"
)

// Queue is the job queue's queue for deliveries, with workers of its own,
// so endpoints that are slow or down hold up no other job.
const Queue = "outgoing_webhooks"

// DeliverArgs is the job that delivers one event to one endpoint.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
	// Token is the delivery's job_token when the job was queued: a
	// redelivery gets a new one, and a job whose token is no longer the
	// delivery's (left over from before a redelivery) does nothing.
	Token string `json:"token,omitempty"`
}

// Kind names the job in the queue.
func (DeliverArgs) Kind() string { return "outgoing_webhook_delivery" }

// InsertOpts puts deliveries on their own queue, one job at a time each
// (a job finished does not stop a redelivery): retries are the worker's
// snoozes, on the delivery's own schedule, so River's attempts only count
// crashes.
func (DeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 25, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled}}}
}

// AddWorker registers the delivery worker and the daily clean-up, and
// returns the clean-up's schedule.
func (s *Service) AddWorker(workers *river.Workers) []*river.PeriodicJob {
	river.AddWorker(workers, &deliverWorker{s: s})
	river.AddWorker(workers, &pruneWorker{s: s})
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return PruneArgs{}, &river.InsertOpts{MaxAttempts: 3} },
		&river.PeriodicJobOpts{RunOnStart: true})}
}

// Keep is how long events are kept after they were made: 30 days, as
// Stripe keeps its own. A delivery still pending keeps its event.
const Keep = 30 * 24 * time.Hour

// PruneArgs is the daily job that forgets old events and their deliveries.
type PruneArgs struct{}

// Kind names the job in the queue.
func (PruneArgs) Kind() string { return "outgoing_webhook_prune" }

type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	s *Service
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	n, err := w.s.Prune(ctx)
	if n > 0 {
		w.s.logger.InfoContext(ctx, "forgot old outgoing webhook events", "events", n)
	}
	return err
}

// Prune deletes events made more than Keep ago, with their deliveries and
// attempts, unless a delivery of theirs is still pending.
func (s *Service) Prune(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-Keep)
	old, err := sqldb.QueryStrings(ctx, s.db, `SELECT id FROM outgoing_events e WHERE created_at < $1
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending') LIMIT 10000`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("find old outgoing events: %w", err)
	}
	for chunk := range slices.Chunk(old, 500) {
		in := sqldb.Placeholders(1, len(chunk))
		err := s.db.InTx(ctx, func(tx *sql.Tx) error {
			for _, q := range []string{
				`DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE event_id IN (` + in + `))`,
				`DELETE FROM webhook_deliveries WHERE event_id IN (` + in + `)`,
				`DELETE FROM outgoing_events WHERE id IN (` + in + `)`,
			} {
				if _, err := tx.ExecContext(ctx, q, sqldb.Args(chunk)...); err != nil {
					return fmt.Errorf("forget old outgoing events: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	s *Service
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	return w.s.deliver(ctx, job.Args, snoozes(job.Metadata))
}

// snoozes is how often River has snoozed the job so far.
func snoozes(metadata []byte) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m)
	return m.Snoozes
}

// pendingDelivery is what an attempt needs.
type pendingDelivery struct {
	id, endpointID, eventID, url, payload, token string
	secrets                                      []string
	disabled                                     bool
	firstTry                                     *time.Time
	attempts                                     int
}

var errGone = errors.New("delivery gone")

func (s *Service) loadDelivery(ctx context.Context, id string) (pendingDelivery, error) {
	var d pendingDelivery
	var status, secret string
	var previous sql.NullString
	var previousExpires, disabled, firstTry sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT d.status, d.job_token, d.endpoint_id, d.event_id, d.first_try_at, d.attempts, e.url, e.secret, e.previous_secret,
		e.previous_expires_at, e.disabled_at, ev.payload FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
		JOIN outgoing_events ev ON ev.id = d.event_id WHERE d.id = $1`, id).
		Scan(&status, &d.token, &d.endpointID, &d.eventID, &firstTry, &d.attempts, &d.url, &secret, &previous, &previousExpires, &disabled, &d.payload)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && status != "pending") {
		return d, errGone // its endpoint was deleted, or it is done
	}
	if err != nil {
		return d, fmt.Errorf("read webhook delivery: %w", err)
	}
	d.id, d.disabled, d.firstTry = id, disabled.Valid, timePtr(firstTry)
	d.secrets = []string{secret}
	if previous.Valid && previousExpires.Valid && previousExpires.Time.After(s.now()) {
		d.secrets = append(d.secrets, previous.String)
	}
	return d, nil
}

// deliver makes one attempt at a delivery, records it, and decides what
// follows: done, another attempt later (a snooze of the job, on the
// delivery's own backoff), or failed for good.
func (s *Service) deliver(ctx context.Context, args DeliverArgs, snoozed int) error {
	d, err := s.loadDelivery(ctx, args.DeliveryID)
	if errors.Is(err, errGone) || (err == nil && d.token != args.Token) {
		return nil // done, gone, or left over from before a redelivery
	}
	if err != nil {
		return err
	}
	if d.disabled {
		_, err := s.db.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL WHERE id = $1 AND status = 'pending'`, d.id)
		return err
	}
	if !s.acquire(d.endpointID) {
		// The endpoint already has its share of workers: leave this one to
		// other endpoints and look again later, later each time (up to a
		// minute), so a backlog for one slow endpoint waits quietly.
		wait := min(time.Second<<min(snoozed, 6), time.Minute)
		return river.JobSnooze(wait + rand.N(wait/2+1))
	}
	defer s.release(d.endpointID)

	a := s.attempt(ctx, d)
	next, disabled, err := s.record(ctx, d, a)
	if err != nil {
		return err
	}
	if disabled != nil && s.onDisabled != nil {
		s.onDisabled(context.WithoutCancel(ctx), *disabled)
	}
	if next > 0 {
		return river.JobSnooze(next)
	}
	return nil
}

func (s *Service) acquire(endpoint string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight[endpoint] >= s.perEndpoint {
		return false
	}
	s.inFlight[endpoint]++
	return true
}

func (s *Service) release(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight[endpoint]--; s.inFlight[endpoint] <= 0 {
		delete(s.inFlight, endpoint)
	}
}

// Attempt is one try at a delivery, as the endpoint answered it.
type Attempt struct {
	ID              string
	At              time.Time
	Duration        time.Duration
	ResponseStatus  int // 0: no answer (Error says why)
	ResponseExcerpt string
	Error           string
}

// OK is whether the endpoint took the event: any 2xx.
func (a Attempt) OK() bool { return a.ResponseStatus >= 200 && a.ResponseStatus < 300 }

func (s *Service) attempt(ctx context.Context, d pendingDelivery) Attempt {
	a := Attempt{ID: ids.New("wha"), At: s.now()}
	body := []byte(d.payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		a.Error = "the endpoint's URL cannot be requested"
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Patronage-Webhooks/1")
	req.Header.Set("Patronage-Event-Id", d.eventID)
	req.Header.Set("Patronage-Delivery-Id", d.id)
	req.Header.Set(SignatureHeader, Sign(body, time.Now(), d.secrets...))
	start := time.Now()
	resp, err := s.client.Do(req)
	a.Duration = time.Since(start)
	if err != nil {
		a.Error = describe(err)
		return a
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, excerptBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	a.ResponseStatus = resp.StatusCode
	a.ResponseExcerpt = strings.ToValidUTF8(string(excerpt), string(utf8.RuneError))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		a.Error = "redirects are not followed: register the URL it points to"
	}
	return a
}

// describe is a failed request's reason, without the URL (which staff
// see beside it anyway).
func describe(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	switch {
	case errors.Is(err, errPrivateTarget):
		return "refused: " + errPrivateTarget.Error() + " (set ALLOW_PRIVATE_WEBHOOK_TARGETS=true to allow)"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout"):
		return "no answer within the time allowed"
	}
	return err.Error()
}

// record stores an attempt and its outcome in one transaction. It returns
// when to try again (0: not again) and, when this failure disabled the
// endpoint, the endpoint.
func (s *Service) record(ctx context.Context, d pendingDelivery, a Attempt) (time.Duration, *Endpoint, error) {
	var next time.Duration
	var disabled *Endpoint
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		next, disabled = 0, nil
		// The endpoint first, as every change of endpoints locks it:
		// deleting one while its delivery is recorded waits, not deadlocks.
		e, err := s.endpoint(ctx, tx, d.endpointID, true)
		if errs.Is(err, errs.NotFound) {
			return nil // deleted meanwhile, with its deliveries
		}
		if err != nil {
			return err
		}
		var status int64
		if a.ResponseStatus != 0 {
			status = int64(a.ResponseStatus)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (id, delivery_id, attempted_at, duration_ms, response_status, response_excerpt, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, a.ID, d.id, a.At, a.Duration.Milliseconds(), sql.NullInt64{Int64: status, Valid: status != 0},
			a.ResponseExcerpt, a.Error); err != nil {
			return fmt.Errorf("record webhook attempt: %w", err)
		}
		firstTry := a.At
		if d.firstTry != nil {
			firstTry = *d.firstTry
		}
		if a.OK() {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'succeeded', attempts = attempts + 1, first_try_at = $2,
				last_attempt_at = $3, next_attempt_at = NULL WHERE id = $1`, d.id, firstTry, a.At); err != nil {
				return fmt.Errorf("record webhook delivery: %w", err)
			}
			_, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1`, d.endpointID)
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1`, d.endpointID, a.At); err != nil {
			return fmt.Errorf("record webhook failure: %w", err)
		}
		if e.FailingSince == nil {
			at := a.At
			e.FailingSince = &at
		}
		// Retried until RetryFor after the first attempt, the last try at
		// that moment exactly: an endpoint down all along is then down
		// for the whole window, and disabled below.
		deadline := firstTry.Add(s.retryFor)
		status2, nextAt := "failed", sql.NullTime{}
		if a.At.Before(deadline) {
			next = max(min(s.backoff(d.attempts+1), deadline.Sub(a.At)), time.Millisecond)
			status2, nextAt = "pending", sql.NullTime{Time: a.At.Add(next), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, first_try_at = $3, last_attempt_at = $4,
			next_attempt_at = $5 WHERE id = $1`, d.id, status2, firstTry, a.At, nextAt); err != nil {
			return fmt.Errorf("record webhook delivery: %w", err)
		}
		if e.DisabledAt == nil && e.FailingSince != nil && !a.At.Before(e.FailingSince.Add(s.retryFor)) {
			reason := fmt.Sprintf("every attempt failed for %s", humanDuration(s.retryFor))
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3, updated_at = $2 WHERE id = $1`,
				e.ID, a.At, reason); err != nil {
				return fmt.Errorf("disable webhook endpoint: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL WHERE endpoint_id = $1 AND status = 'pending'`,
				e.ID); err != nil {
				return fmt.Errorf("disable webhook endpoint: %w", err)
			}
			at := a.At
			e.DisabledAt, e.DisabledReason = &at, reason
			disabled, next = &e, 0
			return audit(ctx, tx, members.Actor{Label: "Patronage"}, "webhook_endpoint.disable", e.ID, nil, e, a.At)
		}
		return nil
	})
	return next, disabled, err
}

// backoff is the wait after the n-th failed attempt: RetryBase doubled
// each time up to RetryCap, give or take a tenth so endpoints that failed
// together are not retried together.
func (s *Service) backoff(n int) time.Duration {
	d := s.retryBase
	for i := 1; i < n && d < s.retryCap; i++ {
		d *= 2
	}
	d = min(d, s.retryCap)
	return d - d/10 + rand.N(d/5+1)
}

func humanDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := d / (24 * time.Hour); n == 1 {
			return "1 day"
		} else {
			return fmt.Sprintf("%d days", n)
		}
	}
	return d.String()
}

// Redeliver sends a delivery again, whatever became of it: a new attempt
// now and, should it fail, a new three days of retries. It is refused
// while the delivery is still pending or its endpoint disabled.
func (s *Service) Redeliver(ctx context.Context, actor members.Actor, endpointID, deliveryID string) error {
	q := s.queue.Load()
	if q == nil {
		return errs.WithCode(errs.Unavailable, "queue_unavailable", "The job queue is not running; try again shortly.")
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		e, err := s.endpoint(ctx, tx, endpointID, true)
		if err != nil {
			return err
		}
		if e.DisabledAt != nil {
			return errs.WithCode(errs.Conflict, "webhook_endpoint_disabled", "The endpoint is disabled; enable it first.")
		}
		var status string
		err = tx.QueryRowContext(ctx, `SELECT status FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2`, deliveryID, endpointID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return errs.WithCode(errs.NotFound, "webhook_delivery_not_found", "The endpoint has no delivery %q.", deliveryID)
		}
		if err != nil {
			return fmt.Errorf("read webhook delivery: %w", err)
		}
		if status == "pending" {
			return errs.WithCode(errs.Conflict, "webhook_delivery_pending", "The delivery is still on its way; it is retried on its own.")
		}
		now := s.now()
		token := ids.New("rdl")
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'pending', attempts = 0, first_try_at = NULL, next_attempt_at = $2,
			job_token = $3 WHERE id = $1`, deliveryID, now, token); err != nil {
			return fmt.Errorf("redeliver: %w", err)
		}
		if _, err := q.InsertTx(ctx, tx, DeliverArgs{DeliveryID: deliveryID, Token: token}, nil); err != nil {
			return fmt.Errorf("queue redelivery: %w", err)
		}
		return audit(ctx, tx, actor, "webhook_endpoint.redeliver", endpointID, nil, map[string]string{"delivery_id": deliveryID}, now)
	})
}

// Delivery is one event sent to one endpoint, with its attempts.
type Delivery struct {
	ID            string
	EventID       string
	EventType     string
	Status        string // pending, succeeded, failed
	Attempts      []Attempt
	CreatedAt     time.Time
	NextAttemptAt *time.Time
}

// Deliveries lists an endpoint's latest deliveries, newest first, each
// with every attempt; status "" for any.
func (s *Service) Deliveries(ctx context.Context, endpointID, status string, limit int) ([]Delivery, error) {
	if _, err := s.Endpoint(ctx, endpointID); err != nil {
		return nil, err
	}
	switch status {
	case "", "pending", "succeeded", "failed":
	default:
		return nil, errs.InvalidFields(map[string]string{"status": "must be pending, succeeded or failed"})
	}
	if limit <= 0 {
		limit = defaultDeliveriesCap
	}
	limit = min(limit, maxDeliveriesListed)
	rows, err := s.db.QueryContext(ctx, `SELECT d.id, d.event_id, ev.type, d.status, d.created_at, d.next_attempt_at FROM webhook_deliveries d
		JOIN outgoing_events ev ON ev.id = d.event_id WHERE d.endpoint_id = $1 AND ($2 = '' OR d.status = $2)
		ORDER BY d.created_at DESC, d.id DESC LIMIT $3`, endpointID, status, limit)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	out := []Delivery{}
	index := map[string]int{}
	for rows.Next() {
		var d Delivery
		var next sql.NullTime
		if err := rows.Scan(&d.ID, &d.EventID, &d.EventType, &d.Status, &d.CreatedAt, &next); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list webhook deliveries: %w", err)
		}
		d.NextAttemptAt, d.Attempts = timePtr(next), []Attempt{}
		index[d.ID] = len(out)
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	args := make([]any, 0, len(out))
	for _, d := range out {
		args = append(args, d.ID)
	}
	arows, err := s.db.QueryContext(ctx, `SELECT delivery_id, id, attempted_at, duration_ms, response_status, response_excerpt, error FROM webhook_attempts
		WHERE delivery_id IN (`+sqldb.Placeholders(1, len(args))+`) ORDER BY attempted_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var delivery string
		var a Attempt
		var ms int64
		var status sql.NullInt64
		if err := arows.Scan(&delivery, &a.ID, &a.At, &ms, &status, &a.ResponseExcerpt, &a.Error); err != nil {
			return nil, fmt.Errorf("list webhook attempts: %w", err)
		}
		a.Duration, a.ResponseStatus = time.Duration(ms)*time.Millisecond, int(status.Int64)
		i := index[delivery]
		out[i].Attempts = append(out[i].Attempts, a)
	}
	return out, arows.Err()
}
