package voting

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
)

// A round's live state in Redis is four keys sharing a hash tag, so it
// lives on one Redis Cluster slot and one script can touch all of them:
// the tally (a sorted set, topic → votes), each member's votes (a hash,
// member → comma-separated topic ids), the version of the last change
// applied per member (a hash), and a marker saying the state was built from
// the ballots (its absence means Redis lost it). While the state is
// rebuilt, two more: a count of rebuilds running and their journal.
func (s *Service) tallyKey(roundID string) string {
	return s.redis.Key("tally", "{"+roundID+"}", "counts")
}
func (s *Service) builtKey(roundID string) string {
	return s.redis.Key("tally", "{"+roundID+"}", "built")
}
func (s *Service) votesKey(roundID string) string {
	return s.redis.Key("tally", "{"+roundID+"}", "votes")
}
func (s *Service) versionsKey(roundID string) string {
	return s.redis.Key("tally", "{"+roundID+"}", "versions")
}

func (s *Service) rebuildingKey(roundID string) string {
	return s.redis.Key("tally", "{"+roundID+"}", "rebuilding")
}
func (s *Service) journalKey(roundID string) string {
	return s.redis.Key("tally", "{"+roundID+"}", "journal")
}

func (s *Service) tallyKeys(roundID string) []string {
	return []string{s.tallyKey(roundID), s.votesKey(roundID), s.builtKey(roundID), s.versionsKey(roundID),
		s.rebuildingKey(roundID), s.journalKey(roundID)}
}

// rebuildWindow bounds how long the marker of a running rebuild (and its
// journal) outlives a rebuilder that died before taking it down.
const rebuildWindow = 5 * time.Minute

// applyVote brings one member's vote for one topic to the state a committed
// change left it in (present or not), in the tally and their votes
// together. Each change carries the member's version from the database,
// which grows with each of their changes in commit order. The versions
// hash keeps, per member and topic ("member|topic"), the version of the
// last change applied to that vote, and per member ("member") the version
// the last rebuild read: a change no newer than either is already in
// Redis and is ignored. So a cast and a withdrawal racing to Redis cannot
// leave a vote no ballot holds, and a change to one topic never hides a
// late change to another. It answers -1 when the round's state was never
// built (Redis lost it): the caller rebuilds from the ballots.
//
// While a rebuild of the round runs — on any replica — each change is also
// appended to the round's journal: the rebuild swaps in what the ballots
// said when it read them, and then applies the journal, so a change another
// replica made to the old state meanwhile is not lost with it.
//
// KEYS: tally, votes, built, versions, rebuilding, journal. ARGV: member,
// topic, weight, present ("1" or "0"), version.
var applyVote = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('RPUSH', KEYS[6], ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[5])
  redis.call('PEXPIRE', KEYS[6], ` + strconv.FormatInt(rebuildWindow.Milliseconds(), 10) + `)
end
local v = tonumber(ARGV[5])
local field = ARGV[1] .. '|' .. ARGV[2]
local seen = redis.call('HMGET', KEYS[4], field, ARGV[1])
if v <= tonumber(seen[1] or '-1') or v <= tonumber(seen[2] or '-1') then return 0 end
redis.call('HSET', KEYS[4], field, ARGV[5])
local list = redis.call('HGET', KEYS[2], ARGV[1]) or ''
local t = ARGV[2]
local has = string.find(',' .. list .. ',', ',' .. t .. ',', 1, true) ~= nil
if ARGV[4] == '1' then
  if not has then
    if list == '' then list = t else list = list .. ',' .. t end
    redis.call('HSET', KEYS[2], ARGV[1], list)
    redis.call('ZINCRBY', KEYS[1], ARGV[3], t)
  end
elseif has then
  local rest = {}
  for x in string.gmatch(list, '[^,]+') do
    if x ~= t then rest[#rest + 1] = x end
  end
  if #rest == 0 then
    redis.call('HDEL', KEYS[2], ARGV[1])
  else
    redis.call('HSET', KEYS[2], ARGV[1], table.concat(rest, ','))
  end
  redis.call('ZINCRBY', KEYS[1], -tonumber(ARGV[3]), t)
end
return 1
`)

// CastResult is the outcome of a cast.
type CastResult struct {
	Repeated  bool // the vote was already cast: nothing changed
	VotesLeft int
	Round     Round // the round voted in, as the cast found it
	Tally     Tally // the round's tally just after the vote counted; nil if not read
}

// WithdrawVote takes a member's vote for a topic back while the round is open.
func (s *Service) WithdrawVote(ctx context.Context, roundID, memberID, topicID string) error {
	r, _, err := s.cachedRound(ctx, roundID)
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
		// The member's count row is locked before the ballot, the order
		// casts take them in (see storeBatch).
		var used int
		err := tx.QueryRowContext(ctx, `SELECT used FROM round_voters WHERE round_id = $1 AND member_id = $2`+s.db.Dialect.ForUpdate(), roundID, memberID).Scan(&used)
		if errors.Is(err, sql.ErrNoRows) {
			return errVoteNotFound
		}
		if err != nil {
			return fmt.Errorf("lock vote count: %w", err)
		}
		err = tx.QueryRowContext(ctx, `DELETE FROM ballots WHERE round_id = $1 AND member_id = $2 AND topic_id = $3 RETURNING weight`,
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
	want := "0"
	if present {
		want = "1"
	}
	n, err := applyVote.Run(ctx, s.redis.Client, s.tallyKeys(roundID), memberID, topicID, weight, want, version).Int()
	s.tallies.Forget(roundID)
	if err == nil && n >= 0 {
		s.tallyChanged(roundID)
		return
	}
	s.rebuildLater(ctx, roundID, err)
}

// rebuildLater rebuilds a round's tally whose update failed (err) or found
// it missing (nil). Rebuilding takes the round's write lock, which the
// caller's read lock holds off: it runs once the caller has let go.
func (s *Service) rebuildLater(ctx context.Context, roundID string, err error) {
	s.tallies.Forget(roundID)
	if err != nil {
		s.logger.WarnContext(ctx, "tally not updated; rebuilding it from the ballots", "round_id", roundID, "err", err)
	}
	// One rebuild per round waiting at a time covers every change before
	// it reads the ballots.
	if s.markRebuilding(roundID) {
		go s.rebuildPending(context.WithoutCancel(ctx), roundID)
	}
}

// markRebuilding records that a rebuild of the round is waiting to run,
// unless one already is (false).
func (s *Service) markRebuilding(roundID string) bool {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	if s.rebuilding[roundID] {
		return false
	}
	s.rebuilding[roundID] = true
	return true
}

// rebuildPending runs a waiting rebuild. Once it holds the round, a change
// that fails needs a rebuild of its own (this one may have read the
// ballots before it), so the mark goes; a rebuild that fails (Redis still
// away) is tried again after rebuildBackoff.
func (s *Service) rebuildPending(ctx context.Context, roundID string) {
	lock := s.roundLock(roundID)
	lock.Lock()
	s.locksMu.Lock()
	delete(s.rebuilding, roundID)
	s.locksMu.Unlock()
	_, err := s.rebuildLocked(ctx, roundID)
	lock.Unlock()
	if err == nil {
		return
	}
	s.logger.ErrorContext(ctx, "rebuild tally; trying again", "round_id", roundID, "err", err)
	if s.markRebuilding(roundID) {
		time.AfterFunc(rebuildBackoff, func() { s.rebuildPending(ctx, roundID) })
	}
}

// rebuildBackoff is how long after a failed rebuild of a round the next
// may start.
const rebuildBackoff = time.Second

// ensureTally rebuilds a round's tally that Redis has lost, unless another
// caller did meanwhile: after a flush, many readers of one round cause one
// rebuild, not one each.
func (s *Service) ensureTally(ctx context.Context, roundID string) (Tally, error) {
	lock := s.roundLock(roundID)
	lock.Lock()
	defer lock.Unlock()
	var built *redis.IntCmd
	var zs *redis.ZSliceCmd
	if _, err := s.redis.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		built = p.Exists(ctx, s.builtKey(roundID))
		zs = p.ZRangeWithScores(ctx, s.tallyKey(roundID), 0, -1)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read tally: %w", err)
	}
	if built.Val() == 1 {
		return tallyFrom(zs.Val()), nil
	}
	return s.rebuildLocked(ctx, roundID)
}

// Tally is a round's counts per topic.
type Tally map[string]int64

// TallyOf reads a round's live tally from Redis, rebuilding it from the
// ballots first if Redis has lost it. It never aggregates ballots otherwise.
//
// A replica keeps what it last read or wrote of each tally for
// tallyCacheTTL: a page read a thousand times a second asks Redis ten times.
// Votes stored on this replica refresh its copy at once; another replica's
// show within tallyCacheTTL. Callers must not change the Tally returned.
func (s *Service) TallyOf(ctx context.Context, roundID string) (Tally, error) {
	if t, ok := s.tallies.Get(roundID); ok {
		return t, nil
	}
	var built *redis.IntCmd
	var zs *redis.ZSliceCmd
	_, err := s.redis.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		built = p.Exists(ctx, s.builtKey(roundID))
		zs = p.ZRangeWithScores(ctx, s.tallyKey(roundID), 0, -1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tally: %w", err)
	}
	if built.Val() == 0 {
		return s.ensureTally(ctx, roundID)
	}
	t := tallyFrom(zs.Val())
	// Add, not Put: a batch that applied votes after this read may have
	// put a newer tally meanwhile.
	s.tallies.Add(roundID, t)
	return t, nil
}

func tallyFrom(zs []redis.Z) Tally {
	t := Tally{}
	for _, z := range zs {
		if z.Score != 0 {
			t[z.Member.(string)] = int64(z.Score)
		}
	}
	return t
}

// tallyCacheTTL bounds how old a tally a replica shows when another
// replica stored the latest votes.
const tallyCacheTTL = 100 * time.Millisecond

// rebuildChunk is how many Redis commands a rebuild sends per round trip.
const rebuildChunk = 2000

// RebuildTally replaces a round's Redis state with what its ballots say.
// Casts in the round on this replica wait while it runs. The new state is
// written under scratch keys and swapped in at once, so readers see the old
// tally or the new one, never half of one.
func (s *Service) RebuildTally(ctx context.Context, roundID string) (Tally, error) {
	lock := s.roundLock(roundID)
	lock.Lock()
	defer lock.Unlock()
	return s.rebuildLocked(ctx, roundID)
}

// rebuildReadHook, set only by tests, runs between a rebuild's reads and
// its swap: where another replica's change must not get lost.
var rebuildReadHook func()

// endRebuild takes down a rebuild's marker; the last one running takes the
// journal with it. KEYS: rebuilding, journal.
var endRebuild = redis.NewScript(`
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return n
`)

// rebuildLocked is RebuildTally for a caller holding the round's write lock.
func (s *Service) rebuildLocked(ctx context.Context, roundID string) (Tally, error) {
	// The marker goes up before anything is read: every change committed
	// after the reads below is journaled by whichever replica applies it.
	marker := s.redis.Client.TxPipeline()
	marker.Incr(ctx, s.rebuildingKey(roundID))
	marker.PExpire(ctx, s.rebuildingKey(roundID), rebuildWindow)
	if _, err := marker.Exec(ctx); err != nil {
		return nil, fmt.Errorf("mark rebuild: %w", err)
	}
	defer endRebuild.Run(context.WithoutCancel(ctx), s.redis.Client, []string{s.rebuildingKey(roundID), s.journalKey(roundID)})
	// Versions are read before ballots: a change at or below the version
	// read is in the ballots read after it, so the script may ignore it.
	versions, err := s.db.QueryContext(ctx, `SELECT member_id, version FROM round_voters WHERE round_id = $1`, roundID)
	if err != nil {
		return nil, fmt.Errorf("read vote versions: %w", err)
	}
	scratch := s.redis.Key("tally", "{"+roundID+"}", "rebuild", ids.Secret())
	scratchKeys := []string{scratch + ":votes", scratch + ":versions"}
	defer s.redis.Client.Del(context.WithoutCancel(ctx), scratchKeys...)
	fields := make([]any, 0, rebuildChunk)
	flush := func(key string) error {
		if len(fields) == 0 {
			return nil
		}
		err := s.redis.Client.HSet(ctx, key, fields...).Err()
		fields = fields[:0]
		return err
	}
	for versions.Next() {
		var m string
		var v int64
		if err := versions.Scan(&m, &v); err != nil {
			versions.Close()
			return nil, fmt.Errorf("read vote versions: %w", err)
		}
		if fields = append(fields, m, v); len(fields) == rebuildChunk {
			if err := flush(scratchKeys[1]); err != nil {
				versions.Close()
				return nil, fmt.Errorf("write vote versions: %w", err)
			}
		}
	}
	versions.Close()
	if err := versions.Err(); err != nil {
		return nil, fmt.Errorf("read vote versions: %w", err)
	}
	if err := flush(scratchKeys[1]); err != nil {
		return nil, fmt.Errorf("write vote versions: %w", err)
	}

	rows, err := s.db.QueryContext(ctx, `SELECT member_id, topic_id, weight FROM ballots WHERE round_id = $1 ORDER BY member_id, topic_id`, roundID)
	if err != nil {
		return nil, fmt.Errorf("read ballots: %w", err)
	}
	defer rows.Close()
	t := Tally{}
	member, list := "", ""
	for rows.Next() {
		var m, topic string
		var w int64
		if err := rows.Scan(&m, &topic, &w); err != nil {
			return nil, fmt.Errorf("read ballots: %w", err)
		}
		t[topic] += w
		if m == member {
			list += "," + topic
			continue
		}
		if member != "" {
			fields = append(fields, member, list)
		}
		member, list = m, topic
		if len(fields) >= rebuildChunk {
			if err := flush(scratchKeys[0]); err != nil {
				return nil, fmt.Errorf("write votes: %w", err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ballots: %w", err)
	}
	if member != "" {
		fields = append(fields, member, list)
	}
	if err := flush(scratchKeys[0]); err != nil {
		return nil, fmt.Errorf("write votes: %w", err)
	}
	if rebuildReadHook != nil {
		rebuildReadHook()
	}
	pipe := s.redis.Client.TxPipeline()
	pipe.Unlink(ctx, s.tallyKey(roundID), s.votesKey(roundID), s.versionsKey(roundID)) // freed in the background
	for topic, n := range t {
		pipe.ZAdd(ctx, s.tallyKey(roundID), redis.Z{Score: float64(n), Member: topic})
	}
	// RENAME of a key that was never written (no voters yet) fails inside
	// the transaction without undoing the rest: only rename what exists.
	for i, to := range []string{s.votesKey(roundID), s.versionsKey(roundID)} {
		if n, err := s.redis.Client.Exists(ctx, scratchKeys[i]).Result(); err != nil {
			return nil, fmt.Errorf("write tally: %w", err)
		} else if n == 1 {
			pipe.Rename(ctx, scratchKeys[i], to)
		}
	}
	pipe.Set(ctx, s.builtKey(roundID), strconv.FormatInt(s.now().Unix(), 10), 0)
	journal := pipe.LRange(ctx, s.journalKey(roundID), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("write tally: %w", err)
	}
	// What other replicas changed in the old state while this one read:
	// the script skips every change the ballots read already held.
	if t, err = s.replayJournal(ctx, roundID, journal.Val(), t); err != nil {
		return nil, fmt.Errorf("apply changes made during the rebuild: %w", err)
	}
	s.tallies.Put(roundID, t)
	s.tallyChanged(roundID)
	return t, nil
}

// replayJournal applies journaled changes to a freshly swapped-in state
// and reads the tally they leave; t is the tally when there were none.
// Journals are short: the changes made during one rebuild's reads.
func (s *Service) replayJournal(ctx context.Context, roundID string, entries []string, t Tally) (Tally, error) {
	if len(entries) == 0 {
		return t, nil
	}
	for _, e := range entries {
		f := strings.Split(e, "|")
		if len(f) != 5 {
			return nil, fmt.Errorf("journal entry %q", e)
		}
		if err := applyVote.Run(ctx, s.redis.Client, s.tallyKeys(roundID), f[0], f[1], f[2], f[3], f[4]).Err(); err != nil {
			return nil, err
		}
	}
	zs, err := s.redis.Client.ZRangeWithScores(ctx, s.tallyKey(roundID), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	return tallyFrom(zs), nil
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
	err := tx.QueryRowContext(ctx, `SELECT closed_at IS NULL AND opens_at <= $2 AND closes_at > $2 FROM rounds WHERE id = $1`+s.db.Dialect.ForShare(), roundID, s.now()).Scan(&open)
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
