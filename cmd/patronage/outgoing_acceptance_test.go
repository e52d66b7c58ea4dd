package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/outgoing"
	"github.com/patronage/patronage/outgoing/outgoingtest"
)

// The newsroom's own endpoint, registered through the staff API on a
// local receiver, hears a scripted patron's life — joining, an upgrade, a
// failed payment and its recovery, a cancellation — and a vote round,
// each event once, as docs/outgoing-webhooks.md describes it and signed
// with the endpoint's secret. The receiver is down from the failed
// payment to the recovery: those events arrive once it is back.
func TestTheNewsroomsEndpointHearsAPatronsLife(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t)
	env := map[string]string{"ENV_FILE": "/dev/null", "DATA_DIR": filepath.Join(t.TempDir(), "data"), "STRIPE_SECRET_KEY": stripefake.SecretKey,
		"STRIPE_API_BASE": fake.URL, "STRIPE_WEBHOOK_SECRET": acceptanceSecret, "STRIPE_WEBHOOK_MODE": "fetch", "STRIPE_SYNC_INTERVAL": "off",
		"ALLOW_PRIVATE_WEBHOOK_TARGETS": "true"}
	if testenv.PostgresURL(t) != "" {
		env["DATABASE_URL"] = testenv.PostgresSchemaURL(t)
	}
	s := startServer(t, env)
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	token := tokenPattern.FindString(out)
	rcv := outgoingtest.New(t)

	// A private address is refused unless allowed — here it is.
	status, body := call(t, "POST", s.URL+"/api/v1/staff/webhook-endpoints", token, fmt.Sprintf(`{"url":%q,"events":["*"],"description":"CMS"}`, rcv.URL()))
	var endpoint struct {
		Endpoint struct{ ID string }
		Secret   string
	}
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &endpoint) != nil {
		t.Fatalf("register endpoint = %d %s", status, body)
	}

	start := time.Now().UTC().Truncate(time.Second)
	fake.SetNow(start.Add(-time.Hour))
	for _, tier := range []string{
		`{"slug":"coffee","name":"Coffee","prices":[{"currency":"eur","interval":"month","amount":500}]}`,
		`{"slug":"press","name":"Press pass","prices":[{"currency":"eur","interval":"month","amount":1500}]}`,
	} {
		if status, body := call(t, "POST", s.URL+"/api/v1/staff/tiers", token, tier); status != http.StatusCreated {
			t.Fatalf("create tier = %d %s", status, body)
		}
	}
	price := map[string]string{}
	for _, p := range fake.Prices() {
		price[p["metadata"].(map[string]any)["patronage_tier"].(string)] = p["id"].(string)
	}
	w := &world{t: t, fake: fake, url: s.URL, token: token, live: true, renewals: map[string]int{}, failing: map[string]map[int]bool{}, ending: map[string]bool{}}
	status, body = call(t, "POST", s.URL+"/api/v1/staff/members", token, `{"email":"ada@example.org","name":"Ada"}`)
	var member struct{ Member struct{ ID string } }
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &member) != nil {
		t.Fatalf("create member = %d %s", status, body)
	}
	sc := fake.Client(t)
	cus, err := sc.Customers.New(&stripe.CustomerParams{Email: stripe.String("ada@example.org")})
	if err != nil {
		t.Fatal(err)
	}
	w.members = append(w.members, [2]string{cus.ID, member.Member.ID})

	// Every event once, signed, whatever order the retries bring them in.
	want := []string{"member.created", "membership.activated", "membership.changed", "membership.past_due", "membership.activated",
		"membership.ended", "round.opened", "round.closed"}
	byType := map[string][]map[string]any{}
	seen := map[string]bool{}
	var got []string
	receive := func(n int) {
		t.Helper()
		for until := len(got) + n; len(got) < until; {
			d := rcv.Next(fmt.Sprintf("after %v", got), 3*time.Minute)
			if d.Status != http.StatusOK {
				continue
			}
			if err := outgoing.Verify(d.Body, d.Header.Get(outgoing.SignatureHeader), endpoint.Secret, 5*time.Minute, time.Now()); err != nil {
				t.Fatalf("delivery %s: %v", d.Body, err)
			}
			var env struct {
				ID, Type, Created string
				Data              map[string]any
			}
			if err := json.Unmarshal(d.Body, &env); err != nil || !strings.HasPrefix(env.ID, "evt_") || env.Created == "" {
				t.Fatalf("delivery %s is not the documented envelope (%v)", d.Body, err)
			}
			if seen[env.ID] {
				t.Fatalf("event %s (%s) delivered twice", env.ID, env.Type)
			}
			seen[env.ID] = true
			got = append(got, env.Type)
			byType[env.Type] = append(byType[env.Type], env.Data)
		}
	}

	w.at(start)
	sub := w.subscribe(cus.ID, price["coffee"], 1, 0)
	w.at(start.Add(24 * time.Hour))
	w.do(fake.ChangePrice(sub, price["press"]))
	receive(3) // created, activated, changed
	// Down from here to the recovery: the past due and the recovery are
	// tried while it is down, and come again after it is back.
	rcv.Drop()
	w.failing[sub] = map[int]bool{0: true}
	s0, _ := fake.Subscription(sub)
	w.at(time.Unix(s0["current_period_end"].(int64), 0).Add(time.Hour))
	w.at(time.Unix(s0["current_period_end"].(int64), 0).Add(49 * time.Hour))
	w.do(fake.PayInvoice(w.latestInvoice(sub)))
	tried := map[string]string{}
	for len(tried) < 2 {
		select {
		case body := <-rcv.Dropped:
			var env struct{ ID, Type string }
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("a delivery tried while down: %s (%v)", body, err)
			}
			tried[env.ID] = env.Type
		case <-time.After(3 * time.Minute):
			t.Fatalf("tried while down: %v; want the past due and the recovery", tried)
		}
	}
	if types := slices.Sorted(maps.Values(tried)); strings.Join(types, " ") != "membership.activated membership.past_due" {
		t.Fatalf("tried while down: %v; want the past due and the recovery", types)
	}
	rcv.Undrop()
	w.do(fake.SetCancelAtPeriodEnd(sub, true))
	w.ending[sub] = true
	s1, _ := fake.Subscription(sub)
	w.at(time.Unix(s1["current_period_end"].(int64), 0).Add(time.Hour))

	// A round opens and closes.
	var topics []string
	for _, title := range []string{"Rivers", "Rents"} {
		status, body := call(t, "POST", s.URL+"/api/v1/staff/topics", token, fmt.Sprintf(`{"title":%q}`, title))
		var created struct{ Topic struct{ ID string } }
		if status != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil {
			t.Fatalf("create topic = %d %s", status, body)
		}
		topics = append(topics, created.Topic.ID)
	}
	status, body = call(t, "POST", s.URL+"/api/v1/staff/rounds", token, fmt.Sprintf(`{"title":"What next?","opens_at":%q,"closes_at":%q,"topic_ids":[%q,%q]}`,
		time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), topics[0], topics[1]))
	var round struct{ Round struct{ ID string } }
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &round) != nil {
		t.Fatalf("create round = %d %s", status, body)
	}
	if status, body := call(t, "POST", s.URL+"/api/v1/staff/rounds/"+round.Round.ID+"/close", token, ""); status != http.StatusOK {
		t.Fatalf("close round = %d %s", status, body)
	}

	// The rest, the two tried while down among them (their first retry
	// comes a minute later).
	receive(len(want) - len(got))
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the endpoint heard %v, want %v", got, want)
	}
	member0 := byType["member.created"][0]["member"].(map[string]any)
	if member0["email"] != "ada@example.org" || member0["name"] != "Ada" {
		t.Errorf("member.created says %v", member0)
	}
	changed := byType["membership.changed"][0]
	if changed["membership"].(map[string]any)["tier"] != "press" || changed["previous"].(map[string]any)["tier"] != "coffee" {
		t.Errorf("membership.changed says %v", changed)
	}
	if byType["membership.past_due"][0]["member"].(map[string]any)["email"] != "ada@example.org" {
		t.Errorf("membership.past_due says %v", byType["membership.past_due"][0])
	}
	if topicsOf := byType["round.closed"][0]["topics"].([]any); len(topicsOf) != 2 {
		t.Errorf("round.closed says %v", byType["round.closed"][0])
	}

	// The staff see the attempts, the failed ones too. (The last success
	// may still be being recorded: the receiver has it, so it counts.)
	status, body = call(t, "GET", s.URL+"/api/v1/staff/webhook-endpoints/"+endpoint.Endpoint.ID+"/deliveries?limit=100", token, "")
	var listed struct {
		Deliveries []struct {
			EventType string `json:"event_type"`
			Status    string
			Attempts  []struct {
				ResponseStatus *int `json:"response_status"`
				Error          *string
			}
		}
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &listed) != nil {
		t.Fatalf("deliveries = %d %s", status, body)
	}
	refused := 0
	for _, d := range listed.Deliveries {
		if d.Status == "failed" || len(d.Attempts) == 0 {
			t.Errorf("delivery of %s: %s after %d attempts", d.EventType, d.Status, len(d.Attempts))
			continue
		}
		if first := d.Attempts[0]; first.ResponseStatus == nil && first.Error != nil && *first.Error != "" {
			refused++
		}
	}
	if len(listed.Deliveries) != len(want) || refused != 2 {
		t.Errorf("%d deliveries, %d of them first tried while the receiver was down; want %d, 2 of them (past due, recovery: %v)",
			len(listed.Deliveries), refused, len(want), tried)
	}
}
