package outgoing_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/outgoing"
	"github.com/patronage/patronage/outgoing/outgoingtest"
)

var admin = members.Actor{Label: "desk@example.org"}

// harness is the service with a running queue, and the queue's events.
type harness struct {
	t        *testing.T
	db       *sqldb.DB
	svc      *outgoing.Service
	settled  <-chan *river.Event // a delivery job completed or snoozed
	disabled chan outgoing.Endpoint
}

func newHarness(t *testing.T, db *sqldb.DB, deps outgoing.Deps) *harness {
	t.Helper()
	ctx := context.Background()
	if _, err := jobs.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, disabled: make(chan outgoing.Endpoint, 4)}
	deps.DB, deps.Logger, deps.AllowPrivateTargets = db, testenv.Logger(), true // the receivers are on loopback
	deps.RetryBase = cmp.Or(deps.RetryBase, 10*time.Millisecond)
	deps.OnDisabled = func(_ context.Context, e outgoing.Endpoint) { h.disabled <- e }
	h.svc = outgoing.NewService(deps)
	workers := river.NewWorkers()
	_ = h.svc.AddWorker(workers) // the daily clean-up is not scheduled here
	q, err := jobs.New(db, workers, testenv.Logger(), jobs.Options{PollInterval: 20 * time.Millisecond, Queues: map[string]int{outgoing.Queue: 4}})
	if err != nil {
		t.Fatal(err)
	}
	settled, cancel := q.Subscribe(river.EventKindJobCompleted, river.EventKindJobSnoozed, river.EventKindJobFailed)
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		stop, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = q.Stop(stop)
	})
	h.settled = settled
	h.svc.Attach(q)
	return h
}

// emit emits one event in its own transaction.
func (h *harness) emit(typ, memberID string, data any) {
	h.t.Helper()
	if err := h.db.InTx(context.Background(), func(tx *sql.Tx) error { return h.svc.Emit(context.Background(), tx, typ, memberID, data) }); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) endpoint(url string, events ...string) (outgoing.Endpoint, string) {
	h.t.Helper()
	e, secret, err := h.svc.CreateEndpoint(context.Background(), admin, outgoing.EndpointInput{URL: &url, Events: &events})
	if err != nil {
		h.t.Fatal(err)
	}
	return e, secret
}

// waitDone waits until n delivery jobs have finished for good.
func (h *harness) waitDone(n int) {
	h.t.Helper()
	deadline := time.After(60 * time.Second)
	for n > 0 {
		select {
		case ev := <-h.settled:
			if ev.Kind == river.EventKindJobCompleted {
				n--
			}
		case <-deadline:
			h.t.Fatalf("%d delivery jobs still unfinished after 60s", n)
		}
	}
}

// An endpoint gets each event it asked for — only those — once, as the
// documented envelope, signed with its secret; a failing endpoint is
// retried until it answers, and every attempt is listed.
func TestEventsArriveSignedAndAreRetriedUntilTaken(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		h := newHarness(t, db, outgoing.Deps{})
		rcv := outgoingtest.New(t)
		e, secret := h.endpoint(rcv.URL(), outgoing.MembershipActivated, outgoing.MembershipEnded)
		if !strings.HasPrefix(secret, "whsec_") || len(secret) < 40 {
			t.Fatalf("secret %q: want whsec_ and 256 random bits", secret)
		}
		failures := 2
		rcv.Answer(func(*http.Request, []byte) int {
			if failures > 0 {
				failures--
				return http.StatusServiceUnavailable
			}
			return http.StatusAccepted
		})
		h.emit(outgoing.MemberCreated, "mem_1", map[string]any{"member": map[string]string{"id": "mem_1"}}) // not asked for
		h.emit(outgoing.MembershipActivated, "mem_1", map[string]any{"membership": map[string]any{"tier": "coffee"}})

		var last outgoingtest.Delivery
		for i := range 3 {
			last = rcv.Next("attempt", time.Minute)
			if err := outgoing.Verify(last.Body, last.Header.Get(outgoing.SignatureHeader), secret, 5*time.Minute, time.Now()); err != nil {
				t.Fatalf("attempt %d: %v (header %q)", i+1, err, last.Header.Get(outgoing.SignatureHeader))
			}
		}
		h.waitDone(1)
		var env struct {
			ID, Type, Created string
			Data              map[string]map[string]string
		}
		if err := json.Unmarshal(last.Body, &env); err != nil {
			t.Fatal(err)
		}
		if env.Type != outgoing.MembershipActivated || !strings.HasPrefix(env.ID, "evt_") || env.Data["membership"]["tier"] != "coffee" {
			t.Fatalf("delivered %s", last.Body)
		}
		if _, err := time.Parse(time.RFC3339Nano, env.Created); err != nil {
			t.Fatalf("created %q: %v", env.Created, err)
		}
		if got := last.Header.Get("Patronage-Event-Id"); got != env.ID {
			t.Fatalf("Patronage-Event-Id %q, want %q", got, env.ID)
		}
		if err := outgoing.Verify(last.Body, last.Header.Get(outgoing.SignatureHeader), "whsec_someone-else", 5*time.Minute, time.Now()); err == nil {
			t.Fatal("another secret verifies the delivery")
		}
		select {
		case extra := <-rcv.Got:
			t.Fatalf("a fourth request arrived: %s", extra.Body)
		default:
		}

		list, err := h.svc.Deliveries(context.Background(), e.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Status != "succeeded" || len(list[0].Attempts) != 3 {
			t.Fatalf("deliveries %+v, want one succeeded after 3 attempts", list)
		}
		for i, want := range []int{503, 503, 202} {
			if a := list[0].Attempts[i]; a.ResponseStatus != want || (want == 503) == a.OK() {
				t.Errorf("attempt %d: %+v, want status %d", i+1, a, want)
			}
		}
		if got := list[0].Attempts[2].ResponseExcerpt; got != `{"thanks":true}` {
			t.Errorf("response excerpt %q", got)
		}
		if ep, _ := h.svc.Endpoint(context.Background(), e.ID); ep.FailingSince != nil {
			t.Errorf("failing since %v after a success", ep.FailingSince)
		}
	})
}

// A receiver that is down for a while loses nothing: what was emitted
// meanwhile arrives once it is back, each event once.
func TestADownReceiverGetsEverythingWhenBack(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		h := newHarness(t, db, outgoing.Deps{PerEndpoint: 10})
		rcv := outgoingtest.New(t)
		h.endpoint(rcv.URL(), "*")
		rcv.Stop()
		const n = 5
		for i := range n {
			h.emit(outgoing.RoundOpened, "", map[string]any{"round": map[string]int{"n": i}})
		}
		// Every delivery fails at least once against the closed port (with
		// room for all at once, a snooze is a failed attempt).
		snoozed := 0
		for snoozed < n {
			select {
			case ev := <-h.settled:
				if ev.Kind == river.EventKindJobSnoozed {
					snoozed++
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("only %d of %d deliveries tried while the receiver was down", snoozed, n)
			}
		}
		rcv.Start()
		seen := map[string]bool{}
		for range n {
			d := rcv.Next("after the receiver came back", time.Minute)
			var env outgoing.Envelope
			if err := json.Unmarshal(d.Body, &env); err != nil {
				t.Fatal(err)
			}
			if seen[env.ID] {
				t.Fatalf("event %s delivered twice", env.ID)
			}
			seen[env.ID] = true
		}
		h.waitDone(n)
		var failedAttempts int
		if err := db.QueryRow(`SELECT COUNT(*) FROM webhook_attempts WHERE response_status IS NULL AND error <> ''`).Scan(&failedAttempts); err != nil {
			t.Fatal(err)
		}
		if failedAttempts < n {
			t.Errorf("%d failed attempts recorded, want at least %d (one per delivery while down)", failedAttempts, n)
		}
	})
}

// An endpoint that only fails is disabled once RetryFor has passed since
// its first failure; the admins are told once, and its waiting deliveries
// fail instead of being retried.
func TestAnEndpointFailingForTheWholeWindowIsDisabled(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		h := newHarness(t, db, outgoing.Deps{RetryFor: 300 * time.Millisecond, RetryCap: 50 * time.Millisecond})
		rcv := outgoingtest.New(t)
		rcv.Answer(func(*http.Request, []byte) int { return http.StatusInternalServerError })
		e, _ := h.endpoint(rcv.URL(), outgoing.RoundClosed)
		h.emit(outgoing.RoundClosed, "", map[string]string{"round": "rnd_1"})
		select {
		case got := <-h.disabled:
			if got.ID != e.ID || got.DisabledAt == nil || !strings.Contains(got.DisabledReason, "failed") {
				t.Fatalf("disabled %+v", got)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the failing endpoint was not disabled within 60s")
		}
		h.waitDone(1)
		ep, err := h.svc.Endpoint(context.Background(), e.ID)
		if err != nil || ep.DisabledAt == nil {
			t.Fatalf("endpoint %+v (%v): want disabled", ep, err)
		}
		list, _ := h.svc.Deliveries(context.Background(), e.ID, "", 10)
		if len(list) != 1 || list[0].Status != "failed" || len(list[0].Attempts) < 2 {
			t.Fatalf("deliveries %+v: want one failed after several attempts", list)
		}
		// Disabled, it hears nothing more; a redelivery is refused.
		h.emit(outgoing.RoundClosed, "", map[string]string{"round": "rnd_2"})
		if list, _ := h.svc.Deliveries(context.Background(), e.ID, "", 10); len(list) != 1 {
			t.Fatalf("a disabled endpoint got a new delivery: %+v", list)
		}
		if err := h.svc.Redeliver(context.Background(), admin, e.ID, list[0].ID); !errs.Is(err, errs.Conflict) {
			t.Fatalf("redeliver to a disabled endpoint: %v, want a conflict", err)
		}
		select {
		case again := <-h.disabled:
			t.Fatalf("admins told twice: %+v", again)
		default:
		}
	})
}

// A slow endpoint holds only its share of the delivery workers: another
// endpoint's events arrive while the slow one has not answered.
func TestASlowEndpointDoesNotHoldUpTheOthers(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		h := newHarness(t, db, outgoing.Deps{PerEndpoint: 1, Timeout: 30 * time.Second})
		slow, fast := outgoingtest.New(t), outgoingtest.New(t)
		release := make(chan struct{})
		slow.Answer(func(*http.Request, []byte) int { <-release; return http.StatusOK })
		defer close(release)
		h.endpoint(slow.URL(), outgoing.MemberCreated)
		h.endpoint(fast.URL(), outgoing.MemberCreated)
		const n = 8 // twice the queue's workers
		for i := range n {
			h.emit(outgoing.MemberCreated, "", map[string]int{"n": i})
		}
		for range n {
			fast.Next("the fast endpoint, while the slow one hangs", time.Minute)
		}
	})
}

// A redelivery sends the same event again, with the same id; it is
// refused while the delivery is still on its way, and for an unknown one.
func TestRedeliverSendsTheSameEventAgain(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		h := newHarness(t, db, outgoing.Deps{})
		rcv := outgoingtest.New(t)
		e, _ := h.endpoint(rcv.URL(), outgoing.DonationReceived)
		h.emit(outgoing.DonationReceived, "", map[string]int{"amount": 500})
		first := rcv.Next("the delivery", time.Minute)
		h.waitDone(1)
		list, _ := h.svc.Deliveries(context.Background(), e.ID, "succeeded", 10)
		if len(list) != 1 {
			t.Fatalf("deliveries %+v", list)
		}
		if err := h.svc.Redeliver(context.Background(), admin, e.ID, "whd_unknown"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("redeliver unknown: %v", err)
		}
		if err := h.svc.Redeliver(context.Background(), admin, e.ID, list[0].ID); err != nil {
			t.Fatal(err)
		}
		again := rcv.Next("the redelivery", time.Minute)
		if string(again.Body) != string(first.Body) || again.Header.Get("Patronage-Event-Id") != first.Header.Get("Patronage-Event-Id") {
			t.Fatalf("redelivered %s, first %s", again.Body, first.Body)
		}
		h.waitDone(1)
		list, _ = h.svc.Deliveries(context.Background(), e.ID, "", 10)
		if len(list[0].Attempts) != 2 || list[0].Status != "succeeded" {
			t.Fatalf("after redelivery: %+v", list[0])
		}
	})
}

// After a rotation both secrets sign for a day, so a receiver switching
// over refuses nothing; the new secret is shown once.
func TestRotationSignsWithBothSecretsForADay(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		h := newHarness(t, db, outgoing.Deps{})
		rcv := outgoingtest.New(t)
		e, old := h.endpoint(rcv.URL(), outgoing.TopicCovered)
		fresh, expires, err := h.svc.RotateSecret(context.Background(), admin, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if fresh == old || time.Until(expires) < 23*time.Hour {
			t.Fatalf("rotation gave %q until %v", fresh, expires)
		}
		h.emit(outgoing.TopicCovered, "", map[string]string{"topic": "top_1"})
		d := rcv.Next("the delivery", time.Minute)
		for _, secret := range []string{old, fresh} {
			if err := outgoing.Verify(d.Body, d.Header.Get(outgoing.SignatureHeader), secret, 5*time.Minute, time.Now()); err != nil {
				t.Errorf("signed for %s…: %v", secret[:10], err)
			}
		}
	})
}

// Endpoints are checked before they are stored: a URL Patronage may not
// call, an unknown event type, nothing to hear.
func TestBadEndpointsAreRefusedWithTheirFields(t *testing.T) {
	db := testenv.MigratedSQLite(t)
	strict := outgoing.NewService(outgoing.Deps{DB: db})
	for _, tc := range []struct {
		url    string
		events []string
		field  string
	}{
		{"http://127.0.0.1:8080/hook", []string{"*"}, "url"},
		{"http://localhost/hook", []string{"*"}, "url"},
		{"http://10.1.2.3/hook", []string{"*"}, "url"},
		{"http://169.254.169.254/latest/meta-data", []string{"*"}, "url"},
		{"http://[::1]/hook", []string{"*"}, "url"},
		{"http://[fd00::1]/hook", []string{"*"}, "url"},
		{"http://100.64.0.1/hook", []string{"*"}, "url"},
		{"ftp://example.org/hook", []string{"*"}, "url"},
		{"https://user:pw@example.org/hook", []string{"*"}, "url"},
		{"/relative", []string{"*"}, "url"},
		{"https://93.184.215.14/hook", []string{"member.exploded"}, "events"},
		{"https://93.184.215.14/hook", []string{}, "events"},
		{"https://93.184.215.14/hook", []string{"*", "member.created"}, "events"},
	} {
		url, events := tc.url, tc.events
		_, _, err := strict.CreateEndpoint(context.Background(), admin, outgoing.EndpointInput{URL: &url, Events: &events})
		e := errs.From(err)
		if e.Kind != errs.Invalid || e.Fields[tc.field] == "" {
			t.Errorf("%s %v: %v, want %s refused", tc.url, tc.events, err, tc.field)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM webhook_endpoints`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d endpoints stored (%v), want none", n, err)
	}
	url, events := "https://93.184.215.14/hook", []string{outgoing.MemberCreated, outgoing.MemberCreated}
	e, _, err := strict.CreateEndpoint(context.Background(), admin, outgoing.EndpointInput{URL: &url, Events: &events})
	if err != nil || len(e.Events) != 1 {
		t.Fatalf("a public address: %+v %v", e, err)
	}
}

// Events are forgotten after 30 days with their deliveries, unless one of
// those is still on its way.
func TestOldEventsAreForgottenUnlessStillOnTheirWay(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		svc := outgoing.NewService(outgoing.Deps{DB: db, Now: func() time.Time { return now }})
		h := &harness{t: t, db: db, svc: svc}
		h.endpoint("https://93.184.215.14/hook", "*")
		h.emit(outgoing.RoundOpened, "", map[string]string{"round": "delivered"})
		h.emit(outgoing.RoundOpened, "", map[string]string{"round": "still trying"})
		if _, err := db.Exec(`UPDATE webhook_deliveries SET status = 'succeeded' WHERE event_id IN
			(SELECT id FROM outgoing_events WHERE payload LIKE '%delivered%')`); err != nil {
			t.Fatal(err)
		}
		now = now.Add(outgoing.Keep - time.Minute)
		if n, err := svc.Prune(context.Background()); err != nil || n != 0 {
			t.Fatalf("pruned %d (%v) before 30 days", n, err)
		}
		now = now.Add(2 * time.Minute)
		if n, err := svc.Prune(context.Background()); err != nil || n != 1 {
			t.Fatalf("pruned %d (%v), want the delivered event", n, err)
		}
		var left string
		if err := db.QueryRow(`SELECT e.payload FROM outgoing_events e JOIN webhook_deliveries d ON d.event_id = e.id`).Scan(&left); err != nil ||
			!strings.Contains(left, "still trying") {
			t.Fatalf("left %q (%v), want the pending one", left, err)
		}
	})
}
