//go:build chaos

package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronage/patronage/bench/loadgen"
	"github.com/patronage/patronage/internal/testenv"
)

// A mixed load — patrons voting, Stripe delivering events, readers signing
// up, patrons signing in (and out), staff reading the figures — on one
// server for SOAK_DURATION (5m in the test command; 30m with make chaos),
// each kind on an open-loop schedule (defaults: 800 votes, 80 events,
// 10 sign-ups, 10 sign-ins, 5 dashboard reads a second). Together, with
// this load generator on the same two cores, they keep the machine about
// 80% busy — the load the earlier benchmarks' capacities, shared between
// the paths, leave room for (docs/benchmarks.md, "Soak"). No
// answer may be an error; after the first fifth (warm-up), the server's
// RSS may not grow by 10% nor its goroutines (besides one per open
// connection, which follow the load) by more than 10% (+10), from the
// minute after warm-up to the last. p99 of each kind is printed next
// to its issue's target (each set for its path alone);
// SOAK_ENFORCE_LATENCY=1 fails the run when one is missed.
func TestSoakMixedLoad(t *testing.T) {
	chaosPostgres(t)
	duration, err := time.ParseDuration(cmpOr(os.Getenv("SOAK_DURATION"), "5m"))
	if err != nil || duration < 30*time.Second {
		t.Fatalf("SOAK_DURATION=%q: want a duration of 30s or more", os.Getenv("SOAK_DURATION"))
	}
	rates := map[string]float64{
		"vote":      float64(knob(t, "SOAK_VOTES_PER_SECOND", 800)),
		"webhook":   float64(knob(t, "SOAK_WEBHOOKS_PER_SECOND", 80)),
		"sign-up":   float64(knob(t, "SOAK_SIGNUPS_PER_SECOND", 10)),
		"sign-in":   float64(knob(t, "SOAK_SIGNINS_PER_SECOND", 10)),
		"dashboard": float64(knob(t, "SOAK_DASHBOARD_PER_SECOND", 5)),
	}
	// p99 targets from the issues that measured each path (docs/benchmarks.md).
	targets := map[string]time.Duration{"vote": 20 * time.Millisecond, "webhook": 50 * time.Millisecond, "dashboard": 50 * time.Millisecond}
	subscriptions := knob(t, "SOAK_SUBSCRIPTIONS", 20000)
	workers := map[string]int{"vote": 64, "webhook": 16, "sign-up": 4, "sign-in": 4, "dashboard": 4}

	rdb := startRedisProcess(t)
	bin := buildBinary(t)
	dbURL := testenv.PostgresSchemaURL(t)
	env := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": rdb.URL(0), "LOG_LEVEL": "warn",
		"STRIPE_WEBHOOK_SECRET": chaosSecret, "STRIPE_WEBHOOK_MODE": "payload", "STRIPE_SYNC_INTERVAL": "off",
		"RATE_LIMIT_VOTES_PER_SECOND": "10000", "RATE_LIMIT_SIGNIN_PER_IP": "100000"}
	srv := newReplica(t, bin, "server", withDataDir(t, env))
	srv.start()
	out, stderr, code := runCommand(t, withDataDir(t, env), "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	api := &chaosAPI{t: t, token: tokenPattern.FindString(out), client: loadgen.Client(128)}
	// One round of six topics; ten patrons a voting worker, so that a
	// patron's votes are in order.
	rounds, patrons := votingSetup(t, api, []*replica{srv}, 1, 6, 640)
	round := rounds[0]

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	go vacuumEvery(ctx, t, dbURL, 20*time.Second)
	start := time.Now()
	var mu sync.Mutex
	latencies := map[string][]timed{}
	errors := map[string]int{}
	var signups, events atomic.Int64
	fail := func(kind, what string) {
		mu.Lock()
		defer mu.Unlock()
		if errors[kind] < 5 {
			t.Errorf("%s: %s", kind, what)
		}
		errors[kind]++
	}
	st := &voteStats{codes: map[string]int{}}
	do := map[string]func(w, i int, rng *rand.Rand) bool{
		"vote": func(w, i int, rng *rand.Rand) bool {
			return api.vote(srv, patrons[w+64*(i%10)], round, rng, st)
		},
		"webhook": func(_, _ int, rng *rand.Rand) bool {
			// The changes of a program's subscriptions — a payment failing
			// and recovering, a second cup added and dropped — spread over
			// SOAK_SUBSCRIPTIONS of them (20,000: a 30-minute soak changes
			// each about seven times, as a few months of renewals would).
			n := events.Add(1)
			patron := rng.IntN(subscriptions)
			status, quantity := []string{"active", "active", "past_due"}[rng.IntN(3)], int64(1+rng.IntN(2))
			ev := subscriptionEvent(fmt.Sprintf("evt_soak_%08d", n), fmt.Sprintf("sub_soak_%06d", patron), fmt.Sprintf("cus_soak_%06d", patron),
				status, quantity, start.Add(time.Duration(n)*time.Millisecond))
			code, err := deliverEvent(api.client, srv.URL(), ev)
			if err != nil || code != http.StatusOK {
				fail("webhook", fmt.Sprintf("%d %v", code, err))
				return false
			}
			return true
		},
		"sign-up": func(int, int, *rand.Rand) bool {
			code, body := api.do(srv, http.MethodPost, "/api/v1/members", fmt.Sprintf(`{"email":"reader%d@example.org","name":"Reader"}`, signups.Add(1)), "")
			if code != http.StatusAccepted && code != http.StatusCreated {
				fail("sign-up", fmt.Sprintf("%d %.200s", code, body))
				return false
			}
			return true
		},
		"sign-in": func(_, _ int, rng *rand.Rand) bool {
			p := &chaosPatron{id: patrons[rng.IntN(len(patrons))].id}
			if !api.signIn(srv, p) {
				return false
			}
			code, body := api.do(srv, http.MethodPost, "/api/v1/auth/logout", "", p.session.Load().(string))
			if code != http.StatusNoContent && code != http.StatusOK {
				fail("sign-in", fmt.Sprintf("sign-out %d %.200s", code, body))
				return false
			}
			return true
		},
		"dashboard": func(int, int, *rand.Rand) bool {
			for _, path := range []string{"/api/v1/staff/metrics/summary", "/api/v1/staff/metrics/mrr?currency=eur"} {
				code, body := api.do(srv, http.MethodGet, path, "", "Bearer "+api.token)
				if code != http.StatusOK {
					fail("dashboard", fmt.Sprintf("%s %d %.200s", path, code, body))
					return false
				}
			}
			return true
		},
	}
	var wg sync.WaitGroup
	for kind, fn := range do {
		sched := loadgen.NewSchedule(ctx, start, rates[kind], 0)
		for w := range workers[kind] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				var mine []timed
				for i := 0; ; i++ {
					due, ok := sched.Next(ctx)
					if !ok {
						break
					}
					if fn(w, i, rng) {
						mine = append(mine, timed{at: due.Sub(start), took: time.Since(due)})
					}
				}
				mu.Lock()
				latencies[kind] = append(latencies[kind], mine...)
				mu.Unlock()
			}()
		}
	}

	// The server's memory and goroutines every 5 s, and the machine's CPU.
	type sample struct {
		at               time.Duration
		rss, heap, gorts float64
	}
	var samples []sample
	cpu0 := cpuTimes(t)
	tick := time.NewTicker(5 * time.Second)
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-tick.C:
			m := runtimeOf(t, api, srv)
			// Each open connection holds a goroutine, and how many the load
			// generator keeps open follows the latency of the moment: the
			// goroutines that could leak are the others.
			samples = append(samples, sample{at: time.Since(start), rss: rssOf(t, srv.cmd.Process.Pid), heap: m["go_memstats_heap_inuse_bytes"],
				gorts: m["go_goroutines"] - m["patronage_http_connections"]})
		}
	}
	tick.Stop()
	cpu1 := cpuTimes(t)
	wg.Wait()
	srv.checkLog()
	// While the load lasts, every request in flight holds goroutines, the
	// more the further the server falls behind its schedule; what a leak
	// holds outlives the load. Every request has been answered now.
	m := runtimeOf(t, api, srv)
	gAfter := m["go_goroutines"] - m["patronage_http_connections"]

	warm := duration / 5
	mean := func(from, to time.Duration, f func(sample) float64) float64 {
		var sum float64
		var n int
		for _, s := range samples {
			if s.at >= from && s.at < to {
				sum += f(s)
				n++
			}
		}
		if n == 0 {
			t.Fatalf("no samples between %s and %s", from, to)
		}
		return sum / float64(n)
	}
	window := min(time.Minute, (duration-warm)/2)
	rss0, rss1 := mean(warm, warm+window, func(s sample) float64 { return s.rss }), mean(duration-window, duration+time.Second, func(s sample) float64 { return s.rss })
	g0, g1 := mean(warm, warm+window, func(s sample) float64 { return s.gorts }), mean(duration-window, duration+time.Second, func(s sample) float64 { return s.gorts })
	h0, h1 := mean(warm, warm+window, func(s sample) float64 { return s.heap }), mean(duration-window, duration+time.Second, func(s sample) float64 { return s.heap })
	if rss1 > rss0*1.10 {
		t.Errorf("RSS grew from %.1f MB after warm-up to %.1f MB at the end (+%.1f%%): more than 10%%", rss0/1e6, rss1/1e6, 100*(rss1/rss0-1))
	}
	if gAfter > g0*1.10+10 {
		t.Errorf("goroutines (besides one per open connection) were %.0f under load after warm-up and still %.0f once every request was answered: more than 10%% (+10)",
			g0, gAfter)
	}
	busy := 100 * (1 - float64(cpu1.idle-cpu0.idle)/float64(cpu1.total-cpu0.total))
	t.Logf("largest tables at the end: %s", largestTables(t, dbURL, 8))

	var lines []string
	missed := false
	for _, kind := range []string{"vote", "webhook", "sign-up", "sign-in", "dashboard"} {
		var all, early, late []time.Duration
		for _, x := range latencies[kind] {
			all = append(all, x.took)
			if x.at >= warm && x.at < warm+window {
				early = append(early, x.took)
			}
			if x.at >= duration-window {
				late = append(late, x.took)
			}
		}
		l := loadgen.Summarize(all)
		target := "no target"
		if d, ok := targets[kind]; ok {
			target = "target " + loadgen.MS(d)
			if l.At(99) > d {
				target += " MISSED"
				missed = true
			}
		}
		lines = append(lines, fmt.Sprintf("%s %d at %.0f/s p50 %s p99 %s (%s; after warm-up %s, last %s), %d errors", kind, len(l), rates[kind],
			loadgen.MS(l.At(50)), loadgen.MS(l.At(99)), target, loadgen.MS(loadgen.Summarize(early).At(99)), loadgen.MS(loadgen.Summarize(late).At(99)), errors[kind]))
	}
	if missed && os.Getenv("SOAK_ENFORCE_LATENCY") == "1" {
		t.Errorf("a p99 target was missed: %s", strings.Join(lines, "; "))
	}
	for code, n := range st.codes {
		if !strings.HasPrefix(code, "201") && !strings.HasPrefix(code, "200") && !strings.HasPrefix(code, "204") &&
			code != "409 vote_budget_exhausted" && code != "404 vote_not_found" {
			t.Errorf("votes answered %s %d times", code, n)
		}
	}
	t.Logf("FIGURES soak: %s of mixed load, machine CPU %.0f%% busy; %s; RSS %.1f → %.1f MB (%+.1f%%), Go heap in use %.1f → %.1f MB, goroutines besides connections %.0f → %.0f (after warm-up → last %s), %.0f once the load was answered; vote answers %v",
		duration, busy, strings.Join(lines, "; "), rss0/1e6, rss1/1e6, 100*(rss1/rss0-1), h0/1e6, h1/1e6, g0, g1, window, gAfter, st.codes)
}

// vacuumEvery does what PostgreSQL's autovacuum does in production, which
// the test machine's PostgreSQL runs without (autovacuum = off): every so
// often it vacuums the schema's tables whose dead rows passed autovacuum's
// default threshold (50 + 20% of the table), and analyzes those whose
// changes passed its analyze threshold (50 + 10%), so the soak measures
// Patronage and not tables choking on their dead rows (a withdrawn vote, a
// folded figure, a worked job each leave one) — nor a vacuum of every
// table, however clean, every few seconds.
func vacuumEvery(ctx context.Context, t *testing.T, dbURL string, every time.Duration) {
	db := openURL(t, dbURL)
	var on string
	if err := db.QueryRowContext(ctx, `SHOW autovacuum`).Scan(&on); err != nil || on == "on" {
		return // autovacuum does it
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rows, err := db.QueryContext(ctx, `SELECT relname, n_dead_tup > 50 + 0.2 * GREATEST(n_live_tup, 0), n_mod_since_analyze > 50 + 0.1 * GREATEST(n_live_tup, 0)
			FROM pg_stat_user_tables WHERE schemaname = current_schema()`)
		if err != nil {
			return
		}
		var work []string
		for rows.Next() {
			var name string
			var vacuum, analyze bool
			if rows.Scan(&name, &vacuum, &analyze) != nil {
				continue
			}
			switch {
			case vacuum:
				work = append(work, `VACUUM (ANALYZE) `+name)
			case analyze:
				work = append(work, `ANALYZE `+name)
			}
		}
		rows.Close()
		for _, q := range work {
			if _, err := db.ExecContext(ctx, q); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	}
}

// largestTables names the schema's n largest tables with their rows and
// size, so that a soak that slows down shows what grew.
func largestTables(t *testing.T, dbURL string, n int) string {
	db := openURL(t, dbURL)
	rows, err := db.Query(`SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c
		JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = current_schema() AND c.relkind = 'r'
		ORDER BY 3 DESC LIMIT $1`, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		var tuples, size int64
		if err := rows.Scan(&name, &tuples, &size); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d rows %.1f MB", name, tuples, float64(size)/1e6))
	}
	return strings.Join(out, ", ")
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// rssOf is a process's resident memory in bytes.
func rssOf(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// timed is one answer's latency and when, from the start, it was due.
type timed struct{ at, took time.Duration }

// runtimeOf reads the Go runtime's figures (go_goroutines,
// go_memstats_heap_inuse_bytes, …) and the open connections from the
// server's /metrics.
func runtimeOf(t *testing.T, a *chaosAPI, r *replica) map[string]float64 {
	resp, err := a.client.Get(r.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), " "); ok && (strings.HasPrefix(name, "go_") || name == "patronage_http_connections") {
			out[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	if _, ok := out["go_goroutines"]; !ok {
		t.Fatal("no go_goroutines in /metrics")
	}
	return out
}

type cpuSample struct{ idle, total uint64 }

// cpuTimes is the machine's idle and total CPU time from /proc/stat.
func cpuTimes(t *testing.T) cpuSample {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var s cpuSample
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		s.total += n
		if i == 3 || i == 4 { // idle, iowait
			s.idle += n
		}
	}
	return s
}
