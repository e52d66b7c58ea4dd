package stripeapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/internal/stripeapi/stripemocktest"
	"github.com/patronage/patronage/internal/testenv"
)

func TestNewWithoutKeyIsNotConfigured(t *testing.T) {
	t.Parallel()
	sc, err := stripeapi.New(stripeapi.Options{APIBase: "http://127.0.0.1:1"})
	if sc != nil {
		t.Errorf("New without a key returned a client")
	}
	if !errors.Is(err, stripeapi.ErrNotConfigured) {
		t.Fatalf("New without a key: got %v, want ErrNotConfigured", err)
	}
	e := errs.From(err)
	if e.Kind != errs.Unavailable || e.Code != "payments_not_configured" {
		t.Errorf("got kind %q code %q, want unavailable/payments_not_configured", e.Kind, e.Code)
	}
	if !strings.Contains(e.Message, "STRIPE_SECRET_KEY") {
		t.Errorf("message %q does not name STRIPE_SECRET_KEY", e.Message)
	}
}

// stripe-mock validates the metadata's shape but does not echo it back, so
// the response is checked only for its id.
func TestCreateCustomerOnStripeMock(t *testing.T) {
	t.Parallel()
	sc := stripemocktest.Client(t)
	params := &stripe.CustomerParams{Email: stripe.String("reader@example.org")}
	params.AddMetadata("member_id", "42")
	params.SetIdempotencyKey(stripeapi.IdempotencyKey("create-customer", "42"))
	c, err := sc.Customers.New(params)
	if err != nil {
		t.Fatalf("create customer: %v", stripeapi.MapError(err))
	}
	if !strings.HasPrefix(c.ID, "cus_") {
		t.Errorf("customer id %q, want a cus_ id", c.ID)
	}
	if stripe.Key != "" {
		t.Errorf("stripe.Key was set globally; clients must carry their own key")
	}
}

func TestCreateSubscriptionCheckoutSessionOnStripeMock(t *testing.T) {
	t.Parallel()
	sc := stripemocktest.Client(t)
	s, err := sc.CheckoutSessions.New(subscriptionCheckout(stripe.CheckoutSessionModeSubscription))
	if err != nil {
		t.Fatalf("create checkout session: %v", stripeapi.MapError(err))
	}
	if !strings.HasPrefix(s.ID, "cs_") {
		t.Errorf("checkout session id %q, want a cs_ id", s.ID)
	}
	if s.Mode != stripe.CheckoutSessionModeSubscription {
		t.Errorf("checkout session mode %q, want subscription", s.Mode)
	}
}

func TestInvalidRequestOnStripeMockIsInvalid(t *testing.T) {
	t.Parallel()
	sc := stripemocktest.Client(t)
	_, err := sc.CheckoutSessions.New(subscriptionCheckout("bogus"))
	if err == nil {
		t.Fatal("checkout session with mode=bogus succeeded, want Stripe to reject it")
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("got %T %v, want a *stripe.Error", err, err)
	}
	e := errs.From(stripeapi.MapError(err))
	if e.Kind != errs.Invalid || e.Code != "stripe_invalid_request" {
		t.Errorf("got kind %q code %q, want invalid/stripe_invalid_request", e.Kind, e.Code)
	}
	if e.Message != se.Msg || !strings.Contains(e.Message, "mode") {
		t.Errorf("message %q, want Stripe's message about mode %q", e.Message, se.Msg)
	}
	if !errors.Is(e, se) {
		t.Errorf("mapped error lost its cause")
	}
}

func subscriptionCheckout(mode stripe.CheckoutSessionMode) *stripe.CheckoutSessionParams {
	return &stripe.CheckoutSessionParams{
		Mode:       stripe.String(string(mode)),
		SuccessURL: stripe.String("https://news.example.org/patrons/welcome?session={CHECKOUT_SESSION_ID}"),
		CancelURL:  stripe.String("https://news.example.org/patrons"),
		Customer:   stripe.String("cus_123"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{
			{Price: stripe.String("price_123"), Quantity: stripe.Int64(1)},
		},
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	base := stripeapi.IdempotencyKey("checkout-subscription", "m1", "gold", "month", "eur", "req-1")
	if !strings.HasPrefix(base, "patronage-checkout-subscription-") {
		t.Errorf("key %q does not start with patronage-checkout-subscription-", base)
	}
	if again := stripeapi.IdempotencyKey("checkout-subscription", "m1", "gold", "month", "eur", "req-1"); again != base {
		t.Errorf("same inputs gave %q then %q", base, again)
	}
	tests := []struct {
		name      string
		operation string
		parts     []string
	}{
		{"another member", "checkout-subscription", []string{"m2", "gold", "month", "eur", "req-1"}},
		{"another interval", "checkout-subscription", []string{"m1", "gold", "year", "eur", "req-1"}},
		{"another request", "checkout-subscription", []string{"m1", "gold", "month", "eur", "req-2"}},
		{"parts swapped", "checkout-subscription", []string{"gold", "m1", "month", "eur", "req-1"}},
		{"boundary moved", "checkout-subscription", []string{"m1g", "old", "month", "eur", "req-1"}},
		{"part missing", "checkout-subscription", []string{"m1", "gold", "month", "eur"}},
		{"another operation", "checkout-payment", []string{"m1", "gold", "month", "eur", "req-1"}},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stripeapi.IdempotencyKey(tt.operation, tt.parts...)
			if prev, dup := seen[got]; dup {
				t.Errorf("key %q equals the key for %q", got, prev)
			}
			seen[got] = tt.name
		})
	}
	long := stripeapi.IdempotencyKey(strings.Repeat("o", 1000), strings.Repeat("p", 1000))
	if len(long) > 255 {
		t.Errorf("key for a long operation is %d characters, Stripe allows 255", len(long))
	}
	if long == stripeapi.IdempotencyKey(strings.Repeat("o", 1001), strings.Repeat("p", 1000)) {
		t.Errorf("operations that differ after the visible prefix share a key")
	}
}

func TestIdempotencyKeyHeaderIsSent(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		gotKey  string
		gotAuth string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotKey, gotAuth = r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"cus_fake","object":"customer"}`)
	}))
	t.Cleanup(srv.Close)
	sc := newClient(t, srv.URL, "sk_test_header")

	key := stripeapi.IdempotencyKey("create-customer", "m1")
	params := &stripe.CustomerParams{Email: stripe.String("reader@example.org")}
	params.SetIdempotencyKey(key)
	c, err := sc.Customers.New(params)
	if err != nil {
		t.Fatalf("create customer: %v", err)
	}
	if c.ID != "cus_fake" {
		t.Errorf("customer id %q, want cus_fake", c.ID)
	}
	mu.Lock()
	defer mu.Unlock()
	if gotKey != key {
		t.Errorf("Idempotency-Key header %q, want %q", gotKey, key)
	}
	if gotAuth != "Bearer sk_test_header" {
		t.Errorf("Authorization header %q, want the client's own key", gotAuth)
	}
}

// TestMapErrorFromStripeResponses drives real stripe-go requests against a
// server answering as Stripe does, so the mapping is checked on the errors
// stripe-go actually builds.
func TestMapErrorFromStripeResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		body      string
		wantKind  errs.Kind
		wantCode  string
		wantMsg   string
		wantField string
	}{
		{
			name:      "invalid request naming a param",
			status:    400,
			body:      `{"error":{"type":"invalid_request_error","code":"parameter_invalid_empty","param":"email","message":"You passed an empty string for 'email'."}}`,
			wantKind:  errs.Invalid,
			wantCode:  "stripe_invalid_request",
			wantMsg:   "You passed an empty string for 'email'.",
			wantField: "email",
		},
		{
			name:     "missing resource",
			status:   404,
			body:     `{"error":{"type":"invalid_request_error","code":"resource_missing","param":"id","message":"No such customer: 'cus_nope'"}}`,
			wantKind: errs.Invalid,
			wantCode: "stripe_invalid_request",
			wantMsg:  "No such customer: 'cus_nope'",
		},
		{
			name:     "card declined",
			status:   402,
			body:     `{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}`,
			wantKind: errs.Invalid,
			wantCode: "card_declined",
			wantMsg:  "Your card has insufficient funds.",
		},
		{
			name:     "card error with its own code",
			status:   402,
			body:     `{"error":{"type":"card_error","code":"expired_card","message":"Your card has expired."}}`,
			wantKind: errs.Invalid,
			wantCode: "expired_card",
			wantMsg:  "Your card has expired.",
		},
		{
			name:     "card error without a code",
			status:   402,
			body:     `{"error":{"type":"card_error","message":"Your card was declined."}}`,
			wantKind: errs.Invalid,
			wantCode: "card_declined",
			wantMsg:  "Your card was declined.",
		},
		{
			name:     "idempotency key reused with other parameters",
			status:   400,
			body:     `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}`,
			wantKind: errs.Conflict,
			wantCode: "idempotency_conflict",
		},
		{
			name:     "rate limited",
			status:   429,
			body:     `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests hit the API too quickly."}}`,
			wantKind: errs.Unavailable,
			wantCode: "payments_unavailable",
			wantMsg:  stripeapi.UnavailableMessage,
		},
		{
			name:     "stripe failing",
			status:   500,
			body:     `{"error":{"type":"api_error","message":"Something went wrong on Stripe's end."}}`,
			wantKind: errs.Unavailable,
			wantCode: "payments_unavailable",
			wantMsg:  stripeapi.UnavailableMessage,
		},
		{
			name:     "proxy in front of stripe answering html",
			status:   502,
			body:     `<html><body>Bad Gateway</body></html>`,
			wantKind: errs.Unavailable,
			wantCode: "payments_unavailable",
			wantMsg:  stripeapi.UnavailableMessage,
		},
		{
			name:     "unknown error type",
			status:   400,
			body:     `{"error":{"type":"surprise_error","message":"New kind of error."}}`,
			wantKind: errs.Internal,
			wantCode: "internal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			_, err := newClient(t, srv.URL, "sk_test_map").Customers.Get("cus_123", nil)
			if err == nil {
				t.Fatalf("request answered %d succeeded", tt.status)
			}
			mapped := stripeapi.MapError(err)
			var e *errs.Error
			if !errors.As(mapped, &e) {
				t.Fatalf("MapError gave %T, want *errs.Error", mapped)
			}
			if e.Kind != tt.wantKind || e.Code != tt.wantCode {
				t.Errorf("got kind %q code %q, want %q/%q", e.Kind, e.Code, tt.wantKind, tt.wantCode)
			}
			if tt.wantMsg != "" && e.Message != tt.wantMsg {
				t.Errorf("message %q, want %q", e.Message, tt.wantMsg)
			}
			if tt.wantField != "" && e.Fields[tt.wantField] != tt.wantMsg {
				t.Errorf("fields %v, want %s: %q", e.Fields, tt.wantField, tt.wantMsg)
			}
			if e.Err != err {
				t.Errorf("cause %v, want the original error %v", e.Err, err)
			}
		})
	}
}

func TestRefusedKeyIsUnavailableWithoutTheKey(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			// Worse than Stripe, which masks most of the key: echo all of it.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: %s"}}`, key)
			}))
			t.Cleanup(srv.Close)
			const key = "sk_live_doNotLeakThis123"
			_, err := newClient(t, srv.URL, key).Customers.New(&stripe.CustomerParams{})
			e := errs.From(stripeapi.MapError(err))
			if e.Kind != errs.Unavailable || e.Code != "payments_unavailable" {
				t.Errorf("got kind %q code %q, want unavailable/payments_unavailable", e.Kind, e.Code)
			}
			if !strings.Contains(e.Message, "refused") || !strings.Contains(e.Message, "STRIPE_SECRET_KEY") {
				t.Errorf("message %q does not say Stripe refused STRIPE_SECRET_KEY", e.Message)
			}
			for _, shown := range []string{e.Message, e.Code, fmt.Sprint(e.Fields)} {
				if strings.Contains(shown, key) || strings.Contains(shown, "doNotLeak") {
					t.Errorf("client-visible %q contains the key", shown)
				}
			}
		})
	}
}

func TestUnreachableStripeIsUnavailable(t *testing.T) {
	t.Parallel()
	_, err := newClient(t, "http://127.0.0.1:1", "sk_test_x").Customers.Get("cus_123", nil)
	if err == nil {
		t.Fatal("request to 127.0.0.1:1 succeeded")
	}
	e := errs.From(stripeapi.MapError(err))
	if e.Kind != errs.Unavailable || e.Code != "payments_unavailable" || e.Message != stripeapi.UnavailableMessage {
		t.Errorf("got %q/%q %q, want unavailable/payments_unavailable %q", e.Kind, e.Code, e.Message, stripeapi.UnavailableMessage)
	}
	if e.Err != err {
		t.Errorf("cause %v, want the original error %v", e.Err, err)
	}
}

func TestTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	sc, err := stripeapi.New(stripeapi.Options{
		SecretKey:         "sk_test_x",
		APIBase:           srv.URL,
		MaxNetworkRetries: stripeapi.NoRetries,
		HTTPClient:        &http.Client{Timeout: 50 * time.Millisecond},
		Logger:            testenv.Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sc.Customers.Get("cus_123", nil)
	if e := errs.From(stripeapi.MapError(err)); e.Code != "payments_unavailable" {
		t.Errorf("timed-out request mapped to %q/%q, want unavailable/payments_unavailable", e.Kind, e.Code)
	}
}

func TestRetriesDefaultToTwo(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		calls int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"type":"api_error","message":"Try again."}}`)
			return
		}
		fmt.Fprint(w, `{"id":"cus_123","object":"customer"}`)
	}))
	t.Cleanup(srv.Close)
	sc, err := stripeapi.New(stripeapi.Options{SecretKey: "sk_test_x", APIBase: srv.URL, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Customers.Get("cus_123", nil); err != nil {
		t.Fatalf("two 503s then success: got %v, want success after the default two retries", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 {
		t.Errorf("server saw %d requests, want 3", calls)
	}
}

func TestMapErrorPassesThrough(t *testing.T) {
	t.Parallel()
	if got := stripeapi.MapError(nil); got != nil {
		t.Errorf("MapError(nil) = %v, want nil", got)
	}
	if got := stripeapi.MapError(stripeapi.ErrNotConfigured); got != error(stripeapi.ErrNotConfigured) {
		t.Errorf("MapError(ErrNotConfigured) = %v, want it unchanged", got)
	}
	cause := errors.New("something odd")
	e := errs.From(stripeapi.MapError(fmt.Errorf("create customer: %w", cause)))
	if e.Kind != errs.Internal || !errors.Is(e, cause) {
		t.Errorf("unknown error mapped to %q (cause kept: %v), want internal with its cause", e.Kind, errors.Is(e, cause))
	}
}

// newClient builds a client for a test double with retries off, so a test
// sees exactly one request per call.
func newClient(t *testing.T, base, key string) *client.API {
	t.Helper()
	sc, err := stripeapi.New(stripeapi.Options{
		SecretKey:         key,
		APIBase:           base,
		MaxNetworkRetries: stripeapi.NoRetries,
		Logger:            testenv.Logger(),
	})
	if err != nil {
		t.Fatalf("new stripe client: %v", err)
	}
	return sc
}
