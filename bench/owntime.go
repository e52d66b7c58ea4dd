//go:build ignore

// owntime joins, request by request, the server's request log (LOG_LEVEL=info),
// stripetimer's call log and the members table, and prints the latency
// distribution of checkout requests as the server measured them (total), of
// the Stripe calls each request made (stripe), and of the difference (own =
// total - stripe). See README.md for the whole procedure.
//
//	psql -At -F '|' -c 'select id, email from members' > members.txt
//	go run bench/owntime.go -server server.log -stripe stripe-calls.tsv -members members.txt \
//	    -price price_... [-pool N | -member mem_...]
//
// A request is matched to its Checkout Session call by recomputing the
// Idempotency-Key the server sends for it (the client's Idempotency-Key is
// the request id, see checkout.lua), and to its customer-create call by the
// member id in the call's metadata (the first checkout of a new reader).
// The session key is derived as billing/checkout.go derived it at commit
// 931890a; if that derivation changes, update sessionKey below.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/patronage/patronage/internal/stripeapi"
)

func main() {
	serverLog := flag.String("server", "server.log", "server log, JSON lines at LOG_LEVEL=info")
	stripeLog := flag.String("stripe", "stripe-calls.tsv", "stripetimer's output")
	membersFile := flag.String("members", "members.txt", "id|email lines")
	price := flag.String("price", "", "Stripe price id of coffee/month/EUR")
	pool := flag.Int("pool", 0, "checkout.lua BENCH_EMAILS=pool:N")
	member := flag.String("member", "", "the signed-in member of every request (cookie runs)")
	run := flag.String("run", "", "only requests whose id starts with this BENCH_RUN tag")
	flag.Parse()

	byEmail := map[string]string{}
	forEach(*membersFile, func(l string) {
		if id, email, ok := strings.Cut(l, "|"); ok {
			byEmail[email] = id
		}
	})
	stripeByKey := map[string][]float64{}       // idempotency key -> durations (ms)
	customersByMember := map[string][]float64{} // member id -> customer-create durations (ms)
	forEach(*stripeLog, func(l string) {
		f := strings.Split(l, "\t")
		if len(f) < 7 {
			return
		}
		us, _ := strconv.ParseFloat(f[1], 64)
		stripeByKey[f[5]] = append(stripeByKey[f[5]], us/1000)
		if f[2] == "POST" && f[3] == "/v1/customers" {
			customersByMember[f[6]] = append(customersByMember[f[6]], us/1000)
		}
	})

	var total, stripe, own []float64
	calls, unmatched, retries := 0, 0, 0
	forEach(*serverLog, func(l string) {
		var e struct {
			Msg       string  `json:"msg"`
			Route     string  `json:"route"`
			Status    int     `json:"status"`
			RequestID string  `json:"request_id"`
			Duration  float64 `json:"duration_ms"`
		}
		if json.Unmarshal([]byte(l), &e) != nil || e.Msg != "request" || e.Route != "/api/v1/checkout/subscription" {
			return
		}
		if !strings.HasPrefix(e.RequestID, *run) || e.Status != 201 {
			return
		}
		m := *member
		if m == "" {
			m = byEmail[strings.ToLower(emailOf(e.RequestID, *pool))] // emails are stored lower-cased
		}
		key := sessionKey(m, *price, e.RequestID)
		ds, ok := stripeByKey[key]
		if !ok {
			unmatched++
			return
		}
		if len(ds) > 1 {
			retries += len(ds) - 1
		}
		if *member == "" && *pool == 0 {
			ds = append(ds, customersByMember[m]...) // a new reader's one customer create
		}
		var s float64
		for _, d := range ds {
			s += d
		}
		calls += len(ds)
		total = append(total, e.Duration)
		stripe = append(stripe, s)
		own = append(own, e.Duration-s)
	})
	fmt.Printf("joined %d requests (%d Stripe calls, %.2f per request; %d repeated calls), %d unmatched\n",
		len(total), calls, float64(calls)/math.Max(1, float64(len(total))), retries, unmatched)
	fmt.Printf("%-26s %8s %8s %8s %8s %8s\n", "ms", "p50", "p90", "p99", "p99.9", "max")
	for _, r := range []struct {
		name string
		v    []float64
	}{{"total (server log)", total}, {"stripe (per request sum)", stripe}, {"own = total - stripe", own}} {
		sort.Float64s(r.v)
		fmt.Printf("%-26s %8.2f %8.2f %8.2f %8.2f %8.2f\n", r.name, pct(r.v, 50), pct(r.v, 90), pct(r.v, 99), pct(r.v, 99.9), pct(r.v, 100))
	}
}

func sessionKey(memberID, price, requestID string) string {
	return stripeapi.IdempotencyKey("checkout-subscription", memberID, "coffee", "month", "EUR", price, "key:"+requestID)
}

// emailOf repeats checkout.lua's choice of email for a request id run-tid-n.
func emailOf(id string, pool int) string {
	if pool == 0 {
		return "reader-" + id + "@example.org"
	}
	f := strings.Split(id, "-")
	tid, _ := strconv.Atoi(f[len(f)-2])
	n, _ := strconv.Atoi(f[len(f)-1])
	return fmt.Sprintf("reader-pool-%d@example.org", (n*7+tid)%pool)
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(v)))) - 1
	if i < 0 {
		i = 0
	}
	return v[i]
}

func forEach(path string, fn func(string)) {
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
}
