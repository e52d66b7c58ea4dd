//go:build chaos

package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/demo"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/voting"
)

const chaosSecret = "whsec_chaos"

// A generated patron history of CHAOS_EVENTS (20,000) Stripe events is
// delivered twice to the real binary on PostgreSQL: once in order, one
// at a time, to one worker — the reference — and once shuffled, with 30%
// of the events delivered again (a third of those at the same instant as
// the first copy) by eight senders, while the server is killed with
// SIGKILL at CHAOS_KILLS (5) random moments and started again, and its
// Redis is killed and started again, empty, twice. A delivery that gets
// no 2xx is sent again, as Stripe does. Then every acknowledged event is
// stored once and processed, and every row billing and the staff figures
// keep equals the reference's.
func TestChaosWebhooks(t *testing.T) {
	chaosPostgres(t)
	nEvents, nKills := knob(t, "CHAOS_EVENTS", 20000), knob(t, "CHAOS_KILLS", 5)
	const redisRestarts = 2
	rdb := startRedisProcess(t)
	bin := buildBinary(t)

	began := time.Now()
	genURL := testenv.PostgresSchemaURL(t)
	events := generateHistory(t, genURL, nEvents)
	t.Logf("history of %d events generated in %s", len(events), time.Since(began).Round(time.Millisecond))

	env := func(dbURL string, redisDB int, workers string) map[string]string {
		return map[string]string{"DATABASE_URL": dbURL, "DATA_DIR": t.TempDir(), "REDIS_URL": rdb.URL(redisDB),
			"STRIPE_WEBHOOK_SECRET": chaosSecret, "STRIPE_WEBHOOK_MODE": "payload", "STRIPE_SYNC_INTERVAL": "off",
			"WEBHOOK_WORKERS": workers, "JOB_RESCUE_AFTER": "3s", "LOG_LEVEL": "warn"}
	}

	// The reference: in order, one at a time, one worker.
	refURL := testenv.PostgresSchemaURL(t)
	copyPreState(t, genURL, refURL)
	ref := newReplica(t, bin, "reference", env(refURL, 1, "1"))
	ref.start()
	client := &http.Client{Timeout: 30 * time.Second}
	began = time.Now()
	for _, ev := range events {
		if code, err := deliverEvent(client, ref.URL(), ev); err != nil || code != http.StatusOK {
			t.Fatalf("in-order delivery of %v: %d %v", ev["id"], code, err)
		}
	}
	refDB := openURL(t, refURL)
	waitEventsDone(t, refDB, len(events))
	ref.stop()
	ref.checkLog()
	t.Logf("reference: %d events delivered in order and processed in %s", len(events), time.Since(began).Round(time.Millisecond))

	// The same history, shuffled and duplicated, through kills and restarts.
	chaosURL := testenv.PostgresSchemaURL(t)
	copyPreState(t, genURL, chaosURL)
	srv := newReplica(t, bin, "chaos", env(chaosURL, 0, "4"))
	srv.start()
	plan := planDeliveries(events, 0.3)
	began = time.Now()
	run := deliverWithFaults(t, srv, rdb, events, plan, nKills, redisRestarts)
	chaosDB := openURL(t, chaosURL)
	waitEventsDone(t, chaosDB, len(events))
	took := time.Since(began)
	srv.stop()
	srv.checkLog()
	compared := time.Now()

	for i, ev := range events {
		if !run.acked[i] {
			t.Errorf("event %v was never acknowledged", ev["id"])
		}
	}
	var stored int
	if err := chaosDB.QueryRow(`SELECT COUNT(*) FROM stripe_events`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != len(events) {
		t.Errorf("%d events stored, want %d: each acknowledged event exactly once", stored, len(events))
	}
	tables, missedMails := compareBillingState(t, refURL, chaosURL, compared)

	t.Logf("FIGURES webhooks: %d events, %d deliveries (%d duplicates: %d sent again later, %d at the same instant), "+
		"%d acknowledged, %d deliveries refused or cut off and sent again, %d SIGKILLs (%d starts), %d Redis restarts, "+
		"%s (%.0f events/s with the faults); %d tables equal to the in-order reference "+
		"(%d failed-payment mails not sent: their failure arrived before the customer's link)",
		len(events), plan.deliveries, plan.later+plan.together, plan.later, plan.together, run.okAnswers.Load(), run.retried.Load(),
		nKills, srv.starts.Load(), redisRestarts, took.Round(time.Millisecond), float64(len(events))/took.Seconds(), tables, missedMails)
}

// generateHistory plays a patron program with demo.Seed (the Stripe fake on
// a moving clock; its own processing in order is thrown away) and keeps
// the first n events Stripe would have sent, in order.
func generateHistory(t *testing.T, dbURL string, n int) []map[string]any {
	t.Helper()
	ctx := context.Background()
	db := migratedURL(t, dbURL)
	var events []map[string]any
	base, _ := url.Parse("http://localhost:8080")
	// About 1.1 events per patron and month; a margin so the history is
	// long enough, cut at n.
	_, err := demo.Seed(ctx, demo.Deps{DB: db, Redis: testenv.EmbeddedRedis(t), BaseURL: base, Logger: testenv.Logger(),
		Eligibility: func(b *billing.Service) voting.Eligibility { return voters{billing: b} },
		Record:      func(batch []map[string]any) { events = append(events, batch...) },
	}, demo.Options{Patrons: n/12 + 40, Months: 12, Seed: 7})
	if err != nil {
		t.Fatalf("demo seed: %v", err)
	}
	if len(events) < n {
		t.Fatalf("the history has %d events, want at least %d: raise the patrons", len(events), n)
	}
	return events[:n]
}

func openURL(t testing.TB, dbURL string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), sqldb.Options{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// migratedURL opens a database with every migration applied, the job
// queue's too, as `patronage migrate` does.
func migratedURL(t testing.TB, dbURL string) *sqldb.DB {
	t.Helper()
	db := openURL(t, dbURL)
	if _, err := db.Migrate(context.Background(), sqldb.Migrations()); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

// copyPreState gives a fresh database what the history's events assume
// already exists: the members who checked out (not yet linked to any
// Stripe customer — the events do that) and the tiers with their prices.
func copyPreState(t *testing.T, fromURL, toURL string) {
	t.Helper()
	db := migratedURL(t, toURL)
	from, to := schemaOf(t, fromURL), schemaOf(t, toURL)
	for _, q := range []string{
		`INSERT INTO %[2]s.members (id, email, name, role, created_at, updated_at) SELECT id, email, name, role, created_at, updated_at FROM %[1]s.members`,
		`INSERT INTO %[2]s.tiers SELECT * FROM %[1]s.tiers`,
		`INSERT INTO %[2]s.tier_prices SELECT * FROM %[1]s.tier_prices`,
	} {
		if _, err := db.Exec(fmt.Sprintf(q, from, to)); err != nil {
			t.Fatalf("copy pre-state: %v", err)
		}
	}
}

func deliverEvent(client *http.Client, base string, ev map[string]any) (int, error) {
	code, _, err := deliverEventBody(client, base, ev)
	return code, err
}

// deliverEventBody posts an event signed as Stripe signs it and returns
// the answer.
func deliverEventBody(client *http.Client, base string, ev map[string]any) (int, string, error) {
	body, header := stripefake.SignedDelivery(ev, chaosSecret, time.Now())
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Stripe-Signature", header)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer), err
}

// waitEventsDone waits until the server has worked all n events it stored
// and folded the staff figures; an event that failed fails the test.
func waitEventsDone(t *testing.T, db *sqldb.DB, n int) {
	t.Helper()
	var last string
	deadline := time.After(10 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var done, pending, failed, folding int
		err := db.QueryRow(`SELECT
			(SELECT COUNT(*) FROM stripe_events WHERE status IN ('processed', 'ignored')),
			(SELECT COUNT(*) FROM stripe_events WHERE status = 'pending'),
			(SELECT COUNT(*) FROM stripe_events WHERE status = 'failed'),
			(SELECT COUNT(*) FROM metric_pending)`).Scan(&done, &pending, &failed, &folding)
		if err != nil {
			t.Fatal(err)
		}
		if failed > 0 {
			var id, msg string
			_ = db.QueryRow(`SELECT id, COALESCE(last_error, '') FROM stripe_events WHERE status = 'failed' LIMIT 1`).Scan(&id, &msg)
			t.Fatalf("%d events failed, e.g. %s: %s", failed, id, msg)
		}
		if done == n && pending == 0 && folding == 0 {
			return
		}
		last = fmt.Sprintf("%d of %d worked, %d pending, %d figure deltas to fold", done, n, pending, folding)
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("events not worked within 10 minutes: %s", last)
		}
	}
}

// delivery is one POST of an event; copies 2 sends it twice at once.
type delivery struct {
	event  int
	copies int
}

type deliveryPlan struct {
	items           []delivery
	deliveries      int
	later, together int
}

// planDeliveries shuffles every event with dupFraction of them delivered
// again: two thirds of those later, in their own place in the shuffle, a
// third at the same instant as their first copy, from two connections.
func planDeliveries(events []map[string]any, dupFraction float64) deliveryPlan {
	rng := rand.New(rand.NewPCG(11, 13))
	p := deliveryPlan{}
	for i := range events {
		p.items = append(p.items, delivery{event: i, copies: 1})
	}
	for _, i := range rng.Perm(len(events))[:int(float64(len(events))*dupFraction)] {
		if rng.IntN(3) == 0 {
			p.items[i].copies = 2
			p.together++
		} else {
			p.items = append(p.items, delivery{event: i, copies: 1})
			p.later++
		}
	}
	rng.Shuffle(len(p.items), func(a, b int) { p.items[a], p.items[b] = p.items[b], p.items[a] })
	p.deliveries = len(events) + p.later + p.together
	return p
}

type deliveryRun struct {
	mu        sync.Mutex
	acked     []bool
	okAnswers atomic.Int64
	retried   atomic.Int64
}

// deliverWithFaults sends the plan from eight senders. At random moments
// (by the count of answered deliveries) the server is killed and started
// again, or its Redis is; a delivery that fails is sent again once the
// server answers.
func deliverWithFaults(t *testing.T, srv *replica, rdb *redisProcess, events []map[string]any, plan deliveryPlan, kills, redisRestarts int) *deliveryRun {
	t.Helper()
	run := &deliveryRun{acked: make([]bool, len(events))}
	rng := rand.New(rand.NewPCG(17, 19))
	type fault struct {
		at    int64
		redis bool
	}
	var faults []fault
	for i := range kills + redisRestarts {
		faults = append(faults, fault{at: int64(float64(plan.deliveries) * (0.05 + 0.9*rng.Float64())), redis: i >= kills})
	}
	slices.SortFunc(faults, func(a, b fault) int { return int(a.at - b.at) })

	gate := newDownGate()
	var answered atomic.Int64
	work := make(chan delivery, len(plan.items))
	for _, d := range plan.items {
		work <- d
	}
	close(work)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	send := func(d delivery) {
		for {
			ok := make([]bool, d.copies)
			var wg sync.WaitGroup
			for c := range d.copies {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, err := deliverEvent(client, srv.URL(), events[d.event])
					ok[c] = err == nil && code == http.StatusOK
					if err == nil && code != http.StatusOK && code != http.StatusServiceUnavailable {
						t.Errorf("delivery of %v answered %d", events[d.event]["id"], code)
					}
				}()
			}
			wg.Wait()
			all := true
			for _, o := range ok {
				if o {
					run.okAnswers.Add(1)
					run.mu.Lock()
					run.acked[d.event] = true
					run.mu.Unlock()
				} else {
					all = false
				}
			}
			answered.Add(1)
			if all {
				return
			}
			// Stripe sends an unacknowledged event again later: here, once
			// the server is back (after a short pause if it never left).
			run.retried.Add(1)
			d.copies = 1
			select {
			case <-gate.wait():
			case <-time.After(5 * time.Second):
			}
			<-time.After(20 * time.Millisecond) // the retry's backoff
		}
	}

	var senders sync.WaitGroup
	for range 8 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for d := range work {
				send(d)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { senders.Wait(); close(finished) }()

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(faults) > 0 {
		select {
		case <-finished:
			t.Fatalf("every delivery answered before the last %d faults: the plan's moments are wrong", len(faults))
		case <-tick.C:
		}
		if answered.Load() < faults[0].at {
			continue
		}
		if faults[0].redis {
			rdb.restart()
		} else {
			gate.down()
			srv.kill()
			srv.start()
			gate.open()
		}
		faults = faults[1:]
	}
	<-finished
	return run
}

// compareBillingState compares, table by table, every row billing and the
// staff figures keep in the two schemas, leaving out only the columns that
// record when this server did something (updated_at, received_at, …).
// Access that falls due to change by itself (recheck_at) before the
// comparison is left out on both sides: it depends on the hour, not on
// the events. It returns how many tables it compared, and how many
// failed-payment mails of the reference the other run did not send.
func compareBillingState(t *testing.T, refURL, gotURL string, at time.Time) (tables, missedMails int) {
	t.Helper()
	db := openURL(t, refURL)
	ref, got := schemaOf(t, refURL), schemaOf(t, gotURL)
	skip := map[string][]string{
		"stripe_events":         {"received_at", "attempts", "last_error", "processed_at"},
		"stripe_customers":      {"updated_at"},
		"subscriptions":         {"updated_at"},
		"invoices":              {"updated_at"},
		"charges":               {"updated_at"},
		"members":               {"updated_at"},
		"member_access":         {"changed_at", "recheck_at", "welcomed_at"},
		"billing_notifications": {"created_at"},
		"metric_sources":        {"refreshed_at"},
	}
	names := []string{"stripe_events", "stripe_customers", "subscriptions", "subscription_snapshots", "subscription_history",
		"invoices", "charges", "refunds", "disputes", "donations", "members", "member_access", "billing_notifications",
		"metric_sources", "metric_deltas", "metric_days", "metric_pending"}
	for _, table := range names {
		rows, err := db.Query(`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, ref, table)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(skip[table], c) {
				cols = append(cols, c)
			}
		}
		rows.Close()
		if len(cols) == 0 {
			t.Fatalf("table %s has no columns in %s", table, ref)
		}
		list := strings.Join(cols, ", ")
		where := "$1::timestamptz IS NOT NULL" // every query takes the instant
		if table == "metric_days" {
			// A day whose deltas came to nothing in one order and were never
			// written in the other reads as the same zero.
			where += " AND delta <> 0"
		}
		if table == "member_access" {
			where = fmt.Sprintf(`member_id NOT IN (SELECT member_id FROM %[1]s.member_access WHERE recheck_at <= $1
				UNION SELECT member_id FROM %[2]s.member_access WHERE recheck_at <= $1)`, ref, got)
		}
		var n, diffRef, diffGot int
		q := fmt.Sprintf(`SELECT
			(SELECT COUNT(*) FROM %[1]s.%[3]s WHERE %[5]s),
			(SELECT COUNT(*) FROM (SELECT %[4]s FROM %[1]s.%[3]s WHERE %[5]s EXCEPT ALL SELECT %[4]s FROM %[2]s.%[3]s WHERE %[5]s) d),
			(SELECT COUNT(*) FROM (SELECT %[4]s FROM %[2]s.%[3]s WHERE %[5]s EXCEPT ALL SELECT %[4]s FROM %[1]s.%[3]s WHERE %[5]s) d)`,
			ref, got, table, list, where)
		if err := db.QueryRow(q, at).Scan(&n, &diffRef, &diffGot); err != nil {
			t.Fatalf("compare %s: %v", table, err)
		}
		if table == "billing_notifications" && diffGot == 0 {
			// Mail is about the moment: a failed payment is told when it is
			// processed for a member already known. Shuffled far enough, a
			// renewal's failure can arrive before the event that links its
			// customer to the member, and then no mail goes. What must never
			// happen is a mail the in-order run did not send, or one twice.
			missedMails = diffRef
			continue
		}
		if diffRef == 0 && diffGot == 0 {
			continue
		}
		t.Errorf("%s: of %d reference rows, %d are missing or different after the faults, and %d rows are there that the reference has not; e.g.:\n%s",
			table, n, diffRef, diffGot, sampleDiff(t, db, ref, got, table, list, where, at))
	}
	return len(names), missedMails
}

func sampleDiff(t *testing.T, db *sqldb.DB, ref, got, table, list, where string, at time.Time) string {
	var out []string
	for _, side := range [][2]string{{ref, got}, {got, ref}} {
		q := fmt.Sprintf(`SELECT ROW(%[4]s)::text FROM (SELECT %[4]s FROM %[1]s.%[3]s WHERE %[5]s EXCEPT ALL SELECT %[4]s FROM %[2]s.%[3]s WHERE %[5]s) d LIMIT 3`,
			side[0], side[1], table, list, where)
		rows, err := db.Query(q, at)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s sql.NullString
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("  only in %s: %s", side[0], s.String))
		}
		rows.Close()
	}
	return strings.Join(out, "\n")
}
