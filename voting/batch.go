package voting

import (
	"context"
	"database/sql"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/sqldb"
)

// Casts that arrive together are stored together: a few committer
// goroutines each take whatever casts are waiting (never waiting for more)
// and store them in one transaction with a handful of multi-row statements,
// then apply them to Redis in one pipeline. Under load that spreads a
// transaction's fixed cost over many votes; one at a time it is one small
// transaction per vote. Every cast is still answered only after its ballot
// has committed and its tally changed.
const (
	committers = 4  // transactions in flight at once
	maxBatch   = 64 // casts in one transaction at most
)

// cast is one vote waiting to be stored, and where its outcome goes.
type cast struct {
	round, member, topic string
	seen                 int64 // the version of the round the request checked
	done                 chan castOutcome
}

type castOutcome struct {
	repeated bool
	used     int
	tally    Tally
	err      error
}

// CastVote records a member's vote for a topic in a round. The ballot is
// stored first, in a transaction that also counts it against the member's
// budget (a row per round and member, so concurrent casts cannot overspend
// it); only then is the Redis tally changed. If that fails, the vote stands
// and the tally is rebuilt from the ballots.
func (s *Service) CastVote(ctx context.Context, roundID, memberID, topicID string) (CastResult, error) {
	r, _, err := s.cachedRound(ctx, roundID)
	if err != nil {
		return CastResult{}, err
	}
	if !r.Open(s.now()) {
		return CastResult{}, errRoundClosed
	}
	if !r.has(topicID) {
		return CastResult{}, errTopicNotFound
	}
	s.startCommitters.Do(func() {
		for range committers {
			go s.commitLoop()
		}
	})
	c := &cast{round: roundID, member: memberID, topic: topicID, seen: r.Version, done: make(chan castOutcome, 1)}
	select {
	case s.pending <- c:
	case <-ctx.Done():
		return CastResult{}, ctx.Err()
	}
	// Once queued the cast is stored whatever becomes of this request, so
	// wait for the outcome rather than answer something it might belie.
	out := <-c.done
	if out.err != nil {
		return CastResult{}, out.err
	}
	return CastResult{Repeated: out.repeated, VotesLeft: r.VotesPerPatron - out.used, Round: r, Tally: out.tally}, nil
}

func (s *Service) commitLoop() {
	for first := range s.pending {
		batch := []*cast{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case c := <-s.pending:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit stores a batch and answers each of its casts. A batch that fails
// as a whole (a deadlock with a concurrent withdrawal, say) is retried one
// cast at a time, so one cast's failure is only its own.
func (s *Service) commit(batch []*cast) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	s.commitWithin(ctx, batch)
}

// commitTimeout bounds a batch's commit, its retries one cast at a time
// included.
const commitTimeout = 30 * time.Second

func (s *Service) commitWithin(ctx context.Context, batch []*cast) {
	answered := false
	defer func() {
		// A panic must not leave its batch's voters waiting for ever.
		if p := recover(); p != nil && !answered {
			s.logger.Error("vote batch panicked", "panic", p, "stack", string(debug.Stack()))
			for _, c := range batch {
				c.done <- castOutcome{err: notStored(fmt.Errorf("panic: %v", p))}
			}
		}
	}()
	out, err := s.storeBatch(ctx, batch)
	// A batch failing as a whole (a deadlock with a concurrent statement)
	// is tried again a cast at a time, so one cast's failure is only its
	// own; not when the time is up, which would only fail each again.
	if err != nil && len(batch) > 1 && ctx.Err() == nil {
		answered = true
		for _, c := range batch {
			s.commitWithin(ctx, []*cast{c})
		}
		return
	}
	if err != nil {
		err = notStored(err)
	}
	answered = true
	for _, c := range batch {
		o := out[c]
		if err != nil {
			o.err = err
		}
		c.done <- o
	}
}

// notStored is the answer to a cast whose ballot was not stored.
func notStored(err error) error {
	return &errs.Error{Kind: errs.Unavailable, Code: "vote_not_stored", Message: "Your vote could not be stored; nothing was counted. Please try again.", Err: err}
}

// storeBatch stores a batch's ballots in one transaction, then applies them
// to Redis. Locks are taken in one order by every writer of ballots —
// round rows (FOR SHARE, so a close cannot interleave), then each voting
// member's count row for the round, sorted — so concurrent batches and
// withdrawals queue behind each other instead of deadlocking. Who may vote
// is read first (Eligibility holds it until commit; billing never takes the
// count rows, so the order does not matter to it). With the count rows
// held, the budget is settled here: a member's casts count in arrival
// order, and a new ballot past the budget is given back.
func (s *Service) storeBatch(ctx context.Context, batch []*cast) (map[*cast]castOutcome, error) {
	out := make(map[*cast]castOutcome, len(batch))
	sort.SliceStable(batch, func(i, j int) bool {
		if batch[i].round != batch[j].round {
			return batch[i].round < batch[j].round
		}
		return batch[i].member < batch[j].member
	})
	rounds := distinctRounds(batch)
	for _, id := range rounds {
		l := s.roundLock(id)
		l.RLock()
		defer l.RUnlock()
	}
	versions := map[*cast]int64{}
	weights := map[*cast]int{}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		clear(out)
		clear(versions)
		clear(weights)
		now := s.now()
		budgets, weighting := map[string]int{}, map[string]string{}
		tierWeighted := false
		for _, id := range rounds {
			var open bool
			var budget int
			var w string
			var version int64
			err := tx.QueryRowContext(ctx, `SELECT closed_at IS NULL AND opens_at <= $2 AND closes_at > $2, votes_per_patron, weighting, version
				FROM rounds WHERE id = $1`+s.db.Dialect.ForShare(), id, now).Scan(&open, &budget, &w, &version)
			if err != nil && err != sql.ErrNoRows {
				return fmt.Errorf("check round: %w", err)
			}
			// The request checked a copy of the round up to a second old.
			// Whether it is open is checked here; its topics too, unless
			// the round is unchanged since that copy was read.
			var topics []string
			stale := false
			for _, c := range batch {
				stale = stale || (c.round == id && c.seen != version)
			}
			if open && stale {
				if topics, err = sqldb.QueryStrings(ctx, tx, `SELECT topic_id FROM round_topics WHERE round_id = $1`, id); err != nil {
					return fmt.Errorf("check round topics: %w", err)
				}
			}
			for _, c := range batch {
				switch {
				case c.round != id:
				case !open:
					out[c] = castOutcome{err: errRoundClosed}
				case stale && !slices.Contains(topics, c.topic):
					out[c] = castOutcome{err: errTopicNotFound}
				}
			}
			tierWeighted = tierWeighted || w == "tier"
			budgets[id], weighting[id] = budget, w
		}
		// Who may vote, read in this transaction: see Eligibility.
		var voterIDs []string
		for _, c := range batch {
			if _, decided := out[c]; !decided {
				voterIDs = append(voterIDs, c.member)
			}
		}
		voters, err := s.eligible.Voters(ctx, tx, slices.Compact(slices.Sorted(slices.Values(voterIDs))), tierWeighted)
		if err != nil {
			return fmt.Errorf("check voters: %w", err)
		}
		for _, c := range batch {
			if _, decided := out[c]; decided {
				continue
			}
			v := voters[c.member]
			switch {
			case !v.Active:
				out[c] = castOutcome{err: errPatronRequired}
			case weighting[c.round] == "tier":
				weights[c] = max(v.Weight, 1)
			default:
				weights[c] = 1
			}
		}
		counts := map[[2]string]voterCount{}
		for _, id := range rounds {
			members := castsIn(batch, id, out, func(c *cast) string { return c.member })
			if len(members) == 0 {
				continue
			}
			// Make and lock each member's count row; a no-op update locks
			// an existing row and returns it.
			rows, err := s.upsertCounts(ctx, tx, id, members, nil, `used = round_voters.used`)
			if err != nil {
				return fmt.Errorf("lock vote counts: %w", err)
			}
			for m, c := range rows {
				counts[[2]string{id, m}] = c
			}
		}
		fresh, err := s.insertBallots(ctx, tx, batch, out, weights, now)
		if err != nil {
			return err
		}
		changed := map[[2]string]bool{}
		// What became of each new ballot in this batch: a second cast of
		// the same vote here is a repeat if it counted, refused if not.
		settled := map[[3]string]error{}
		for _, c := range batch {
			if _, decided := out[c]; decided {
				continue
			}
			key, ballot := [2]string{c.round, c.member}, [3]string{c.round, c.member, c.topic}
			n := counts[key]
			if err, done := settled[ballot]; done || !fresh[ballot] {
				if err != nil {
					out[c] = castOutcome{err: err}
				} else {
					out[c] = castOutcome{repeated: true, used: n.used}
					versions[c] = n.version
				}
				continue
			}
			if n.used >= budgets[c.round] {
				if _, err := tx.ExecContext(ctx, `DELETE FROM ballots WHERE round_id = $1 AND member_id = $2 AND topic_id = $3`, c.round, c.member, c.topic); err != nil {
					return fmt.Errorf("give back ballot: %w", err)
				}
				out[c] = castOutcome{err: errBudget}
				settled[ballot] = errBudget
				continue
			}
			settled[ballot] = nil
			n.used++
			n.version++
			counts[key] = n
			changed[key] = true
			out[c] = castOutcome{used: n.used}
			versions[c] = n.version
		}
		for _, id := range rounds {
			var members []string
			values := map[string]voterCount{}
			for key, isChanged := range changed {
				if isChanged && key[0] == id {
					members = append(members, key[1])
					values[key[1]] = counts[key]
				}
			}
			if len(members) == 0 {
				continue
			}
			sort.Strings(members)
			if _, err := s.upsertCounts(ctx, tx, id, members, values, `used = excluded.used, version = excluded.version`); err != nil {
				return fmt.Errorf("count votes: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.applyBatch(ctx, batch, weights, versions, out)
	return out, nil
}

// castsIn lists, once each and in order, what key says of a round's casts
// still undecided.
func castsIn(batch []*cast, round string, out map[*cast]castOutcome, key func(*cast) string) []string {
	var list []string
	for _, c := range batch {
		if _, decided := out[c]; decided || c.round != round {
			continue
		}
		if k := key(c); len(list) == 0 || list[len(list)-1] != k {
			list = append(list, k)
		}
	}
	return list
}

// upsertCounts writes count rows of a round's members (sorted, distinct):
// new rows get values (zero when nil), existing ones the update set.
// It returns each row as it stands after.
func (s *Service) upsertCounts(ctx context.Context, tx *sql.Tx, round string, members []string, values map[string]voterCount, set string) (map[string]voterCount, error) {
	var q strings.Builder
	args := make([]any, 0, 1+3*len(members))
	args = append(args, round)
	q.WriteString(`INSERT INTO round_voters (round_id, member_id, used, version) VALUES `)
	for i, m := range members {
		if i > 0 {
			q.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&q, "($1, $%d, $%d, $%d)", n+1, n+2, n+3)
		args = append(args, m, values[m].used, values[m].version)
	}
	q.WriteString(` ON CONFLICT (round_id, member_id) DO UPDATE SET ` + set + ` RETURNING member_id, used, version`)
	return scanCounts(ctx, tx, q.String(), args...)
}

// insertBallots inserts the undecided casts' ballots, each distinct one once,
// and reports which were new.
func (s *Service) insertBallots(ctx context.Context, tx *sql.Tx, batch []*cast, out map[*cast]castOutcome, weights map[*cast]int, now time.Time) (map[[3]string]bool, error) {
	var q strings.Builder
	args := make([]any, 0, 5*len(batch))
	q.WriteString(`INSERT INTO ballots (round_id, member_id, topic_id, weight, cast_at) VALUES `)
	listed := map[[3]string]bool{}
	for _, c := range batch {
		ballot := [3]string{c.round, c.member, c.topic}
		if _, decided := out[c]; decided || listed[ballot] {
			continue
		}
		if len(listed) > 0 {
			q.WriteString(", ")
		}
		listed[ballot] = true
		n := len(args)
		fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5)
		args = append(args, c.round, c.member, c.topic, weights[c], now)
	}
	if len(listed) == 0 {
		return nil, nil
	}
	q.WriteString(` ON CONFLICT (round_id, member_id, topic_id) DO NOTHING RETURNING round_id, member_id, topic_id`)
	rows, err := tx.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store ballots: %w", err)
	}
	defer rows.Close()
	fresh := map[[3]string]bool{}
	for rows.Next() {
		var b [3]string
		if err := rows.Scan(&b[0], &b[1], &b[2]); err != nil {
			return nil, fmt.Errorf("store ballots: %w", err)
		}
		fresh[b] = true
	}
	return fresh, rows.Err()
}

// applyBatch applies a committed batch to Redis in one pipeline and reads
// each round's tally after it, for the answers. A round whose state Redis
// lost, or whose update failed, is rebuilt from the ballots.
func (s *Service) applyBatch(ctx context.Context, batch []*cast, weights map[*cast]int, versions map[*cast]int64, out map[*cast]castOutcome) {
	pipe := s.redis.Client.Pipeline()
	cmds := make(map[*cast]*redis.Cmd, len(batch))
	for _, c := range batch {
		if out[c].err != nil {
			continue
		}
		cmds[c] = applyVote.EvalSha(ctx, pipe, s.tallyKeys(c.round), c.member, c.topic, weights[c], "1", versions[c])
	}
	tallies := map[string]*redis.ZSliceCmd{}
	for _, c := range batch {
		if _, ok := cmds[c]; ok && tallies[c.round] == nil {
			tallies[c.round] = pipe.ZRangeWithScores(ctx, s.tallyKey(c.round), 0, -1)
		}
	}
	if len(cmds) == 0 {
		return
	}
	_, _ = pipe.Exec(ctx) // each command's error is looked at below
	broken := map[string]error{}
	resent := false
	for _, c := range batch {
		cmd, ok := cmds[c]
		if !ok {
			continue
		}
		n, err := cmd.Int()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// Redis restarted and forgot the script: Run sends it again.
			n, err = applyVote.Run(ctx, s.redis.Client, s.tallyKeys(c.round), c.member, c.topic, weights[c], "1", versions[c]).Int()
			resent = true
		}
		if err != nil || n < 0 {
			if _, seen := broken[c.round]; !seen {
				broken[c.round] = err
			}
		}
	}
	if resent {
		// The tallies read in the pipeline came before the votes sent
		// again: read them after.
		for round := range tallies {
			tallies[round] = s.redis.Client.ZRangeWithScores(ctx, s.tallyKey(round), 0, -1)
		}
	}
	for round, z := range tallies {
		if _, ok := broken[round]; ok {
			continue
		}
		zs, err := z.Result()
		if err != nil {
			s.tallies.Forget(round)
			continue // the answer goes without a tally
		}
		t := tallyFrom(zs)
		s.tallies.Put(round, t)
		for _, c := range batch {
			if o := out[c]; c.round == round && o.err == nil {
				o.tally = t
				out[c] = o
			}
		}
		s.tallyChanged(round)
	}
	for round, err := range broken {
		s.rebuildLater(ctx, round, err)
	}
}

func distinctRounds(casts []*cast) []string {
	var out []string
	for i, c := range casts {
		if i == 0 || c.round != casts[i-1].round {
			out = append(out, c.round)
		}
	}
	return out
}

type voterCount struct {
	used    int
	version int64
}

func scanCounts(ctx context.Context, tx *sql.Tx, query string, args ...any) (map[string]voterCount, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]voterCount{}
	for rows.Next() {
		var m string
		var c voterCount
		if err := rows.Scan(&m, &c.used, &c.version); err != nil {
			return nil, err
		}
		out[m] = c
	}
	return out, rows.Err()
}
