package voting

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/members"
)

// Topic is something the newsroom could cover.
type Topic struct {
	ID      string
	Title   string
	Summary string
	Status  string
}

// Round puts topics to the vote.
type Round struct {
	ID             string
	Title          string
	Description    string
	OpensAt        time.Time
	ClosesAt       time.Time
	VotesPerPatron int
	Weighting      string // equal or tier
	Results        string // live or sealed
	ClosedAt       *time.Time
	TopicIDs       []string
	Version        int64 // grows with every change of the definition
}

// Open reports whether the round takes votes at t.
func (r Round) Open(t time.Time) bool {
	return r.ClosedAt == nil && !t.Before(r.OpensAt) && t.Before(r.ClosesAt)
}

func (r Round) has(topicID string) bool {
	for _, id := range r.TopicIDs {
		if id == topicID {
			return true
		}
	}
	return false
}

// CreateTopic adds a topic staff propose.
func (s *Service) CreateTopic(ctx context.Context, actor members.Actor, title, summary string) (Topic, error) {
	title, summary = strings.TrimSpace(title), strings.TrimSpace(summary)
	fields := map[string]string{}
	if title == "" || utf8.RuneCountInString(title) > 200 {
		fields["title"] = "is required, at most 200 characters"
	}
	if utf8.RuneCountInString(summary) > 2000 {
		fields["summary"] = "must be at most 2000 characters"
	}
	if len(fields) > 0 {
		return Topic{}, errs.InvalidFields(fields)
	}
	t := Topic{ID: ids.New("top"), Title: title, Summary: summary, Status: "proposed"}
	now := s.now()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO topics (id, title, summary, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)`,
			t.ID, t.Title, t.Summary, t.Status, now); err != nil {
			return fmt.Errorf("create topic: %w", err)
		}
		return audit(ctx, tx, actor, "topic.create", "topic", t.ID, nil, t, now)
	})
	if err != nil {
		return Topic{}, err
	}
	return t, nil
}

// RoundInput is a new round.
type RoundInput struct {
	Title          string
	Description    string
	OpensAt        time.Time
	ClosesAt       time.Time
	VotesPerPatron int // 0: 3
	Weighting      string
	Results        string
	TopicIDs       []string
}

// CreateRound puts 2–50 proposed topics to the vote.
func (s *Service) CreateRound(ctx context.Context, actor members.Actor, in RoundInput) (Round, error) {
	r := Round{ID: ids.New("rnd"), Title: strings.TrimSpace(in.Title), Description: strings.TrimSpace(in.Description),
		OpensAt: in.OpensAt.UTC().Truncate(time.Microsecond), ClosesAt: in.ClosesAt.UTC().Truncate(time.Microsecond),
		VotesPerPatron: in.VotesPerPatron, Weighting: in.Weighting, Results: in.Results}
	if r.VotesPerPatron == 0 {
		r.VotesPerPatron = 3
	}
	if r.Weighting == "" {
		r.Weighting = "equal"
	}
	if r.Results == "" {
		r.Results = "live"
	}
	r.TopicIDs = distinct(in.TopicIDs)
	if fields := r.invalid(); len(fields) > 0 {
		return Round{}, errs.InvalidFields(fields)
	}
	now := s.now()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO rounds (id, title, description, opens_at, closes_at, votes_per_patron, weighting, results, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`, r.ID, r.Title, r.Description, r.OpensAt, r.ClosesAt, r.VotesPerPatron, r.Weighting, r.Results, now)
		if err != nil {
			return fmt.Errorf("create round: %w", err)
		}
		if err := claimTopics(ctx, tx, r.ID, r.TopicIDs, now); err != nil {
			return err
		}
		if err := audit(ctx, tx, actor, "round.create", "round", r.ID, nil, r, now); err != nil {
			return err
		}
		return s.announceOpening(ctx, tx, r.ID, now)
	})
	if err != nil {
		return Round{}, err
	}
	// A new round's Redis state is built: it has no votes. (If this fails
	// the first cast or read builds it from the ballots.)
	s.redis.Client.SetNX(ctx, s.builtKey(r.ID), strconv.FormatInt(now.Unix(), 10), 0)
	return r, nil
}

// invalid names the fields of a round that break its rules.
func (r Round) invalid() map[string]string {
	fields := map[string]string{}
	if r.Title == "" || utf8.RuneCountInString(r.Title) > 200 {
		fields["title"] = "is required, at most 200 characters"
	}
	if utf8.RuneCountInString(r.Description) > 5000 {
		fields["description"] = "must be at most 5000 characters"
	}
	if !r.ClosesAt.After(r.OpensAt) {
		fields["closes_at"] = "must be after opens_at"
	}
	if r.VotesPerPatron < 1 || r.VotesPerPatron > 50 {
		fields["votes_per_patron"] = "must be from 1 to 50"
	}
	if r.Weighting != "equal" && r.Weighting != "tier" {
		fields["weighting"] = "must be equal or tier"
	}
	if r.Results != "live" && r.Results != "sealed" {
		fields["results"] = "must be live or sealed"
	}
	if len(r.TopicIDs) < 2 || len(r.TopicIDs) > 50 {
		fields["topic_ids"] = "must name 2 to 50 different topics"
	}
	return fields
}

func distinct(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range list {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// claimTopics puts proposed topics into a round, in their order.
func claimTopics(ctx context.Context, tx *sql.Tx, roundID string, topicIDs []string, now time.Time) error {
	for i, id := range topicIDs {
		res, err := tx.ExecContext(ctx, `UPDATE topics SET status = 'in_round', updated_at = $2 WHERE id = $1 AND status = 'proposed'`, id, now)
		if err != nil {
			return fmt.Errorf("put topic in round: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.InvalidFields(map[string]string{"topic_ids": "topic " + id + " does not exist or is not proposed"})
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO round_topics (round_id, topic_id, position) VALUES ($1, $2, $3)`, roundID, id, i); err != nil {
			return fmt.Errorf("put topic in round: %w", err)
		}
	}
	return nil
}

// RoundPatch changes a round; nil fields stay as they are. Once a round has
// opened only its title, description and closing time change: what it
// offers and how votes count are fixed for everyone who has voted.
type RoundPatch struct {
	Title          *string
	Description    *string
	OpensAt        *time.Time
	ClosesAt       *time.Time
	VotesPerPatron *int
	Weighting      *string
	Results        *string
	TopicIDs       []string // nil: unchanged
}

func (p RoundPatch) changesTerms() bool {
	return p.OpensAt != nil || p.VotesPerPatron != nil || p.Weighting != nil || p.Results != nil || p.TopicIDs != nil
}

// UpdateRound edits a round that has not closed.
func (s *Service) UpdateRound(ctx context.Context, actor members.Actor, id string, p RoundPatch) (Round, error) {
	now := s.now()
	var r Round
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if r, err = findRound(ctx, tx, id, s.db.Dialect.ForUpdate()); err != nil {
			return err
		}
		if r.ClosedAt != nil || !now.Before(r.ClosesAt) {
			return errs.WithCode(errs.Conflict, "round_closed", "This round has closed; its results are final.")
		}
		if !now.Before(r.OpensAt) && p.changesTerms() {
			return errs.WithCode(errs.Conflict, "round_started",
				"This round is open: only its title, description and closing time can change, not its topics, opening, budget, weighting or results.")
		}
		before, old := r, r.TopicIDs
		if p.Title != nil {
			r.Title = strings.TrimSpace(*p.Title)
		}
		if p.Description != nil {
			r.Description = strings.TrimSpace(*p.Description)
		}
		if p.OpensAt != nil {
			r.OpensAt = p.OpensAt.UTC().Truncate(time.Microsecond)
		}
		if p.ClosesAt != nil {
			r.ClosesAt = p.ClosesAt.UTC().Truncate(time.Microsecond)
		}
		if p.VotesPerPatron != nil {
			r.VotesPerPatron = *p.VotesPerPatron
		}
		if p.Weighting != nil {
			r.Weighting = *p.Weighting
		}
		if p.Results != nil {
			r.Results = *p.Results
		}
		if p.TopicIDs != nil {
			r.TopicIDs = distinct(p.TopicIDs)
		}
		fields := r.invalid()
		if p.ClosesAt != nil && !r.ClosesAt.After(now) {
			fields["closes_at"] = "must be in the future (close the round to end it now)"
		}
		if len(fields) > 0 {
			return errs.InvalidFields(fields)
		}
		r.Version++
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET version = version + 1, title = $2, description = $3, opens_at = $4, closes_at = $5, votes_per_patron = $6,
			weighting = $7, results = $8, updated_at = $9 WHERE id = $1`, r.ID, r.Title, r.Description, r.OpensAt, r.ClosesAt, r.VotesPerPatron, r.Weighting, r.Results, now); err != nil {
			return fmt.Errorf("update round: %w", err)
		}
		if err := audit(ctx, tx, actor, "round.update", "round", r.ID, before, r, now); err != nil {
			return err
		}
		if p.TopicIDs == nil {
			return nil
		}
		// Before opening no ballot refers to the topics: hand the old ones
		// back and take the new list.
		if _, err := tx.ExecContext(ctx, `DELETE FROM round_topics WHERE round_id = $1`, r.ID); err != nil {
			return fmt.Errorf("release topics: %w", err)
		}
		for _, t := range old {
			if _, err := tx.ExecContext(ctx, `UPDATE topics SET status = 'proposed', updated_at = $2 WHERE id = $1 AND status = 'in_round'`, t, now); err != nil {
				return fmt.Errorf("release topics: %w", err)
			}
		}
		return claimTopics(ctx, tx, r.ID, r.TopicIDs, now)
	})
	if err != nil {
		return Round{}, err
	}
	s.forgetRound(r.ID)
	s.announce(ctx, r.ID, EventRound)
	return r, nil
}

// FindRound loads a round and its topics.
func (s *Service) FindRound(ctx context.Context, id string) (Round, error) {
	return findRound(ctx, s.db, id, "")
}

// findRound reads a round, its row locked as lock says ("" for none).
func findRound(ctx context.Context, q sqldb.Queryer, id, lock string) (Round, error) {
	var r Round
	var closed sql.NullTime
	err := q.QueryRowContext(ctx, `SELECT id, title, description, opens_at, closes_at, votes_per_patron, weighting, results, closed_at, version FROM rounds WHERE id = $1`+lock, id).
		Scan(&r.ID, &r.Title, &r.Description, &r.OpensAt, &r.ClosesAt, &r.VotesPerPatron, &r.Weighting, &r.Results, &closed, &r.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return Round{}, errRoundNotFound
	}
	if err != nil {
		return Round{}, fmt.Errorf("find round: %w", err)
	}
	if closed.Valid {
		t := closed.Time.UTC()
		r.ClosedAt = &t
	}
	if r.TopicIDs, err = sqldb.QueryStrings(ctx, q, `SELECT topic_id FROM round_topics WHERE round_id = $1 ORDER BY position`, id); err != nil {
		return Round{}, fmt.Errorf("find round topics: %w", err)
	}
	return r, nil
}

// RoundTopic is a topic as it appears in a round.
type RoundTopic = Topic

// TopicsOf lists a round's topics in their order.
func (s *Service) TopicsOf(ctx context.Context, roundID string) ([]RoundTopic, error) {
	return s.queryTopics(ctx, "read round topics", `SELECT t.id, t.title, t.summary, t.status FROM round_topics rt JOIN topics t ON t.id = rt.topic_id
		WHERE rt.round_id = $1 ORDER BY rt.position`, roundID)
}

// queryTopics runs a query of topics' id, title, summary and status.
func (s *Service) queryTopics(ctx context.Context, what, query string, args ...any) ([]Topic, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []Topic{}
	for rows.Next() {
		var t Topic
		if err := rows.Scan(&t.ID, &t.Title, &t.Summary, &t.Status); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// MyVotes lists the topics a member has voted for in a round, sorted. It
// reads the member's votes Redis keeps with the tally (one round trip),
// and the ballots only when Redis has lost the round.
func (s *Service) MyVotes(ctx context.Context, roundID, memberID string) ([]string, error) {
	var built *redis.IntCmd
	var list *redis.StringCmd
	_, err := s.redis.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		built = p.Exists(ctx, s.builtKey(roundID))
		list = p.HGet(ctx, s.votesKey(roundID), memberID)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		s.logger.WarnContext(ctx, "read votes from Redis; reading the ballots", "round_id", roundID, "err", err)
	} else if built.Val() == 1 {
		mine := []string{}
		if list.Val() != "" {
			mine = strings.Split(list.Val(), ",")
			slices.Sort(mine)
		}
		return mine, nil
	}
	return s.ballotsOf(ctx, roundID, memberID)
}

// ballotsOf lists the topics of a member's ballots in a round.
func (s *Service) ballotsOf(ctx context.Context, roundID, memberID string) ([]string, error) {
	ids, err := sqldb.QueryStrings(ctx, s.db, `SELECT topic_id FROM ballots WHERE round_id = $1 AND member_id = $2 ORDER BY topic_id`, roundID, memberID)
	if err != nil {
		return nil, fmt.Errorf("read my votes: %w", err)
	}
	return ids, nil
}

// RecentlyClosed is how long a closed round stays in the round list.
const RecentlyClosed = 30 * 24 * time.Hour

// ListRounds lists open rounds and those closed recently, newest first.
func (s *Service) ListRounds(ctx context.Context) ([]Round, error) {
	now := s.now()
	idList, err := sqldb.QueryStrings(ctx, s.db, `SELECT id FROM rounds WHERE opens_at <= $1 AND (closed_at IS NULL OR closed_at > $2)
		ORDER BY opens_at DESC, id LIMIT 100`, now, now.Add(-RecentlyClosed))
	if err != nil {
		return nil, fmt.Errorf("list rounds: %w", err)
	}
	return s.roundsByID(ctx, idList)
}

// roundsByID reads rounds in the order of their ids, each from the
// replica's copy when it has one (a list page is read far more often than
// rounds change).
func (s *Service) roundsByID(ctx context.Context, idList []string) ([]Round, error) {
	out := make([]Round, 0, len(idList))
	for _, id := range idList {
		r, _, err := s.cachedRound(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// TalliesVisible reports whether a round's counts may be shown at t: live
// rounds always, sealed ones once closed.
func (r Round) TalliesVisible(t time.Time) bool {
	return r.Results == "live" || r.ClosedAt != nil || !t.Before(r.ClosesAt)
}

// TopicPatch changes a topic; nil fields stay as they are.
type TopicPatch struct {
	Title         *string
	Summary       *string
	Status        *string // covered (from won) or declined
	ArticleURL    *string // required with covered
	DeclineReason *string
}

// UpdateTopic edits a topic. Marking a won topic covered records its
// article and, the first time, tells OnCovered who voted for it, in the
// same transaction.
func (s *Service) UpdateTopic(ctx context.Context, actor members.Actor, id string, p TopicPatch) (Topic, error) {
	fields := map[string]string{}
	if p.Title != nil && (strings.TrimSpace(*p.Title) == "" || utf8.RuneCountInString(*p.Title) > 200) {
		fields["title"] = "is required, at most 200 characters"
	}
	if p.Summary != nil && utf8.RuneCountInString(*p.Summary) > 2000 {
		fields["summary"] = "must be at most 2000 characters"
	}
	if p.Status != nil {
		switch *p.Status {
		case "covered":
			if p.ArticleURL == nil || !isWebURL(*p.ArticleURL) {
				fields["article_url"] = "is required with covered: the article's http(s) URL"
			}
		case "declined", "proposed":
		default:
			fields["status"] = "may be set to proposed (approving a suggestion), covered or declined"
		}
	}
	if len(fields) > 0 {
		return Topic{}, errs.InvalidFields(fields)
	}
	now := s.now()
	var t Topic
	var voters []string
	covered := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id, title, summary, status FROM topics WHERE id = $1`+s.db.Dialect.ForUpdate(), id).
			Scan(&t.ID, &t.Title, &t.Summary, &t.Status)
		if errors.Is(err, sql.ErrNoRows) {
			return errs.WithCode(errs.NotFound, "topic_not_found", "No topic has this id.")
		}
		if err != nil {
			return fmt.Errorf("find topic: %w", err)
		}
		before := t
		if p.Title != nil {
			t.Title = strings.TrimSpace(*p.Title)
		}
		if p.Summary != nil {
			t.Summary = strings.TrimSpace(*p.Summary)
		}
		reason := ""
		if p.DeclineReason != nil {
			reason = strings.TrimSpace(*p.DeclineReason)
		}
		var article sql.NullString
		var coveredAt sql.NullTime
		if p.Status != nil {
			switch {
			case *p.Status == "covered" && (t.Status == "won" || t.Status == "covered"):
				covered = t.Status == "won"
				article, coveredAt = sql.NullString{String: strings.TrimSpace(*p.ArticleURL), Valid: true}, sql.NullTime{Time: now, Valid: true}
			case *p.Status == "declined" && (t.Status == "proposed" || t.Status == "suggested"):
			case *p.Status == "proposed" && t.Status == "suggested":
			default:
				return errs.WithCode(errs.Conflict, "invalid_transition", "A %s topic cannot become %s: only a won topic is covered, only a suggested one approved (proposed), and only a proposed or suggested one declined.", t.Status, *p.Status)
			}
			t.Status = *p.Status
		}
		_, err = tx.ExecContext(ctx, `UPDATE topics SET title = $2, summary = $3, status = $4, article_url = COALESCE($5, article_url),
			covered_at = COALESCE(covered_at, $6), decline_reason = CASE WHEN $4 = 'declined' THEN $7 ELSE decline_reason END, updated_at = $8 WHERE id = $1`,
			t.ID, t.Title, t.Summary, t.Status, article, coveredAt, reason, now)
		if err != nil {
			return fmt.Errorf("update topic: %w", err)
		}
		after := map[string]any{"topic": t}
		if article.Valid {
			after["article_url"] = article.String
		}
		if reason != "" {
			after["decline_reason"] = reason
		}
		if err := audit(ctx, tx, actor, "topic.update", "topic", t.ID, before, after, now); err != nil {
			return err
		}
		if !covered {
			return nil
		}
		if voters, err = sqldb.QueryStrings(ctx, tx, `SELECT DISTINCT member_id FROM ballots WHERE topic_id = $1 ORDER BY member_id`, t.ID); err != nil {
			return fmt.Errorf("find voters: %w", err)
		}
		rounds, err := sqldb.QueryStrings(ctx, tx, `SELECT round_id FROM round_topics WHERE topic_id = $1 ORDER BY round_id`, t.ID)
		if err != nil {
			return fmt.Errorf("find topic's rounds: %w", err)
		}
		if s.onCovered != nil {
			if err := s.onCovered(ctx, tx, t, article.String, voters); err != nil {
				return err
			}
		}
		return s.emit(ctx, tx, "topic.covered", map[string]any{"topic": map[string]any{"id": t.ID, "title": t.Title, "summary": t.Summary,
			"article_url": article.String, "covered_at": now.Format(time.RFC3339), "round_ids": rounds, "voters": len(voters)}})
	})
	if err != nil {
		return Topic{}, err
	}
	s.rounds.Clear() // a round shows its topics' titles and states
	return t, nil
}

func isWebURL(raw string) bool {
	u, err := url.Parse(strings.TrimSpace(raw))
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// TopicsWithStatus lists topics in any of the given states, oldest first,
// at most 500.
func (s *Service) TopicsWithStatus(ctx context.Context, statuses ...string) ([]Topic, error) {
	return s.queryTopics(ctx, "list topics", `SELECT id, title, summary, status FROM topics WHERE status IN (`+sqldb.Placeholders(1, len(statuses))+`)
		ORDER BY created_at, id LIMIT 500`, sqldb.Args(statuses)...)
}

// StaffRounds lists the rounds staff run: every round not yet closed,
// planned ones included, and those closed recently; latest opening first.
func (s *Service) StaffRounds(ctx context.Context) ([]Round, error) {
	idList, err := sqldb.QueryStrings(ctx, s.db, `SELECT id FROM rounds WHERE closed_at IS NULL OR closed_at > $1 ORDER BY opens_at DESC, id LIMIT 100`,
		s.now().Add(-RecentlyClosed))
	if err != nil {
		return nil, fmt.Errorf("list rounds: %w", err)
	}
	return s.roundsByID(ctx, idList)
}

// audit records a staff write to voting in the audit log, in its
// transaction.
func audit(ctx context.Context, tx *sql.Tx, actor members.Actor, action, subjectType, subjectID string, before, after any, at time.Time) error {
	e := members.AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: action, SubjectType: subjectType, SubjectID: subjectID,
		After: members.AuditJSON(after), CreatedAt: at}
	if before != nil {
		e.Before = members.AuditJSON(before)
	}
	return members.RecordAudit(ctx, tx, e)
}

// VotesCast counts a member's votes in closed rounds, for staff: how many,
// never which. Open rounds are left out: watching one member's count move
// beside a live tally would tell which topic they chose.
func (s *Service) VotesCast(ctx context.Context, memberID string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ballots b JOIN rounds r ON r.id = b.round_id
		WHERE b.member_id = $1 AND r.closed_at IS NOT NULL`, memberID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count votes: %w", err)
	}
	return n, nil
}
