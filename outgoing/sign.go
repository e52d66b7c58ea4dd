package outgoing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a delivery's signature, the way Stripe's
// Stripe-Signature does: "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">", with one v1 for each secret in use (two for a while
// after a rotation).
const SignatureHeader = "Patronage-Signature"

// Sign is the SignatureHeader value for body sent at t, signed with every
// secret given.
func Sign(body []byte, t time.Time, secrets ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		b.WriteString(",v1=" + hex.EncodeToString(mac(s, ts, body)))
	}
	return b.String()
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

// ErrBadSignature is what Verify returns for a delivery that is not
// signed with the secret, or signed too long ago.
var ErrBadSignature = errors.New("outgoing webhook: signature does not match")

// Verify checks a delivery as a receiver does: one v1 signature of the
// header must be the HMAC of its timestamp and body under secret, and the
// timestamp within tolerance of now (replays of old deliveries fail).
func Verify(body []byte, header, secret string, tolerance time.Duration, now time.Time) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrBadSignature
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrBadSignature
}
