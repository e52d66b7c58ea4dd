package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/testenv"
)

// gatedStripe is the Stripe fake behind a gate: while closed, fetching a
// subscription hangs, so an event's processing can be caught half-way.
type gatedStripe struct {
	fake    *stripefake.Server
	mu      sync.Mutex
	closed  bool
	release chan struct{}
	reached chan struct{} // a fetch is waiting at the gate
	once    sync.Once
}

func (g *gatedStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed && r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/subscriptions/") {
		g.once.Do(func() { close(g.reached) })
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
	}
	g.fake.ServeHTTP(w, r)
}

func (g *gatedStripe) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		close(g.release)
	}
}

// A kill -9 after events were acknowledged and before (or while) they
// were processed loses none: the next process works every one of them, and
// each has its effect once.
func TestKill9BetweenIntakeAndProcessingLosesNothing(t *testing.T) {
	bin := buildBinary(t)
	dbs := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(t *testing.T) map[string]string {
			return map[string]string{"DATA_DIR": filepath.Join(t.TempDir(), "data")}
		},
	}
	if testenv.PostgresURL(t) != "" {
		dbs["postgres"] = func(t *testing.T) map[string]string {
			return map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": testenv.PostgresSchemaURL(t)}
		}
	}
	for name, envFor := range dbs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			crashAndRecover(t, bin, envFor(t))
		})
	}
}

func crashAndRecover(t *testing.T, bin string, env map[string]string) {
	gate := &gatedStripe{fake: stripefake.New(t), closed: true, release: make(chan struct{}), reached: make(chan struct{})}
	stripe := httptest.NewServer(gate)
	t.Cleanup(stripe.Close)
	t.Cleanup(gate.open)
	const secret = "whsec_crash"
	for k, v := range map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "ENV_FILE": "/dev/null", "LOG_LEVEL": "info",
		"STRIPE_SECRET_KEY": stripefake.SecretKey, "STRIPE_API_BASE": stripe.URL, "STRIPE_WEBHOOK_SECRET": secret,
		"STRIPE_WEBHOOK_MODE": "fetch", "WEBHOOK_WORKERS": "1", "JOB_RESCUE_AFTER": "1s", "STRIPE_SYNC_INTERVAL": "off",
	} {
		env[k] = v
	}

	first, addr := startProcess(t, bin, env)
	const n = 12
	for i := range n {
		ev := map[string]any{
			"id": fmt.Sprintf("evt_crash_%02d", i), "object": "event", "type": "customer.subscription.updated", "api_version": "2023-10-16",
			"created": time.Now().Unix(), "livemode": false,
			"data": map[string]any{"object": map[string]any{
				"id": fmt.Sprintf("sub_crash_%02d", i), "object": "subscription", "customer": "cus_crash", "status": "active", "currency": "eur",
				"created": time.Now().Unix(), "current_period_start": time.Now().Unix(), "current_period_end": time.Now().Add(720 * time.Hour).Unix(),
				"items": map[string]any{"object": "list", "data": []any{map[string]any{"quantity": 1, "price": map[string]any{
					"id": "price_crash", "currency": "eur", "unit_amount": 500, "recurring": map[string]any{"interval": "month", "interval_count": 1}}}}},
			}},
		}
		body, header := stripefake.SignedDelivery(ev, secret, time.Now())
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/stripe", strings.NewReader(string(body)))
		req.Header.Set("Stripe-Signature", header)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("event %d answered %d, want 200", i, resp.StatusCode)
		}
	}
	// The one worker is now stuck fetching from Stripe; the rest wait in
	// the queue. Kill the process with no chance to clean up.
	select {
	case <-gate.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("no event reached the Stripe fetch within 30s")
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	before := eventStatuses(t, env)
	if before["processed"] == n {
		t.Fatalf("every event was processed before the kill (%v): the test caught nothing in between", before)
	}

	gate.open()
	second, _ := startProcess(t, bin, env)
	waitUntil(t, 90*time.Second, func() bool { return eventStatuses(t, env)["processed"] == n })
	if err := second.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	_ = second.Wait()

	db := openEnvDB(t, env)
	var subs, snapshots int
	if err := db.QueryRow(`SELECT COUNT(*) FROM subscriptions`).Scan(&subs); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM subscription_snapshots`).Scan(&snapshots); err != nil {
		t.Fatal(err)
	}
	if subs != n || snapshots != n {
		t.Errorf("after recovery: %d subscriptions and %d snapshots, want %d of each (every event once)", subs, snapshots, n)
	}
}

// startProcess runs the binary's serve and returns it with the address it
// listens on.
func startProcess(t *testing.T, bin string, env map[string]string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var entry map[string]any
			if json.Unmarshal(sc.Bytes(), &entry) == nil && entry["msg"] == "listening" {
				addrs <- entry["addr"].(string)
			}
		}
	}()
	select {
	case addr := <-addrs:
		return cmd, addr
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start listening within 30s")
		return nil, ""
	}
}

func openEnvDB(t *testing.T, env map[string]string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), sqldb.Options{URL: env["DATABASE_URL"], DataDir: env["DATA_DIR"]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func eventStatuses(t *testing.T, env map[string]string) map[string]int {
	t.Helper()
	db, err := sqldb.Open(context.Background(), sqldb.Options{URL: env["DATABASE_URL"], DataDir: env["DATA_DIR"]})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT status, COUNT(*) FROM stripe_events GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

// waitUntil checks cond every 100 ms until it holds or the time is up: a
// wait on an observable outcome (the queue's work), with a deadline.
func waitUntil(t testing.TB, limit time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("condition not reached within %s", limit)
		}
	}
}
