// Package loadgen is what the load generators in bench/ share: the HTTP
// client, the open-loop schedule, per-interval progress and the latency
// summary with its ROW line for docs/benchmarks.md.
//
// Latency is from the moment a request was due to the moment its answer was
// read. In a closed loop a request is due when its worker is free, as in
// wrk. In an open loop requests are due on a fixed schedule whatever the
// server does, at most one per worker in flight: a request waiting for a
// free worker counts its wait (no coordinated omission).
package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"time"
)

// Client is an HTTP client keeping up to conns connections to one server.
func Client(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// Run is the context of a run: it ends after d (0: no limit) or on ^C, or
// when cancel is called.
func Run(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	go func() { <-sig; cancel() }()
	if d <= 0 {
		return ctx, cancel
	}
	timed, stop := context.WithTimeout(ctx, d)
	return timed, func() { stop(); cancel() }
}

// Schedule hands out due times: an open loop at rate a second from start,
// at most limit of them (0: no limit), until ctx ends. A zero rate is a
// closed loop: Next then takes the current time.
type Schedule struct {
	due <-chan time.Time
}

// NewSchedule starts the schedule.
func NewSchedule(ctx context.Context, start time.Time, rate float64, limit int64) Schedule {
	if rate <= 0 {
		return Schedule{}
	}
	due := make(chan time.Time, 1<<20)
	go func() {
		defer close(due)
		interval := time.Duration(float64(time.Second) / rate)
		timer := time.NewTimer(0)
		<-timer.C
		for i := int64(0); limit == 0 || i < limit; i++ {
			at := start.Add(time.Duration(i) * interval)
			if d := time.Until(at); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			} else if ctx.Err() != nil {
				return
			}
			due <- at
		}
	}()
	return Schedule{due: due}
}

// Open reports whether this is an open loop.
func (s Schedule) Open() bool { return s.due != nil }

// Next is when the next request is due; false once the run is over.
func (s Schedule) Next(ctx context.Context) (time.Time, bool) {
	if s.due == nil {
		return time.Now(), ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return time.Time{}, false
	case at, ok := <-s.due:
		return at, ok
	}
}

// Progress prints answered/s and p99 for each interval of length every to
// stderr; send it each answered request's latency. A nil Progress (every
// is 0) takes nothing.
type Progress chan time.Duration

// NewProgress starts printing; start is the run's start.
func NewProgress(every time.Duration, start time.Time) Progress {
	if every <= 0 {
		return nil
	}
	p := make(Progress, 1<<16)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var lat []time.Duration
		from := time.Now()
		for {
			select {
			case d := <-p:
				lat = append(lat, d)
			case now := <-t.C:
				fmt.Fprintf(os.Stderr, "%s +%5.1fs answered %6.0f/s p99 %s\n", now.Format("15:04:05"), now.Sub(start).Seconds(),
					float64(len(lat))/now.Sub(from).Seconds(), MS(Summarize(lat).At(99)))
				lat, from = lat[:0], now
			}
		}
	}()
	return p
}

// Add reports one answered request's latency.
func (p Progress) Add(d time.Duration) {
	if p != nil {
		p <- d
	}
}

// Latencies are a run's latencies, sorted.
type Latencies []time.Duration

// Summarize sorts the latencies (in place).
func Summarize(all []time.Duration) Latencies {
	slices.Sort(all)
	return all
}

// At is the p-th percentile (100: the maximum); 0 when there are none.
func (l Latencies) At(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(int(p/100*float64(len(l))), len(l)-1)]
}

// MS prints a duration in milliseconds.
func MS(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// Print writes the percentile lines, then the ROW line for the tables:
// rate, then the percentiles in cols (e.g. 50, 99, 99.9, 100), then errors.
func (l Latencies) Print(rate float64, cols []float64, errors int64) {
	for _, p := range []float64{50, 90, 99, 99.9} {
		fmt.Printf("%-13s %s\n", fmt.Sprintf("p%g", p), MS(l.At(p)))
	}
	if len(l) > 0 {
		fmt.Printf("max           %s\n", MS(l.At(100)))
	}
	fmt.Printf("ROW | %.0f |", rate)
	for _, p := range cols {
		fmt.Printf(" %s |", MS(l.At(p)))
	}
	fmt.Printf(" %d |\n", errors)
}

// LoopName says which loop a rate means.
func LoopName(rate float64) string {
	if rate > 0 {
		return fmt.Sprintf("open loop at %.0f/s", rate)
	}
	return "closed loop"
}
