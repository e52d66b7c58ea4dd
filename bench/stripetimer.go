//go:build ignore

// stripetimer is a timing reverse proxy for the checkout benchmark: put it
// between Patronage and stripe-mock (STRIPE_API_BASE=http://<its address>)
// and it writes one line per Stripe call with how long the call took as
// seen from just outside stripe-mock, so the server's own time can be
// computed per request (see owntime.go and README.md).
//
//	go build -o /tmp/stripetimer bench/stripetimer.go
//	/tmp/stripetimer -listen 127.0.0.1:12310 -upstream http://127.0.0.1:12301 -out /tmp/stripe-calls.tsv
//
// Each line: start (unix ns), duration (µs), method, path, status,
// Idempotency-Key, metadata[member_id], email. The duration runs from the
// moment the proxy has the request headers until the whole response has
// been written back, so it includes the proxy↔stripe-mock loopback hop and
// the proxy's own forwarding work; the server↔proxy hop is not in it and is
// therefore counted as the server's own time (the conservative side).
// The log is flushed on SIGINT/SIGTERM.
//
// With -replay, the first response to POST /v1/customers and to POST
// /v1/checkout/sessions (the calls a checkout makes) is fetched from
// stripe-mock and every later call gets a copy of it at once (its object id
// made unique with a counter, since customer ids are unique in the members
// table). That takes stripe-mock's CPU off a small machine, so what remains
// of the server's latency is its own work, with the same response bodies
// for stripe-go to decode.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func main() {
	listen := flag.String("listen", "127.0.0.1:12310", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:12301", "stripe-mock's HTTP address")
	out := flag.String("out", "stripe-calls.tsv", "where to write one line per call")
	replay := flag.Bool("replay", false, "answer repeated calls from a cached stripe-mock response")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	w := bufio.NewWriterSize(f, 1<<20)
	flush := func() { mu.Lock(); w.Flush(); mu.Unlock() }

	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}

	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		sw := &statusWriter{ResponseWriter: rw, status: 200}
		if *replay && r.Method == http.MethodPost && (r.URL.Path == "/v1/customers" || r.URL.Path == "/v1/checkout/sessions") {
			serveReplay(sw, r, proxy)
		} else {
			proxy.ServeHTTP(sw, r)
		}
		d := time.Since(start)
		mu.Lock()
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", start.UnixNano(), d.Microseconds(), r.Method, r.URL.Path,
			sw.status, r.Header.Get("Idempotency-Key"), form.Get("metadata[member_id]"), form.Get("email"))
		mu.Unlock()
	})

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; flush(); f.Close(); os.Exit(0) }()
	go func() {
		for range time.Tick(2 * time.Second) {
			flush()
		}
	}()
	log.Printf("stripetimer: %s -> %s, writing %s", *listen, *upstream, *out)
	log.Fatal(http.ListenAndServe(*listen, h))
}

type cached struct {
	status int
	header http.Header
	body   []byte
	id     []byte // the object's id, replaced in every copy
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*cached{}
	serial  atomic.Int64
	idField = regexp.MustCompile(`"id":\s*"((?:cus|cs)_[A-Za-z0-9_]+)"`)
)

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

func serveReplay(w http.ResponseWriter, r *http.Request, upstream http.Handler) {
	key := r.Method + " " + r.URL.Path
	cacheMu.Lock()
	c := cache[key]
	cacheMu.Unlock()
	if c == nil {
		// Ask for a plain body so the id can be found and replaced.
		r.Header.Del("Accept-Encoding")
		rec := &recorder{header: http.Header{}, status: 200}
		upstream.ServeHTTP(rec, r)
		c = &cached{status: rec.status, header: rec.header, body: rec.body.Bytes()}
		if m := idField.FindSubmatch(c.body); m != nil {
			c.id = m[1]
		}
		if c.status == 200 {
			cacheMu.Lock()
			cache[key] = c
			cacheMu.Unlock()
		}
	}
	body := c.body
	if c.id != nil {
		body = bytes.ReplaceAll(body, c.id, append(append([]byte{}, c.id...), []byte("r"+strconv.FormatInt(serial.Add(1), 10))...))
	}
	for k, v := range c.header {
		if k != "Content-Length" && k != "Content-Encoding" && k != "Idempotency-Key" {
			w.Header()[k] = v
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(c.status)
	w.Write(body)
}
