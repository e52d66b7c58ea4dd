package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
)

// logWatcher collects a server's JSON log lines and reports the address it
// announces when it starts listening.
type logWatcher struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	addr     chan string
	announce sync.Once
}

func newLogWatcher() *logWatcher { return &logWatcher{addr: make(chan string, 1)} }

func (w *logWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, line := range strings.Split(string(p), "\n") {
		var entry struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
			w.announce.Do(func() { w.addr <- entry.Addr })
		}
	}
	return len(p), nil
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type server struct {
	URL  string
	logs *logWatcher
	stop func() error
}

// startServer runs `patronage serve` in-process with the given environment
// (on a random port unless env sets HTTP_ADDR) and waits until /healthz
// answers.
func startServer(t *testing.T, env map[string]string) *server {
	t.Helper()
	if env["HTTP_ADDR"] == "" {
		env["HTTP_ADDR"] = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"patronage", "serve"}, mapEnv(env), io.Discard, logs)
	}()
	var addr string
	select {
	case addr = <-logs.addr:
	case err := <-done:
		cancel()
		t.Fatalf("serve stopped before listening: %v\nlogs:\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve did not listen within 30s\nlogs:\n%s", logs)
	}
	s := &server{URL: "http://" + addr, logs: logs}
	stopped := false
	s.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("serve returned %v on shutdown", err)
		}
	})
	if code, body := get(t, s.URL+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	return s
}

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func runCommand(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"patronage"}, args...), mapEnv(env), &out, &errOut)
	code = exitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

func TestServeOnTheEmbeddedDefaultKeepsDataAcrossRestarts(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"DATA_DIR": dataDir}

	s := startServer(t, env)
	if code, body := get(t, s.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "patronage.db")); err != nil {
		t.Fatalf("the embedded database was not created: %v", err)
	}
	if !strings.Contains(s.logs.String(), "started an in-process Redis") {
		t.Error("the server did not say it started an in-process Redis")
	}
	before, _, _ := runCommand(t, env, "migrate", "status")
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	s = startServer(t, env)
	if code, _ := get(t, s.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz after restart = %d", code)
	}
	after, _, _ := runCommand(t, env, "migrate", "status")
	if before != after || !strings.Contains(after, "members") || strings.Contains(after, "pending") {
		t.Errorf("migration history changed across a restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestServeOnPostgreSQLAndRedis(t *testing.T) {
	if testenv.PostgresURL(t) == "" || testenv.RedisURL(t) == "" {
		t.Skip("TEST_DATABASE_URL and TEST_REDIS_URL are not both set")
	}
	env := map[string]string{
		"DATABASE_URL":     testenv.PostgresSchemaURL(t),
		"REDIS_URL":        testenv.RedisURL(t),
		"REDIS_KEY_PREFIX": testenv.RedisPrefix(t),
		"DATA_DIR":         filepath.Join(t.TempDir(), "unused"),
	}
	s := startServer(t, env)
	code, body := get(t, s.URL+"/readyz")
	if code != 200 || !strings.Contains(body, `"database":"ok"`) || !strings.Contains(body, `"redis":"ok"`) {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	if strings.Contains(s.logs.String(), "in-process Redis") {
		t.Error("an in-process Redis started although REDIS_URL is set")
	}
	if _, err := os.Stat(env["DATA_DIR"]); !os.IsNotExist(err) {
		t.Error("DATA_DIR was created although DATABASE_URL is set")
	}
	if out, _, _ := runCommand(t, env, "migrate", "status"); !strings.Contains(out, "PostgreSQL") || strings.Contains(out, "pending") {
		t.Errorf("migrate status on PostgreSQL:\n%s", out)
	}
}

func TestBadConfigurationStopsStartUpWithExitCode2(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"REDIS_URL", "nonsense", "REDIS_URL: missing scheme (want redis:// or rediss://)"},
		{"DATABASE_URL", "mysql://x", `DATABASE_URL: unsupported scheme "mysql"`},
		{"MAX_BODY_BYTES", "-1", "MAX_BODY_BYTES:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			_, stderr, code := runCommand(t, map[string]string{tt.name: tt.value, "DATA_DIR": dataDir, "HTTP_ADDR": "127.0.0.1:0"}, "serve")
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Error("start-up touched DATA_DIR before refusing the configuration")
			}
		})
	}
}

func TestEverySubcommandHasHelp(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"migrate", "--help"}, {"migrate", "status", "--help"}, {"version", "--help"}, {"help"}, {"--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, _, code := runCommand(t, map[string]string{}, args...)
			if code != 0 || !strings.Contains(stdout, "Usage") && !strings.Contains(stdout, "usage") {
				t.Errorf("exit %d, stdout %q: want usage and exit 0", code, stdout)
			}
		})
	}
}

func TestUnknownCommandsAndArgumentsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"serv"}, {"migrate", "sideways"}, {"version", "extra"}, {"serve", "--port", "1"}} {
		_, stderr, code := runCommand(t, map[string]string{}, args...)
		if code != 2 || stderr == "" {
			t.Errorf("%v: exit %d stderr %q, want exit 2 and a message", args, code, stderr)
		}
	}
}

func TestVersionNamesTheStripeAPIVersion(t *testing.T) {
	stdout, _, code := runCommand(t, map[string]string{}, "version")
	if code != 0 || !strings.HasPrefix(stdout, "patronage ") || !strings.Contains(stdout, "Stripe API 2023-10-16") {
		t.Errorf("version = %q (exit %d)", stdout, code)
	}
}

func TestADatabaseFromANewerBinaryIsRefused(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"DATA_DIR": dataDir, "HTTP_ADDR": "127.0.0.1:0"}
	if _, stderr, code := runCommand(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d %s", code, stderr)
	}
	db, err := sqldb.Open(context.Background(), sqldb.Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', $1)`, sqldb.Now())
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"migrate"}, {"serve"}} {
		_, stderr, code := runCommand(t, env, args...)
		if code != 1 || !strings.Contains(stderr, "newer patronage binary") {
			t.Errorf("%v: exit %d, stderr %q; want a refusal that asks for a newer binary", args, code, stderr)
		}
	}
	env["MIGRATE_ON_START"] = "false"
	if _, stderr, code := runCommand(t, env, "serve"); code != 1 || !strings.Contains(stderr, "newer patronage binary") {
		t.Errorf("serve with MIGRATE_ON_START=false: exit %d, stderr %q", code, stderr)
	}
}

func TestMigrateOnStartFalseRefusesAnUnmigratedDatabase(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir(), "HTTP_ADDR": "127.0.0.1:0", "MIGRATE_ON_START": "false"}
	_, stderr, code := runCommand(t, env, "serve")
	if code != 1 || !strings.Contains(stderr, "run `patronage migrate`") {
		t.Fatalf("exit %d, stderr %q; want a refusal that says to migrate", code, stderr)
	}
	if _, _, code := runCommand(t, env, "migrate"); code != 0 {
		t.Fatal("migrate failed")
	}
	s := startServer(t, env)
	if code, _ := get(t, s.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz after migrating = %d", code)
	}
}

func TestMigrateStatusListsEachMigration(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	out, _, _ := runCommand(t, env, "migrate", "status")
	if !strings.Contains(out, "0001") || !strings.Contains(out, "pending") {
		t.Errorf("status before migrating:\n%s", out)
	}
	runCommand(t, env, "migrate")
	out, _, _ = runCommand(t, env, "migrate", "status")
	if strings.Contains(out, "pending") || !strings.Contains(out, fmt.Sprint(time.Now().UTC().Year())) {
		t.Errorf("status after migrating:\n%s", out)
	}
}
