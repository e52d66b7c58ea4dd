//go:build chaos

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/testenv"
)

// PostgreSQL goes away for CHAOS_PG_DOWN_SECONDS (10) under a mixed load —
// patrons reading a round and voting, Stripe delivering events, staff
// reading figures — and comes back. The database sits behind a proxy that
// closes its port and cuts every connection, which the server cannot tell
// from a stopped PostgreSQL (connection refused, connection reset). While
// it is away every answer is a success the server could give without it or
// a 503 with a JSON error — never a 500, never a stack or SQL; /readyz
// says the database is down and Redis is not; Stripe's deliveries are
// refused, so Stripe sends them again. Afterwards the same process (no
// restart) answers everything again, and every event sent again is
// stored and processed once.
func TestChaosPostgresOutage(t *testing.T) {
	chaosPostgres(t)
	down := time.Duration(knob(t, "CHAOS_PG_DOWN_SECONDS", 10)) * time.Second
	rdb := startRedisProcess(t)
	bin := buildBinary(t)
	direct := testenv.PostgresSchemaURL(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr
	env := map[string]string{"DATABASE_URL": u.String(), "REDIS_URL": rdb.URL(0), "LOG_LEVEL": "warn",
		"STRIPE_WEBHOOK_SECRET": chaosSecret, "STRIPE_WEBHOOK_MODE": "payload", "STRIPE_SYNC_INTERVAL": "off",
		"RATE_LIMIT_VOTES_PER_SECOND": "10000", "JOB_RESCUE_AFTER": "3s"}
	srv := newReplica(t, bin, "server", withDataDir(t, env))
	srv.start()
	out, stderr, code := runCommand(t, withDataDir(t, map[string]string{"DATABASE_URL": direct, "REDIS_URL": rdb.URL(0)}), "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	api := &chaosAPI{t: t, token: tokenPattern.FindString(out), client: &http.Client{Timeout: 30 * time.Second}}
	rounds, patrons := votingSetup(t, api, []*replica{srv}, 1, 3, 40)
	round := rounds[0]

	// The load: four kinds of client, each in a loop, counting answers by
	// phase (before, during, after the outage). A request belongs to the
	// phase it began in, except that one begun during the outage and
	// answered after it belongs to "after": only a request that lived
	// wholly inside the outage must be refused.
	var phase atomic.Int32 // 0 before, 1 during, 2 after
	type tally struct {
		mu     sync.Mutex
		counts map[string]int
	}
	answers := &tally{counts: map[string]int{}}
	record := func(kind string, began int32, code int, body string) {
		p := began
		if began == 1 && phase.Load() == 2 {
			p = 2
		}
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Errorf("%s answered %d in phase %d: %.300s", kind, code, p, body)
		}
		if code == http.StatusServiceUnavailable {
			var e struct {
				Error struct{ Code, Message string }
			}
			if json.Unmarshal([]byte(body), &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Errorf("%s answered 503 without a JSON error: %.300s", kind, body)
			}
		}
		for _, leak := range []string{"goroutine ", "SQLSTATE", "pgx", "sql:", "dial tcp", "panic"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s's answer holds %q: %.300s", kind, leak, body)
			}
		}
		answers.mu.Lock()
		answers.counts[fmt.Sprintf("%d %s %d", p, kind, code)]++
		answers.mu.Unlock()
	}
	var refused []map[string]any // events whose delivery got no 2xx
	var refusedMu sync.Mutex
	var sentEvents atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				fn(i)
			}
		}()
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 4 {
		loop(func(i int) { // patrons read the round and vote
			p := patrons[(w*10+i)%len(patrons)]
			began := phase.Load()
			code, body := api.do(srv, http.MethodGet, "/api/v1/rounds/"+round.id, "", p.session.Load().(string))
			record("round read", began, code, body)
			topic := round.topics[i%3]
			began = phase.Load()
			if i%2 == 0 {
				code, body = api.do(srv, http.MethodPost, "/api/v1/rounds/"+round.id+"/votes", fmt.Sprintf(`{"topic_id":%q}`, topic), p.session.Load().(string))
			} else {
				code, body = api.do(srv, http.MethodDelete, "/api/v1/rounds/"+round.id+"/votes/"+topic, "", p.session.Load().(string))
			}
			record("vote", began, code, body)
		})
	}
	loop(func(i int) { // Stripe
		ev := outageEvent(int(sentEvents.Add(1)))
		began := phase.Load()
		code, body, err := deliverEventBody(client, srv.URL(), ev)
		if err != nil {
			t.Errorf("webhook delivery: %v", err)
			return
		}
		record("webhook", began, code, body)
		if code != http.StatusOK {
			refusedMu.Lock()
			refused = append(refused, ev)
			refusedMu.Unlock()
		}
	})
	loop(func(int) { // staff
		began := phase.Load()
		code, body := api.do(srv, http.MethodGet, "/api/v1/staff/metrics/summary", "", "Bearer "+api.token)
		record("staff figures", began, code, body)
		began = phase.Load()
		code, body = api.do(srv, http.MethodGet, "/api/v1/staff/members?limit=20", "", "Bearer "+api.token)
		record("staff members", began, code, body)
	})

	pause := func(d time.Duration) { <-time.After(d) } // the load runs meanwhile
	pause(3 * time.Second)
	proxy.stop()
	phase.Store(1) // after: a request begun after this finds the database away
	outageBegan := time.Now()
	// Readiness names the database, and only it.
	waitUntil(t, 10*time.Second, func() bool {
		code, body := get(t, srv.URL()+"/readyz")
		var rd struct {
			Status string
			Checks map[string]string
		}
		_ = json.Unmarshal([]byte(body), &rd)
		return code == http.StatusServiceUnavailable && rd.Checks["database"] != "ok" && rd.Checks["redis"] == "ok"
	})
	pause(down - time.Since(outageBegan))
	phase.Store(2) // first: a request begun before this saw the database away throughout
	proxy.start()
	upAgain := time.Now()
	waitUntil(t, 30*time.Second, func() bool { code, _ := get(t, srv.URL()+"/readyz"); return code == http.StatusOK })
	recovered := time.Since(upAgain)
	pause(5 * time.Second)
	close(stop)
	wg.Wait()

	// Stripe sends again what was refused; everything is stored once.
	for _, ev := range refused {
		if code, err := deliverEvent(client, srv.URL(), ev); err != nil || code != http.StatusOK {
			t.Errorf("delivering %v again after the outage: %d %v", ev["id"], code, err)
		}
	}
	db := openURL(t, direct)
	waitEventsDone(t, db, int(sentEvents.Load()))
	if srv.starts.Load() != 1 {
		t.Errorf("the server was started %d times; it must recover without a restart", srv.starts.Load())
	}
	srv.stop()
	srv.checkLog()

	answers.mu.Lock()
	defer answers.mu.Unlock()
	during503 := 0
	for k, n := range answers.counts {
		if strings.HasPrefix(k, "1 ") && strings.HasSuffix(k, " 503") {
			during503 += n
		}
	}
	for _, kind := range []string{"vote", "webhook", "staff figures", "round read"} {
		if answers.counts["2 "+kind+" 200"]+answers.counts["2 "+kind+" 201"]+answers.counts["2 "+kind+" 204"]+answers.counts["2 "+kind+" 409"]+answers.counts["2 "+kind+" 404"] == 0 {
			t.Errorf("no %s succeeded after the database came back: %v", kind, answers.counts)
		}
	}
	if answers.counts["1 webhook 503"] == 0 {
		t.Errorf("no webhook delivery was refused while the database was away: %v", answers.counts)
	}
	for k, n := range answers.counts {
		if strings.HasPrefix(k, "1 webhook ") && !strings.HasSuffix(k, " 503") {
			t.Errorf("a webhook delivery answered %s (%d times) while the database was away: Stripe would not send it again", k, n)
		}
	}
	t.Logf("FIGURES postgres outage: down %s under load; %d answers 503 while down, none 500; /readyz named the database; ready again %s after it came back, "+
		"same process; %d webhook deliveries refused while down, all sent again and processed once (%d events); answers by phase: %v",
		down, during503, recovered.Round(time.Millisecond), len(refused), sentEvents.Load(), answers.counts)
}

// outageEvent is a new subscription's state as Stripe would send it.
func outageEvent(i int) map[string]any {
	return subscriptionEvent(fmt.Sprintf("evt_outage_%06d", i), fmt.Sprintf("sub_outage_%06d", i), "cus_outage", "active", 1, time.Now())
}

// subscriptionEvent is a customer.subscription.updated event of a monthly
// coffee subscription in the state given, at.
func subscriptionEvent(id, sub, customer, status string, quantity int64, at time.Time) map[string]any {
	now := at.Unix()
	return map[string]any{
		"id": id, "object": "event", "type": "customer.subscription.updated", "api_version": "2023-10-16",
		"created": now, "livemode": false,
		"data": map[string]any{"object": map[string]any{
			"id": sub, "object": "subscription", "customer": customer, "status": status, "currency": "eur",
			"created": now, "current_period_start": now, "current_period_end": now + 30*24*3600,
			"items": map[string]any{"object": "list", "data": []any{map[string]any{"quantity": quantity, "price": map[string]any{
				"id": "price_outage", "currency": "eur", "unit_amount": 500, "recurring": map[string]any{"interval": "month", "interval_count": 1}}}}},
		}},
	}
}
