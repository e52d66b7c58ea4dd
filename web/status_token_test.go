package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/statustoken"
	"github.com/patronage/patronage/members"
)

// A signed-in patron gets a 15-minute token saying who they are and what
// tier they have; the newsroom's site verifies it with the published keys
// alone, and a token altered, expired, or from another server does not
// verify. Signed out, there is no token.
func TestAPatronsStatusTokenVerifiesAgainstThePublishedKeys(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	if rec := do(h, "GET", "/api/v1/me/token", "", nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("signed out = %d %s", rec.Code, rec.Body)
	}
	cookie := signUpAndSignIn(t, ts, "reader@example.org")
	if _, err := ts.db.Exec(`INSERT INTO tiers (slug, name, created_at, updated_at) VALUES ('coffee', 'Coffee', $1, $1)`, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	m, err := ts.members.FindMemberByEmail(context.Background(), "reader@example.org")
	if err != nil {
		t.Fatal(err)
	}
	token := func() (string, time.Time) {
		t.Helper()
		rec := do(h, "GET", "/api/v1/me/token", "", nil, "Cookie", withCookie(cookie))
		var out struct {
			Token     string
			ExpiresAt time.Time `json:"expires_at"`
			JWKSURL   string    `json:"jwks_url"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.JWKSURL != "http://patrons.test/.well-known/jwks.json" {
			t.Fatalf("token = %d %s", rec.Code, rec.Body)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("a token may be cached: %q", rec.Header().Get("Cache-Control"))
		}
		return out.Token, out.ExpiresAt
	}
	jwks := func() []byte {
		t.Helper()
		rec := do(h, "GET", "/.well-known/jwks.json", "", nil, "Origin", "https://elsewhere.example")
		if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("Content-Type") != "application/jwk-set+json" {
			t.Fatalf("jwks = %d %v %s", rec.Code, rec.Header(), rec.Body)
		}
		return rec.Body.Bytes()
	}

	reader, _ := token()
	c, err := statustoken.Verify(reader, jwks(), "http://patrons.test", time.Now())
	if err != nil || c.Subject != m.ID || c.Active || c.Tier != "" {
		t.Fatalf("a reader's token: %+v %v", c, err)
	}
	if _, err := ts.billing.GrantComplimentary(context.Background(), members.CommandLine, m.ID, billing.GrantInput{Tier: "coffee"}); err != nil {
		t.Fatal(err)
	}
	patron, expires := token()
	c, err = statustoken.Verify(patron, jwks(), "http://patrons.test", time.Now())
	if err != nil || c.Subject != m.ID || !c.Active || c.Tier != "coffee" || c.Source != "complimentary" {
		t.Fatalf("a patron's token: %+v %v", c, err)
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life != 15*time.Minute || !expires.Equal(c.ExpiresAt.Time) {
		t.Errorf("token lives %s, expires_at %s", life, expires)
	}
	if _, err := statustoken.Verify(patron, jwks(), "http://patrons.test", time.Now().Add(16*time.Minute)); err == nil {
		t.Error("a token verifies after 16 minutes")
	}
	if _, err := statustoken.Verify(patron, jwks(), "http://patrons.test", time.Now().Add(-20*time.Second)); err != nil {
		t.Errorf("a site whose clock is 20 s behind refuses a fresh token: %v", err)
	}
	if _, err := statustoken.Verify(patron, jwks(), "https://another.example", time.Now()); err == nil {
		t.Error("a token verifies for another issuer")
	}
	parts := strings.Split(patron, ".")
	forged, _ := json.Marshal(map[string]any{"sub": m.ID, "active": true, "tier": "press", "aud": statustoken.Audience, "iss": "http://patrons.test",
		"exp": time.Now().Add(time.Hour).Unix()})
	if _, err := statustoken.Verify(parts[0]+"."+b64(forged)+"."+parts[2], jwks(), "http://patrons.test", time.Now()); err == nil {
		t.Error("a token with its claims changed verifies")
	}

	// After a rotation the new key is published at once, and tokens still
	// carry the old one, which verifies (the switch is tested with a clock
	// in internal/statustoken).
	fresh, _, err := ts.statusTokens.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(jwks()), fresh) {
		t.Fatal("the new key is not published at once")
	}
	after, _ := token()
	if kid(t, after) != kid(t, patron) {
		t.Fatal("the new key signs before caches of the key set can have it")
	}
	if _, err := statustoken.Verify(after, jwks(), "http://patrons.test", time.Now()); err != nil {
		t.Errorf("after the rotation: %v", err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func kid(t *testing.T, token string) string {
	t.Helper()
	var header struct{ Kid string }
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil || json.Unmarshal(raw, &header) != nil {
		t.Fatalf("token header: %v", err)
	}
	return header.Kid
}

// Only the newsroom's own origins may read a reader's status with their
// cookie; a preflight from one is answered, from any other it gets nothing
// a browser would act on.
func TestOnlyTheNewsroomsOriginsReadTheStatus(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	cookie := signUpAndSignIn(t, ts, "reader@example.org")
	for _, path := range []string{"/api/v1/me", "/api/v1/me/token"} {
		rec := do(h, "GET", path, "", nil, "Cookie", withCookie(cookie), "Origin", "https://www.patrons.test")
		if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "https://www.patrons.test" ||
			rec.Header().Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(rec.Header().Get("Vary"), "Origin") {
			t.Errorf("GET %s from the newsroom's site = %d %v", path, rec.Code, rec.Header())
		}
		rec = do(h, "GET", path, "", nil, "Cookie", withCookie(cookie), "Origin", "https://evil.example")
		if rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Header().Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("GET %s from another site carries CORS headers: %v", path, rec.Header())
		}
		rec = do(h, "OPTIONS", path, "", nil, "Origin", "https://www.patrons.test", "Access-Control-Request-Method", "GET")
		if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Methods") != "GET" ||
			rec.Header().Get("Access-Control-Allow-Origin") != "https://www.patrons.test" {
			t.Errorf("preflight of %s from the newsroom's site = %d %v", path, rec.Code, rec.Header())
		}
		rec = do(h, "OPTIONS", path, "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
		if rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Header().Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight of %s from another site = %d %v", path, rec.Code, rec.Header())
		}
	}
}
