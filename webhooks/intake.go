package webhooks

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

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
//
// Deliveries that arrive together are committed together: a few committer
// goroutines each take whatever deliveries are waiting (never waiting for
// more) and store them, with their jobs, in one transaction. Under load that
// spreads a transaction's fixed cost over many events; one at a time it is
// one transaction per event, as before. Every delivery is still answered
// only after the transaction holding it has committed.
type Intake struct {
	db    *sqldb.DB
	queue *jobs.Client
	now   func() time.Time

	start   sync.Once
	pending chan *delivery
}

// delivery is one event waiting to be stored, and where its outcome goes.
type delivery struct {
	ev      Event
	payload []byte
	done    chan accepted
}

type accepted struct {
	fresh bool
	err   error
}

const (
	committers = 4  // transactions in flight at once
	maxBatch   = 64 // events in one transaction at most
)

// NewIntake builds the intake on a queue client (which may be insert-only).
func NewIntake(db *sqldb.DB, queue *jobs.Client, now func() time.Time) *Intake {
	if now == nil {
		now = sqldb.Now
	}
	return &Intake{db: db, queue: queue, now: now, pending: make(chan *delivery, 4*maxBatch)}
}

// Accept stores the event and its job, and reports whether the event was
// new: a repeated delivery, even a concurrent one, stores and queues
// nothing. It returns once the event is committed, or with the error that
// kept it from being stored.
func (in *Intake) Accept(ctx context.Context, ev Event, payload []byte) (bool, error) {
	in.start.Do(func() {
		for range committers {
			go in.commitLoop()
		}
	})
	d := &delivery{ev: ev, payload: payload, done: make(chan accepted, 1)}
	select {
	case in.pending <- d:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// Once handed over, the delivery is committed or fails as a whole; its
	// answer is awaited even if the caller has gone, so nothing is left
	// half-known.
	r := <-d.done
	return r.fresh, r.err
}

func (in *Intake) commitLoop() {
	for first := range in.pending {
		batch := []*delivery{first}
	more:
		for len(batch) < maxBatch {
			select {
			case d := <-in.pending:
				batch = append(batch, d)
			default:
				break more
			}
		}
		fresh, err := in.store(batch)
		for _, d := range batch {
			d.done <- accepted{fresh: fresh[d], err: err}
		}
	}
}

// store writes a batch of events and the jobs of the new ones in one
// transaction; fresh says which deliveries stored something.
func (in *Intake) store(batch []*delivery) (map[*delivery]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The same event twice in one batch is stored once; the copy answers
	// as a duplicate.
	byID := map[string]*delivery{}
	var unique []*delivery
	for _, d := range batch {
		if _, seen := byID[d.ev.ID]; !seen {
			byID[d.ev.ID] = d
			unique = append(unique, d)
		}
	}
	// Every transaction takes its rows in id order, so two batches holding
	// the same events cannot deadlock each other.
	sort.Slice(unique, func(i, j int) bool { return unique[i].ev.ID < unique[j].ev.ID })
	fresh := map[*delivery]bool{}
	err := in.db.InTx(ctx, func(tx *sql.Tx) error {
		var q strings.Builder
		q.WriteString(`INSERT INTO stripe_events (id, type, api_version, object_id, created_at, received_at, livemode, payload) VALUES `)
		args := make([]any, 0, 8*len(unique))
		now := in.now()
		for i, d := range unique {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8)
			args = append(args, d.ev.ID, d.ev.Type, d.ev.APIVersion, d.ev.ObjectID, d.ev.Created, now, d.ev.Livemode, string(d.payload))
		}
		q.WriteString(` ON CONFLICT (id) DO NOTHING RETURNING id`)
		rows, err := tx.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return fmt.Errorf("store events: %w", err)
		}
		var jobs []river.InsertManyParams
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("store events: %w", err)
			}
			fresh[byID[id]] = true
			jobs = append(jobs, river.InsertManyParams{Args: ProcessArgs{EventID: id}})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store events: %w", err)
		}
		if len(jobs) == 0 {
			return nil // all already here: their jobs were queued with them
		}
		if _, err := in.queue.InsertManyTx(ctx, tx, jobs); err != nil {
			return fmt.Errorf("queue events: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return fresh, nil
}

// BillingSink lets reconciliation store events it finds in Stripe's Events
// API that were never delivered, exactly as a delivery would.
func (in *Intake) BillingSink() billing.EventSink {
	return func(ctx context.Context, ev billing.Event, livemode bool, payload []byte) (bool, error) {
		return in.Accept(ctx, Event{ID: ev.ID, Type: ev.Type, APIVersion: ev.APIVersion, Created: ev.Created, Livemode: livemode,
			Object: ev.Object, ObjectID: objectID(ev.Object)}, payload)
	}
}
