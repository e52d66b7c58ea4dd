//go:build ignore

// voteload casts votes as patrons would, POST /api/v1/rounds/{id}/votes
// with a session cookie, and reports the accepted votes a second and the
// latency; -mode get reads the round instead (GET /api/v1/rounds/{id},
// anonymous: topics and the live tally).
//
//	go build -o /tmp/voteload bench/voteload.go
//	/tmp/voteload -c 64 -d 20s                    # closed loop: as fast as the box answers
//	/tmp/voteload -c 64 -d 20s -rate 500          # open loop: 500 votes/s on a fixed schedule
//	/tmp/voteload -c 64 -d 20s -mode get          # GET the round
//
// It runs against the database and sessions bench/votes.sh seeds: patron n
// is member mem_bv_<n> with session "benchsess-<n>", so the cookie is
// patronage_session=benchsess-<n>. The round is -round, else the one in
// /tmp/patronage-votes-state/round, else the first open round the API
// lists; its topics are read from GET /api/v1/rounds/{id} at start.
//
// Each worker takes the next unused patron from a shared counter over
// -patrons FROM-TO and casts that patron's 3 votes one after the other,
// each for a different topic (positions (7n + j) mod topics, j = 0, 1, 2),
// then takes the next patron. A fresh patron per 3 votes means every vote
// is new (201) and no patron exceeds the round's votes_per_patron (3). A
// run that used up the range stops and says so; a later run on the same
// database must start past the patrons an earlier one used (the last line
// says which).
//
// Writes carry Sec-Fetch-Site: same-origin, as a browser's fetch from the
// site's own pages does (the server refuses cookie writes without it or a
// matching Origin).
//
// Latency is from the moment a request was due to the moment its answer
// was read, each vote separately. In the closed loop (-rate 0) a request is
// due when its worker is free, as in wrk. In the open loop (-rate R)
// requests are due on a fixed schedule of R a second whatever the server
// does, at most -c in flight: a request waiting for a free worker counts its
// wait (no coordinated omission).
//
// Answers are counted by status: 201 (a new vote; the only success for
// votes), 200 (the vote was already there), 409 (budget used or round
// closed), 429 (rate limited), anything else. With -mode get, 200 is the
// success (204 too, for bench/gin204.go with -path /). When more than -maxerr of the answers (and at least 50) are not
// successes, the run stops early and prints what came back.
// The last line, ROW, is for the tables: ok/s, p50, p99, p99.9, max, errors.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patronage/patronage/bench/loadgen"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:18081", "the server")
	roundID := flag.String("round", "", "round id (default: /tmp/patronage-votes-state/round, else the first open round)")
	mode := flag.String("mode", "vote", "vote (POST …/votes) or get (GET /api/v1/rounds/{id}, anonymous)")
	conns := flag.Int("c", 64, "connections (workers; requests in flight at most)")
	dur := flag.Duration("d", 20*time.Second, "how long to send")
	rate := flag.Float64("rate", 0, "open loop: requests a second on a fixed schedule (0: closed loop)")
	patrons := flag.String("patrons", "1-60000", "patron numbers to use, FROM-TO (each casts 3 votes)")
	warmup := flag.Duration("warmup", 0, "leave requests due in this first stretch out of the figures")
	every := flag.Duration("every", 0, "also print answered/s and p99 for each interval of this length (to stderr)")
	maxErr := flag.Float64("maxerr", 0.01, "stop early when more than this share of the answers are not successes")
	getPath := flag.String("path", "", "-mode get: GET this path instead of the round (no round looked up; e.g. / for bench/gin204.go)")
	flag.Parse()

	var from, to int64
	if f, t, ok := strings.Cut(*patrons, "-"); ok {
		from, _ = strconv.ParseInt(f, 10, 64)
		to, _ = strconv.ParseInt(t, 10, 64)
	}
	if from < 1 || to < from {
		fail("-patrons: want FROM-TO with 1 <= FROM <= TO, got %q", *patrons)
	}
	if *mode != "vote" && *mode != "get" {
		fail("-mode: want vote or get")
	}

	client := loadgen.Client(*conns)

	var round string
	var topics []string
	var roundURL string
	if *mode == "get" && *getPath != "" {
		round, roundURL = "(none: -path "+*getPath+")", *base+*getPath
	} else {
		round, topics = findRound(client, *base, *roundID)
		roundURL = *base + "/api/v1/rounds/" + round
	}
	if *mode == "vote" && len(topics) < 3 {
		fail("round %s has %d topics; want at least 3", round, len(topics))
	}
	votesURL := roundURL + "/votes"

	ctx, cancel := loadgen.Run(*dur)
	defer cancel()

	var nextPatron atomic.Int64 // patrons handed out
	nextPatron.Store(from - 1)
	var exhausted atomic.Bool
	var answered, bad atomic.Int64 // for the early stop
	var stopped atomic.Value       // why the run stopped early

	start := time.Now()
	measureFrom := start.Add(*warmup)
	schedule := loadgen.NewSchedule(ctx, start, *rate, 0)
	progress := loadgen.NewProgress(*every, start)

	type result struct {
		lat                                 []time.Duration
		s201, s200, s409, s429, other, errs int64
		sent, warm                          int64
		lastPatron                          int64
		firstErr                            map[int]string // status (0: transport) → first body
	}
	results := make([]result, *conns)
	var wg sync.WaitGroup
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := &results[w]
			r.lat = make([]time.Duration, 0, 1<<15)
			r.firstErr = map[int]string{}
			patron, j := int64(0), 3 // j: votes this patron has cast; 3 = take the next
			var body []byte
			for {
				at, more := schedule.Next(ctx)
				if !more {
					return
				}
				var req *http.Request
				if *mode == "vote" {
					if j == 3 {
						patron = nextPatron.Add(1)
						if patron > to {
							exhausted.Store(true)
							cancel()
							return
						}
						r.lastPatron = max(r.lastPatron, patron)
						j = 0
					}
					topic := topics[(7*patron+int64(j))%int64(len(topics))]
					j++
					body = append(body[:0], `{"topic_id":"`...)
					body = append(body, topic...)
					body = append(body, `"}`...)
					req, _ = http.NewRequest(http.MethodPost, votesURL, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Cookie", "patronage_session=benchsess-"+strconv.FormatInt(patron, 10))
					req.Header.Set("Sec-Fetch-Site", "same-origin")
				} else {
					req, _ = http.NewRequest(http.MethodGet, roundURL, nil)
				}
				r.sent++
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil && !schedule.Open() {
						r.sent--
						return // cut off by the end of the run
					}
					r.errs++
					if _, ok := r.firstErr[0]; !ok {
						r.firstErr[0] = err.Error()
					}
					noteBad(&answered, &bad, *maxErr, cancel, &stopped)
					continue
				}
				rb, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat := time.Since(at)
				if at.Before(measureFrom) {
					r.warm++
					r.sent--
					continue
				}
				r.lat = append(r.lat, lat)
				progress.Add(lat)
				ok := false
				switch resp.StatusCode {
				case http.StatusCreated:
					r.s201++
					ok = *mode == "vote"
				case http.StatusOK:
					r.s200++
					ok = *mode == "get"
				case http.StatusNoContent: // bench/gin204.go
					r.s200++
					ok = *mode == "get"
				case http.StatusConflict:
					r.s409++
				case http.StatusTooManyRequests:
					r.s429++
				default:
					r.other++
				}
				answered.Add(1)
				if !ok {
					if _, seen := r.firstErr[resp.StatusCode]; !seen {
						r.firstErr[resp.StatusCode] = string(bytes.TrimSpace(rb))
					}
					noteBad(&answered, &bad, *maxErr, cancel, &stopped)
				}
			}
		}(w)
	}
	wg.Wait()
	secs := time.Since(measureFrom).Seconds()
	if d := *dur - *warmup; secs > d.Seconds() {
		secs = d.Seconds()
	}

	var all []time.Duration
	var s201, s200, s409, s429, other, errs, sent, warm, lastPatron int64
	firstErr := map[int]string{}
	for _, r := range results {
		all = append(all, r.lat...)
		s201 += r.s201
		s200 += r.s200
		s409 += r.s409
		s429 += r.s429
		other += r.other
		errs += r.errs
		sent += r.sent
		warm += r.warm
		lastPatron = max(lastPatron, r.lastPatron)
		for k, v := range r.firstErr {
			if _, ok := firstErr[k]; !ok {
				firstErr[k] = v
			}
		}
	}
	lat := loadgen.Summarize(all)
	okName, ok, bad2 := "votes (201)", s201, s200+s409+s429+other+errs
	if *mode == "get" {
		okName, ok, bad2 = "reads (2xx)", s200, s201+s409+s429+other+errs
	}
	fmt.Printf("voteload: %s %s, %d connections, round %s (%d topics)\n", *mode, loadgen.LoopName(*rate), *conns, round, len(topics))
	if *warmup > 0 {
		fmt.Printf("warm-up       %d requests in the first %s, not counted below\n", warm, *warmup)
	}
	fmt.Printf("sent          %d in %.1f s\n", sent, secs)
	fmt.Printf("%-13s %d (%.0f/s)\n", okName, ok, float64(ok)/secs)
	fmt.Printf("answers       201 %d, 200 %d, 409 %d, 429 %d, other %d, transport errors %d\n", s201, s200, s409, s429, other, errs)
	for _, k := range slices.Sorted(func(yield func(int) bool) {
		for k := range firstErr {
			if !yield(k) {
				return
			}
		}
	}) {
		name := strconv.Itoa(k)
		if k == 0 {
			name = "transport"
		}
		fmt.Printf("first %-7s %.300s\n", name, firstErr[k])
	}
	if why, _ := stopped.Load().(string); why != "" {
		fmt.Printf("STOPPED EARLY %s\n", why)
	}
	if exhausted.Load() {
		fmt.Printf("STOPPED EARLY every patron in %s was used: give a larger or later -patrons range (or run votes.sh fresh)\n", *patrons)
	}
	if *mode == "vote" {
		fmt.Printf("patrons used  %d-%d (next run: -patrons %d-%d)\n", from, min(lastPatron, to), min(lastPatron, to)+1, to)
	}
	lat.Print(float64(ok)/secs, []float64{50, 90, 99, 99.9, 100}, bad2)
}

// noteBad counts an unsuccessful answer and stops the run when they are
// more than maxErr of all answers (after at least 50 of them).
func noteBad(answered, bad *atomic.Int64, maxErr float64, cancel context.CancelFunc, stopped *atomic.Value) {
	b := bad.Add(1)
	if n := answered.Load(); b >= 50 && float64(b) > maxErr*float64(max(n, 1)) {
		stopped.CompareAndSwap(nil, fmt.Sprintf("after %d unsuccessful answers of %d (more than %.1f %%)", b, n, 100*maxErr))
		cancel()
	}
}

// findRound names the round to vote in and lists its topics in order.
func findRound(client *http.Client, base, id string) (string, []string) {
	if id == "" {
		if b, err := os.ReadFile("/tmp/patronage-votes-state/round"); err == nil {
			id = strings.TrimSpace(string(b))
		}
	}
	if id == "" {
		var list struct {
			Rounds []struct {
				ID   string `json:"id"`
				Open bool   `json:"open"`
			} `json:"rounds"`
		}
		getJSON(client, base+"/api/v1/rounds", &list)
		for _, r := range list.Rounds {
			if r.Open {
				id = r.ID
				break
			}
		}
		if id == "" {
			fail("no open round at %s; give -round", base)
		}
	}
	var one struct {
		Round struct {
			Topics []struct {
				ID string `json:"id"`
			} `json:"topics"`
		} `json:"round"`
	}
	getJSON(client, base+"/api/v1/rounds/"+id, &one)
	var topics []string
	for _, t := range one.Round.Topics {
		topics = append(topics, t.ID)
	}
	return id, topics
}

func getJSON(client *http.Client, url string, v any) {
	resp, err := client.Get(url)
	if err != nil {
		fail("%v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fail("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		fail("GET %s: %v", url, err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "voteload: "+format+"\n", args...)
	os.Exit(1)
}
