//go:build ignore

// webhookload posts signed Stripe events to POST /webhooks/stripe, as Stripe
// would deliver them, and reports the acknowledgement rate and latency.
//
//	go build -o /tmp/webhookload bench/webhookload.go
//	/tmp/webhookload -c 16 -d 20s                  # closed loop: as fast as the box answers
//	/tmp/webhookload -c 64 -d 20s -rate 2000       # open loop: 2,000 events/s on a fixed schedule
//	/tmp/webhookload -c 16 -n 20000 -d 0           # exactly 20,000 events, as fast as possible
//
// -warmup 2s leaves the requests due in the first two seconds out of the
// figures (the server opening its database connections); -every 1s also
// prints acknowledged/s and p99 for each second, to stderr.
//
// Every event has its own id (evt_<run>_<n>), so none is a duplicate
// delivery (a duplicate stores nothing and would flatter the rate). The
// body is a customer.subscription.updated event shaped like Stripe's at API
// version 2023-10-16 (3.4 kB): event n is about subscription
// sub_bench_<n mod -subs>, whose customer cus_bench_<k> and metadata
// member_id mem_bench_<k> are the members bench/webhook-seed.sql creates,
// on one of the seeded prices (three tiers, monthly or yearly, by k). The
// 1st, 3rd, … event for a subscription sets cancel_at_period_end, the 2nd,
// 4th, … clears it, so consecutive events change something, as real
// updates do.
//
// Each request is signed when it is sent: Stripe-Signature is
// t=<now>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with -secret>, as
// stripe-go's webhook package computes it, so signatures are never stale.
//
// Latency is from the moment a request was due to the moment its answer
// was read. In the closed loop (-rate 0) a request is due when its
// connection is free, as in wrk. In the open loop (-rate R) requests are
// due on a fixed schedule of R a second whatever the server does, and at
// most -c are in flight: a request that waits for a free connection counts
// its wait (no coordinated omission). Events still waiting for a
// connection when the run ends are neither sent nor counted, so an
// overloaded open-loop run understates its tail, if anything.
//
// A 200 whose body says "duplicate" is counted apart from acknowledgements;
// anything else than 200 is an error. The last line, ROW, is for the tables
// in docs/benchmarks.md: acked/s, p50, p99, p99.9, max, errors.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patronage/patronage/bench/loadgen"
)

var tiers = []struct {
	slug     string
	month    int64
	year     int64
	currency string
}{{"coffee", 500, 5000, "eur"}, {"lunch", 1500, 15000, "eur"}, {"dinner", 5000, 50000, "eur"}}

func main() {
	url := flag.String("url", "http://127.0.0.1:18080/webhooks/stripe", "webhook endpoint")
	secret := flag.String("secret", "whsec_bench", "the endpoint's signing secret (STRIPE_WEBHOOK_SECRET)")
	conns := flag.Int("c", 16, "connections (requests in flight at most)")
	dur := flag.Duration("d", 20*time.Second, "how long to send (0: until -n are sent)")
	total := flag.Int64("n", 0, "events to send at most (0: no limit, -d decides)")
	rate := flag.Float64("rate", 0, "open loop: events a second on a fixed schedule (0: closed loop)")
	subs := flag.Int("subs", 2000, "distinct subscriptions (and customers, members)")
	run := flag.String("run", strconv.FormatInt(time.Now().Unix(), 36), "tag making this run's event ids unique")
	typ := flag.String("type", "customer.subscription.updated", "event type")
	cpuprofile := flag.String("cpuprofile", "", "write this program's CPU profile here")
	warmup := flag.Duration("warmup", 0, "leave requests due in this first stretch out of the figures (connections being opened, statements prepared)")
	every := flag.Duration("every", 0, "also print acked/s and p99 for each interval of this length (to stderr)")
	money := flag.Bool("money", false, "each event of a subscription changes its quantity (1, 2, 1, …), so every event rewrites its history and its patron's staff figures")
	flag.Parse()
	if *dur == 0 && *total == 0 {
		fmt.Fprintln(os.Stderr, "webhookload: give -d or -n")
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	client := loadgen.Client(*conns)
	ctx, cancel := loadgen.Run(*dur)
	defer cancel()

	var seq atomic.Int64 // events handed out
	next := func() (int64, bool) {
		n := seq.Add(1)
		if *total > 0 && n > *total {
			return 0, false
		}
		return n, true
	}

	// Open loop: a scheduler hands out due times; closed loop: each worker
	// takes the next event when it is free.
	start := time.Now()
	measureFrom := start.Add(*warmup)
	schedule := loadgen.NewSchedule(ctx, start, *rate, *total)
	progress := loadgen.NewProgress(*every, start)

	type result struct {
		lat                            []time.Duration
		acked, dup, non200, errs, sent int64
		warm                           int64 // requests due during -warmup, not counted
		firstErr                       string
	}
	results := make([]result, *conns)
	var wg sync.WaitGroup
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := &results[w]
			r.lat = make([]time.Duration, 0, 1<<16)
			var buf bytes.Buffer
			mac := hmac.New(sha256.New, []byte(*secret))
			hexsum := make([]byte, 64)
			for {
				at, more := schedule.Next(ctx)
				if !more {
					return
				}
				n, ok := next()
				if !ok {
					return
				}
				now := time.Now().Unix()
				buf.Reset()
				writeEvent(&buf, *run, n, *subs, *typ, now, *money)
				body := buf.Bytes()
				mac.Reset()
				ts := strconv.FormatInt(now, 10)
				mac.Write([]byte(ts))
				mac.Write([]byte{'.'})
				mac.Write(body)
				hex.Encode(hexsum, mac.Sum(nil))
				req, _ := http.NewRequest(http.MethodPost, *url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
				req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
				req.Header.Set("Stripe-Signature", "t="+ts+",v1="+string(hexsum))
				r.sent++
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil && !schedule.Open() {
						r.sent--
						return // cut off by the end of the run
					}
					r.errs++
					if r.firstErr == "" {
						r.firstErr = err.Error()
					}
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
				switch {
				case resp.StatusCode != http.StatusOK:
					r.non200++
					if r.firstErr == "" {
						r.firstErr = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(rb))
					}
				case bytes.Contains(rb, []byte(`"duplicate":true`)):
					r.dup++
				default:
					r.acked++
				}
			}
		}(w)
	}
	wg.Wait()
	secs := time.Since(measureFrom).Seconds()

	var all []time.Duration
	var acked, dup, non200, errs, sent, warm int64
	firstErr := ""
	for _, r := range results {
		all = append(all, r.lat...)
		acked += r.acked
		dup += r.dup
		non200 += r.non200
		errs += r.errs
		sent += r.sent
		warm += r.warm
		if firstErr == "" {
			firstErr = r.firstErr
		}
	}
	fmt.Printf("webhookload: %s, %d connections, run %s, %d subscriptions, %s\n", loadgen.LoopName(*rate), *conns, *run, *subs, *typ)
	if *warmup > 0 {
		fmt.Printf("warm-up       %d requests in the first %s, not counted below\n", warm, *warmup)
	}
	fmt.Printf("sent          %d in %.1f s\n", sent, secs)
	fmt.Printf("acked         %d (%.0f/s)\n", acked, float64(acked)/secs)
	fmt.Printf("duplicates    %d\n", dup)
	fmt.Printf("errors        %d non-200, %d transport\n", non200, errs)
	if firstErr != "" {
		fmt.Printf("first error   %s\n", firstErr)
	}
	loadgen.Summarize(all).Print(float64(acked)/secs, []float64{50, 99, 99.9, 100}, non200+errs)
}

// writeEvent appends event n as JSON: a subscription object in the shape
// Stripe renders at 2023-10-16, with the fields Stripe sends (most null).
func writeEvent(b *bytes.Buffer, run string, n int64, subs int, typ string, now int64, money bool) {
	k := int((n - 1) % int64(subs))
	round := (n - 1) / int64(subs) // how many events this subscription had before
	t := tiers[k%len(tiers)]
	interval, amount := "month", t.month
	if k%5 == 4 {
		interval, amount = "year", t.year
	}
	sub := fmt.Sprintf("sub_bench_%05d", k)
	cus := fmt.Sprintf("cus_bench_%05d", k)
	mem := fmt.Sprintf("mem_bench_%05d", k)
	price := fmt.Sprintf("price_bench_%s_%s", t.slug, interval)
	product := "prod_bench_" + t.slug
	si := fmt.Sprintf("si_bench_%05d", k)
	// A subscription started 1–28 days ago, in its first period.
	startAt := now - int64(86400*(1+k%28))
	var periodEnd int64
	if interval == "month" {
		periodEnd = time.Unix(startAt, 0).UTC().AddDate(0, 1, 0).Unix()
	} else {
		periodEnd = time.Unix(startAt, 0).UTC().AddDate(1, 0, 0).Unix()
	}
	cancel := round%2 == 0 // the first event for a subscription sets it
	quantity := 1
	if money && round%2 == 1 {
		quantity = 2
	}
	canceledAt, reason, prevCancel, prevCanceledAt, prevReason := "null", "null", "true", strconv.FormatInt(now-60, 10), `"cancellation_requested"`
	if cancel {
		canceledAt, reason = strconv.FormatInt(now, 10), `"cancellation_requested"`
		prevCancel, prevCanceledAt, prevReason = "false", "null", "null"
	}
	plan := fmt.Sprintf(`{"id":"%s","object":"plan","active":true,"aggregate_usage":null,"amount":%d,"amount_decimal":"%d","billing_scheme":"per_unit","created":1698796800,"currency":"%s","interval":"%s","interval_count":1,"livemode":false,"metadata":{"patronage_tier":"%s"},"nickname":null,"product":"%s","tiers_mode":null,"transform_usage":null,"trial_period_days":null,"usage_type":"licensed"}`,
		price, amount, amount, t.currency, interval, t.slug, product)
	fmt.Fprintf(b, `{"id":"evt_%s_%d","object":"event","api_version":"2023-10-16","created":%d,"data":{"object":{`, run, n, now)
	fmt.Fprintf(b, `"id":"%s","object":"subscription","application":null,"application_fee_percent":null,"automatic_tax":{"enabled":false},"billing_cycle_anchor":%d,"billing_thresholds":null,"cancel_at":%s,"cancel_at_period_end":%t,"canceled_at":%s,"cancellation_details":{"comment":null,"feedback":null,"reason":%s},"collection_method":"charge_automatically","created":%d,"currency":"%s","current_period_end":%d,"current_period_start":%d,"customer":"%s","days_until_due":null,"default_payment_method":"pm_bench_%05d","default_source":null,"default_tax_rates":[],"description":null,"discount":null,"ended_at":null,`,
		sub, startAt, map[bool]string{true: strconv.FormatInt(periodEnd, 10), false: "null"}[cancel], cancel, canceledAt, reason, startAt, t.currency, periodEnd, startAt, cus, k)
	fmt.Fprintf(b, `"items":{"object":"list","data":[{"id":"%s","object":"subscription_item","billing_thresholds":null,"created":%d,"metadata":{},"plan":%s,"price":{"id":"%s","object":"price","active":true,"billing_scheme":"per_unit","created":1698796800,"currency":"%s","custom_unit_amount":null,"livemode":false,"lookup_key":"patronage_%s_%s_%s","metadata":{"patronage_tier":"%s"},"nickname":null,"product":"%s","recurring":{"aggregate_usage":null,"interval":"%s","interval_count":1,"trial_period_days":null,"usage_type":"licensed"},"tax_behavior":"unspecified","tiers_mode":null,"transform_quantity":null,"type":"recurring","unit_amount":%d,"unit_amount_decimal":"%d"},"quantity":%d,"subscription":"%s","tax_rates":[]}],"has_more":false,"total_count":1,"url":"/v1/subscription_items?subscription=%s"},`,
		si, startAt+1, plan, price, t.currency, t.slug, interval, t.currency, t.slug, product, interval, amount, amount, quantity, sub, sub)
	fmt.Fprintf(b, `"latest_invoice":"in_bench_%05d","livemode":false,"metadata":{"member_id":"%s"},"next_pending_invoice_item_invoice":null,"on_behalf_of":null,"pause_collection":null,"payment_settings":{"payment_method_options":null,"payment_method_types":null,"save_default_payment_method":"off"},"pending_invoice_item_interval":null,"pending_setup_intent":null,"pending_update":null,"plan":%s,"quantity":%d,"schedule":null,"start_date":%d,"status":"active","test_clock":null,"transfer_data":null,"trial_end":null,"trial_settings":{"end_behavior":{"missing_payment_method":"create_invoice"}},"trial_start":null},`,
		k, mem, plan, quantity, startAt)
	fmt.Fprintf(b, `"previous_attributes":{"cancel_at":%s,"cancel_at_period_end":%s,"canceled_at":%s,"cancellation_details":{"reason":%s}}},"livemode":false,"pending_webhooks":1,"request":{"id":"req_bench_%s_%d","idempotency_key":"%s-%d"},"type":"%s"}`,
		map[bool]string{true: "null", false: strconv.FormatInt(periodEnd, 10)}[cancel], prevCancel, prevCanceledAt, prevReason, run, n, run, n, typ)
}
