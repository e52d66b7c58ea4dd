package voting

import (
	"context"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/testenv"
)

// A rebuild swaps in what the ballots said when it read them. A withdrawal
// another replica commits and applies to the old state in between — a
// patron's real change — must still be in the tally after the swap.
func TestAChangeFromAnotherReplicaDuringARebuildIsKept(t *testing.T) {
	ctx := context.Background()
	db := testenv.MigratedSQLite(t)
	rdb := testenv.EmbeddedRedis(t)
	a := NewService(Deps{DB: db, Redis: rdb, Logger: testenv.Logger()})
	b := NewService(Deps{DB: db, Redis: rdb, Logger: testenv.Logger()}) // another replica
	now := time.Now()
	for _, q := range []string{
		`INSERT INTO ballots (round_id, member_id, topic_id, weight, cast_at) VALUES ('r1', 'm1', 't1', 1, $1), ('r1', 'm2', 't1', 1, $1)`,
		`INSERT INTO round_voters (round_id, member_id, used, version) VALUES ('r1', 'm1', 1, 1), ('r1', 'm2', 1, 1)`,
	} {
		if _, err := db.Exec(q, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.RebuildTally(ctx, "r1"); err != nil { // the state both replicas see: t1 has 2
		t.Fatal(err)
	}
	rebuildReadHook = func() {
		rebuildReadHook = nil
		// m1 withdraws on b after a's reads: committed, then applied.
		if _, err := db.Exec(`DELETE FROM ballots WHERE member_id = 'm1'`); err != nil {
			t.Error(err)
		}
		if _, err := db.Exec(`UPDATE round_voters SET used = 0, version = 2 WHERE member_id = 'm1'`); err != nil {
			t.Error(err)
		}
		b.tallyVote(ctx, "r1", "m1", "t1", 1, false, 2)
	}
	t.Cleanup(func() { rebuildReadHook = nil })
	tally, err := a.RebuildTally(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	score, _ := rdb.Client.ZScore(ctx, a.tallyKey("r1"), "t1").Result()
	votes, _ := rdb.Client.HGet(ctx, a.votesKey("r1"), "m1").Result()
	if tally["t1"] != 1 || score != 1 || votes != "" {
		t.Errorf("after the rebuild: tally %v, Redis %v, m1's votes %q; want 1, 1 and none (m1 withdrew)", tally, score, votes)
	}
	if n, _ := rdb.Client.Exists(ctx, a.rebuildingKey("r1"), a.journalKey("r1")).Result(); n != 0 {
		t.Errorf("%d rebuild keys left behind", n)
	}
}

// Redis updates that arrive out of commit order are settled by version: a
// withdrawal (version 2) applied before the cast it follows (version 1)
// leaves no vote, and the late cast is ignored.
func TestLateTallyUpdatesAreIgnored(t *testing.T) {
	s := NewService(Deps{Redis: testenv.EmbeddedRedis(t), Logger: testenv.Logger()})
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
	if votes, _ := s.redis.Client.HGet(ctx, s.votesKey("r1"), "m1").Result(); votes != "" || score != 0 {
		t.Errorf("after a late cast: votes %q, tally %v; want no vote", votes, score)
	}
	s.tallyVote(ctx, "r1", "m1", "t1", 1, true, 3) // a newer cast counts
	if score, _ := s.redis.Client.ZScore(ctx, s.tallyKey("r1"), "t1").Result(); score != 1 {
		t.Errorf("after a newer cast: tally %v, want 1", score)
	}
}

// A member's votes are kept as one list per round in Redis: withdrawing one
// topic leaves the others, and a topic id that is a prefix of another is
// told apart.
func TestMemberVoteListKeepsEachTopic(t *testing.T) {
	s := NewService(Deps{Redis: testenv.EmbeddedRedis(t), Logger: testenv.Logger()})
	ctx := context.Background()
	if err := s.redis.Client.Set(ctx, s.builtKey("r1"), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.tallyVote(ctx, "r1", "m1", "t1", 2, true, 1)
	s.tallyVote(ctx, "r1", "m1", "t10", 2, true, 2)
	s.tallyVote(ctx, "r1", "m1", "t100", 2, true, 3)
	s.tallyVote(ctx, "r1", "m1", "t1", 2, true, 4) // already there: no double count
	s.tallyVote(ctx, "r1", "m1", "t10", 2, false, 5)
	votes, _ := s.redis.Client.HGet(ctx, s.votesKey("r1"), "m1").Result()
	if votes != "t1,t100" {
		t.Errorf("votes = %q, want t1,t100", votes)
	}
	want := map[string]float64{"t1": 2, "t10": 0, "t100": 2}
	for topic, n := range want {
		if got, _ := s.redis.Client.ZScore(ctx, s.tallyKey("r1"), topic).Result(); got != n {
			t.Errorf("tally of %s = %v, want %v", topic, got, n)
		}
	}
}

// However many clients watch a round, a replica holds one Redis
// subscription for it, and every listener hears each event.
func TestListenersShareOneSubscription(t *testing.T) {
	s := NewService(Deps{Redis: testenv.EmbeddedRedis(t), Logger: testenv.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	var chans []<-chan string
	for range 3 {
		ch, err := s.Listen(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	subs, err := s.redis.Client.PubSubNumSub(ctx, s.eventsChannel("r1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := subs[s.eventsChannel("r1")]; n != 1 {
		t.Errorf("subscriptions for a round watched 3 times = %d, want 1", n)
	}
	s.announce(ctx, "r1", EventClosed)
	for i, ch := range chans {
		if ev := <-ch; ev != EventClosed {
			t.Errorf("listener %d heard %q, want %q", i, ev, EventClosed)
		}
	}
	cancel()
	for _, ch := range chans {
		for range ch { // closed once the listener has left
		}
	}
	subs, _ = s.redis.Client.PubSubNumSub(context.Background(), s.eventsChannel("r1")).Result()
	if n := subs[s.eventsChannel("r1")]; n != 0 {
		t.Errorf("subscriptions after every listener left = %d, want 0", n)
	}
}

// A change to one topic does not hide a late change to another: a
// withdrawal of X (version 2) reaching Redis after a cast for Y (version 3)
// still takes X away.
func TestAChangeToOneTopicDoesNotHideALateChangeToAnother(t *testing.T) {
	s := NewService(Deps{Redis: testenv.EmbeddedRedis(t), Logger: testenv.Logger()})
	ctx := context.Background()
	if err := s.redis.Client.Set(ctx, s.builtKey("r1"), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.tallyVote(ctx, "r1", "m1", "x", 1, true, 1)
	s.tallyVote(ctx, "r1", "m1", "y", 1, true, 3)  // the later change lands first
	s.tallyVote(ctx, "r1", "m1", "x", 1, false, 2) // then the withdrawal before it
	votes, _ := s.redis.Client.HGet(ctx, s.votesKey("r1"), "m1").Result()
	x, _ := s.redis.Client.ZScore(ctx, s.tallyKey("r1"), "x").Result()
	y, _ := s.redis.Client.ZScore(ctx, s.tallyKey("r1"), "y").Result()
	if votes != "y" || x != 0 || y != 1 {
		t.Errorf("votes %q, tally x=%v y=%v; want only y", votes, x, y)
	}
}
