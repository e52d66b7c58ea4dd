// Package webhooks takes Stripe's events in: it verifies each delivery's
// signature before reading anything, stores the event and its processing
// job in one transaction, and answers only then. Processing happens later,
// on the job queue, by handlers billing provides. It never decides what an
// event means for a patron.
package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/patronage/patronage/internal/errs"
)

// Tolerance is how old a signed delivery may be.
const Tolerance = 300 * time.Second

// MaxBody is the largest event accepted; Stripe's are far smaller.
const MaxBody = 1 << 20

// Event is the part of a Stripe event every version of the API agrees on.
// The object itself stays raw: handlers decode it, or re-fetch it from the
// API at our pinned version.
type Event struct {
	ID         string
	Type       string
	APIVersion string
	Created    time.Time
	Livemode   bool
	Object     json.RawMessage
	ObjectID   string
}

// Verify checks a delivery's Stripe-Signature against each secret (several
// during a rotation) and only then parses it. Any failure is a 400-class
// error that names the problem and nothing more.
func Verify(body []byte, header string, secrets []string) (Event, error) {
	if strings.TrimSpace(header) == "" {
		return Event{}, badSignature("The Stripe-Signature header is missing.")
	}
	var lastErr error
	verified := false
	for _, secret := range secrets {
		err := webhook.ValidatePayloadWithTolerance(body, header, secret, Tolerance)
		if err == nil {
			verified = true
			break
		}
		lastErr = err
		if errors.Is(err, webhook.ErrInvalidHeader) || errors.Is(err, webhook.ErrTooOld) {
			break // the same for every secret
		}
	}
	if !verified {
		switch {
		case errors.Is(lastErr, webhook.ErrInvalidHeader):
			return Event{}, badSignature("The Stripe-Signature header is malformed.")
		case errors.Is(lastErr, webhook.ErrTooOld):
			return Event{}, badSignature("The signature's timestamp is more than 300 seconds old.")
		default:
			return Event{}, badSignature("No signature matches the webhook secret.")
		}
	}
	var raw struct {
		ID         string `json:"id"`
		Object     string `json:"object"`
		Type       string `json:"type"`
		APIVersion string `json:"api_version"`
		Created    int64  `json:"created"`
		Livemode   bool   `json:"livemode"`
		Data       struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || raw.Object != "event" || raw.ID == "" || raw.Type == "" || len(raw.Data.Object) == 0 {
		return Event{}, errs.WithCode(errs.BadRequest, "invalid_event", "The body is signed but is not a Stripe event.")
	}
	return Event{ID: raw.ID, Type: raw.Type, APIVersion: raw.APIVersion, Created: time.Unix(raw.Created, 0).UTC(),
		Livemode: raw.Livemode, Object: raw.Data.Object, ObjectID: objectID(raw.Data.Object)}, nil
}

// objectID reads an object's id. Stripe writes "id" first, so reading the
// first key is enough and spares intake a second parse of the whole object.
func objectID(object []byte) string {
	dec := json.NewDecoder(bytes.NewReader(object))
	if tok, err := dec.Token(); err == nil && tok == json.Delim('{') {
		if key, err := dec.Token(); err == nil && key == "id" {
			if id, err := dec.Token(); err == nil {
				if s, ok := id.(string); ok {
					return s
				}
			}
		}
	}
	var obj struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(object, &obj)
	return obj.ID
}

func badSignature(msg string) error {
	return errs.WithCode(errs.BadRequest, "invalid_signature", "%s", msg)
}
