package statustoken_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/statustoken"
	"github.com/patronage/patronage/internal/testenv"
)

// Replicas starting together make one key between them; every token is
// signed with it and verifies against the set.
func TestReplicasStartingTogetherShareOneKey(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- statustoken.New(db, "https://patrons.test", nil).Ensure(context.Background())
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM signing_keys`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d keys (%v), want 1", n, err)
		}
	})
}

// A rotation's new key is published at once but signs only once every
// replica and cache has it; the old one signs until then and stays in the
// set for an hour more, so its tokens (15 minutes) verify to the end.
func TestRotationPublishesBeforeItSignsAndKeepsTheOldKeyPublished(t *testing.T) {
	db := testenv.MigratedSQLite(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	keys := statustoken.New(db, "https://patrons.test", func() time.Time { return now })
	ctx := context.Background()
	if err := keys.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	kid := func(token string) string {
		var h struct{ Kid string }
		raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
		_ = json.Unmarshal(raw, &h)
		return h.Kid
	}
	old, _, err := keys.Issue(ctx, "mem_1", statustoken.Access{Active: true, Tier: "coffee", Source: "subscription"})
	if err != nil {
		t.Fatal(err)
	}
	fresh, from, err := keys.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !from.Equal(now.Add(statustoken.PublishAhead)) {
		t.Fatalf("the new key signs from %s", from)
	}
	set, _ := keys.JWKS(ctx)
	if !strings.Contains(string(set), fresh) || strings.Count(string(set), `"kid"`) != 2 {
		t.Fatalf("right after the rotation the set is %s: want the old key and the new one", set)
	}
	meanwhile, _, _ := keys.Issue(ctx, "mem_1", statustoken.Access{})
	if kid(meanwhile) != kid(old) {
		t.Fatal("the new key signs before every cache of the set can have it")
	}
	now = from
	after, _, _ := keys.Issue(ctx, "mem_1", statustoken.Access{})
	if kid(after) != fresh {
		t.Fatalf("at %s the token's key is %s, want the new %s", now, kid(after), fresh)
	}
	c, err := statustoken.Verify(old, set, "https://patrons.test", time.Date(2026, 5, 1, 12, 14, 0, 0, time.UTC))
	if err != nil || !c.Active || c.Tier != "coffee" || c.Subject != "mem_1" {
		t.Fatalf("the old token: %+v %v", c, err)
	}
	now = from.Add(61 * time.Minute)
	if _, _, err := keys.Rotate(ctx); err != nil { // rereads the keys
		t.Fatal(err)
	}
	set, _ = keys.JWKS(ctx)
	if strings.Contains(string(set), kid(old)) || !strings.Contains(string(set), fresh) {
		t.Fatalf("an hour after its retirement the first key is still published, or the second is not: %s", set)
	}

	// Algorithm confusion: "none", and HS256 keyed with the public key.
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": "mem_1", "active": true, "aud": statustoken.Audience, "iss": "https://patrons.test", "exp": now.Add(time.Hour).Unix()})
	none := header + "." + base64.RawURLEncoding.EncodeToString(claims) + "."
	var parsed struct{ Keys []statustoken.JWK }
	_ = json.Unmarshal(set, &parsed)
	pub, _ := base64.RawURLEncoding.DecodeString(parsed.Keys[0].X)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "mem_1", "active": true, "aud": statustoken.Audience, "iss": "https://patrons.test",
		"exp": now.Add(time.Hour).Unix()})
	tok.Header["kid"] = parsed.Keys[0].KeyID
	hs, _ := tok.SignedString(pub)
	for name, forged := range map[string]string{"none": none, "HS256": hs} {
		if _, err := statustoken.Verify(forged, set, "https://patrons.test", now); err == nil {
			t.Errorf("a token with alg %s verifies", name)
		}
	}
}

// A key that leaked is withdrawn at once: the set no longer holds it, so
// a token it signed (a forged one too) fails, and the new key signs from
// that moment.
func TestAReplacedKeyLeavesTheSetAtOnce(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		keys := statustoken.New(db, "https://patrons.test", func() time.Time { return now })
		ctx := context.Background()
		if err := keys.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := keys.Rotate(ctx); err != nil { // one signing, one waiting to
			t.Fatal(err)
		}
		leaked, _, err := keys.Issue(ctx, "mem_1", statustoken.Access{Active: true, Tier: "coffee"})
		if err != nil {
			t.Fatal(err)
		}
		before, _ := keys.JWKS(ctx)
		if _, err := statustoken.Verify(leaked, before, "https://patrons.test", now); err != nil {
			t.Fatalf("before the replacement the token does not verify: %v", err)
		}

		fresh, err := keys.Replace(ctx)
		if err != nil {
			t.Fatal(err)
		}
		set, _ := keys.JWKS(ctx)
		var parsed struct{ Keys []statustoken.JWK }
		if err := json.Unmarshal(set, &parsed); err != nil {
			t.Fatal(err)
		}
		if len(parsed.Keys) != 1 || parsed.Keys[0].KeyID != fresh {
			t.Fatalf("after the replacement the set is %s, want only %s", set, fresh)
		}
		if _, err := statustoken.Verify(leaked, set, "https://patrons.test", now); err == nil {
			t.Fatal("a token signed by the replaced key still verifies")
		}
		token, _, err := keys.Issue(ctx, "mem_1", statustoken.Access{Active: true, Tier: "coffee"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := statustoken.Verify(token, set, "https://patrons.test", now)
		if err != nil || c.Tier != "coffee" {
			t.Fatalf("a token signed right after the replacement: %+v %v", c, err)
		}
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM signing_keys`).Scan(&n); err != nil || n != 1 {
			t.Errorf("%d keys stored (%v), want the new one only", n, err)
		}
	})
}
