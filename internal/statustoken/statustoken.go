// Package statustoken issues the short-lived signed tokens that tell a
// newsroom's own site who a reader is to the patron program — member id,
// whether they have access, their tier — and publishes the public keys
// that verify them (a JSON Web Key Set), so the site checks a token
// offline, without calling Patronage. Tokens are JWTs signed with Ed25519
// (EdDSA); the keys live in the database, shared by every replica.
package statustoken

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/sqldb"
)

const (
	// Lifetime is how long a token is good for.
	Lifetime = 15 * time.Minute
	// Audience is the aud claim of every token.
	Audience = "patronage-status"
	// publishedAfterRetirement is how long a retired key's public half
	// stays in the key set: longer than any token it signed lives.
	publishedAfterRetirement = time.Hour
	// reload is how often a replica rereads the keys, so a rotation made
	// elsewhere is seen within it.
	reload = time.Minute
	// jwksMaxAge is how long the key set may be cached (Cache-Control).
	jwksMaxAge = 5 * time.Minute
	// PublishAhead is how long a rotation's new key is published before it
	// signs: every replica rereads its keys (reload) and every cache of the
	// set expires (jwksMaxAge) in that time, so no site meets a token whose
	// key it has not seen.
	PublishAhead = reload + jwksMaxAge + 4*time.Minute
	// Leeway is the clock difference Verify allows.
	Leeway = 30 * time.Second
)

// JWKSMaxAge is the Cache-Control max-age of the key set, in seconds.
const JWKSMaxAge = int(jwksMaxAge / time.Second)

// Claims is what a token says. Active, Tier and Source are the reader's
// access when the token was issued; AccessUntil (Unix seconds) is when
// that access ends unless renewed, absent when open-ended.
type Claims struct {
	jwt.RegisteredClaims
	Active      bool   `json:"active"`
	Tier        string `json:"tier,omitempty"`
	Source      string `json:"source,omitempty"`
	AccessUntil int64  `json:"access_until,omitempty"`
}

type key struct {
	id         string
	private    ed25519.PrivateKey
	createdAt  time.Time
	activeFrom time.Time
	retiredAt  *time.Time
}

// signs reports whether the key signs at t.
func (k key) signs(t time.Time) bool {
	return !t.Before(k.activeFrom) && (k.retiredAt == nil || t.Before(*k.retiredAt))
}

// Keys issues tokens and publishes their public keys.
type Keys struct {
	db     *sqldb.DB
	issuer string
	now    func() time.Time

	mu       sync.Mutex
	keys     []key // newest first
	loadedAt time.Time
}

// New is the keys of db; issuer (the server's BASE_URL) is the iss claim.
func New(db *sqldb.DB, issuer string, now func() time.Time) *Keys {
	if now == nil {
		now = sqldb.Now
	}
	return &Keys{db: db, issuer: issuer, now: now}
}

// Ensure makes a signing key when there is none, once however many
// replicas start together.
func (k *Keys) Ensure(ctx context.Context) error {
	err := k.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := k.db.Dialect.LockKeys(ctx, tx, []string{"signing_keys"}); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL`).Scan(&n); err != nil {
			return fmt.Errorf("read signing keys: %w", err)
		}
		if n > 0 {
			return nil
		}
		_, err := insertKey(ctx, tx, k.now(), k.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	k.forget()
	return nil
}

// Rotate makes a new signing key, published at once and signing from
// PublishAhead on, when the keys signing now retire (staying published
// for an hour more). It returns the new key's id and when it signs.
func (k *Keys) Rotate(ctx context.Context) (string, time.Time, error) {
	var id string
	now := k.now()
	from := now.Add(PublishAhead)
	err := k.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := k.db.Dialect.LockKeys(ctx, tx, []string{"signing_keys"}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL OR retired_at > $1`, from); err != nil {
			return fmt.Errorf("retire signing keys: %w", err)
		}
		var err error
		id, err = insertKey(ctx, tx, now, from)
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("rotate signing key: %w", err)
	}
	k.forget()
	return id, from, nil
}

// Replace is the rotation for a key that leaked: every key there is is
// deleted, withdrawn from the key set at once, and a new key signs from
// now. Other replicas reread their keys within reload; tokens the old
// keys signed stop verifying once a site's copy of the set is refreshed
// (jwksMaxAge after the replica it came from had reread): within
// reload+jwksMaxAge in all. It returns the new key's id.
func (k *Keys) Replace(ctx context.Context) (string, error) {
	var id string
	now := k.now()
	err := k.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := k.db.Dialect.LockKeys(ctx, tx, []string{"signing_keys"}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM signing_keys`); err != nil {
			return fmt.Errorf("delete signing keys: %w", err)
		}
		// Signing from a minute back: a replica whose clock is behind
		// this one's still finds a key that signs (there is no older one
		// left to fall back on).
		var err error
		id, err = insertKey(ctx, tx, now, now.Add(-time.Minute))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("replace signing keys: %w", err)
	}
	k.forget()
	return id, nil
}

func insertKey(ctx context.Context, tx *sql.Tx, now, activeFrom time.Time) (string, error) {
	_, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate signing key: %w", err)
	}
	id := ids.New("key")
	if _, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (id, algorithm, private_key, created_at, active_from) VALUES ($1, 'EdDSA', $2, $3, $4)`,
		id, base64.StdEncoding.EncodeToString(private.Seed()), now, activeFrom); err != nil {
		return "", fmt.Errorf("store signing key: %w", err)
	}
	return id, nil
}

func (k *Keys) forget() {
	k.mu.Lock()
	k.loadedAt = time.Time{}
	k.mu.Unlock()
}

// load is the keys, newest first, reread at most every minute.
func (k *Keys) load(ctx context.Context) ([]key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.loadedAt.IsZero() && time.Since(k.loadedAt) < reload {
		return k.keys, nil
	}
	rows, err := k.db.QueryContext(ctx, `SELECT id, private_key, created_at, active_from, retired_at FROM signing_keys
		WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, id DESC`, k.now().Add(-publishedAfterRetirement))
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	defer rows.Close()
	var keys []key
	for rows.Next() {
		var kk key
		var seed string
		var retired sql.NullTime
		if err := rows.Scan(&kk.id, &seed, &kk.createdAt, &kk.activeFrom, &retired); err != nil {
			return nil, fmt.Errorf("read signing keys: %w", err)
		}
		raw, err := base64.StdEncoding.DecodeString(seed)
		if err != nil || len(raw) != ed25519.SeedSize {
			return nil, fmt.Errorf("signing key %s is not an Ed25519 seed", kk.id)
		}
		kk.private = ed25519.NewKeyFromSeed(raw)
		if retired.Valid {
			t := retired.Time
			kk.retiredAt = &t
		}
		keys = append(keys, kk)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	k.keys, k.loadedAt = keys, time.Now()
	return keys, nil
}

// Access is the reader's access a token states.
type Access struct {
	Active bool
	Tier   string
	Source string
	Until  *time.Time
}

// Issue signs a token for a member's access, good for Lifetime.
func (k *Keys) Issue(ctx context.Context, memberID string, a Access) (string, time.Time, error) {
	keys, err := k.load(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	now := k.now()
	var signer *key
	for i := range keys { // newest first
		if keys[i].signs(now) {
			signer = &keys[i]
			break
		}
	}
	if signer == nil {
		return "", time.Time{}, fmt.Errorf("issue status token: no signing key (the server makes one at start)")
	}
	exp := now.Add(Lifetime)
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: k.issuer, Subject: memberID, Audience: jwt.ClaimStrings{Audience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp)},
		Active: a.Active, Tier: a.Tier, Source: a.Source}
	if a.Until != nil {
		c.AccessUntil = a.Until.Unix()
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = signer.id
	signed, err := t.SignedString(signer.private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign status token: %w", err)
	}
	return signed, exp, nil
}

// JWK is one public key of the set.
type JWK struct {
	KeyType   string `json:"kty"`
	Curve     string `json:"crv"`
	X         string `json:"x"`
	KeyID     string `json:"kid"`
	Use       string `json:"use"`
	Algorithm string `json:"alg"`
}

// JWKS is the JSON Web Key Set: the public half of every key that signs,
// will sign after a rotation, or signed a token that may still be alive.
func (k *Keys) JWKS(ctx context.Context) ([]byte, error) {
	keys, err := k.load(ctx)
	if err != nil {
		return nil, err
	}
	set := struct {
		Keys []JWK `json:"keys"`
	}{Keys: []JWK{}}
	for _, kk := range keys {
		pub := kk.private.Public().(ed25519.PublicKey)
		set.Keys = append(set.Keys, JWK{KeyType: "OKP", Curve: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), KeyID: kk.id, Use: "sig", Algorithm: "EdDSA"})
	}
	return json.Marshal(set)
}

// Verify checks a token against a key set as a newsroom's site does:
// signed by one of its keys, for Audience, from issuer, not expired (with
// Leeway for clocks that differ).
func Verify(token string, jwks []byte, issuer string, now time.Time) (Claims, error) {
	var set struct{ Keys []JWK }
	if err := json.Unmarshal(jwks, &set); err != nil {
		return Claims{}, fmt.Errorf("key set: %w", err)
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range set.Keys {
			if k.KeyID == kid && k.KeyType == "OKP" && k.Curve == "Ed25519" {
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				if err != nil || len(x) != ed25519.PublicKeySize {
					return nil, fmt.Errorf("key %s is not an Ed25519 public key", kid)
				}
				return ed25519.PublicKey(x), nil
			}
		}
		return nil, fmt.Errorf("no key %q in the set", kid)
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(Audience), jwt.WithIssuer(issuer), jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(), jwt.WithLeeway(Leeway))
	if err != nil {
		return Claims{}, err
	}
	return c, nil
}
