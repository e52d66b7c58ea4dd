package voting

import (
	"context"
	"testing"

	"github.com/patronage/patronage/internal/testenv"
)

// Redis updates that arrive out of commit order are settled by version: a
// withdrawal (version 2) applied before the cast it follows (version 1)
// leaves no vote, and the late cast is ignored.
func TestLateTallyUpdatesAreIgnored(t *testing.T) {
	s := &Service{redis: testenv.EmbeddedRedis(t), logger: testenv.Logger()}
	ctx := context.Background()
	if err := s.redis.Client.Set(ctx, s.builtKey("r1"), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.tallyVote(ctx, "r1", "m1", "t1", 1, false, 2) // the withdrawal lands first
	s.tallyVote(ctx, "r1", "m1", "t1", 1, true, 1)  // then the cast it undid
	score, err := s.redis.Client.ZScore(ctx, s.tallyKey("r1"), "t1").Result()
	if err != nil && err.Error() != "redis: nil" {
		t.Fatal(err)
	}
	if in, _ := s.redis.Client.SIsMember(ctx, s.votesKey("r1", "m1"), "t1").Result(); in || score != 0 {
		t.Errorf("after a late cast: in set %v, tally %v; want no vote", in, score)
	}
	s.tallyVote(ctx, "r1", "m1", "t1", 1, true, 3) // a newer cast counts
	if score, _ := s.redis.Client.ZScore(ctx, s.tallyKey("r1"), "t1").Result(); score != 1 {
		t.Errorf("after a newer cast: tally %v, want 1", score)
	}
}
