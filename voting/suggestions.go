package voting

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
)

// Suggestions a patron may make in SuggestionWindow.
const (
	SuggestionsPerWindow = 3
	SuggestionWindow     = 30 * 24 * time.Hour
)

// Suggestion is a topic a patron suggested, as they see it.
type Suggestion struct {
	ID            string
	Title         string
	Summary       string
	Status        string // suggested, proposed (approved), declined, …
	DeclineReason string
	CreatedAt     time.Time
	SuggestedBy   string
}

// SuggestTopic records a patron's suggestion for staff to approve or
// decline: three in any thirty days, for members with access.
func (s *Service) SuggestTopic(ctx context.Context, memberID, title, summary string) (Suggestion, error) {
	title, summary = strings.TrimSpace(title), strings.TrimSpace(summary)
	fields := map[string]string{}
	if title == "" || utf8.RuneCountInString(title) > 200 {
		fields["title"] = "is required, at most 200 characters"
	}
	if utf8.RuneCountInString(summary) > 2000 {
		fields["summary"] = "must be at most 2000 characters"
	}
	if len(fields) > 0 {
		return Suggestion{}, errs.InvalidFields(fields)
	}
	now := s.now()
	sg := Suggestion{ID: ids.New("top"), Title: title, Summary: summary, Status: "suggested", CreatedAt: now, SuggestedBy: memberID}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The member's row serialises their suggestions, so three at once
		// cannot become four.
		var id string
		if err := tx.QueryRowContext(ctx, `SELECT id FROM members WHERE id = $1`+s.db.Dialect.ForUpdate(), memberID).Scan(&id); err != nil {
			return fmt.Errorf("lock member: %w", err)
		}
		voters, err := s.eligible.Voters(ctx, tx, []string{memberID}, false)
		if err != nil {
			return fmt.Errorf("check access: %w", err)
		}
		if !voters[memberID].Active {
			return errPatronRequired
		}
		rows, err := tx.QueryContext(ctx, `SELECT created_at FROM topics WHERE suggested_by = $1 AND created_at > $2 ORDER BY created_at`,
			memberID, now.Add(-SuggestionWindow))
		if err != nil {
			return fmt.Errorf("count suggestions: %w", err)
		}
		var recent []time.Time
		for rows.Next() {
			var t time.Time
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return err
			}
			recent = append(recent, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(recent) >= SuggestionsPerWindow {
			retry := recent[len(recent)-SuggestionsPerWindow].Add(SuggestionWindow).Sub(now)
			e := errs.WithCode(errs.RateLimited, "rate_limited", "You have made %d suggestions in the last 30 days; you can suggest again in %d days.",
				SuggestionsPerWindow, int(retry.Hours()/24)+1)
			e.Details = map[string]string{"retry_after": strconv.Itoa(int(retry.Seconds()) + 1)}
			return e
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO topics (id, title, summary, status, suggested_by, created_at, updated_at) VALUES ($1, $2, $3, 'suggested', $4, $5, $5)`,
			sg.ID, sg.Title, sg.Summary, memberID, now)
		if err != nil {
			return fmt.Errorf("store suggestion: %w", err)
		}
		return nil
	})
	if err != nil {
		return Suggestion{}, err
	}
	return sg, nil
}

// SuggestionsBy lists a member's suggestions, newest first, with what
// became of them.
func (s *Service) SuggestionsBy(ctx context.Context, memberID string) ([]Suggestion, error) {
	return s.suggestions(ctx, `WHERE suggested_by = $1`, memberID, "DESC")
}

// PendingSuggestions lists suggestions waiting for staff, oldest first.
func (s *Service) PendingSuggestions(ctx context.Context) ([]Suggestion, error) {
	return s.suggestions(ctx, `WHERE status = $1`, "suggested", "ASC")
}

func (s *Service) suggestions(ctx context.Context, where string, arg any, order string) ([]Suggestion, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, title, summary, status, decline_reason, created_at, suggested_by FROM topics `+where+
		` AND suggested_by IS NOT NULL ORDER BY created_at `+order+`, id LIMIT 200`, arg)
	if err != nil {
		return nil, fmt.Errorf("list suggestions: %w", err)
	}
	defer rows.Close()
	out := []Suggestion{}
	for rows.Next() {
		var sg Suggestion
		if err := rows.Scan(&sg.ID, &sg.Title, &sg.Summary, &sg.Status, &sg.DeclineReason, &sg.CreatedAt, &sg.SuggestedBy); err != nil {
			return nil, fmt.Errorf("list suggestions: %w", err)
		}
		out = append(out, sg)
	}
	return out, rows.Err()
}
