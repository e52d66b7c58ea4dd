// Package errs holds Patronage's one error type. Domain packages return it to
// say what kind of failure a caller caused (invalid input, a missing record, a
// conflict); the web package maps the kind to an HTTP status in one place.
// It decides nothing itself and never imports a domain package.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error; the web layer maps each kind to one HTTP status.
type Kind string

const (
	Internal        Kind = "internal"
	Invalid         Kind = "invalid"         // the request was understood but a value is wrong (422)
	BadRequest      Kind = "bad_request"     // the request itself is malformed (400)
	Unauthenticated Kind = "unauthenticated" // no valid credentials (401)
	Forbidden       Kind = "forbidden"       // credentials are fine, the action is not allowed (403)
	NotFound        Kind = "not_found"       // 404
	Conflict        Kind = "conflict"        // the current state forbids it (409)
	TooLarge        Kind = "too_large"       // 413
	UnsupportedType Kind = "unsupported"     // 415
	RateLimited     Kind = "rate_limited"    // 429
	Unavailable     Kind = "unavailable"     // a dependency is down; try again (503)
)

// Error is the error every package returns when the caller deserves to know
// what went wrong. Code is a stable snake_case identifier for clients; Message
// is a sentence for a person; Fields names offending input fields.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Fields  map[string]string
	Details map[string]string // extra facts a client can act on, e.g. the existing record's id
	Err     error             // the cause, logged for internal errors, never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// E builds an error of a kind whose code is the kind's own name.
func E(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: string(kind), Message: fmt.Sprintf(format, args...)}
}

// WithCode builds an error of a kind with a more specific code, such as
// Conflict with "vote_budget_exhausted".
func WithCode(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidFields reports a validation failure naming each offending field.
func InvalidFields(fields map[string]string) *Error {
	return &Error{Kind: Invalid, Code: string(Invalid), Message: "Some fields are not valid.", Fields: fields}
}

// From returns the *Error in err's chain, or an internal error wrapping err.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Internal, Code: string(Internal), Message: "Something went wrong on our side.", Err: err}
}

// Is reports whether err is an *Error of the given kind.
func Is(err error, kind Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == kind
}
