package outgoing

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/jobs"
)

// Envelope is the body of every delivery.
type Envelope struct {
	ID      string          `json:"id"`      // evt_…, the same in every delivery and redelivery of the event
	Type    string          `json:"type"`    // one of EventTypes
	Created string          `json:"created"` // RFC 3339, when it happened
	Data    json.RawMessage `json:"data"`
}

// Emit stores an event and a delivery of it to every enabled endpoint that
// hears its type, inside the caller's transaction, and queues those
// deliveries there too: the event is delivered exactly when the change
// that made it is committed. With no endpoint listening it stores nothing.
func (s *Service) Emit(ctx context.Context, tx *sql.Tx, typ, memberID string, data any) error {
	if s == nil {
		return nil
	}
	if !slices.Contains(EventTypes, typ) {
		return fmt.Errorf("emit %q: not an event type", typ)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, events FROM webhook_endpoints WHERE disabled_at IS NULL ORDER BY id`)
	if err != nil {
		return fmt.Errorf("find webhook endpoints: %w", err)
	}
	var listening []string
	for rows.Next() {
		var id, events string
		if err := rows.Scan(&id, &events); err != nil {
			rows.Close()
			return fmt.Errorf("find webhook endpoints: %w", err)
		}
		if hears(strings.Fields(events), typ) {
			listening = append(listening, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find webhook endpoints: %w", err)
	}
	if len(listening) == 0 {
		return nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("emit %s: %w", typ, err)
	}
	now := s.now()
	ev := Envelope{ID: ids.New("evt"), Type: typ, Created: now.Format(time.RFC3339Nano), Data: raw}
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("emit %s: %w", typ, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outgoing_events (id, type, created_at, member_id, payload) VALUES ($1, $2, $3, $4, $5)`,
		ev.ID, typ, now, nullString(memberID), string(payload)); err != nil {
		return fmt.Errorf("store outgoing event: %w", err)
	}
	var queued []river.InsertManyParams
	for _, endpoint := range listening {
		id := ids.New("whd")
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, endpoint_id, event_id, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $4)`,
			id, endpoint, ev.ID, now); err != nil {
			return fmt.Errorf("store webhook delivery: %w", err)
		}
		queued = append(queued, river.InsertManyParams{Args: DeliverArgs{DeliveryID: id}})
	}
	if q := s.queue.Load(); q != nil {
		if _, err := q.InsertManyTx(ctx, tx, queued); err != nil {
			return fmt.Errorf("queue webhook deliveries: %w", err)
		}
	}
	return nil
}

func hears(events []string, typ string) bool {
	return slices.Contains(events, allEvents) || slices.Contains(events, typ)
}

// Attach gives the service its queue: deliveries emitted from now on are
// queued with the change that made them. Until then they wait, pending,
// for QueuePending.
func (s *Service) Attach(q *jobs.Client) { s.queue.Store(q) }

// QueuePending queues every delivery still pending: those emitted before
// the queue was attached, or whose job a crash lost. A delivery already
// queued is not queued twice. The server runs it at start.
func (s *Service) QueuePending(ctx context.Context) error {
	q := s.queue.Load()
	if q == nil {
		return fmt.Errorf("queue pending webhook deliveries: no queue attached")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, job_token FROM webhook_deliveries WHERE status = 'pending' ORDER BY created_at`)
	if err != nil {
		return fmt.Errorf("find pending webhook deliveries: %w", err)
	}
	var pending []DeliverArgs
	for rows.Next() {
		var a DeliverArgs
		if err := rows.Scan(&a.DeliveryID, &a.Token); err != nil {
			rows.Close()
			return fmt.Errorf("find pending webhook deliveries: %w", err)
		}
		pending = append(pending, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find pending webhook deliveries: %w", err)
	}
	// The same arguments as the job already queued, if there is one: River
	// keeps one job per arguments.
	for chunk := range slices.Chunk(pending, 500) {
		params := make([]river.InsertManyParams, len(chunk))
		for i, a := range chunk {
			params[i] = river.InsertManyParams{Args: a}
		}
		if _, err := q.InsertMany(ctx, params); err != nil {
			return fmt.Errorf("queue pending webhook deliveries: %w", err)
		}
	}
	return nil
}

// ScrubMember rewrites the stored events about an erased member — by id,
// and gifts given under their address without an account — to say only
// that: a delivery still on its way carries no more of their data.
func (s *Service) ScrubMember(ctx context.Context, tx *sql.Tx, memberID, email string) error {
	if s == nil {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, type, created_at, member_id, payload FROM outgoing_events
		WHERE member_id = $1 OR (type = 'donation.received' AND member_id IS NULL)`, memberID)
	if err != nil {
		return fmt.Errorf("find member's outgoing events: %w", err)
	}
	type stored struct {
		id, typ string
		at      time.Time
	}
	var list []stored
	for rows.Next() {
		var e stored
		var member sql.NullString
		var payload string
		if err := rows.Scan(&e.id, &e.typ, &e.at, &member, &payload); err != nil {
			rows.Close()
			return fmt.Errorf("find member's outgoing events: %w", err)
		}
		if !member.Valid {
			var gift struct {
				Data struct {
					Donation struct{ Email string }
				}
			}
			if json.Unmarshal([]byte(payload), &gift) != nil || email == "" || !strings.EqualFold(gift.Data.Donation.Email, email) {
				continue
			}
		}
		list = append(list, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find member's outgoing events: %w", err)
	}
	for _, e := range list {
		data, _ := json.Marshal(map[string]any{"member": map[string]any{"id": memberID, "erased": true}})
		payload, _ := json.Marshal(Envelope{ID: e.id, Type: e.typ, Created: e.at.UTC().Format(time.RFC3339Nano), Data: data})
		if _, err := tx.ExecContext(ctx, `UPDATE outgoing_events SET payload = $2, member_id = $3 WHERE id = $1`, e.id, string(payload), memberID); err != nil {
			return fmt.Errorf("scrub outgoing event: %w", err)
		}
	}
	return nil
}
