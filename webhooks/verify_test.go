package webhooks_test

import (
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/webhooks"
)

const secret = "whsec_test_current"

func event(apiVersion string) []byte {
	return []byte(fmt.Sprintf(`{"id":"evt_1","object":"event","type":"customer.subscription.updated","api_version":%q,"created":1764000000,"livemode":false,
		"data":{"object":{"id":"sub_1","object":"subscription","status":"active"}}}`, apiVersion))
}

func sign(body []byte, secret string, at time.Time) string {
	sig := webhook.ComputeSignature(at, body, secret)
	return fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(sig))
}

func TestVerify(t *testing.T) {
	body := event("2023-10-16")
	now := time.Now()
	tests := []struct {
		name    string
		body    []byte
		header  string
		secrets []string
		ok      bool
	}{
		{"valid", body, sign(body, secret, now), []string{secret}, true},
		{"wrong secret", body, sign(body, "whsec_other", now), []string{secret}, false},
		{"two signatures, one valid", body, sign(body, "whsec_other", now) + ",v1=" + hex.EncodeToString(webhook.ComputeSignature(now, body, secret)), []string{secret}, true},
		{"rotated: signed with the older of two secrets", body, sign(body, "whsec_old", now), []string{secret, "whsec_old"}, true},
		{"too old", body, sign(body, secret, now.Add(-301*time.Second)), []string{secret}, false},
		{"missing header", body, "", []string{secret}, false},
		{"malformed header", body, "v1=abc", []string{secret}, false},
		{"tampered body", []byte(string(body) + " "), sign(body, secret, now), []string{secret}, false},
		{"signed but not an event", []byte(`{"hello":"world"}`), sign([]byte(`{"hello":"world"}`), secret, now), []string{secret}, false},
		{"a 2025 api_version still verifies", event("2025-03-31.basil"), sign(event("2025-03-31.basil"), secret, now), []string{secret}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := webhooks.Verify(tt.body, tt.header, tt.secrets)
			if tt.ok {
				if err != nil {
					t.Fatalf("Verify = %v, want ok", err)
				}
				if ev.ID != "evt_1" || ev.ObjectID != "sub_1" || ev.Type != "customer.subscription.updated" || !ev.Created.Equal(time.Unix(1764000000, 0)) {
					t.Errorf("event = %+v", ev)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify accepted a delivery it must refuse")
			}
			if !errs.Is(err, errs.BadRequest) {
				t.Errorf("error %v is not a 400", err)
			}
		})
	}
}

// The object's id is found whether or not it is the object's first key.
func TestVerifyFindsTheObjectIDAnywhere(t *testing.T) {
	for _, obj := range []string{`{"id":"sub_9","object":"subscription"}`, `{"object":"subscription","items":{"id":"x"},"id":"sub_9"}`} {
		body := []byte(`{"id":"evt_2","object":"event","type":"customer.subscription.updated","api_version":"2023-10-16","created":1764000000,"data":{"object":` + obj + `}}`)
		ev, err := webhooks.Verify(body, sign(body, secret, time.Now()), []string{secret})
		if err != nil || ev.ObjectID != "sub_9" {
			t.Errorf("object %s: id %q, %v; want sub_9", obj, ev.ObjectID, err)
		}
	}
}
