// Package stripemocktest points tests at the stripe-mock that the test
// command (scripts/test) starts, so request shapes are checked against
// Stripe's OpenAPI spec without the network. stripe-mock keeps no state:
// tests may check what a request returns, never what a later one sees. With
// CI=true a missing stripe-mock fails the test instead of going untested. It
// is imported only by tests and never talks to the real Stripe.
package stripemocktest

import (
	"os"
	"testing"

	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/internal/testenv"
)

// SecretKey is the test-mode key stripe-mock accepts.
const SecretKey = "sk_test_123"

// URL is TEST_STRIPE_MOCK_URL, the base URL of the stripe-mock the test
// command started. Without it the test fails in CI and is skipped elsewhere.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_STRIPE_MOCK_URL")
	if u == "" {
		if testenv.InCI() {
			t.Fatal("CI=true but TEST_STRIPE_MOCK_URL is not set: requests to Stripe would go untested")
		}
		t.Skip("TEST_STRIPE_MOCK_URL is not set: run ./scripts/test to start stripe-mock")
	}
	return u
}

// Client returns a Stripe client pointed at stripe-mock with SecretKey.
// Retries are off: stripe-mock is local, and a failure should show at once.
func Client(t testing.TB) *client.API {
	t.Helper()
	sc, err := stripeapi.New(stripeapi.Options{
		SecretKey:         SecretKey,
		APIBase:           URL(t),
		MaxNetworkRetries: stripeapi.NoRetries,
		Logger:            testenv.Logger(),
	})
	if err != nil {
		t.Fatalf("stripe client for stripe-mock: %v", err)
	}
	return sc
}
