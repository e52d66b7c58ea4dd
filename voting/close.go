package voting

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/members"
)

// Result is a topic's final (or, while open, current) count.
type Result struct {
	TopicID    string
	Total      int64
	Won        bool
	ArticleURL string // set once the won topic is covered
}

// Results is a closed round's outcome: totals per topic and how many
// members voted. It names no voter.
type Results struct {
	RoundID string
	Closed  bool
	Voters  int
	Topics  []Result
}

// Schedule is the actor of rounds closed because their time was up.
var Schedule = members.Actor{Label: "schedule"}

// CloseRound ends a round: its final totals are written from the ballots
// (the truth) and never change after; the leading topics are marked won.
// Closing a closed round changes nothing.
func (s *Service) CloseRound(ctx context.Context, actor members.Actor, roundID string) (Results, error) {
	lock := s.roundLock(roundID)
	lock.Lock()
	defer lock.Unlock()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var closed sql.NullTime
		err := tx.QueryRowContext(ctx, `SELECT closed_at FROM rounds WHERE id = $1`+s.db.Dialect.ForUpdate(), roundID).Scan(&closed)
		if err == sql.ErrNoRows {
			return errRoundNotFound
		}
		if err != nil {
			return fmt.Errorf("lock round: %w", err)
		}
		if closed.Valid {
			return nil
		}
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE round_topics SET final_total = COALESCE((SELECT SUM(b.weight) FROM ballots b
			WHERE b.round_id = round_topics.round_id AND b.topic_id = round_topics.topic_id), 0) WHERE round_id = $1`, roundID); err != nil {
			return fmt.Errorf("write final totals: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET closed_at = $2, updated_at = $2,
			voters = (SELECT COUNT(DISTINCT member_id) FROM ballots WHERE round_id = $1) WHERE id = $1`, roundID, now); err != nil {
			return fmt.Errorf("close round: %w", err)
		}
		if err := audit(ctx, tx, actor, "round.close", "round", roundID, nil, map[string]any{"closed_at": now}, now); err != nil {
			return err
		}
		// The leading topics (all of them in a tie) win, if anyone voted;
		// the others go back to proposed for a later round.
		if _, err := tx.ExecContext(ctx, `UPDATE topics SET updated_at = $2, status = CASE
				WHEN (SELECT final_total FROM round_topics rt WHERE rt.round_id = $1 AND rt.topic_id = topics.id) > 0
				 AND (SELECT final_total FROM round_topics rt WHERE rt.round_id = $1 AND rt.topic_id = topics.id) =
				     (SELECT MAX(final_total) FROM round_topics WHERE round_id = $1) THEN 'won'
				ELSE 'proposed' END
			WHERE id IN (SELECT topic_id FROM round_topics WHERE round_id = $1) AND status = 'in_round'`, roundID, now); err != nil {
			return fmt.Errorf("mark winners: %w", err)
		}
		data, err := roundEvent(ctx, tx, roundID)
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, "round.closed", data)
	})
	if err != nil {
		return Results{}, err
	}
	s.forgetRound(roundID)
	s.tallies.Forget(roundID)
	s.announce(ctx, roundID, EventClosed)
	return s.ResultsOf(ctx, roundID)
}

// ResultsOf reads a closed round's final results from the database.
func (s *Service) ResultsOf(ctx context.Context, roundID string) (Results, error) {
	var closed sql.NullTime
	var voters sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT closed_at, voters FROM rounds WHERE id = $1`, roundID).Scan(&closed, &voters)
	if err == sql.ErrNoRows {
		return Results{}, errRoundNotFound
	}
	if err != nil {
		return Results{}, fmt.Errorf("read results: %w", err)
	}
	res := Results{RoundID: roundID, Closed: closed.Valid, Voters: int(voters.Int64), Topics: []Result{}}
	if !closed.Valid {
		return res, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT rt.topic_id, rt.final_total, t.status, t.article_url FROM round_topics rt JOIN topics t ON t.id = rt.topic_id
		WHERE rt.round_id = $1 ORDER BY rt.final_total DESC, rt.position`, roundID)
	if err != nil {
		return Results{}, fmt.Errorf("read results: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Result
		var status string
		var article sql.NullString
		if err := rows.Scan(&r.TopicID, &r.Total, &status, &article); err != nil {
			return Results{}, fmt.Errorf("read results: %w", err)
		}
		r.ArticleURL = article.String
		r.Won = status == "won" || status == "covered"
		res.Topics = append(res.Topics, r)
	}
	return res, rows.Err()
}

// CloseDueRounds closes every round whose closes_at has passed. The
// scheduled close job runs it every minute, so a round closes by itself
// within a minute of its time, across restarts.
func (s *Service) CloseDueRounds(ctx context.Context) (int, error) {
	due, err := sqldb.QueryStrings(ctx, s.db, `SELECT id FROM rounds WHERE closed_at IS NULL AND closes_at <= $1`, s.now())
	if err != nil {
		return 0, fmt.Errorf("find due rounds: %w", err)
	}
	for _, id := range due {
		if _, err := s.CloseRound(ctx, Schedule, id); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}

// CloseRoundsArgs is the scheduled job that announces opened rounds and
// closes due ones.
type CloseRoundsArgs struct{}

// Kind names the job in the queue.
func (CloseRoundsArgs) Kind() string { return "voting_close_rounds" }

type closeRoundsWorker struct {
	river.WorkerDefaults[CloseRoundsArgs]
	voting *Service
}

func (w *closeRoundsWorker) Work(ctx context.Context, _ *river.Job[CloseRoundsArgs]) error {
	if _, err := w.voting.AnnounceOpenedRounds(ctx); err != nil {
		// Closing goes on; the next run announces them.
		w.voting.logger.ErrorContext(ctx, "announce opened rounds", "err", err)
	}
	n, err := w.voting.CloseDueRounds(ctx)
	if n > 0 {
		w.voting.logger.InfoContext(ctx, "closed rounds", "count", n)
	}
	return err
}

// AddJobs registers voting's workers and returns its periodic jobs.
func (s *Service) AddJobs(workers *river.Workers) []*river.PeriodicJob {
	river.AddWorker(workers, &closeRoundsWorker{voting: s})
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(time.Minute),
			func() (river.JobArgs, *river.InsertOpts) { return CloseRoundsArgs{}, &river.InsertOpts{MaxAttempts: 1} },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
}
