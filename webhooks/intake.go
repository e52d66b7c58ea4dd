package webhooks

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
)

// ProcessArgs is the job that processes one stored event.
type ProcessArgs struct {
	EventID string `json:"event_id"`
}

// Kind names the job in the queue.
func (ProcessArgs) Kind() string { return "stripe_event" }

// Intake stores verified events and queues their processing.
type Intake struct {
	db    *sqldb.DB
	queue *jobs.Client
	now   func() time.Time
}

// NewIntake builds the intake on a queue client (which may be insert-only).
func NewIntake(db *sqldb.DB, queue *jobs.Client, now func() time.Time) *Intake {
	if now == nil {
		now = sqldb.Now
	}
	return &Intake{db: db, queue: queue, now: now}
}

// Accept stores the event and its job in one transaction. It reports
// whether the event was new: a repeated delivery, even a concurrent one,
// stores and queues nothing.
func (in *Intake) Accept(ctx context.Context, ev Event, payload []byte) (bool, error) {
	fresh := false
	err := in.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO stripe_events (id, type, api_version, object_id, created_at, received_at, livemode, payload)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
			ev.ID, ev.Type, ev.APIVersion, ev.ObjectID, ev.Created, in.now(), ev.Livemode, string(payload))
		if err != nil {
			return fmt.Errorf("store event: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store event: %w", err)
		}
		if n == 0 {
			return nil // already here: its job was queued with it
		}
		fresh = true
		if _, err := in.queue.InsertTx(ctx, tx, ProcessArgs{EventID: ev.ID}, nil); err != nil {
			return fmt.Errorf("queue event: %w", err)
		}
		return nil
	})
	return fresh, err
}

// BillingSink lets reconciliation store events it finds in Stripe's Events
// API that were never delivered, exactly as a delivery would.
func (in *Intake) BillingSink() billing.EventSink {
	return func(ctx context.Context, ev billing.Event, livemode bool, payload []byte) (bool, error) {
		return in.Accept(ctx, Event{ID: ev.ID, Type: ev.Type, APIVersion: ev.APIVersion, Created: ev.Created, Livemode: livemode,
			Object: ev.Object, ObjectID: objectID(ev.Object)}, payload)
	}
}
