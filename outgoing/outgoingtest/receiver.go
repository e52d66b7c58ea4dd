// Package outgoingtest is a newsroom's webhook endpoint for tests: it
// records every delivery, answers what the test says, and can be stopped
// and started again on the same address, or made to drop every request
// unanswered, as a receiver that goes down for a while.
package outgoingtest

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Delivery is one request the receiver got.
type Delivery struct {
	Header http.Header
	Body   []byte
	Status int // what the receiver answered
}

// Receiver is an endpoint on a fixed loopback address.
type Receiver struct {
	t      testing.TB
	addr   string
	mu     sync.Mutex
	srv    *http.Server
	answer func(r *http.Request, body []byte) int
	drop   bool
	// Got receives every delivery, in arrival order.
	Got chan Delivery
	// Dropped receives the body of every request dropped while Drop is on.
	Dropped chan []byte
}

// New starts a receiver, stopped at the test's end.
func New(t testing.TB) *Receiver {
	r := &Receiver{t: t, addr: "127.0.0.1:0", Got: make(chan Delivery, 1000), Dropped: make(chan []byte, 1000)}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is where to send the deliveries.
func (r *Receiver) URL() string { return "http://" + r.addr + "/hooks/patronage" }

// Start listens again (on the same address after a Stop).
func (r *Receiver) Start() {
	r.t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	status := http.StatusOK
	r.mu.Lock()
	answer, drop := r.answer, r.drop
	r.mu.Unlock()
	if drop {
		r.Dropped <- body
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	if answer != nil {
		status = answer(req, body)
	}
	r.Got <- Delivery{Header: req.Header.Clone(), Body: body, Status: status}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"thanks":true}`)
}

// Stop closes the listener and every connection: the endpoint is down.
func (r *Receiver) Stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Drop takes the endpoint down while its port stays open: each request is
// read, then its connection is cut with no answer, as a receiver that
// dies under it; Dropped hears what was tried. Unlike Stop, a test can
// tell which deliveries were tried while it was down. Answer again with
// Undrop.
func (r *Receiver) Drop() { r.setDrop(true) }

// Undrop ends Drop.
func (r *Receiver) Undrop() { r.setDrop(false) }

func (r *Receiver) setDrop(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop = on
}

// Answer sets the status each request gets (default 200).
func (r *Receiver) Answer(f func(*http.Request, []byte) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

// Next is the next delivery, failing the test if none comes within wait.
func (r *Receiver) Next(what string, wait time.Duration) Delivery {
	r.t.Helper()
	select {
	case d := <-r.Got:
		return d
	case <-time.After(wait):
		r.t.Fatalf("%s: nothing delivered within %s", what, wait)
		return Delivery{}
	}
}
