package voting

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
)

// What the outgoing webhooks say about rounds and topics
// (docs/outgoing-webhooks.md).

type roundJSON struct {
	ID             string  `json:"id"`
	Title          string  `json:"title"`
	Description    string  `json:"description"`
	OpensAt        string  `json:"opens_at"`
	ClosesAt       string  `json:"closes_at"`
	VotesPerPatron int     `json:"votes_per_patron"`
	ClosedAt       *string `json:"closed_at,omitempty"`
	Voters         *int    `json:"voters,omitempty"`
}

type roundTopicJSON struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Total *int64 `json:"total,omitempty"`
	Won   *bool  `json:"won,omitempty"`
}

func (s *Service) emit(ctx context.Context, tx *sql.Tx, typ string, data any) error {
	if s.events == nil {
		return nil
	}
	return s.events.Emit(ctx, tx, typ, "", data)
}

// roundEvent is a round with its topics (and, once closed, their totals)
// as the transaction sees them.
func roundEvent(ctx context.Context, tx *sql.Tx, roundID string) (map[string]any, error) {
	var r roundJSON
	var opens, closes time.Time
	var closed sql.NullTime
	var voters sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT id, title, description, opens_at, closes_at, votes_per_patron, closed_at, voters FROM rounds WHERE id = $1`, roundID).
		Scan(&r.ID, &r.Title, &r.Description, &opens, &closes, &r.VotesPerPatron, &closed, &voters)
	if err != nil {
		return nil, fmt.Errorf("read round: %w", err)
	}
	r.OpensAt, r.ClosesAt = opens.UTC().Format(time.RFC3339), closes.UTC().Format(time.RFC3339)
	if closed.Valid {
		at, n := closed.Time.UTC().Format(time.RFC3339), int(voters.Int64)
		r.ClosedAt, r.Voters = &at, &n
	}
	rows, err := tx.QueryContext(ctx, `SELECT t.id, t.title, rt.final_total, t.status FROM round_topics rt JOIN topics t ON t.id = rt.topic_id
		WHERE rt.round_id = $1 ORDER BY rt.position`, roundID)
	if err != nil {
		return nil, fmt.Errorf("read round topics: %w", err)
	}
	defer rows.Close()
	topics := []roundTopicJSON{}
	for rows.Next() {
		var t roundTopicJSON
		var total sql.NullInt64
		var status string
		if err := rows.Scan(&t.ID, &t.Title, &total, &status); err != nil {
			return nil, fmt.Errorf("read round topics: %w", err)
		}
		if closed.Valid {
			won := status == "won" || status == "covered"
			t.Total, t.Won = &total.Int64, &won
		}
		topics = append(topics, t)
	}
	return map[string]any{"round": r, "topics": topics}, rows.Err()
}

// announceOpening emits round.opened for a round that has opened and was
// not announced yet, once: the flag is set in the same transaction.
func (s *Service) announceOpening(ctx context.Context, tx *sql.Tx, roundID string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE rounds SET open_announced = TRUE WHERE id = $1 AND NOT open_announced AND opens_at <= $2 AND closed_at IS NULL`, roundID, now)
	if err != nil {
		return fmt.Errorf("announce round: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	data, err := roundEvent(ctx, tx, roundID)
	if err != nil {
		return err
	}
	return s.emit(ctx, tx, "round.opened", data)
}

// AnnounceOpenedRounds emits round.opened for every round whose opening
// time has come; the scheduled close job runs it every minute.
func (s *Service) AnnounceOpenedRounds(ctx context.Context) (int, error) {
	now := s.now()
	due, err := sqldb.QueryStrings(ctx, s.db, `SELECT id FROM rounds WHERE NOT open_announced AND opens_at <= $1 AND closed_at IS NULL`, now)
	if err != nil {
		return 0, fmt.Errorf("find opened rounds: %w", err)
	}
	for _, id := range due {
		if err := s.db.InTx(ctx, func(tx *sql.Tx) error { return s.announceOpening(ctx, tx, id, now) }); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}
