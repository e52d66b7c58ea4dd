package stripeapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/internal/errs"
)

// UnavailableMessage is what a person sees when Stripe cannot be reached or
// is failing; the cause goes to the logs.
const UnavailableMessage = "Payments are unavailable right now; please try again in a few minutes."

// undecodableRE matches the error stripe-go returns, untyped, when an error
// response is not JSON (an HTML page from a proxy in front of Stripe, say).
// It is the only place the status survives. TestMapErrorNonJSONGatewayError
// fails if a stripe-go upgrade changes the wording.
var undecodableRE = regexp.MustCompile(`^Couldn't deserialize JSON \(response status: (\d+),`)

// MapError turns an error from stripe-go into an *errs.Error whose Err is
// the original error:
//
//   - Stripe refused the key (401, 403): Unavailable, "payments_unavailable";
//   - rate limits (429), Stripe's own failures (api_error, 5xx), network
//     errors and timeouts: Unavailable, "payments_unavailable";
//   - invalid_request_error: Invalid, "stripe_invalid_request", with
//     Stripe's message and the parameter it names;
//   - card_error: Invalid, Stripe's code ("card_declined" when it gives
//     none), with Stripe's message, which is written for the card holder;
//   - idempotency_error: Conflict, "idempotency_conflict";
//   - anything else: an internal error (errs.From).
//
// An *errs.Error passes through unchanged; nil stays nil.
func MapError(err error) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return e
	}
	var se *stripe.Error
	if errors.As(err, &se) {
		return mapStripeError(se, err)
	}
	if m := undecodableRE.FindStringSubmatch(err.Error()); m != nil {
		status, _ := strconv.Atoi(m[1])
		if mapped := mapStatus(status, err); mapped != nil {
			return mapped
		}
		return errs.From(err)
	}
	var urlErr *url.Error
	var netErr net.Error
	if errors.As(err, &urlErr) || errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) {
		return unavailable(err)
	}
	return errs.From(err)
}

func mapStripeError(se *stripe.Error, cause error) *errs.Error {
	// Status first: Stripe reports a bad key and a rate limit as
	// invalid_request_error, and neither is the caller's fault.
	if mapped := mapStatus(se.HTTPStatusCode, cause); mapped != nil {
		return mapped
	}
	switch se.Type {
	case stripe.ErrorTypeInvalidRequest:
		return withStripeMessage(errs.Invalid, "stripe_invalid_request", "Stripe rejected the request.", se, cause)
	case stripe.ErrorTypeCard:
		code := string(se.Code)
		if code == "" {
			code = string(stripe.ErrorCodeCardDeclined)
		}
		return withStripeMessage(errs.Invalid, code, "The card was declined.", se, cause)
	case stripe.ErrorTypeIdempotency:
		return &errs.Error{
			Kind:    errs.Conflict,
			Code:    "idempotency_conflict",
			Message: "This request was already made with different details; please start again.",
			Err:     cause,
		}
	case stripe.ErrorTypeAPI:
		return unavailable(cause)
	}
	return errs.From(cause)
}

// mapStatus maps the HTTP statuses that mean "not the caller's fault", and
// returns nil for every other status.
func mapStatus(status int, cause error) *errs.Error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		// Stripe's own message quotes part of the key; ours names only the
		// variable an operator has to fix.
		return &errs.Error{
			Kind:    errs.Unavailable,
			Code:    "payments_unavailable",
			Message: "Payments are unavailable: Stripe refused the configured secret key (STRIPE_SECRET_KEY).",
			Err:     cause,
		}
	case status == http.StatusTooManyRequests || status >= 500:
		return unavailable(cause)
	}
	return nil
}

func unavailable(cause error) *errs.Error {
	return &errs.Error{Kind: errs.Unavailable, Code: "payments_unavailable", Message: UnavailableMessage, Err: cause}
}

func withStripeMessage(kind errs.Kind, code, fallback string, se *stripe.Error, cause error) *errs.Error {
	msg := se.Msg
	if msg == "" {
		msg = fallback
	}
	e := &errs.Error{Kind: kind, Code: code, Message: msg, Err: cause}
	if se.Param != "" {
		e.Fields = map[string]string{se.Param: msg}
	}
	return e
}
