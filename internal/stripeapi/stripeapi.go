// Package stripeapi owns Patronage's connection to Stripe: it builds a
// stripe-go client from configuration, derives idempotency keys, and turns
// Stripe's errors into *errs.Error. It decides nothing about patrons or
// billing, and it never touches stripe-go's package-level state (stripe.Key,
// the default backends): every client it builds carries its own key and
// backends.
package stripeapi

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/errs"
)

const (
	// DefaultMaxNetworkRetries is used when Options.MaxNetworkRetries is 0.
	DefaultMaxNetworkRetries = 2

	// NoRetries in Options.MaxNetworkRetries turns stripe-go's retries off.
	// Zero cannot mean "none" because it means "the default".
	NoRetries = -1

	defaultTimeout = 20 * time.Second
)

// Options come from configuration.
type Options struct {
	SecretKey string // STRIPE_SECRET_KEY; empty means payments are not configured
	APIBase   string // STRIPE_API_BASE; empty means Stripe's real API (https://api.stripe.com)

	// MaxNetworkRetries is how often stripe-go retries a request that failed
	// in a way worth retrying: 0 means DefaultMaxNetworkRetries, a negative
	// value (NoRetries) means never.
	MaxNetworkRetries int64

	HTTPClient *http.Client // optional; the default gives up after 20 s
	Logger     *slog.Logger // optional; receives stripe-go's warnings and errors, nothing when nil
}

// ErrNotConfigured is returned by New when no secret key is set. Features
// that need payments report it to the caller instead of failing at start-up.
var ErrNotConfigured = &errs.Error{
	Kind:    errs.Unavailable,
	Code:    "payments_not_configured",
	Message: "Payments are not configured: STRIPE_SECRET_KEY is not set.",
}

// New builds a Stripe client whose every backend (API, uploads, Connect)
// talks to opts.APIBase, or to Stripe itself when APIBase is empty.
func New(opts Options) (*client.API, error) {
	if opts.SecretKey == "" {
		return nil, ErrNotConfigured
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		// Keep connections to Stripe open for reuse: Go's default keeps two
		// idle per host, so concurrent checkouts would pay a TLS handshake each.
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConns = 128
		transport.MaxIdleConnsPerHost = 64
		httpClient = &http.Client{Timeout: defaultTimeout, Transport: transport}
	}
	retries := opts.MaxNetworkRetries
	switch {
	case retries == 0:
		retries = DefaultMaxNetworkRetries
	case retries < 0:
		retries = 0
	}
	// A nil LeveledLogger would make stripe-go fall back to its own global
	// logger on stderr, so "no logger" is an explicit null logger.
	var logger stripe.LeveledLoggerInterface = &stripe.LeveledLogger{Level: stripe.LevelNull}
	if opts.Logger != nil {
		logger = slogLogger{opts.Logger.With("component", "stripe")}
	}
	backend := func(typ stripe.SupportedBackend) stripe.Backend {
		cfg := &stripe.BackendConfig{
			HTTPClient:        httpClient,
			MaxNetworkRetries: stripe.Int64(retries),
			LeveledLogger:     logger,
		}
		if opts.APIBase != "" {
			cfg.URL = stripe.String(opts.APIBase)
		}
		return stripe.GetBackendWithConfig(typ, cfg)
	}
	backends := &stripe.Backends{
		API:     backend(stripe.APIBackend),
		Connect: backend(stripe.ConnectBackend),
		Uploads: backend(stripe.UploadsBackend),
	}
	return client.New(opts.SecretKey, backends), nil
}

// slogLogger passes stripe-go's warnings and errors to slog and drops its
// per-request debug and info lines. stripe-go redacts keys from what it logs.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Debugf(string, ...any) {}
func (s slogLogger) Infof(string, ...any)  {}
func (s slogLogger) Warnf(format string, v ...any) {
	s.l.Warn(fmt.Sprintf(format, v...))
}
func (s slogLogger) Errorf(format string, v ...any) {
	s.l.Error(fmt.Sprintf(format, v...))
}

// maxVisibleOperation bounds the readable part of an idempotency key so the
// whole key stays far below Stripe's 255-character limit.
const maxVisibleOperation = 64

// IdempotencyKey derives a deterministic Idempotency-Key from an operation
// name and the values that make one attempt of it distinct, so a retried
// request (a double click, a replayed job) reaches Stripe with the same key
// and creates nothing twice:
//
//	IdempotencyKey("checkout-subscription", memberID, tier, interval, currency, clientRequestKey)
//
// The result is "patronage-<operation>-<32 hex digits of SHA-256>". Each
// input is length-prefixed before hashing, so ("ab", "c") and ("a", "bc")
// give different keys.
func IdempotencyKey(operation string, parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range append([]string{operation}, parts...) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	visible := operation
	if len(visible) > maxVisibleOperation {
		visible = visible[:maxVisibleOperation]
	}
	return "patronage-" + visible + "-" + hex.EncodeToString(h.Sum(nil))[:32]
}
