package voting

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/errs"
)

// Redis keys of a round share a hash tag, so a round lives on one Redis
// Cluster slot and one script can touch all of them.
func (s *Service) tallyKey(roundID string) string {
	return s.redis.Key("round", "{"+roundID+"}", "tally")
}
func (s *Service) builtKey(roundID string) string {
	return s.redis.Key("round", "{"+roundID+"}", "built")
}
func (s *Service) votesKey(roundID, memberID string) string {
	return s.redis.Key("round", "{"+roundID+"}", "member", memberID)
}

func (s *Service) versionsKey(roundID, memberID string) string {
	return s.redis.Key("round", "{"+roundID+"}", "ver", memberID)
}

// applyVote brings one member's vote for one topic to the state a committed
// change left it in (present or not), in the tally and their set together.
// Each change carries the member's version from the database, which follows
// commit order: a change older than one already applied (or than the last
// rebuild) is ignored, so a cast and a withdrawal racing to Redis cannot
// leave a vote no ballot holds. It answers -1 when the round's tally was
// never built (Redis lost it): the caller rebuilds from the ballots.
var applyVote = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local v = tonumber(ARGV[4])
local seen = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '-1')
local floor = tonumber(redis.call('HGET', KEYS[4], '_floor') or '-1')
if v <= seen or v < floor then return 0 end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
local w = tonumber(ARGV[2])
if ARGV[3] == '1' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then redis.call('ZINCRBY', KEYS[1], w, ARGV[1]) end
else
  if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then redis.call('ZINCRBY', KEYS[1], -w, ARGV[1]) end
end
return 1
`)

// CastResult is the outcome of a cast.
type CastResult struct {
	Repeated  bool // the vote was already cast: nothing changed
	VotesLeft int
	Round     Round // the round voted in, as the cast found it
}

// CastVote records a member's vote for a topic in a round. The ballot is
// stored first, in a transaction that also counts it against the member's
// budget (a locked row per round and member, so concurrent casts cannot
// overspend it); only then is the Redis tally changed. If that fails, the
// vote stands and the tally is rebuilt from the ballots.
func (s *Service) CastVote(ctx context.Context, roundID, memberID, topicID string) (CastResult, error) {
	r, err := s.FindRound(ctx, roundID)
	if err != nil {
		return CastResult{}, err
	}
	if !r.Open(s.now()) {
		return CastResult{}, errRoundClosed
	}
	if !r.has(topicID) {
		return CastResult{}, errTopicNotFound
	}
	v, err := s.eligible.Voter(ctx, memberID)
	if err != nil {
		return CastResult{}, err
	}
	if !v.Active {
		return CastResult{}, errPatronRequired
	}
	weight := 1
	if r.Weighting == "tier" && v.Weight > 1 {
		weight = v.Weight
	}

	lock := s.roundLock(roundID)
	lock.RLock()
	defer lock.RUnlock()
	res := CastResult{Round: r}
	var version int64
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The round must still be open when the ballot commits: closing
		// takes this row for update, so a cast and a close take turns.
		if err := s.lockOpenRound(ctx, tx, roundID); err != nil {
			return err
		}
		ins, err := tx.ExecContext(ctx, `INSERT INTO ballots (round_id, member_id, topic_id, weight, cast_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (round_id, member_id, topic_id) DO NOTHING`, roundID, memberID, topicID, weight, s.now())
		if err != nil {
			return fmt.Errorf("store ballot: %w", err)
		}
		if n, _ := ins.RowsAffected(); n == 0 {
			res.Repeated = true
			var used int
			err := tx.QueryRowContext(ctx, `SELECT used, version FROM round_voters WHERE round_id = $1 AND member_id = $2`, roundID, memberID).Scan(&used, &version)
			res.VotesLeft = r.VotesPerPatron - used
			return err
		}
		var used int
		err = tx.QueryRowContext(ctx, `INSERT INTO round_voters (round_id, member_id, used, version) VALUES ($1, $2, 1, 1)
			ON CONFLICT (round_id, member_id) DO UPDATE SET used = round_voters.used + 1, version = round_voters.version + 1 WHERE round_voters.used < $3
			RETURNING used, version`, roundID, memberID, r.VotesPerPatron).Scan(&used, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return errBudget // rolls the ballot back
		}
		if err != nil {
			return fmt.Errorf("count vote: %w", err)
		}
		res.VotesLeft = r.VotesPerPatron - used
		return nil
	})
	if err != nil {
		return CastResult{}, err
	}
	s.tallyVote(ctx, roundID, memberID, topicID, weight, true, version)
	return res, nil
}

// WithdrawVote takes a member's vote for a topic back while the round is open.
func (s *Service) WithdrawVote(ctx context.Context, roundID, memberID, topicID string) error {
	r, err := s.FindRound(ctx, roundID)
	if err != nil {
		return err
	}
	if !r.Open(s.now()) {
		return errRoundClosed
	}
	lock := s.roundLock(roundID)
	lock.RLock()
	defer lock.RUnlock()
	var weight int
	var version int64
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockOpenRound(ctx, tx, roundID); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `DELETE FROM ballots WHERE round_id = $1 AND member_id = $2 AND topic_id = $3 RETURNING weight`,
			roundID, memberID, topicID).Scan(&weight)
		if errors.Is(err, sql.ErrNoRows) {
			return errVoteNotFound
		}
		if err != nil {
			return fmt.Errorf("withdraw ballot: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `UPDATE round_voters SET used = used - 1, version = version + 1 WHERE round_id = $1 AND member_id = $2 RETURNING version`,
			roundID, memberID).Scan(&version); err != nil {
			return fmt.Errorf("count withdrawal: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.tallyVote(ctx, roundID, memberID, topicID, weight, false, version)
	return nil
}

// tallyVote applies a stored ballot's change to Redis. The caller holds the
// round's read lock. A failure leaves the ballot (the truth) standing and
// the tally to be rebuilt.
func (s *Service) tallyVote(ctx context.Context, roundID, memberID, topicID string, weight int, present bool, version int64) {
	keys := []string{s.tallyKey(roundID), s.votesKey(roundID, memberID), s.builtKey(roundID), s.versionsKey(roundID, memberID)}
	want := "0"
	if present {
		want = "1"
	}
	n, err := applyVote.Run(ctx, s.redis.Client, keys, topicID, weight, want, version).Int()
	if err == nil && n >= 0 {
		s.announce(ctx, roundID, EventTally)
		return
	}
	if err != nil {
		s.logger.WarnContext(ctx, "tally not updated; rebuilding it from the ballots", "round_id", roundID, "err", err)
	}
	// Rebuilding takes the write lock, which this caller's read lock holds
	// off: do it after this cast has let go.
	go func() {
		if _, err := s.RebuildTally(context.WithoutCancel(ctx), roundID); err != nil {
			s.logger.ErrorContext(ctx, "rebuild tally", "round_id", roundID, "err", err)
		}
	}()
}

// Tally is a round's counts per topic.
type Tally map[string]int64

// TallyOf reads a round's live tally from Redis, rebuilding it from the
// ballots first if Redis has lost it. It never aggregates ballots otherwise.
func (s *Service) TallyOf(ctx context.Context, roundID string) (Tally, error) {
	built, err := s.redis.Client.Exists(ctx, s.builtKey(roundID)).Result()
	if err != nil {
		return nil, fmt.Errorf("read tally: %w", err)
	}
	if built == 0 {
		return s.RebuildTally(ctx, roundID)
	}
	zs, err := s.redis.Client.ZRangeWithScores(ctx, s.tallyKey(roundID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read tally: %w", err)
	}
	t := Tally{}
	for _, z := range zs {
		if z.Score != 0 {
			t[z.Member.(string)] = int64(z.Score)
		}
	}
	return t, nil
}

// RebuildTally replaces a round's Redis state with what its ballots say.
// Casts in the round on this replica wait while it runs.
func (s *Service) RebuildTally(ctx context.Context, roundID string) (Tally, error) {
	lock := s.roundLock(roundID)
	lock.Lock()
	defer lock.Unlock()
	versions := map[string]int64{}
	vrows, err := s.db.QueryContext(ctx, `SELECT member_id, version FROM round_voters WHERE round_id = $1`, roundID)
	if err != nil {
		return nil, fmt.Errorf("read vote versions: %w", err)
	}
	for vrows.Next() {
		var m string
		var v int64
		if err := vrows.Scan(&m, &v); err != nil {
			vrows.Close()
			return nil, fmt.Errorf("read vote versions: %w", err)
		}
		versions[m] = v
	}
	vrows.Close()
	if err := vrows.Err(); err != nil {
		return nil, fmt.Errorf("read vote versions: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT member_id, topic_id, weight FROM ballots WHERE round_id = $1 ORDER BY member_id`, roundID)
	if err != nil {
		return nil, fmt.Errorf("read ballots: %w", err)
	}
	defer rows.Close()
	t := Tally{}
	byMember := map[string][]any{}
	for rows.Next() {
		var member, topic string
		var w int64
		if err := rows.Scan(&member, &topic, &w); err != nil {
			return nil, fmt.Errorf("read ballots: %w", err)
		}
		t[topic] += w
		byMember[member] = append(byMember[member], topic)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ballots: %w", err)
	}
	pipe := s.redis.Client.TxPipeline()
	pipe.Del(ctx, s.tallyKey(roundID))
	if err := s.deleteMemberSets(ctx, roundID); err != nil {
		return nil, err
	}
	for topic, n := range t {
		pipe.ZAdd(ctx, s.tallyKey(roundID), redis.Z{Score: float64(n), Member: topic})
	}
	for member, topics := range byMember {
		pipe.SAdd(ctx, s.votesKey(roundID, member), topics...)
	}
	// Changes at or before these versions are in what was just written.
	for member, v := range versions {
		pipe.HSet(ctx, s.versionsKey(roundID, member), "_floor", v)
	}
	pipe.Set(ctx, s.builtKey(roundID), strconv.FormatInt(s.now().Unix(), 10), 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("write tally: %w", err)
	}
	s.announce(ctx, roundID, EventTally)
	return t, nil
}

// deleteMemberSets drops every member's vote set of a round.
func (s *Service) deleteMemberSets(ctx context.Context, roundID string) error {
	for _, pattern := range []string{s.votesKey(roundID, "*"), s.versionsKey(roundID, "*")} {
		iter := s.redis.Client.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			if err := s.redis.Client.Del(ctx, iter.Val()).Err(); err != nil {
				return fmt.Errorf("clear vote sets: %w", err)
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
	}
	return nil
}

// WithdrawMemberVotes takes back every vote a member has in open rounds:
// for a member who lost access. Each withdrawal changes the tally at once.
// It reports how many votes it withdrew.
func (s *Service) WithdrawMemberVotes(ctx context.Context, memberID string) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT b.round_id, b.topic_id FROM ballots b JOIN rounds r ON r.id = b.round_id
		WHERE b.member_id = $1 AND r.closed_at IS NULL AND r.closes_at > $2`, memberID, s.now())
	if err != nil {
		return 0, fmt.Errorf("find votes: %w", err)
	}
	type vote struct{ round, topic string }
	var votes []vote
	for rows.Next() {
		var v vote
		if err := rows.Scan(&v.round, &v.topic); err != nil {
			rows.Close()
			return 0, fmt.Errorf("find votes: %w", err)
		}
		votes = append(votes, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("find votes: %w", err)
	}
	n := 0
	for _, v := range votes {
		err := s.WithdrawVote(ctx, v.round, memberID, v.topic)
		if errs.Is(err, errs.NotFound) || errs.Is(err, errs.Conflict) {
			continue // withdrawn meanwhile, or the round just closed
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// lockOpenRound holds the round open for the rest of the transaction, or
// says it is closed.
func (s *Service) lockOpenRound(ctx context.Context, tx *sql.Tx, roundID string) error {
	var open bool
	err := tx.QueryRowContext(ctx, `SELECT closed_at IS NULL AND closes_at > $2 FROM rounds WHERE id = $1`+s.db.Dialect.ForShare(), roundID, s.now()).Scan(&open)
	if errors.Is(err, sql.ErrNoRows) {
		return errRoundNotFound
	}
	if err != nil {
		return fmt.Errorf("check round: %w", err)
	}
	if !open {
		return errRoundClosed
	}
	return nil
}
