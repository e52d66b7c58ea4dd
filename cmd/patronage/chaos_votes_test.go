//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/testenv"
)

// CHAOS_VOTES (100,000) casts and withdrawals from CHAOS_PATRONS (2,000)
// patrons go to two servers sharing one PostgreSQL and one Redis,
// alternately. Redis is flushed (every tally and session gone) once
// mid-run — patrons whose session went sign in again — and one of the two
// rounds is closed from both servers at once later in the run. At the end
// both servers' tallies equal the stored ballots, no patron holds more
// ballots than the round allows, every acknowledged vote (and no
// acknowledged withdrawal) is stored, no ballot is later than the close,
// and the closed round's results were written once.
func TestChaosVotesOnTwoReplicas(t *testing.T) {
	chaosPostgres(t)
	nVotes, nPatrons := knob(t, "CHAOS_VOTES", 100000), knob(t, "CHAOS_PATRONS", 2000)
	rdb := startRedisProcess(t)
	bin := buildBinary(t)
	dbURL := testenv.PostgresSchemaURL(t)
	env := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": rdb.URL(0), "LOG_LEVEL": "warn",
		"RATE_LIMIT_VOTES_PER_SECOND": "10000", "STRIPE_SYNC_INTERVAL": "off"}
	replicas := []*replica{newReplica(t, bin, "replica-a", withDataDir(t, env)), newReplica(t, bin, "replica-b", withDataDir(t, env))}
	for _, r := range replicas {
		r.start()
	}
	out, stderr, code := runCommand(t, withDataDir(t, env), "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	api := &chaosAPI{t: t, token: tokenPattern.FindString(out), client: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 128}}}

	// Two rounds of three topics, three votes each, and the patrons.
	rounds, patrons := votingSetup(t, api, replicas, 2, 3, nPatrons)

	// The load: 64 workers, each with its own patrons (a patron's requests
	// are in order), alternating between the two servers.
	var sent atomic.Int64
	st := &voteStats{codes: map[string]int{}}
	var flushOnce, closeOnce sync.Once
	closeResults := make([]string, 2)
	var wg sync.WaitGroup
	const workers = 64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			var mine []*chaosPatron
			for i := w; i < nPatrons; i += workers {
				mine = append(mine, patrons[i])
			}
			for {
				n := sent.Add(1)
				if n > int64(nVotes) {
					return
				}
				if n == int64(nVotes)*2/5 {
					flushOnce.Do(rdb.flush)
				}
				if n == int64(nVotes)*3/5 {
					closeOnce.Do(func() {
						var cw sync.WaitGroup
						for i, r := range replicas {
							cw.Add(1)
							go func() {
								defer cw.Done()
								code, body := api.do(r, http.MethodPost, "/api/v1/staff/rounds/"+rounds[0].id+"/close", "", "Bearer "+api.token)
								closeResults[i] = fmt.Sprintf("%d %s", code, body)
							}()
						}
						cw.Wait()
					})
				}
				p := mine[rng.IntN(len(mine))]
				api.vote(replicas[n%2], p, rounds[rng.IntN(2)], rng, st)
			}
		}()
	}
	began := time.Now()
	wg.Wait()
	took := time.Since(began)
	for _, r := range replicas {
		r.checkLog()
	}

	// The close: both answered with the same results, or one said it was
	// already closed.
	t.Logf("close from both replicas: %q", closeResults)
	for _, res := range closeResults {
		if !strings.HasPrefix(res, "200 ") && !strings.HasPrefix(res, "409 ") {
			t.Errorf("closing the round answered %s", res)
		}
	}
	db := openURL(t, dbURL)
	var closes int
	if err := db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'round.close' AND subject_id = $1`, rounds[0].id).Scan(&closes); err != nil {
		t.Fatal(err)
	}
	if closes != 1 {
		t.Errorf("the round's close was recorded %d times, want once", closes)
	}
	var late int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ballots b JOIN rounds r ON r.id = b.round_id WHERE r.id = $1 AND b.cast_at > r.closed_at`, rounds[0].id).Scan(&late); err != nil {
		t.Fatal(err)
	}
	if late != 0 {
		t.Errorf("%d ballots stored after the round closed", late)
	}
	var finals int
	if err := db.QueryRow(`SELECT COUNT(*) FROM round_topics rt WHERE rt.round_id = $1 AND rt.final_total = (SELECT COALESCE(SUM(weight), 0) FROM ballots b WHERE b.round_id = rt.round_id AND b.topic_id = rt.topic_id)`,
		rounds[0].id).Scan(&finals); err != nil {
		t.Fatal(err)
	}
	if finals != 3 {
		t.Errorf("%d of 3 final totals of the closed round equal its ballots", finals)
	}

	// Budgets, and every acknowledged vote stored.
	var over int
	if err := db.QueryRow(`SELECT COUNT(*) FROM (SELECT b.round_id, b.member_id FROM ballots b JOIN rounds r ON r.id = b.round_id
		GROUP BY b.round_id, b.member_id, r.votes_per_patron HAVING COUNT(*) > r.votes_per_patron) x`).Scan(&over); err != nil {
		t.Fatal(err)
	}
	if over != 0 {
		t.Errorf("%d patrons hold more ballots in a round than it allows", over)
	}
	var usedWrong int
	if err := db.QueryRow(`SELECT COUNT(*) FROM round_voters v WHERE v.used <> (SELECT COUNT(*) FROM ballots b WHERE b.round_id = v.round_id AND b.member_id = v.member_id)`).Scan(&usedWrong); err != nil {
		t.Fatal(err)
	}
	if usedWrong != 0 {
		t.Errorf("%d voters' used votes differ from their ballots", usedWrong)
	}
	stored := map[[3]string]bool{}
	rows, err := db.Query(`SELECT member_id, round_id, topic_id FROM ballots`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k [3]string
		if err := rows.Scan(&k[0], &k[1], &k[2]); err != nil {
			t.Fatal(err)
		}
		stored[k] = true
	}
	rows.Close()
	var held, lost, ghost int
	for _, p := range patrons {
		for k, has := range p.votes {
			key := [3]string{p.id, k[0], k[1]}
			switch {
			case has && !stored[key]:
				lost++
			case !has && stored[key]:
				ghost++
			}
			if has {
				held++
			}
		}
	}
	if lost != 0 || ghost != 0 {
		t.Errorf("%d acknowledged votes not stored, %d acknowledged withdrawals still stored", lost, ghost)
	}
	if held != len(stored) {
		t.Errorf("patrons were told of %d votes they hold; %d ballots are stored", held, len(stored))
	}

	// Tallies: in Redis itself (rebuilt after the flush) at once, and as
	// each server shows them — a server may show a tally up to 100 ms old
	// when the other stored the last votes (docs/voting.md), so its view is
	// read until it agrees, for at most 5 s.
	ballotsOf := func(round string) map[string]int64 {
		out := map[string]int64{}
		rows, err := db.Query(`SELECT topic_id, SUM(weight) FROM ballots WHERE round_id = $1 GROUP BY topic_id`, round)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
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
	rc := rdb.client()
	defer rc.Close()
	for _, rd := range rounds[1:] { // the open round: a closed one's tally is its final totals
		want := ballotsOf(rd.id)
		zs, err := rc.ZRangeWithScores(context.Background(), "patronage:tally:{"+rd.id+"}:counts", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, z := range zs {
			if z.Score != 0 {
				got[z.Member.(string)] = int64(z.Score)
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("Redis tallies round %s as %v; its ballots say %v", rd.id, got, want)
		}
	}
	converged := time.Now()
	for _, r := range replicas {
		for _, rd := range rounds {
			want := ballotsOf(rd.id)
			var shown map[string]int64
			agrees := func() bool {
				var got struct {
					Round struct {
						Tally []struct {
							TopicID string `json:"topic_id"`
							Votes   int64  `json:"votes"`
						}
					}
				}
				if !api.staff(r, http.MethodGet, "/api/v1/rounds/"+rd.id, "", http.StatusOK, &got) {
					t.FailNow()
				}
				shown = map[string]int64{}
				for _, tl := range got.Round.Tally {
					if tl.Votes != 0 {
						shown[tl.TopicID] = tl.Votes
					}
				}
				return maps.Equal(shown, want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !agrees() && time.Now().Before(deadline) {
				<-time.After(20 * time.Millisecond)
			}
			if !maps.Equal(shown, want) {
				t.Errorf("%s shows round %s as %v; its ballots say %v", r.name, rd.id, shown, want)
			}
		}
	}
	t.Logf("both servers showed every tally equal to the ballots within %s of the load's end", time.Since(converged).Round(time.Millisecond))
	if vout, verr, code := runCommand(t, withDataDir(t, env), "voting", "verify", rounds[1].id); code != 0 {
		t.Errorf("voting verify of the open round: %d %s %s", code, vout, verr)
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	for code := range st.codes {
		if strings.HasPrefix(code, "5") {
			t.Errorf("answers %s: %d", code, st.codes[code])
		}
	}
	t.Logf("FIGURES votes: %d vote requests (casts and withdrawals) from %d patrons to 2 replicas in %s (%.0f/s), Redis flushed once (%d patrons signed in again), "+
		"a round closed from both replicas at once mid-run; answers %v; %d ballots stored = %d acknowledged; tallies equal ballots on both replicas; no budget exceeded",
		nVotes, nPatrons, took.Round(time.Millisecond), float64(nVotes)/took.Seconds(), st.resignIns, st.codes, len(stored), held)
}

// votingSetup makes, through the staff API of the replicas in turn, a
// tier, rounds of perRound topics each (three votes a patron) opening in a
// moment, and patrons: members with complimentary access to the tier, each
// signed in. It returns once the rounds are open.
func votingSetup(t *testing.T, api *chaosAPI, replicas []*replica, nRounds, perRound, nPatrons int) ([]chaosRound, []*chaosPatron) {
	t.Helper()
	mustStaff(t, api, replicas[0], http.MethodPost, "/api/v1/staff/tiers",
		`{"slug":"coffee","name":"Coffee","prices":[{"currency":"eur","interval":"month","amount":500}]}`, http.StatusCreated, nil)
	opens := time.Now().Add(2 * time.Second).UTC()
	var rounds []chaosRound
	for i := range nRounds {
		var ids []string
		for j := range perRound {
			var tp struct{ Topic struct{ ID string } }
			mustStaff(t, api, replicas[0], http.MethodPost, "/api/v1/staff/topics", fmt.Sprintf(`{"title":"Topic %d.%d"}`, i+1, j+1), http.StatusCreated, &tp)
			ids = append(ids, tp.Topic.ID)
		}
		quoted, _ := json.Marshal(ids)
		var r struct{ Round struct{ ID string } }
		mustStaff(t, api, replicas[i%len(replicas)], http.MethodPost, "/api/v1/staff/rounds", fmt.Sprintf(`{"title":"Round %d","opens_at":%q,"closes_at":%q,"votes_per_patron":3,"topic_ids":%s}`,
			i+1, opens.Format(time.RFC3339Nano), opens.Add(24*time.Hour).Format(time.RFC3339Nano), quoted), http.StatusCreated, &r)
		rounds = append(rounds, chaosRound{id: r.Round.ID, topics: ids})
	}
	patrons := make([]*chaosPatron, nPatrons)
	parallel(16, nPatrons, func(i int) {
		r := replicas[i%len(replicas)]
		var m struct{ Member struct{ ID string } }
		p := &chaosPatron{votes: map[[2]string]bool{}}
		patrons[i] = p
		if api.staff(r, http.MethodPost, "/api/v1/staff/members", fmt.Sprintf(`{"email":"patron%d@example.org"}`, i), http.StatusCreated, &m) &&
			api.staff(r, http.MethodPost, "/api/v1/staff/members/"+m.Member.ID+"/complimentary", `{"tier":"coffee","reason":"chaos"}`, http.StatusCreated, nil) {
			p.id = m.Member.ID
			api.signIn(r, p)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	waitUntil(t, 30*time.Second, func() bool { return time.Now().After(opens) })
	return rounds, patrons
}

type chaosRound struct {
	id     string
	topics []string
}

type chaosPatron struct {
	id      string
	session atomic.Value // string
	// votes: what the servers acknowledged, by round and topic: true after
	// a 201/200 cast, false after a 204 withdrawal or a 404 (not voted).
	votes map[[2]string]bool
}

type voteStats struct {
	mu        sync.Mutex
	codes     map[string]int
	resignIns int
}

func (s *voteStats) count(code int, errCode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[fmt.Sprintf("%d %s", code, errCode)]++
}

type chaosAPI struct {
	t      *testing.T
	token  string
	client *http.Client
}

func (a *chaosAPI) do(r *replica, method, path, body, auth string) (int, string) {
	req, _ := http.NewRequest(method, r.URL()+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if strings.HasPrefix(auth, "Bearer ") {
		req.Header.Set("Authorization", auth)
	} else if auth != "" {
		req.AddCookie(&http.Cookie{Name: "patronage_session", Value: auth})
		req.Header.Set("Origin", "http://localhost:8080")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Errorf("%s %s on %s: %v", method, path, r.name, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// staff calls the API with the admin token and decodes the answer. It
// runs on any goroutine: a failure is recorded and reported false.
func (a *chaosAPI) staff(r *replica, method, path, body string, want int, v any) bool {
	code, out := a.do(r, method, path, body, "Bearer "+a.token)
	if code != want {
		a.t.Errorf("%s %s: %d %s, want %d", method, path, code, out, want)
		return false
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			a.t.Errorf("%s %s: %v in %s", method, path, err, out)
			return false
		}
	}
	return true
}

func mustStaff(t *testing.T, a *chaosAPI, r *replica, method, path, body string, want int, v any) {
	t.Helper()
	if !a.staff(r, method, path, body, want, v) {
		t.FailNow()
	}
}

// signIn follows a sign-in link staff made for the patron, as the patron
// would click the one in their mail, and keeps the session.
func (a *chaosAPI) signIn(r *replica, p *chaosPatron) bool {
	var link struct{ URL string }
	if !a.staff(r, http.MethodPost, "/api/v1/staff/members/"+p.id+"/sign-in-link", "", http.StatusCreated, &link) {
		return false
	}
	i := strings.Index(link.URL, "/auth/verify")
	if i < 0 {
		a.t.Errorf("sign-in link %q", link.URL)
		return false
	}
	req, _ := http.NewRequest(http.MethodGet, r.URL()+link.URL[i:], nil)
	// The link answers with a redirect and the session cookie: keep both.
	noRedirect := &http.Client{Transport: a.client.Transport, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		a.t.Error(err)
		return false
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "patronage_session" && c.Value != "" {
			p.session.Store(c.Value)
			return true
		}
	}
	a.t.Errorf("signing in answered %d without a session", resp.StatusCode)
	return false
}

// vote casts (or, with every vote used, sometimes withdraws) one vote and
// records what the server acknowledged. A patron whose session is gone
// (the Redis flush) signs in again and goes on. It reports whether the
// answer was one a patron may get (an error is recorded otherwise).
func (a *chaosAPI) vote(r *replica, p *chaosPatron, rd chaosRound, rng *rand.Rand, st *voteStats) bool {
	topic := rd.topics[rng.IntN(len(rd.topics))]
	held := 0
	for k, has := range p.votes {
		if has && k[0] == rd.id {
			held++
		}
	}
	withdraw := held > 0 && (held >= 3 && rng.IntN(4) > 0 || rng.IntN(3) == 0)
	if withdraw {
		for k, has := range p.votes {
			if has && k[0] == rd.id {
				topic = k[1]
				break
			}
		}
	}
	for {
		var code int
		var body string
		if withdraw {
			code, body = a.do(r, http.MethodDelete, "/api/v1/rounds/"+rd.id+"/votes/"+topic, "", p.session.Load().(string))
		} else {
			code, body = a.do(r, http.MethodPost, "/api/v1/rounds/"+rd.id+"/votes", fmt.Sprintf(`{"topic_id":%q}`, topic), p.session.Load().(string))
		}
		var e struct {
			Error struct{ Code string }
		}
		_ = json.Unmarshal([]byte(body), &e)
		st.count(code, e.Error.Code)
		key := [2]string{rd.id, topic}
		switch {
		case code == http.StatusUnauthorized:
			if !a.signIn(r, p) {
				return false
			}
			st.mu.Lock()
			st.resignIns++
			st.mu.Unlock()
			continue
		case code == http.StatusCreated || code == http.StatusOK && !withdraw:
			p.votes[key] = true
		case code == http.StatusNoContent && withdraw || code == http.StatusNotFound && e.Error.Code == "vote_not_found":
			p.votes[key] = false
		case code == http.StatusConflict && (e.Error.Code == "round_closed" || e.Error.Code == "vote_budget_exhausted"):
		default:
			a.t.Errorf("vote answered %d %s", code, body)
			return false
		}
		return true
	}
}

// parallel runs fn(0…n-1) on k goroutines.
func parallel(k, n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// withDataDir is env with a DATA_DIR of its own (each process keeps its
// local state apart; the shared state is in PostgreSQL and Redis).
func withDataDir(t *testing.T, env map[string]string) map[string]string {
	out := map[string]string{"DATA_DIR": t.TempDir()}
	for k, v := range env {
		out[k] = v
	}
	return out
}
