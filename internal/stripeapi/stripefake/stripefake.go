// Package stripefake is an in-memory, stateful imitation of the parts of
// Stripe's API (version 2023-10-16) that Patronage uses: products, prices,
// customers, Checkout Sessions, billing portal sessions and configurations,
// webhook endpoints, the account, subscriptions and
// what they bill (invoices, payment intents, charges, refunds, disputes),
// and the events Stripe would send about them. Unlike stripe-mock it
// remembers what it was told, so a test can check what a later request sees:
// that a second sync creates nothing, that a lookup key moved, that a retried
// request was replayed.
//
// What happens in Stripe without an API call (a renewal, a failed payment, a
// refund or dispute made in the Dashboard) is driven by Go methods on
// Server, on a clock the test controls. Every change records the events
// Stripe would send, in Stripe's order, for a test to deliver to a webhook
// handler (SignedDelivery) or to read through GET /v1/events.
//
// It is for tests, and for `patronage demo seed`, which drives it the way a
// test does to make a synthetic history; it never talks to Stripe. It answers with
// Stripe-shaped JSON and Stripe's error shapes and messages, and it refuses
// what it does not imitate (an unknown endpoint, an unknown parameter) with a
// message naming it, so a gap in the fake shows as a failing test instead of
// a passing one.
package stripefake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/stripeapi"
)

// SecretKey is the key Client uses. Any "sk_test_" key is accepted.
const SecretKey = "sk_test_fake"

// Server is an in-memory, stateful imitation of the parts of Stripe's API
// Patronage uses. All methods are safe for concurrent use.
type Server struct {
	URL string // base URL, for stripeapi.Options.APIBase

	mu         sync.Mutex
	objects    map[string]map[string]any // by id; the "object" field says the kind
	order      map[string][]string       // ids by kind, oldest first
	created    map[string]int
	requests   []Request
	failLeft   int
	failStatus int
	replays    map[string]replay        // by Idempotency-Key
	checkouts  map[string]*checkoutPlan // what a Checkout Session keeps out of its JSON
	clock      time.Time                // zero: the wall clock
	taken      int                      // events TakeEvents has handed out
	req        map[string]any           // the request being served, for events it causes
	srv        *httptest.Server
}

// Request is one request as the fake received it.
type Request struct {
	Method         string
	Path           string
	Form           url.Values // query and body
	IdempotencyKey string
}

type replay struct {
	method, path, form string
	body               []byte
}

// New starts a fake on httptest; it is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake on a loopback port outside a test; Close stops it.
func Start() *Server {
	s := &Server{
		objects:   map[string]map[string]any{},
		order:     map[string][]string{},
		created:   map[string]int{},
		replays:   map[string]replay{},
		checkouts: map[string]*checkoutPlan{},
	}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// Close stops serving the API; the Go methods keep working.
func (s *Server) Close() { s.srv.Close() }

// Client returns a stripe-go client pointed at the fake with SecretKey and
// retries off, so an injected failure reaches the caller at once.
func (s *Server) Client(t testing.TB) *client.API {
	t.Helper()
	sc, err := stripeapi.New(stripeapi.Options{
		SecretKey:         SecretKey,
		APIBase:           s.URL,
		MaxNetworkRetries: stripeapi.NoRetries,
	})
	if err != nil {
		t.Fatalf("stripe client for stripefake: %v", err)
	}
	return sc
}

// SetNow sets the fake's clock, which stamps every object and event it
// makes and drives subscription periods. Until the clock is set or moved
// (SetNow, Advance, or a renewal or trial end reaching its date) the fake
// follows the wall clock; after, it stands still between calls, so a test
// sees the same timestamps on every run.
func (s *Server) SetNow(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = t.UTC().Truncate(time.Second)
}

// Advance moves the fake's clock forward by d (from the wall clock, if it
// was following it).
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = s.nowTime().Add(d).Truncate(time.Second)
}

// Now is the fake's clock: what it stamps the next object or event with.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowTime()
}

// nowTime is the fake's clock to the second, as Stripe's timestamps are;
// the caller holds s.mu.
func (s *Server) nowTime() time.Time {
	if s.clock.IsZero() {
		return time.Now().UTC().Truncate(time.Second)
	}
	return s.clock
}

func (s *Server) now() int64 { return s.nowTime().Unix() }

// moveClockTo advances the clock to t when it is behind t, as waiting for
// Stripe to reach a period end would; the caller holds s.mu.
func (s *Server) moveClockTo(t int64) {
	if s.now() < t {
		s.clock = time.Unix(t, 0).UTC()
	}
}

// Created counts the objects of one kind ("product", "price", "customer",
// "checkout.session", "billing_portal.session", "subscription", "invoice",
// "payment_intent", "charge", "refund", "dispute", "event") created so far.
// Idempotent replays and prices made from inline price_data do not count.
func (s *Server) Created(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created[kind]
}

// Requests returns every request received so far, in order, including
// refused and failed ones.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// FailNext makes the next n requests, whatever they are, fail with status
// and a Stripe-shaped error (type api_error for 5xx) without touching any
// state, as if Stripe had failed before doing anything.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLeft, s.failStatus = n, status
}

// The accessors below return deep copies of stored objects, shaped as the
// API's JSON decoded into maps: nested objects are map[string]any, lists are
// []any, amounts and timestamps are int64, absent values are nil. Changing a
// copy changes nothing in the fake; arrange state through the API instead.

// Product returns the product with id.
func (s *Server) Product(id string) (map[string]any, bool) { return s.lookup("product", id) }

// Price returns the price with id.
func (s *Server) Price(id string) (map[string]any, bool) { return s.lookup("price", id) }

// Customer returns the customer with id; a deleted customer is the stub
// Stripe answers with, {"id", "object", "deleted": true}.
func (s *Server) Customer(id string) (map[string]any, bool) { return s.lookup("customer", id) }

// CheckoutSession returns the Checkout Session with id.
func (s *Server) CheckoutSession(id string) (map[string]any, bool) {
	return s.lookup("checkout.session", id)
}

// Subscription returns the subscription with id.
func (s *Server) Subscription(id string) (map[string]any, bool) {
	return s.lookup("subscription", id)
}

// Invoice returns the invoice with id.
func (s *Server) Invoice(id string) (map[string]any, bool) { return s.lookup("invoice", id) }

// Charge returns the charge with id.
func (s *Server) Charge(id string) (map[string]any, bool) { return s.lookup("charge", id) }

// PaymentIntent returns the payment intent with id.
func (s *Server) PaymentIntent(id string) (map[string]any, bool) {
	return s.lookup("payment_intent", id)
}

// Refunds and disputes have no accessor here: Refund and Dispute are the
// methods that make them. Read them with GET /v1/refunds/{id} and
// /v1/disputes/{id}.

// Prices returns every price, oldest first.
func (s *Server) Prices() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(s.order["price"]))
	for _, id := range s.order["price"] {
		out = append(out, clone(s.objects[id]).(map[string]any))
	}
	return out
}

func (s *Server) lookup(kind, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.stored(kind, id)
	if obj == nil {
		return nil, false
	}
	return clone(obj).(map[string]any), true
}

// get returns the stored object itself, or nil for none or a deleted one;
// the caller holds s.mu.
func (s *Server) get(kind, id string) map[string]any {
	obj := s.stored(kind, id)
	if obj == nil || obj["deleted"] == true {
		return nil
	}
	return obj
}

// stored is get that also returns a deleted object's stub.
func (s *Server) stored(kind, id string) map[string]any {
	obj := s.objects[id]
	if obj == nil || obj["object"] != kind {
		return nil
	}
	return obj
}

// add stores a new object and counts it; the caller holds s.mu.
func (s *Server) add(obj map[string]any) map[string]any {
	kind, id := obj["object"].(string), obj["id"].(string)
	s.objects[id] = obj
	s.order[kind] = append(s.order[kind], id)
	s.created[kind]++
	return obj
}

// handler serves one route. It holds s.mu and returns the stored object (or
// list) to encode; the caller copies it before expanding.
type handler func(s *Server, id string, p params) (map[string]any, *apiError)

type route struct {
	method, pattern string // "{id}" in pattern matches one path segment
	h               handler
}

var routes = []route{
	{"POST", "/v1/products", createProduct},
	{"GET", "/v1/products", listProducts},
	{"GET", "/v1/products/{id}", retrieve("product")},
	{"POST", "/v1/products/{id}", updateProduct},
	{"POST", "/v1/prices", createPrice},
	{"GET", "/v1/prices", listPrices},
	{"GET", "/v1/prices/{id}", retrieve("price")},
	{"POST", "/v1/prices/{id}", updatePrice},
	{"POST", "/v1/customers", createCustomer},
	{"GET", "/v1/customers", listCustomers},
	{"GET", "/v1/customers/{id}", retrieve("customer")},
	{"POST", "/v1/customers/{id}", updateCustomer},
	{"POST", "/v1/checkout/sessions", createCheckoutSession},
	{"GET", "/v1/checkout/sessions/{id}", retrieve("checkout.session")},
	{"POST", "/v1/billing_portal/sessions", createPortalSession},
	{"POST", "/v1/billing_portal/configurations", createPortalConfiguration},
	{"GET", "/v1/billing_portal/configurations", listPortalConfigurations},
	{"GET", "/v1/billing_portal/configurations/{id}", retrieve("billing_portal.configuration")},
	{"POST", "/v1/billing_portal/configurations/{id}", updatePortalConfiguration},
	{"GET", "/v1/account", getAccount},
	{"POST", "/v1/webhook_endpoints", createWebhookEndpoint},
	{"GET", "/v1/webhook_endpoints", listWebhookEndpoints},
	{"GET", "/v1/webhook_endpoints/{id}", retrieve("webhook_endpoint")},
	{"POST", "/v1/webhook_endpoints/{id}", updateWebhookEndpoint},
	{"DELETE", "/v1/webhook_endpoints/{id}", deleteWebhookEndpoint},
	{"GET", "/v1/subscriptions", listSubscriptions},
	{"GET", "/v1/subscriptions/{id}", retrieve("subscription")},
	{"GET", "/v1/invoices", listInvoices},
	{"GET", "/v1/invoices/{id}", retrieve("invoice")},
	{"GET", "/v1/payment_intents/{id}", retrieve("payment_intent")},
	{"GET", "/v1/charges/{id}", retrieve("charge")},
	{"GET", "/v1/refunds", listRefunds},
	{"GET", "/v1/refunds/{id}", retrieve("refund")},
	{"GET", "/v1/disputes/{id}", retrieve("dispute")},
	{"GET", "/v1/events", listEvents},
	{"GET", "/v1/events/{id}", retrieve("event")},
}

func match(method, path string) (handler, string) {
	for _, rt := range routes {
		if rt.method != method {
			continue
		}
		want, got := strings.Split(rt.pattern, "/"), strings.Split(path, "/")
		if len(want) != len(got) {
			continue
		}
		id, ok := "", true
		for i := range want {
			switch {
			case want[i] == "{id}" && got[i] != "":
				id = got[i]
			case want[i] != got[i]:
				ok = false
			}
		}
		if ok {
			return rt.h, id
		}
	}
	return nil, ""
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") { // a hosted Checkout or portal page
		fmt.Fprintf(w, "stripefake page %s\n", r.URL.Path)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, invalid("", "stripefake: cannot parse form: "+err.Error()))
		return
	}
	key := r.Header.Get("Idempotency-Key")

	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Form: r.Form, IdempotencyKey: key})
	w.Header().Set("Request-Id", newID("req_"))
	if key != "" {
		w.Header().Set("Idempotency-Key", key)
	}

	if s.failLeft > 0 {
		s.failLeft--
		writeError(w, injected(s.failStatus))
		return
	}
	if e := checkAuth(r.Header.Get("Authorization")); e != nil {
		writeError(w, e)
		return
	}
	h, id := match(r.Method, r.URL.Path)
	if h == nil {
		writeError(w, &apiError{status: 404, Type: "invalid_request_error", Message: fmt.Sprintf(
			"Unrecognized request URL (%s: %s). stripefake does not imitate this endpoint: add it to internal/stripeapi/stripefake.",
			r.Method, r.URL.Path)})
		return
	}

	form := r.Form.Encode()
	idempotent := r.Method == http.MethodPost && key != ""
	if prev, seen := s.replays[key]; idempotent && seen {
		if e := prev.mismatch(key, r.Method, r.URL.Path, form); e != nil {
			writeError(w, e)
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusOK, prev.body)
		return
	}

	p := parseParams(r.Form)
	// Events a request causes name it, as Stripe's do; a GET causes none.
	s.req = map[string]any{"id": w.Header().Get("Request-Id"), "idempotency_key": nullIfEmpty(key)}
	obj, e := h(s, id, p)
	s.req = nil
	if e == nil {
		obj = clone(obj).(map[string]any)
		e = s.expand(obj, p.strs("expand"))
	}
	if e != nil {
		// Like Stripe, a request refused before it ran saves no result,
		// so a corrected retry with the same key goes ahead.
		writeError(w, e)
		return
	}
	body, err := json.Marshal(obj)
	if err != nil {
		writeError(w, &apiError{status: 500, Type: "api_error", Message: "stripefake: " + err.Error()})
		return
	}
	if idempotent {
		s.replays[key] = replay{method: r.Method, path: r.URL.Path, form: form, body: body}
	}
	writeJSON(w, http.StatusOK, body)
}

func (prev replay) mismatch(key, method, path, form string) *apiError {
	e := &apiError{status: 400, Type: "idempotency_error"}
	switch {
	case prev.method != method || prev.path != path:
		e.Message = fmt.Sprintf("Keys for idempotent requests can only be used for the same endpoint they were first used for ('%s %s' vs '%s %s'). Try using a key other than '%s' if you meant to execute a different request.",
			prev.method, prev.path, method, path, key)
	case prev.form != form:
		e.Message = fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", key)
	default:
		return nil
	}
	return e
}

func checkAuth(header string) *apiError {
	if key, ok := strings.CutPrefix(header, "Bearer "); ok && strings.HasPrefix(key, "sk_test_") {
		return nil
	}
	return &apiError{status: 401, Type: "invalid_request_error",
		Message: "Invalid API Key provided: stripefake accepts only 'Authorization: Bearer sk_test_...'."}
}

// retrieve serves GET /v1/<kind>s/{id}. A deleted object answers with its
// stub and 200, as Stripe does.
func retrieve(kind string) handler {
	return func(s *Server, id string, p params) (map[string]any, *apiError) {
		if e := p.only(); e != nil {
			return nil, e
		}
		obj := s.stored(kind, id)
		if obj == nil {
			return nil, noSuch(kind, id, "id", 404)
		}
		return obj, nil
	}
}

// expandable lists, by object kind, the fields the fake can expand.
var expandable = map[string][]string{
	"price":            {"product"},
	"checkout.session": {"customer", "subscription", "line_items", "payment_intent"},
	"subscription":     {"customer", "latest_invoice"},
	"invoice":          {"customer", "subscription", "charge", "payment_intent"},
	"payment_intent":   {"customer", "invoice", "latest_charge"},
	"charge":           {"customer", "invoice", "payment_intent", "refunds"},
	"refund":           {"charge", "payment_intent"},
	"dispute":          {"charge", "payment_intent"},
}

// expand replaces ids in obj (a copy) with the objects they name, as
// Stripe's expand[] does; "data.x" expands x in every item of a list, and
// "x.y" expands y inside the expanded x.
func (s *Server) expand(obj map[string]any, paths []string) *apiError {
	for _, path := range paths {
		if rest, ok := strings.CutPrefix(path, "data."); ok && obj["object"] == "list" {
			for _, item := range obj["data"].([]any) {
				if e := s.expand(item.(map[string]any), []string{rest}); e != nil {
					return e
				}
			}
			continue
		}
		head, rest, nested := strings.Cut(path, ".")
		kind, _ := obj["object"].(string)
		if !slices.Contains(expandable[kind], head) {
			return invalid("expand", fmt.Sprintf("This property cannot be expanded (%s). stripefake expands only %v on a %s.", head, expandable[kind], kind))
		}
		switch head {
		case "line_items":
			obj[head] = listOf(clone(s.checkouts[obj["id"].(string)].lineItems).([]any), "/v1/checkout/sessions/"+obj["id"].(string)+"/line_items", false)
		case "refunds":
			obj[head] = s.refundsOf(obj["id"].(string))
		default:
			if id, ok := obj[head].(string); ok && s.objects[id] != nil {
				obj[head] = clone(s.objects[id])
			}
		}
		if inner, ok := obj[head].(map[string]any); ok && nested {
			if e := s.expand(inner, []string{rest}); e != nil {
				return e
			}
		}
	}
	return nil
}

// list pages through the objects of kind newest first, as Stripe does,
// keeping those keep accepts. starting_after pages towards older objects,
// ending_before towards newer ones; either way a page is newest first.
func (s *Server) list(kind string, p params, keep func(map[string]any) bool, allowed ...string) (map[string]any, *apiError) {
	if e := p.only(append(allowed, "limit", "starting_after", "ending_before")...); e != nil {
		return nil, e
	}
	limit, set := p.int("limit")
	if !set {
		limit = 10
	}
	if limit < 1 || limit > 100 {
		return nil, invalid("limit", "This value must be greater than or equal to 1 and less than or equal to 100.")
	}
	after, byAfter := p.str("starting_after")
	before, byBefore := p.str("ending_before")
	cursor, param := after, "starting_after"
	switch {
	case byAfter && byBefore:
		return nil, invalid("ending_before", "You may only specify one of these parameters: ending_before, starting_after.")
	case byBefore:
		cursor, param = before, "ending_before"
	}
	// newer and older are the kept objects either side of the cursor,
	// newest first; without a cursor everything is older.
	var newer, older []any
	found := cursor == ""
	ids := s.order[kind]
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i] == cursor {
			found = true
			continue
		}
		obj := s.objects[ids[i]]
		switch {
		case !keep(obj):
		case found:
			older = append(older, obj)
		default:
			newer = append(newer, obj)
		}
	}
	if !found {
		return nil, noSuch(kind, cursor, param, 400)
	}
	url := "/v1/" + kind + "s"
	if byBefore {
		if int64(len(newer)) > limit {
			return listOf(newer[int64(len(newer))-limit:], url, true), nil
		}
		return listOf(newer, url, false), nil
	}
	if int64(len(older)) > limit {
		return listOf(older[:limit], url, true), nil
	}
	return listOf(older, url, false), nil
}

func listOf(data []any, url string, hasMore bool) map[string]any {
	if data == nil {
		data = []any{}
	}
	return map[string]any{"object": "list", "data": data, "has_more": hasMore, "url": url}
}

// apiError is a Stripe error body with its HTTP status.
type apiError struct {
	status  int
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

func invalid(param, message string) *apiError {
	return &apiError{status: 400, Type: "invalid_request_error", Param: param, Message: message}
}

func missing(param string) *apiError {
	return &apiError{status: 400, Type: "invalid_request_error", Code: "parameter_missing", Param: param,
		Message: "Missing required param: " + param + "."}
}

// noSuch is Stripe's answer to an id that names nothing: 404 for the id in
// the path, 400 for an id inside the params.
func noSuch(kind, id, param string, status int) *apiError {
	noun := strings.ReplaceAll(kind, ".", " ")
	noun = strings.ReplaceAll(noun, "_", " ")
	return &apiError{status: status, Type: "invalid_request_error", Code: "resource_missing", Param: param,
		Message: fmt.Sprintf("No such %s: '%s'", noun, id)}
}

func injected(status int) *apiError {
	e := &apiError{status: status, Type: "invalid_request_error",
		Message: fmt.Sprintf("stripefake: injected failure (FailNext, HTTP %d)", status)}
	switch {
	case status >= 500:
		e.Type = "api_error"
	case status == http.StatusTooManyRequests:
		e.Code = "rate_limit"
	}
	return e
}

func writeError(w http.ResponseWriter, e *apiError) {
	body, _ := json.Marshal(map[string]any{"error": e})
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// newID makes an id like Stripe's: a prefix and random letters and digits.
func newID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	n := 14
	if prefix == "cs_test_" {
		n = 58 // Checkout Session ids are long
	}
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

// clone deep-copies the maps and slices objects are made of.
func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = clone(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = clone(e)
		}
		return out
	default:
		return v
	}
}
