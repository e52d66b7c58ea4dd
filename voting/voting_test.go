package voting_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/voting"
)

// voters is an Eligibility with fixed answers, changed by tests while
// votes are cast.
type voters struct {
	mu *sync.Mutex
	m  map[string]voting.Voter
}

func newVoters(m map[string]voting.Voter) voters { return voters{mu: &sync.Mutex{}, m: m} }

func (v voters) set(id string, to voting.Voter) {
	v.mu.Lock()
	v.m[id] = to
	v.mu.Unlock()
}

func (v voters) Voters(_ context.Context, _ *sql.Tx, memberIDs []string, _ bool) (map[string]voting.Voter, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]voting.Voter{}
	for _, id := range memberIDs {
		out[id] = v.m[id]
	}
	return out, nil
}

type fixture struct {
	svc    *voting.Service
	db     *sqldb.DB
	redis  *redisx.Redis
	voters voters
	round  voting.Round
}

// each runs fn on every database with the real Redis when there is one.
func each(t *testing.T, weighting string, fn func(t *testing.T, f fixture)) {
	eachWith(t, weighting, nil, fn)
}

// eachWith is each with an Eligibility made for the database (nil: the
// fixture's voters).
func eachWith(t *testing.T, weighting string, eligibility func(db *sqldb.DB) voting.Eligibility, fn func(t *testing.T, f fixture)) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		rdb := testenv.EmbeddedRedis(t)
		if testenv.RedisURL(t) != "" {
			rdb = testenv.RealRedis(t)
		}
		v := newVoters(map[string]voting.Voter{})
		var e voting.Eligibility = v
		if eligibility != nil {
			e = eligibility(db)
		}
		svc := voting.NewService(voting.Deps{DB: db, Redis: rdb, Eligibility: e, Logger: testenv.Logger()})
		ctx := context.Background()
		var topics []string
		for i := range 10 {
			tp, err := svc.CreateTopic(ctx, members.CommandLine, fmt.Sprintf("Topic %d", i), "")
			if err != nil {
				t.Fatal(err)
			}
			topics = append(topics, tp.ID)
		}
		r, err := svc.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "What next?", OpensAt: time.Now().Add(-time.Hour), ClosesAt: time.Now().Add(time.Hour),
			VotesPerPatron: 3, Weighting: weighting, TopicIDs: topics})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, fixture{svc: svc, db: db, redis: rdb, voters: v, round: r})
	})
}

func (f fixture) ballotsTally(t *testing.T) map[string]int64 {
	t.Helper()
	rows, err := f.db.Query(`SELECT topic_id, SUM(weight) FROM ballots WHERE round_id = $1 GROUP BY topic_id`, f.round.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var topic string
		var n int64
		if err := rows.Scan(&topic, &n); err != nil {
			t.Fatal(err)
		}
		out[topic] = n
	}
	return out
}

func (f fixture) wantTallyMatchesBallots(t *testing.T) voting.Tally {
	t.Helper()
	got, err := f.svc.TallyOf(context.Background(), f.round.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := f.ballotsTally(t)
	if fmt.Sprint(map[string]int64(got)) != fmt.Sprint(want) {
		t.Fatalf("tally %v, ballots say %v", got, want)
	}
	return got
}

// 50 parallel casts by one patron at 10 topics with a budget of 3 leave
// exactly 3 ballots and a tally of exactly 3.
func TestTheBudgetHoldsUnderConcurrency(t *testing.T) {
	each(t, "equal", func(t *testing.T, f fixture) {
		f.voters.set("mem_a", voting.Voter{Active: true, Weight: 1})
		var wg sync.WaitGroup
		codes := make(chan string, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.svc.CastVote(context.Background(), f.round.ID, "mem_a", f.round.TopicIDs[i%10])
				if err != nil {
					codes <- errs.From(err).Code
					return
				}
				codes <- "ok"
			}()
		}
		wg.Wait()
		close(codes)
		counts := map[string]int{}
		for c := range codes {
			counts[c]++
		}
		var ballots int
		if err := f.db.QueryRow(`SELECT COUNT(*) FROM ballots WHERE round_id = $1`, f.round.ID).Scan(&ballots); err != nil {
			t.Fatal(err)
		}
		if ballots != 3 {
			t.Fatalf("%d ballots stored (answers %v), want exactly 3", ballots, counts)
		}
		var total int64
		for _, n := range f.wantTallyMatchesBallots(t) {
			total += n
		}
		if total != 3 {
			t.Errorf("tally total %d, want 3", total)
		}
		for code := range counts {
			if code != "ok" && code != "vote_budget_exhausted" {
				t.Errorf("a cast failed with %q", code)
			}
		}
	})
}

func TestCastRepeatWithdrawAndRefusals(t *testing.T) {
	each(t, "equal", func(t *testing.T, f fixture) {
		ctx := context.Background()
		f.voters.set("mem_a", voting.Voter{Active: true, Weight: 1})
		topic := f.round.TopicIDs[0]
		res, err := f.svc.CastVote(ctx, f.round.ID, "mem_a", topic)
		if err != nil || res.Repeated || res.VotesLeft != 2 {
			t.Fatalf("first cast = %+v, %v; want new with 2 left", res, err)
		}
		res, err = f.svc.CastVote(ctx, f.round.ID, "mem_a", topic)
		if err != nil || !res.Repeated || res.VotesLeft != 2 {
			t.Fatalf("repeat cast = %+v, %v; want repeated, still 2 left", res, err)
		}
		if got := f.wantTallyMatchesBallots(t); got[topic] != 1 {
			t.Fatalf("tally after a repeat = %v, want 1", got)
		}
		if err := f.svc.WithdrawVote(ctx, f.round.ID, "mem_a", topic); err != nil {
			t.Fatal(err)
		}
		if got := f.wantTallyMatchesBallots(t); got[topic] != 0 {
			t.Fatalf("tally after withdrawal = %v, want 0", got)
		}
		if err := f.svc.WithdrawVote(ctx, f.round.ID, "mem_a", topic); errs.From(err).Code != "vote_not_found" {
			t.Errorf("second withdrawal = %v, want vote_not_found", err)
		}
		if res, err := f.svc.CastVote(ctx, f.round.ID, "mem_a", topic); err != nil || res.VotesLeft != 2 {
			t.Errorf("cast after withdrawing = %+v, %v; want 2 left (the vote came back)", res, err)
		}

		cases := []struct {
			member, round, topic, code string
		}{
			{"mem_nobody", f.round.ID, topic, "patron_required"},
			{"mem_a", f.round.ID, "top_elsewhere", "topic_not_found"},
			{"mem_a", "rnd_missing", topic, "round_not_found"},
		}
		for _, c := range cases {
			if _, err := f.svc.CastVote(ctx, c.round, c.member, c.topic); errs.From(err).Code != c.code {
				t.Errorf("cast %s/%s/%s = %v, want %s", c.member, c.round, c.topic, err, c.code)
			}
		}
		closed, err := f.svc.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "Past", OpensAt: time.Now().Add(-2 * time.Hour), ClosesAt: time.Now().Add(-time.Hour),
			TopicIDs: []string{mustTopic(t, f.svc), mustTopic(t, f.svc)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CastVote(ctx, closed.ID, "mem_a", closed.TopicIDs[0]); errs.From(err).Code != "round_closed" {
			t.Errorf("cast in a closed round = %v, want round_closed", err)
		}
	})
}

func mustTopic(t *testing.T, svc *voting.Service) string {
	t.Helper()
	tp, err := svc.CreateTopic(context.Background(), members.CommandLine, "Another topic", "")
	if err != nil {
		t.Fatal(err)
	}
	return tp.ID
}

// When Redis loses a round's keys, the next cast or read rebuilds the tally
// from the ballots, and nothing is counted twice or lost.
func TestTalliesAreRebuiltWhenRedisLosesThem(t *testing.T) {
	each(t, "tier", func(t *testing.T, f fixture) {
		ctx := context.Background()
		f.voters.set("mem_a", voting.Voter{Active: true, Weight: 3})
		f.voters.set("mem_b", voting.Voter{Active: true, Weight: 1})
		for _, m := range []string{"mem_a", "mem_b"} {
			if _, err := f.svc.CastVote(ctx, f.round.ID, m, f.round.TopicIDs[0]); err != nil {
				t.Fatal(err)
			}
		}
		if got := f.wantTallyMatchesBallots(t); got[f.round.TopicIDs[0]] != 4 {
			t.Fatalf("tier-weighted tally = %v, want 4 (3 + 1)", got)
		}
		if err := f.redis.DeleteByPrefix(ctx); err != nil {
			t.Fatal(err)
		}
		// A member's own votes still show, from the ballots.
		if mine, err := f.svc.MyVotes(ctx, f.round.ID, "mem_a"); err != nil || len(mine) != 1 || mine[0] != f.round.TopicIDs[0] {
			t.Errorf("my votes with Redis lost = %v %v, want the one ballot", mine, err)
		}
		if got := f.wantTallyMatchesBallots(t); got[f.round.TopicIDs[0]] != 4 {
			t.Fatalf("tally after Redis lost it = %v, want 4 again", got)
		}
		if err := f.redis.DeleteByPrefix(ctx); err != nil {
			t.Fatal(err)
		}
		// A cast into a lost round is stored, and the tally rebuilt with it;
		// a repeat of an earlier vote still does not count twice.
		if _, err := f.svc.CastVote(ctx, f.round.ID, "mem_b", f.round.TopicIDs[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CastVote(ctx, f.round.ID, "mem_a", f.round.TopicIDs[0]); err != nil {
			t.Fatal(err)
		}
		got := f.wantTallyMatchesBallots(t)
		if got[f.round.TopicIDs[0]] != 4 || got[f.round.TopicIDs[1]] != 1 {
			t.Errorf("tally = %v, want 4 and 1", got)
		}
	})
}

// A member who loses access loses their votes in open rounds at once; with
// access again they can vote again.
func TestLosingAccessWithdrawsVotes(t *testing.T) {
	each(t, "equal", func(t *testing.T, f fixture) {
		ctx := context.Background()
		f.voters.set("mem_a", voting.Voter{Active: true, Weight: 1})
		f.voters.set("mem_b", voting.Voter{Active: true, Weight: 1})
		for _, m := range []string{"mem_a", "mem_b"} {
			for _, topic := range f.round.TopicIDs[:2] {
				if _, err := f.svc.CastVote(ctx, f.round.ID, m, topic); err != nil {
					t.Fatal(err)
				}
			}
		}
		f.voters.set("mem_a", voting.Voter{})
		n, err := f.svc.WithdrawMemberVotes(ctx, "mem_a")
		if err != nil || n != 2 {
			t.Fatalf("withdrew %d, %v; want 2", n, err)
		}
		got := f.wantTallyMatchesBallots(t)
		if got[f.round.TopicIDs[0]] != 1 || got[f.round.TopicIDs[1]] != 1 {
			t.Errorf("tally = %v, want only mem_b's votes", got)
		}
		if _, err := f.svc.CastVote(ctx, f.round.ID, "mem_a", f.round.TopicIDs[0]); errs.From(err).Code != "patron_required" {
			t.Errorf("cast without access = %v, want patron_required", err)
		}
		f.voters.set("mem_a", voting.Voter{Active: true, Weight: 1})
		if res, err := f.svc.CastVote(ctx, f.round.ID, "mem_a", f.round.TopicIDs[0]); err != nil || res.VotesLeft != 2 {
			t.Errorf("cast with access again = %+v, %v; want a full budget less one", res, err)
		}
	})
}

// Closing writes final totals that later events cannot change, marks the
// leader won, refuses casts after it, and closing again changes nothing.
func TestClosingARoundFixesItsResults(t *testing.T) {
	each(t, "equal", func(t *testing.T, f fixture) {
		ctx := context.Background()
		for i, m := range []string{"mem_a", "mem_b", "mem_c"} {
			f.voters.set(m, voting.Voter{Active: true, Weight: 1})
			if _, err := f.svc.CastVote(ctx, f.round.ID, m, f.round.TopicIDs[0]); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if _, err := f.svc.CastVote(ctx, f.round.ID, m, f.round.TopicIDs[1]); err != nil {
					t.Fatal(err)
				}
			}
		}
		res, err := f.svc.CloseRound(ctx, members.CommandLine, f.round.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Closed || res.Voters != 3 || len(res.Topics) != 10 || res.Topics[0].TopicID != f.round.TopicIDs[0] || res.Topics[0].Total != 3 ||
			!res.Topics[0].Won || res.Topics[1].Total != 1 || res.Topics[1].Won {
			t.Fatalf("results = %+v, want topic 0 won with 3, topic 1 with 1, 3 voters", res)
		}
		if _, err := f.svc.CastVote(ctx, f.round.ID, "mem_b", f.round.TopicIDs[2]); errs.From(err).Code != "round_closed" {
			t.Errorf("cast after close = %v, want round_closed", err)
		}
		if err := f.svc.WithdrawVote(ctx, f.round.ID, "mem_a", f.round.TopicIDs[1]); errs.From(err).Code != "round_closed" {
			t.Errorf("withdrawal after close = %v, want round_closed", err)
		}
		again, err := f.svc.CloseRound(ctx, members.CommandLine, f.round.ID)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(res) {
			t.Errorf("closing again = %+v, %v; want the same results", again, err)
		}
	})
}

// A round closing while votes arrive ends with final totals equal to the
// ballots: no ballot is stored after the close.
func TestARoundClosingWhileVotesArrive(t *testing.T) {
	each(t, "equal", func(t *testing.T, f fixture) {
		ctx := context.Background()
		for i := range 40 {
			f.voters.set(fmt.Sprintf("mem_%02d", i), voting.Voter{Active: true, Weight: 1})
		}
		var wg sync.WaitGroup
		for i := range 40 {
			m := fmt.Sprintf("mem_%02d", i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = f.svc.CastVote(ctx, f.round.ID, m, f.round.TopicIDs[i%10])
			}()
			if i == 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := f.svc.CloseRound(ctx, members.CommandLine, f.round.ID); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		res, err := f.svc.ResultsOf(ctx, f.round.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := f.ballotsTally(t)
		for _, r := range res.Topics {
			if r.Total != want[r.TopicID] {
				t.Errorf("topic %s: final %d, ballots %d", r.TopicID, r.Total, want[r.TopicID])
			}
		}
	})
}

// Marking a won topic covered tells, once, exactly the patrons who voted
// for it; the results then carry the article.
func TestCoveringAWonTopicReachesItsVoters(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		type call struct {
			topic, url string
			voters     []string
		}
		var calls []call
		failing := true // the first time, as a queue that cannot take the mail
		v := voting.NewService(voting.Deps{DB: db, Redis: testenv.EmbeddedRedis(t), Eligibility: newVoters(map[string]voting.Voter{"mem_a": {Active: true, Weight: 1}, "mem_b": {Active: true, Weight: 1}}),
			OnCovered: func(_ context.Context, _ *sql.Tx, tp voting.Topic, url string, ids []string) error {
				if failing {
					failing = false
					return errors.New("queue unavailable")
				}
				calls = append(calls, call{tp.ID, url, ids})
				return nil
			}})
		a, _ := v.CreateTopic(ctx, members.CommandLine, "Rivers", "")
		b, _ := v.CreateTopic(ctx, members.CommandLine, "Rents", "")
		r, err := v.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "Next", OpensAt: time.Now().Add(-time.Hour), ClosesAt: time.Now().Add(time.Hour), TopicIDs: []string{a.ID, b.ID}})
		if err != nil {
			t.Fatal(err)
		}
		for _, vote := range [][2]string{{"mem_a", a.ID}, {"mem_b", a.ID}, {"mem_b", b.ID}} {
			if _, err := v.CastVote(ctx, r.ID, vote[0], vote[1]); err != nil {
				t.Fatal(err)
			}
		}
		covered, url := "covered", "https://news.example/rivers"
		if _, err := v.UpdateTopic(ctx, members.CommandLine, a.ID, voting.TopicPatch{Status: &covered, ArticleURL: &url}); errs.From(err).Code != "invalid_transition" {
			t.Errorf("covering a topic still in its round = %v, want invalid_transition", err)
		}
		if _, err := v.CloseRound(ctx, members.CommandLine, r.ID); err != nil {
			t.Fatal(err)
		}
		bad := "javascript:alert(1)"
		if _, err := v.UpdateTopic(ctx, members.CommandLine, a.ID, voting.TopicPatch{Status: &covered, ArticleURL: &bad}); !errs.Is(err, errs.Invalid) {
			t.Errorf("covering with a bad URL = %v, want 422", err)
		}
		// The voters' mail cannot be queued: the topic is not covered either.
		if _, err := v.UpdateTopic(ctx, members.CommandLine, a.ID, voting.TopicPatch{Status: &covered, ArticleURL: &url}); err == nil {
			t.Fatal("covering a topic whose voters' mail could not be queued succeeded")
		}
		var status string
		if err := db.QueryRow(`SELECT status FROM topics WHERE id = $1`, a.ID).Scan(&status); err != nil || status != "won" {
			t.Fatalf("after the failed cover the topic is %q (%v), want still won", status, err)
		}
		for range 2 {
			if _, err := v.UpdateTopic(ctx, members.CommandLine, a.ID, voting.TopicPatch{Status: &covered, ArticleURL: &url}); err != nil {
				t.Fatal(err)
			}
		}
		if len(calls) != 1 || calls[0].topic != a.ID || calls[0].url != url || fmt.Sprint(calls[0].voters) != "[mem_a mem_b]" {
			t.Fatalf("OnCovered calls = %+v, want one for %s with mem_a and mem_b", calls, a.ID)
		}
		res, err := v.ResultsOf(ctx, r.ID)
		if err != nil || res.Topics[0].TopicID != a.ID || res.Topics[0].ArticleURL != url {
			t.Errorf("results = %+v, %v; want the covered topic first with its article", res, err)
		}
	})
}

// Six suggestions at once by one patron store three.
func TestSuggestionLimitHoldsUnderConcurrency(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		now := sqldb.Now()
		if _, err := db.Exec(`INSERT INTO members (id, email, role, created_at, updated_at) VALUES ('mem_s', 's@example.org', 'patron', $1, $1)`, now); err != nil {
			t.Fatal(err)
		}
		v := voting.NewService(voting.Deps{DB: db, Redis: testenv.EmbeddedRedis(t), Eligibility: newVoters(map[string]voting.Voter{"mem_s": {Active: true, Weight: 1}})})
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = v.SuggestTopic(ctx, "mem_s", fmt.Sprintf("Idea %d", i), "")
			}()
		}
		wg.Wait()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM topics WHERE suggested_by = 'mem_s'`).Scan(&n); err != nil || n != 3 {
			t.Errorf("stored %d suggestions (%v), want 3", n, err)
		}
	})
}

// The whole round under stress: 1,200 patrons cast and withdraw at once
// from 16 workers; a third of the way in Redis loses everything of ours
// (keys and scripts); halfway 100 patrons lose access; three quarters in
// the round closes while votes keep arriving. Afterwards the tally equals
// the ballots (and the final totals equal them too), every patron's count
// equals their ballots, no budget is exceeded, and nobody who lost access
// has a ballot left.
func TestRoundUnderStress(t *testing.T) {
	eachWith(t, "tier", func(db *sqldb.DB) voting.Eligibility { return tableVoters{db} }, func(t *testing.T, f fixture) {
		ctx := context.Background()
		const patrons, attempts = 1200, 4
		if _, err := f.db.Exec(`CREATE TABLE stress_access (member_id TEXT PRIMARY KEY, active BOOLEAN NOT NULL, weight INTEGER NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		for i := range patrons {
			if _, err := f.db.Exec(`INSERT INTO stress_access VALUES ($1, $2, $3)`, fmt.Sprintf("mem_%04d", i), true, 1+i%3); err != nil {
				t.Fatal(err)
			}
		}
		total := patrons * attempts
		var done atomic.Int64
		var wg sync.WaitGroup
		lossDone := make(chan struct{})
		milestone := func(n int64) {
			switch n {
			case int64(total / 3):
				if err := f.redis.DeleteByPrefix(ctx); err != nil {
					t.Error(err)
				}
				f.redis.Client.ScriptFlush(ctx)
			case int64(total / 2):
				for i := 0; i < patrons; i += patrons / 100 {
					// As billing does: the access change commits, then the
					// member's votes are withdrawn.
					id := fmt.Sprintf("mem_%04d", i)
					if _, err := f.db.Exec(`UPDATE stress_access SET active = $2 WHERE member_id = $1`, id, false); err != nil {
						t.Error(err)
					}
					if _, err := f.svc.WithdrawMemberVotes(ctx, id); err != nil {
						t.Error(err)
					}
				}
				close(lossDone)
			case int64(total * 3 / 4):
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-lossDone // a closed round's ballots are final, lost access or not
					<-lossDone // a closed round's ballots are final, lost access or not
					if _, err := f.svc.CloseRound(ctx, members.CommandLine, f.round.ID); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		work := make(chan int)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range work {
					member := fmt.Sprintf("mem_%04d", p)
					for a := range attempts {
						topic := f.round.TopicIDs[(p*7+a*3)%len(f.round.TopicIDs)]
						var err error
						if a == 3 && p%5 == 0 {
							err = f.svc.WithdrawVote(ctx, f.round.ID, member, topic)
						} else {
							_, err = f.svc.CastVote(ctx, f.round.ID, member, topic)
						}
						if e := errs.From(err); err != nil && e.Kind != errs.Conflict && e.Kind != errs.Forbidden && e.Kind != errs.NotFound {
							t.Errorf("%s: %v", member, err)
						}
						milestone(done.Add(1))
					}
				}
			}()
		}
		for p := range patrons {
			work <- p
		}
		close(work)
		wg.Wait()

		f.wantTallyMatchesBallots(t)
		if diffs, err := f.svc.VerifyRound(ctx, f.round.ID); err != nil || len(diffs) > 0 {
			t.Errorf("verify: %v %v", err, diffs)
		}
		res, err := f.svc.ResultsOf(ctx, f.round.ID)
		if err != nil || !res.Closed {
			t.Fatalf("results: %+v %v", res, err)
		}
		ballots := f.ballotsTally(t)
		for _, r := range res.Topics {
			if r.Total != ballots[r.TopicID] {
				t.Errorf("final total of %s = %d, ballots %d", r.TopicID, r.Total, ballots[r.TopicID])
			}
		}
		var over, mismatched, lost int
		if err := f.db.QueryRow(`SELECT COUNT(*) FROM (SELECT member_id FROM ballots WHERE round_id = $1 GROUP BY member_id HAVING COUNT(*) > 3) x`, f.round.ID).Scan(&over); err != nil {
			t.Fatal(err)
		}
		if err := f.db.QueryRow(`SELECT COUNT(*) FROM round_voters v WHERE v.round_id = $1 AND v.used <> (SELECT COUNT(*) FROM ballots b WHERE b.round_id = v.round_id AND b.member_id = v.member_id)`, f.round.ID).Scan(&mismatched); err != nil {
			t.Fatal(err)
		}
		if err := f.db.QueryRow(`SELECT COUNT(*) FROM ballots WHERE round_id = $1 AND member_id IN (SELECT member_id FROM round_voters WHERE round_id = $1) AND CAST(SUBSTR(member_id, 5) AS INTEGER) % 12 = 0`, f.round.ID).Scan(&lost); err != nil {
			t.Fatal(err)
		}
		if over > 0 || mismatched > 0 || lost > 0 {
			t.Errorf("patrons over budget %d, counts unlike their ballots %d, ballots of patrons who lost access %d; want none", over, mismatched, lost)
		}
		if len(ballots) == 0 {
			t.Error("no ballots at all: the scenario did not run")
		}
	})
}

// tableVoters reads who may vote from a table, holding the rows it read
// until the ballots' transaction ends, as billing's access does.
type tableVoters struct{ db *sqldb.DB }

func (v tableVoters) Voters(ctx context.Context, tx *sql.Tx, memberIDs []string, _ bool) (map[string]voting.Voter, error) {
	out := map[string]voting.Voter{}
	for _, id := range memberIDs {
		var vr voting.Voter
		err := tx.QueryRowContext(ctx, `SELECT active, weight FROM stress_access WHERE member_id = $1`+v.db.Dialect.ForShare(), id).Scan(&vr.Active, &vr.Weight)
		if err != nil && err != sql.ErrNoRows {
			return nil, err
		}
		out[id] = vr
	}
	return out, nil
}

// A vote whose ballot cannot be stored answers 503 vote_not_stored and
// counts nothing; one stored while Redis is unreachable counts, and the
// tally catches up from the ballots.
func TestAVoteAnswersUnavailableOnlyWhenItsBallotIsNotStored(t *testing.T) {
	each(t, "equal", func(t *testing.T, f fixture) {
		ctx := context.Background()
		f.voters.set("mem_a", voting.Voter{Active: true, Weight: 1})
		if _, err := f.svc.CastVote(ctx, f.round.ID, "mem_a", f.round.TopicIDs[0]); err != nil {
			t.Fatal(err)
		}
		if err := f.db.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := f.svc.CastVote(ctx, f.round.ID, "mem_a", f.round.TopicIDs[1])
		if e := errs.From(err); !errs.Is(err, errs.Unavailable) || e.Code != "vote_not_stored" {
			t.Errorf("cast with the database gone = %v, want 503 vote_not_stored", err)
		}
	})
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		m := miniredis.RunT(t)
		rdb := &redisx.Redis{Client: redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), Prefix: "t:"}
		svc := voting.NewService(voting.Deps{DB: db, Redis: rdb, Eligibility: newVoters(map[string]voting.Voter{"mem_a": {Active: true, Weight: 1}}), Logger: testenv.Logger()})
		a, _ := svc.CreateTopic(ctx, members.CommandLine, "A", "")
		b, _ := svc.CreateTopic(ctx, members.CommandLine, "B", "")
		r, err := svc.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "R", OpensAt: time.Now().Add(-time.Hour), ClosesAt: time.Now().Add(time.Hour), TopicIDs: []string{a.ID, b.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CastVote(ctx, r.ID, "mem_a", a.ID); err != nil {
			t.Fatal(err)
		}
		m.Close() // Redis goes away
		if res, err := svc.CastVote(ctx, r.ID, "mem_a", b.ID); err != nil || res.VotesLeft != 1 {
			t.Fatalf("cast with Redis gone = %+v, %v; want it stored, 1 vote left", res, err)
		}
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		m.FlushAll() // and comes back empty
		tally, err := svc.TallyOf(ctx, r.ID)
		if err != nil || tally[a.ID] != 1 || tally[b.ID] != 1 {
			t.Errorf("tally once Redis is back = %v, %v; want both votes", tally, err)
		}
	})
}

// When Redis has forgotten the tally script (a restart), a cast sends it
// again and its answer's tally includes the vote.
func TestACastAfterRedisForgetsItsScriptCountsInTheAnswer(t *testing.T) {
	each(t, "equal", func(t *testing.T, f fixture) {
		ctx := context.Background()
		f.voters.set("mem_a", voting.Voter{Active: true, Weight: 1})
		if err := f.redis.Client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := f.svc.CastVote(ctx, f.round.ID, "mem_a", f.round.TopicIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		if res.Tally[f.round.TopicIDs[0]] != 1 {
			t.Errorf("the answer's tally = %v, want the vote in it", res.Tally)
		}
		f.wantTallyMatchesBallots(t)
	})
}

// A replica's copy of a round is up to a second old: when another replica
// changed the round's topics just before it opened, a vote for a topic no
// longer in it is refused, not stored.
func TestAStaleCopyOfARoundCannotStoreAVoteForARemovedTopic(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		rdb := testenv.EmbeddedRedis(t)
		var mu sync.Mutex
		clock := time.Now().UTC().Truncate(time.Microsecond)
		now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
		voters := newVoters(map[string]voting.Voter{"mem_a": {Active: true, Weight: 1}})
		a := voting.NewService(voting.Deps{DB: db, Redis: rdb, Eligibility: voters, Now: now})
		b := voting.NewService(voting.Deps{DB: db, Redis: rdb, Eligibility: voters, Now: now})
		var topics []string
		for _, title := range []string{"X", "Y", "Z"} {
			tp, err := a.CreateTopic(ctx, members.CommandLine, title, "")
			if err != nil {
				t.Fatal(err)
			}
			topics = append(topics, tp.ID)
		}
		r, err := a.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "R", OpensAt: clock.Add(time.Minute), ClosesAt: clock.Add(time.Hour), TopicIDs: topics[:2]})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.CastVote(ctx, r.ID, "mem_a", topics[0]); !errs.Is(err, errs.Conflict) { // a caches the round: not open yet
			t.Fatalf("a vote before opening = %v, want round_closed", err)
		}
		if _, err := b.UpdateRound(ctx, members.CommandLine, r.ID, voting.RoundPatch{TopicIDs: topics[1:]}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		clock = clock.Add(2 * time.Minute) // the round opens
		mu.Unlock()
		_, err = a.CastVote(ctx, r.ID, "mem_a", topics[0])
		if e := errs.From(err); err == nil || e.Code != "topic_not_found" {
			t.Errorf("a vote for the removed topic through a stale copy = %v, want topic_not_found", err)
		}
		// The added topic is refused through the copy until it is renewed
		// (a second at most); refused, never stored wrongly.
		if _, err := a.CastVote(ctx, r.ID, "mem_a", topics[2]); errs.From(err).Code != "topic_not_found" {
			t.Errorf("a vote for the added topic through the stale copy = %v, want topic_not_found", err)
		}
	})
}
