package voting

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/patronage/patronage/internal/sqldb"
)

// OpenRounds lists the ids of rounds open now.
func (s *Service) OpenRounds(ctx context.Context) ([]string, error) {
	now := s.now()
	ids, err := sqldb.QueryStrings(ctx, s.db, `SELECT id FROM rounds WHERE closed_at IS NULL AND opens_at <= $1 AND closes_at > $1 ORDER BY id`, now)
	if err != nil {
		return nil, fmt.Errorf("list open rounds: %w", err)
	}
	return ids, nil
}

// EnsureTallies rebuilds the tally of every open round whose Redis state is
// missing; a server runs it at start. It reports how many it rebuilt.
func (s *Service) EnsureTallies(ctx context.Context) (int, error) {
	ids, err := s.OpenRounds(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		built, err := s.redis.Client.Exists(ctx, s.builtKey(id)).Result()
		if err != nil {
			return n, fmt.Errorf("check tally: %w", err)
		}
		if built == 1 {
			continue
		}
		if _, err := s.RebuildTally(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// VerifyRound compares a round's Redis tally and vote sets with its
// ballots and describes every difference; none means they agree.
func (s *Service) VerifyRound(ctx context.Context, roundID string) ([]string, error) {
	lock := s.roundLock(roundID)
	lock.Lock() // a consistent view on this replica
	defer lock.Unlock()
	rows, err := s.db.QueryContext(ctx, `SELECT member_id, topic_id, weight FROM ballots WHERE round_id = $1`, roundID)
	if err != nil {
		return nil, fmt.Errorf("read ballots: %w", err)
	}
	want := map[string]int64{}
	sets := map[string]map[string]bool{}
	for rows.Next() {
		var member, topic string
		var w int64
		if err := rows.Scan(&member, &topic, &w); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read ballots: %w", err)
		}
		want[topic] += w
		if sets[member] == nil {
			sets[member] = map[string]bool{}
		}
		sets[member][topic] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var diffs []string
	built, err := s.redis.Client.Exists(ctx, s.builtKey(roundID)).Result()
	if err != nil {
		return nil, fmt.Errorf("read tally: %w", err)
	}
	if built == 0 {
		return []string{"round " + roundID + ": no tally in Redis (it is rebuilt on the next read or cast)"}, nil
	}
	zs, err := s.redis.Client.ZRangeWithScores(ctx, s.tallyKey(roundID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read tally: %w", err)
	}
	got := map[string]int64{}
	for _, z := range zs {
		got[z.Member.(string)] = int64(z.Score)
	}
	topics := map[string]bool{}
	for t := range want {
		topics[t] = true
	}
	for t := range got {
		topics[t] = true
	}
	for _, t := range sortedKeys(topics) {
		if got[t] != want[t] {
			diffs = append(diffs, "round "+roundID+", topic "+t+": Redis "+strconv.FormatInt(got[t], 10)+", ballots "+strconv.FormatInt(want[t], 10))
		}
	}
	inRedis := map[string]map[string]bool{}
	iter := s.redis.Client.HScan(ctx, s.votesKey(roundID), 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		member := iter.Val()
		if !iter.Next(ctx) {
			break
		}
		inRedis[member] = map[string]bool{}
		for _, t := range strings.Split(iter.Val(), ",") {
			inRedis[member][t] = true
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("read votes: %w", err)
	}
	members := map[string]bool{}
	for m := range sets {
		members[m] = true
	}
	for m := range inRedis {
		members[m] = true
	}
	for _, member := range sortedKeys(members) {
		for _, t := range sortedKeys(sets[member]) {
			if !inRedis[member][t] {
				diffs = append(diffs, "round "+roundID+", member "+member+": ballot for "+t+" missing from Redis")
			}
		}
		for _, t := range sortedKeys(inRedis[member]) {
			if !sets[member][t] {
				diffs = append(diffs, "round "+roundID+", member "+member+": Redis has a vote for "+t+" with no ballot")
			}
		}
	}
	return diffs, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
