package web

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/billing"

	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/ratelimit"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/statustoken"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/metrics"
	"github.com/patronage/patronage/outgoing"
	"github.com/patronage/patronage/voting"
	"github.com/patronage/patronage/webhooks"
)

func newTestServer(t *testing.T, mutate ...func(*Deps)) (*Server, *redisx.Redis) {
	t.Helper()
	ts := newFullTestServer(t, mutate...)
	return ts.Server, ts.redis
}

type testServer struct {
	*Server
	redis   *redisx.Redis
	outbox  *outbox
	db      *sqldb.DB
	billing *billing.Service
}

func newFullTestServer(t testing.TB, mutate ...func(*Deps)) testServer {
	t.Helper()
	return newStripeTestServer(t, nil, mutate...)
}

// newStripeTestServer is a test server whose billing talks to sc (nil: no
// Stripe key configured).
func newStripeTestServer(t testing.TB, sc *client.API, mutate ...func(*Deps)) testServer {
	t.Helper()
	// Sessions, tokens and rate limits over HTTP on the real Redis when the
	// test command provides one (it always does in CI).
	rdb := testenv.EmbeddedRedis(t)
	if testenv.RedisURL(t) != "" {
		rdb = testenv.RealRedis(t)
	}
	db := testenv.MigratedSQLite(t)
	base, _ := url.Parse("http://patrons.test")
	catalog := i18ntest.Catalog(t)
	templates, err := mail.NewTemplates("The Test Times", catalog)
	if err != nil {
		t.Fatal(err)
	}
	box := newOutbox()
	queue, err := jobs.New(db, nil, testenv.Logger(), jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hooks := outgoing.NewService(outgoing.Deps{DB: db, Logger: testenv.Logger()})
	hooks.Attach(queue)
	statusTokens := statustoken.New(db, base.String(), nil)
	if err := statusTokens.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	svc := members.NewService(members.Deps{DB: db, Redis: rdb, Mailer: box, Templates: templates, BaseURL: base, Logger: testenv.Logger(), Events: hooks,
		Languages: catalog.Languages()})
	billingService := billing.NewService(billing.Deps{DB: db, Stripe: sc, Members: svc, BaseURL: base, Logger: testenv.Logger(), Events: hooks})
	d := Deps{
		Logger:                testenv.Logger(),
		DB:                    db,
		Redis:                 rdb,
		Registry:              prometheus.NewRegistry(),
		Members:               svc,
		Billing:               billingService,
		Access:                billingService,
		Metrics:               metrics.NewService(db),
		Voting:                voting.NewService(voting.Deps{DB: db, Redis: rdb, Eligibility: accessVoters{billingService}, Logger: testenv.Logger(), Events: hooks}),
		Intake:                webhooks.NewIntake(db, queue, nil),
		Outgoing:              hooks,
		StatusTokens:          statusTokens,
		CORSAllowedOrigins:    []string{"https://www.patrons.test"},
		WebhookSecrets:        []string{testWebhookSecret},
		Limiter:               ratelimit.New(rdb),
		BaseURL:               base,
		Newsroom:              "The Test Times",
		Catalog:               catalog,
		MaxBodyBytes:          1024,
		SignInPerEmailPerHour: 5,
		SignInPerIPPerHour:    100,
		CheckoutPerIPPerHour:  100,
		VotesPerMemberPerSec:  100,
	}
	for _, m := range mutate {
		m(&d)
	}
	s, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	return testServer{Server: s, redis: rdb, outbox: box, db: db, billing: billingService}
}

// accessVoters lets members with access vote, with weight 1 (cmd wires the
// real one, with tier weights).
type accessVoters struct{ billing *billing.Service }

func (a accessVoters) Voters(ctx context.Context, tx *sql.Tx, memberIDs []string, _ bool) (map[string]voting.Voter, error) {
	access, err := a.billing.AccessShared(ctx, tx, memberIDs, false)
	out := map[string]voting.Voter{}
	for id, acc := range access {
		out[id] = voting.Voter{Active: acc.Active, Weight: 1}
	}
	return out, err
}

// outbox is a mail.Sender that hands each message to the test.
type outbox struct {
	messages chan mail.Message
}

func newOutbox() *outbox { return &outbox{messages: make(chan mail.Message, 100)} }

func (o *outbox) Send(_ context.Context, m mail.Message) error {
	o.messages <- m
	return nil
}

// next waits for the next message sent.
func (o *outbox) next(t *testing.T) mail.Message {
	t.Helper()
	select {
	case m := <-o.messages:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no mail was sent within 10s")
		return mail.Message{}
	}
}

// none checks nothing was sent. Sends happen off the request path, so
// callers first wait for them with members.Service.Close.
func (o *outbox) none(t *testing.T) {
	t.Helper()
	select {
	case m := <-o.messages:
		t.Fatalf("unexpected mail to %s: %s", m.To, m.Subject)
	default:
	}
}

type probe struct {
	Email string `json:"email"`
	Count int    `json:"count"`
}

// withProbeRoutes adds routes that exercise the shared JSON and error
// machinery the way every API handler uses it.
func withProbeRoutes(s *Server) {
	s.engine.POST("/probe", limitBody(s.maxBody), func(c *gin.Context) {
		var p probe
		if err := s.decodeJSON(c, &p); err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, p)
	})
	s.engine.GET("/probe/panic", func(c *gin.Context) { panic("secret internal detail") })
	s.engine.GET("/probe/internal", func(c *gin.Context) {
		s.fail(c, fmt.Errorf("store member: %w", errors.New("secret internal detail: json: unexpected EOF")))
	})
	// The database (or Redis) refused the connection: the caller did
	// nothing wrong.
	s.engine.GET("/probe/database-down", func(c *gin.Context) {
		s.fail(c, fmt.Errorf("find member: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}))
	})
}

func do(h http.Handler, method, path, contentType string, body io.Reader, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) errorDetail {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var body errorBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body is not the error shape: %v", err)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error %+v lacks a code or a message", body.Error)
	}
	return body.Error
}

func TestErrorsHaveOneShapeAndTheRightStatus(t *testing.T) {
	s, _ := newTestServer(t)
	withProbeRoutes(s)
	h := s.Handler()
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		status      int
		code        string
		fields      map[string]string
	}{
		{"unknown route", "GET", "/no/such/page", "", "", 404, "not_found", nil},
		{"wrong method", "DELETE", "/healthz", "", "", 405, "method_not_allowed", nil},
		{"malformed JSON", "POST", "/probe", "application/json", `{"email": `, 400, "invalid_json", nil},
		{"broken JSON syntax", "POST", "/probe", "application/json", `{"email" "x"}`, 400, "invalid_json", nil},
		{"empty body", "POST", "/probe", "application/json", ``, 400, "invalid_json", nil},
		{"two JSON values", "POST", "/probe", "application/json", `{} {}`, 400, "invalid_json", nil},
		{"not an object", "POST", "/probe", "application/json", `[1,2]`, 400, "invalid_json", nil},
		{"form instead of JSON", "POST", "/probe", "application/x-www-form-urlencoded", `email=a`, 415, "unsupported_media_type", nil},
		{"no content type", "POST", "/probe", "", `{}`, 415, "unsupported_media_type", nil},
		{"body over the limit", "POST", "/probe", "application/json", `{"email":"` + strings.Repeat("a", 2000) + `"}`, 413, "body_too_large", nil},
		{"wrong field type", "POST", "/probe", "application/json", `{"count":"three"}`, 422, "invalid", map[string]string{"count": "must be a whole number"}},
		{"unknown field", "POST", "/probe", "application/json", `{"emial":"a@b.c"}`, 422, "invalid", map[string]string{"emial": "is not a known field"}},
		{"panic", "GET", "/probe/panic", "", "", 500, "internal", nil},
		{"internal error", "GET", "/probe/internal", "", "", 500, "internal", nil},
		{"database unreachable", "GET", "/probe/database-down", "", "", 503, "unavailable", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(h, tt.method, tt.path, tt.contentType, strings.NewReader(tt.body))
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			raw := rec.Body.String()
			e := decodeError(t, rec)
			if e.Code != tt.code {
				t.Errorf("code = %q, want %q", e.Code, tt.code)
			}
			for k, v := range tt.fields {
				if e.Fields[k] != v {
					t.Errorf("fields[%q] = %q, want %q", k, e.Fields[k], v)
				}
			}
			if tt.fields == nil && e.Fields != nil {
				t.Errorf("fields = %v, want none outside validation errors", e.Fields)
			}
			for _, leak := range []string{"secret internal detail", "goroutine", ".go:", "unexpected EOF", "json:"} {
				if strings.Contains(raw, leak) {
					t.Errorf("response leaks %q: %s", leak, raw)
				}
			}
		})
	}
}

func TestABodyOverTheLimitWithoutALengthIsRefused(t *testing.T) {
	s, _ := newTestServer(t)
	withProbeRoutes(s)
	// A chunked body has no Content-Length; the limit must bite while reading.
	req := httptest.NewRequest("POST", "/probe", io.MultiReader(strings.NewReader(`{"email":"`), strings.NewReader(strings.Repeat("a", 5000)), strings.NewReader(`"}`)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", rec.Code)
	}
	if e := decodeError(t, rec); e.Code != "body_too_large" {
		t.Errorf("code = %q, want body_too_large", e.Code)
	}
}

// A page form sent chunked and over the limit is refused as too large,
// not read as a form with its fields cut off.
func TestAnOversizedChunkedFormIs413(t *testing.T) {
	s, _ := newTestServer(t)
	for _, path := range []string{"/join/gift", "/signin"} {
		req := httptest.NewRequest("POST", path, io.MultiReader(strings.NewReader("email=a%40example.org&message="), strings.NewReader(strings.Repeat("a", 5000))))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: status = %d, want 413", path, rec.Code)
		}
	}
}

func TestRealRoutesCapTheirBodies(t *testing.T) {
	s, _ := newTestServer(t)
	for _, path := range []string{"/api/v1/members", "/api/v1/checkout/donation"} {
		req := httptest.NewRequest("POST", path, io.MultiReader(strings.NewReader(`{"email":"`), strings.NewReader(strings.Repeat("a", 5000)), strings.NewReader(`"}`)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s with 5 KB against a 1 KB limit = %d, want 413", path, rec.Code)
		}
	} // A browser's form declares its length: refused before it is read.
	form := "email=" + strings.Repeat("a", 5000) + "%40example.org"
	if rec := do(s.Handler(), "POST", "/signin", "application/x-www-form-urlencoded", strings.NewReader(form)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /signin with a 5 KB form = %d, want 413", rec.Code)
	}
}

func TestAValidBodyIsDecoded(t *testing.T) {
	s, _ := newTestServer(t)
	withProbeRoutes(s)
	rec := do(s.Handler(), "POST", "/probe", "application/json; charset=utf-8", strings.NewReader(`{"email":"a@example.org","count":3}`))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"count":3`) {
		t.Fatalf("status %d body %s, want the probe echoed", rec.Code, rec.Body)
	}
}

func TestRequestIDIsKeptOrMadeAndEchoed(t *testing.T) {
	s, _ := newTestServer(t)
	h := s.Handler()
	rec := do(h, "GET", "/healthz", "", nil, "X-Request-ID", "edge-42.abc")
	if got := rec.Header().Get("X-Request-ID"); got != "edge-42.abc" {
		t.Errorf("incoming id came back as %q", got)
	}
	rec = do(h, "GET", "/healthz", "", nil)
	made := rec.Header().Get("X-Request-ID")
	if len(made) != 32 {
		t.Errorf("made id = %q, want 32 hex characters", made)
	}
	rec = do(h, "GET", "/healthz", "", nil, "X-Request-ID", "bad\nid with spaces")
	if got := rec.Header().Get("X-Request-ID"); got == "" || strings.ContainsAny(got, " \n") {
		t.Errorf("an unsafe incoming id was echoed: %q", got)
	}
}

func TestReadinessNamesTheDependencyThatIsDown(t *testing.T) {
	s, rdb := newTestServer(t)
	h := s.Handler()
	if rec := do(h, "GET", "/readyz", "", nil); rec.Code != 200 {
		t.Fatalf("readyz with everything up = %d %s", rec.Code, rec.Body)
	}
	rdb.Close() // stops the embedded Redis
	rec := do(h, "GET", "/readyz", "", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with Redis down = %d, want 503", rec.Code)
	}
	var r readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Checks["redis"] == "ok" || r.Checks["database"] != "ok" {
		t.Errorf("checks = %v, want redis down and database ok", r.Checks)
	}
	if r.Error == nil || !strings.Contains(r.Error.Message, "redis") {
		t.Errorf("error = %+v, want a message naming redis", r.Error)
	}
	if rec := do(h, "GET", "/healthz", "", nil); rec.Code != 200 {
		t.Errorf("healthz must not depend on Redis; got %d", rec.Code)
	}
}

func TestReadinessReportsTheDatabaseDown(t *testing.T) {
	s, _ := newTestServer(t)
	s.db.Close()
	rec := do(s.Handler(), "GET", "/readyz", "", nil)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"database":"down"`) {
		t.Fatalf("readyz with the database closed = %d %s", rec.Code, rec.Body)
	}
}

func TestMetricsCountRequestsByRoutePattern(t *testing.T) {
	s, _ := newTestServer(t)
	h := s.Handler()
	do(h, "GET", "/healthz", "", nil)
	do(h, "GET", "/no/such/thing/123", "", nil)
	rec := do(h, "GET", "/metrics", "", nil)
	if rec.Code != 200 {
		t.Fatalf("metrics = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`patronage_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`patronage_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`patronage_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="0.005"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "/no/such/thing/123") {
		t.Error("an unmatched raw path became a metric label")
	}
}

func TestMetricsTokenGuardsMetrics(t *testing.T) {
	s, _ := newTestServer(t, func(d *Deps) { d.MetricsToken = "s3cret" })
	h := s.Handler()
	if rec := do(h, "GET", "/metrics", "", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("metrics without the token = %d, want 401", rec.Code)
	}
	if rec := do(h, "GET", "/metrics", "", nil, "Authorization", "Bearer wrong"); rec.Code != http.StatusUnauthorized {
		t.Errorf("metrics with a wrong token = %d, want 401", rec.Code)
	}
	if rec := do(h, "GET", "/metrics", "", nil, "Authorization", "Bearer s3cret"); rec.Code != 200 {
		t.Errorf("metrics with the token = %d, want 200", rec.Code)
	}
}

func TestPanicsAreLoggedWithTheirStack(t *testing.T) {
	var logs bytes.Buffer
	s, _ := newTestServer(t, func(d *Deps) { d.Logger = testLogger(&logs) })
	withProbeRoutes(s)
	do(s.Handler(), "GET", "/probe/panic", "", nil, "X-Request-ID", "req-panic")
	out := logs.String()
	if !strings.Contains(out, "secret internal detail") || !strings.Contains(out, "goroutine") || !strings.Contains(out, "req-panic") {
		t.Errorf("panic log lacks the value, the stack or the request id: %s", out)
	}
}
