package webhooks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/sqldb"
)

// Status is where an event is in its processing.
type Status string

const (
	StatusPending   Status = "pending"
	StatusProcessed Status = "processed"
	StatusIgnored   Status = "ignored"
	StatusFailed    Status = "failed" // every attempt failed: dead-lettered, retry by hand
)

// Handler applies one event. It must be idempotent: an event may be handled
// again after a crash between its effect and its status update.
type Handler func(ctx context.Context, ev Event) error

// Handlers maps event types to their handler; a type with none is ignored.
type Handlers map[string]Handler

// Worker processes stored events from the job queue.
type Worker struct {
	river.WorkerDefaults[ProcessArgs]
	db       *sqldb.DB
	handlers Handlers
	logger   *slog.Logger
	now      func() time.Time
}

// NewWorker builds the event worker.
func NewWorker(db *sqldb.DB, handlers Handlers, logger *slog.Logger, now func() time.Time) *Worker {
	if now == nil {
		now = sqldb.Now
	}
	return &Worker{db: db, handlers: handlers, logger: logger, now: now}
}

// Work handles one event. A failure is recorded and returned, so River
// retries with backoff; after the last attempt the event is marked failed.
func (w *Worker) Work(ctx context.Context, job *river.Job[ProcessArgs]) error {
	ev, status, err := w.load(ctx, job.Args.EventID)
	if err != nil {
		return err
	}
	if status == StatusProcessed || status == StatusIgnored {
		return nil // done before a crash, or a manual retry raced the queue
	}
	handle, ok := w.handlers[ev.Type]
	if !ok {
		return w.finish(ctx, ev.ID, StatusIgnored, nil)
	}
	if herr := handle(ctx, ev); herr != nil {
		w.logger.ErrorContext(ctx, "handle Stripe event", "stripe_event_id", ev.ID, "type", ev.Type, "attempt", job.Attempt, "err", herr)
		final := job.Attempt >= job.MaxAttempts
		next := StatusPending
		if final {
			next = StatusFailed
		}
		if err := w.finish(ctx, ev.ID, next, herr); err != nil {
			return errors.Join(herr, err)
		}
		return herr
	}
	return w.finish(ctx, ev.ID, StatusProcessed, nil)
}

func (w *Worker) load(ctx context.Context, id string) (Event, Status, error) {
	var ev Event
	var payload, status string
	err := w.db.QueryRowContext(ctx, `SELECT id, type, api_version, object_id, created_at, livemode, payload, status FROM stripe_events WHERE id = $1`, id).
		Scan(&ev.ID, &ev.Type, &ev.APIVersion, &ev.ObjectID, &ev.Created, &ev.Livemode, &payload, &status)
	if err != nil {
		return Event{}, "", fmt.Errorf("load event %s: %w", id, err)
	}
	var envelope struct {
		Data struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(payload), &envelope); err != nil {
		return Event{}, "", fmt.Errorf("decode stored event %s: %w", id, err)
	}
	ev.Object = envelope.Data.Object
	return ev, Status(status), nil
}

func (w *Worker) finish(ctx context.Context, id string, status Status, cause error) error {
	var lastErr sql.NullString
	if cause != nil {
		// Staff see this; the cause's own text (a driver's, say) goes to the log.
		lastErr = sql.NullString{String: truncate(errs.From(cause).Message, 2000), Valid: true}
	}
	var processedAt sql.NullTime
	if status == StatusProcessed || status == StatusIgnored {
		processedAt = sql.NullTime{Time: w.now(), Valid: true}
	}
	_, err := w.db.ExecContext(ctx, `UPDATE stripe_events SET status = $1, attempts = attempts + 1, last_error = $2, processed_at = $3 WHERE id = $4`,
		string(status), lastErr, processedAt, id)
	if err != nil {
		return fmt.Errorf("record event %s as %s: %w", id, status, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// StoredEvent is an event as staff see it.
type StoredEvent struct {
	ID          string
	Type        string
	APIVersion  string
	ObjectID    string
	Created     time.Time
	ReceivedAt  time.Time
	Status      Status
	Attempts    int
	LastError   string
	ProcessedAt *time.Time
}

// ListEvents lists stored events, newest first, optionally by status.
func (in *Intake) ListEvents(ctx context.Context, status string, limit int) ([]StoredEvent, error) {
	switch Status(status) {
	case "", StatusPending, StatusProcessed, StatusIgnored, StatusFailed:
	default:
		return nil, errs.InvalidFields(map[string]string{"status": "must be pending, processed, ignored or failed"})
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := in.db.QueryContext(ctx, `SELECT id, type, api_version, object_id, created_at, received_at, status, attempts, last_error, processed_at
		FROM stripe_events WHERE ($1 = '' OR status = $1) ORDER BY received_at DESC, id DESC LIMIT $2`, status, limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	out := []StoredEvent{}
	for rows.Next() {
		var e StoredEvent
		var st string
		var lastErr sql.NullString
		var processed sql.NullTime
		if err := rows.Scan(&e.ID, &e.Type, &e.APIVersion, &e.ObjectID, &e.Created, &e.ReceivedAt, &st, &e.Attempts, &lastErr, &processed); err != nil {
			return nil, err
		}
		e.Status, e.LastError = Status(st), lastErr.String
		if processed.Valid {
			t := processed.Time.UTC()
			e.ProcessedAt = &t
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Retry queues a stored event again, whatever its status, and marks it
// pending: for dead letters, and for replaying an event by hand.
func (in *Intake) Retry(ctx context.Context, id string) error {
	return in.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE stripe_events SET status = 'pending', processed_at = NULL WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("retry event: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.WithCode(errs.NotFound, "event_not_found", "No stored event has this id.")
		}
		if _, err := in.queue.InsertTx(ctx, tx, ProcessArgs{EventID: id}, nil); err != nil {
			return fmt.Errorf("queue event: %w", err)
		}
		return nil
	})
}

var _ river.Worker[ProcessArgs] = (*Worker)(nil)

// BillingHandlers routes every event type billing handles to it.
func BillingHandlers(b *billing.Service) Handlers {
	h := Handlers{}
	for _, t := range billing.EventTypes {
		h[t] = func(ctx context.Context, ev Event) error {
			return b.HandleEvent(ctx, billing.Event{ID: ev.ID, Type: ev.Type, APIVersion: ev.APIVersion, Created: ev.Created, Object: ev.Object})
		}
	}
	return h
}
