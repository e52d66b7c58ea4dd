//go:build chaos

// The fault-injection suite (make chaos; a bounded run is part of the test
// command): the real binary against real PostgreSQL and Redis, killed,
// restarted, cut off from its database and its Redis flushed under load.
// This file holds its machinery: a Redis server of the suite's own (so it
// can be killed and flushed without touching anyone else's), a TCP proxy
// in front of PostgreSQL (so the database can vanish for one server and
// come back), and server processes on fixed addresses that can be killed
// and started again.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/testenv"
)

// knob is an integer setting of the suite from the environment: the
// bounded run uses the defaults, a longer run by hand sets more.
func knob(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}

// chaosPostgres is TEST_DATABASE_URL; the suite is about PostgreSQL, so
// without it (outside CI) there is nothing to run.
func chaosPostgres(t testing.TB) {
	if testenv.PostgresURL(t) == "" {
		t.Skip("!!! NOT TESTED: the fault-injection suite needs TEST_DATABASE_URL (PostgreSQL) !!!")
	}
}

// freeAddr is a loopback address nothing listens on (the port the kernel
// just gave out and took back), for a server that must keep its address
// across restarts.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// schemaOf is the schema a testenv.PostgresSchemaURL connects to.
func schemaOf(t testing.TB, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	s := u.Query().Get("search_path")
	if !regexp.MustCompile(`^[a-z0-9_]+$`).MatchString(s) {
		t.Fatalf("no plain schema in %s", dbURL)
	}
	return s
}

// redisProcess is a redis-server of the suite's own, with nothing kept on
// disk: a restart loses every key, as a Redis without persistence does.
type redisProcess struct {
	t    testing.TB
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedisProcess(t testing.TB) *redisProcess {
	t.Helper()
	bin := os.Getenv("TEST_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			if testenv.InCI() {
				t.Fatal("CI=true and redis-server is not on PATH (nor TEST_REDIS_SERVER set): the suite restarts a Redis of its own")
			}
			t.Skip("!!! NOT TESTED: the fault-injection suite needs redis-server on PATH or TEST_REDIS_SERVER !!!")
		}
	}
	r := &redisProcess{t: t, bin: bin, dir: t.TempDir(), addr: freeAddr(t)}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisProcess) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.addr, db) }

func (r *redisProcess) start() {
	r.t.Helper()
	host, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command(r.bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	cmd, done := r.cmd, r.done
	go func() { _ = cmd.Wait(); close(done) }()
	c := r.client()
	defer c.Close()
	waitUntil(r.t, 30*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil })
}

func (r *redisProcess) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
}

// restart kills Redis with no warning and starts it again, empty.
func (r *redisProcess) restart() {
	r.kill()
	r.start()
}

func (r *redisProcess) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
}

// flush deletes every key of every database, as FLUSHALL by an operator
// (or a failover to an empty replica) would.
func (r *redisProcess) flush() {
	c := r.client()
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		r.t.Fatalf("FLUSHALL: %v", err)
	}
}

// tcpProxy forwards a loopback port to a target. stop closes the port and
// cuts every connection through it — to the server behind it, the target
// is down — and start opens it again.
type tcpProxy struct {
	t      testing.TB
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, addr: freeAddr(t), conns: map[net.Conn]struct{}{}}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen %s: %v", p.addr, err)
	}
	p.ln = ln
	go p.accept(ln)
}

func (p *tcpProxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *tcpProxy) pipe(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(server, client); server.Close() }()
	go func() { defer wg.Done(); _, _ = io.Copy(client, server); client.Close() }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// track records a connection pair, unless the proxy stopped meanwhile.
func (p *tcpProxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// replica is the binary serving on a fixed address, started again on the
// same one after a kill. Its log (JSON lines on stderr) goes to a file the
// suite reads at the end.
type replica struct {
	t      testing.TB
	name   string
	bin    string
	env    map[string]string
	addr   string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
	starts atomic.Int32
}

func newReplica(t testing.TB, bin, name string, env map[string]string) *replica {
	r := &replica{t: t, name: name, bin: bin, env: env, addr: freeAddr(t), log: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(r.kill)
	return r
}

func (r *replica) URL() string { return "http://" + r.addr }

// start runs `patronage serve` and waits until it answers /healthz.
func (r *replica) start() {
	r.t.Helper()
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(r.bin, "serve")
	cmd.Env = append(os.Environ(), "HTTP_ADDR="+r.addr, "ENV_FILE=/dev/null")
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		r.t.Fatalf("start %s: %v", r.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	r.starts.Add(1)
	client := &http.Client{Timeout: time.Second}
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := client.Get(r.URL() + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			r.t.Fatalf("%s exited at start:\n%s", r.name, r.tail(20))
		case <-deadline:
			r.t.Fatalf("%s did not answer /healthz within 60s:\n%s", r.name, r.tail(20))
		case <-tick.C:
		}
	}
}

// kill ends the process with SIGKILL: no shutdown, nothing flushed.
func (r *replica) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
	r.cmd = nil
}

// stop ends the process the way a deploy does (SIGTERM) and waits.
func (r *replica) stop() {
	r.t.Helper()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(60 * time.Second):
		r.t.Errorf("%s did not stop within 60s of SIGTERM", r.name)
		r.kill()
	}
	r.cmd = nil
}

func (r *replica) logText() string {
	b, err := os.ReadFile(r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func (r *replica) tail(n int) string {
	lines := strings.Split(strings.TrimSpace(r.logText()), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkLog fails the test if the process ever panicked or printed a Go
// stack, whatever was done to it.
func (r *replica) checkLog() {
	r.t.Helper()
	for _, bad := range []string{"panic:", "goroutine ", "runtime error", "[recovered]"} {
		if i := strings.Index(r.logText(), bad); i >= 0 {
			r.t.Errorf("%s's log holds %q:\n%s", r.name, bad, r.logText()[max(0, i-500):min(len(r.logText()), i+1500)])
		}
	}
}

// downGate lets senders wait, without polling, for a server that is
// being restarted.
type downGate struct {
	mu sync.Mutex
	up chan struct{}
}

func newDownGate() *downGate {
	g := &downGate{up: make(chan struct{})}
	close(g.up)
	return g
}

func (g *downGate) down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.up:
		g.up = make(chan struct{})
	default:
	}
}

func (g *downGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.up:
	default:
		close(g.up)
	}
}

func (g *downGate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.up
}
