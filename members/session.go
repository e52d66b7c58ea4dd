package members

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
)

// Session lifetimes. A session slides forward with use up to the absolute
// limit, after which the reader signs in again.
const (
	SessionIdleTimeout   = 30 * 24 * time.Hour
	SessionAbsoluteLimit = 90 * 24 * time.Hour
	SignInTokenTTL       = 15 * time.Minute
)

// touchSession reads a session and slides its expiry in one round trip:
// the new expiry is the idle timeout, capped by what is left of the
// absolute limit. An expired session is deleted and reads as absent.
var touchSession = redis.NewScript(`
local v = redis.call("HMGET", KEYS[1], "m", "c")
if not v[1] then return false end
local left = tonumber(v[2]) + tonumber(ARGV[3]) - tonumber(ARGV[1])
if left <= 0 then
	redis.call("DEL", KEYS[1])
	return false
end
local ttl = tonumber(ARGV[2])
if left < ttl then ttl = left end
redis.call("PEXPIRE", KEYS[1], ttl)
return v[1]
`)

var errNoSession = errs.E(errs.Unauthenticated, "Sign in to continue.")

// Sessions are kept under the SHA-256 of their id, so a copy of Redis holds
// nothing a browser could present. A session holds the member id and its
// start time, nothing personal.
func (s *Service) sessionKey(id string) string { return s.redis.Key("session", ids.Hash(id)) }

// StartSession makes a new session for a member and returns its id, for the
// cookie. Every sign-in gets a new id.
func (s *Service) StartSession(ctx context.Context, memberID string) (string, error) {
	id := ids.Secret()
	key := s.sessionKey(id)
	now := s.now()
	pipe := s.redis.Client.TxPipeline()
	pipe.HSet(ctx, key, "m", memberID, "c", now.UnixMilli())
	pipe.PExpire(ctx, key, SessionIdleTimeout)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", s.redisError("start session", err)
	}
	return id, nil
}

// MemberForSession returns the member a session belongs to and slides the
// session's expiry. An unknown or expired session is errs.Unauthenticated.
// A session read within sessionCacheTTL is not read (nor slid) again.
func (s *Service) MemberForSession(ctx context.Context, sessionID string) (Member, error) {
	if sessionID == "" {
		return Member{}, errNoSession
	}
	hash, now := ids.Hash(sessionID), s.now()
	read, ok := s.sessions.Get(hash)
	memberID := read.memberID
	if !ok || now.Sub(read.at) >= sessionCacheTTL || now.Before(read.at) {
		var err error
		memberID, err = touchSession.Run(ctx, s.redis.Client, []string{s.redis.Key("session", hash)},
			now.UnixMilli(), SessionIdleTimeout.Milliseconds(), SessionAbsoluteLimit.Milliseconds()).Text()
		if errors.Is(err, redis.Nil) {
			return Member{}, errNoSession
		}
		if err != nil {
			return Member{}, s.redisError("read session", err)
		}
		s.sessions.Put(hash, readSession{memberID: memberID, at: now})
	}
	if m, ok := s.cache.Get(memberID); ok {
		return m, nil
	}
	m, err := findMemberByID(ctx, s.db, memberID)
	if errs.Is(err, errs.NotFound) {
		return Member{}, errNoSession // the account was erased
	}
	if err == nil {
		s.cache.Put(m.ID, m)
	}
	return m, err
}

// EndSession deletes a session; ending an unknown session is not an error.
func (s *Service) EndSession(ctx context.Context, sessionID string) error {
	if sessionID == "" {
		return nil
	}
	// Forgotten before and after: a request reading the session meanwhile
	// cannot keep it cached on this replica.
	s.sessions.Forget(ids.Hash(sessionID))
	defer s.sessions.Forget(ids.Hash(sessionID))
	if err := s.redis.Client.Del(ctx, s.sessionKey(sessionID)).Err(); err != nil {
		return s.redisError("end session", err)
	}
	return nil
}

func (s *Service) signInKey(token string) string { return s.redis.Key("signin", ids.Hash(token)) }

// issueSignInToken stores a single-use token for a member for 15 minutes.
func (s *Service) issueSignInToken(ctx context.Context, memberID string) (string, error) {
	token := ids.Secret()
	if err := s.redis.Client.Set(ctx, s.signInKey(token), memberID, SignInTokenTTL).Err(); err != nil {
		return "", s.redisError("store sign-in token", err)
	}
	return token, nil
}

var errBadSignInToken = errs.WithCode(errs.NotFound, "invalid_token", "This sign-in link has been used, has expired or was never valid.")

// ConsumeSignInToken redeems a sign-in token, once: GETDEL makes reading and
// deleting one atomic step, so two clicks cannot both succeed.
func (s *Service) ConsumeSignInToken(ctx context.Context, token string) (Member, error) {
	if token == "" || len(token) > 200 {
		return Member{}, errBadSignInToken
	}
	memberID, err := s.redis.Client.GetDel(ctx, s.signInKey(token)).Result()
	if errors.Is(err, redis.Nil) {
		return Member{}, errBadSignInToken
	}
	if err != nil {
		return Member{}, s.redisError("redeem sign-in token", err)
	}
	m, err := findMemberByID(ctx, s.db, memberID)
	if errs.Is(err, errs.NotFound) {
		return Member{}, errBadSignInToken
	}
	return m, err
}

// redisError marks a Redis failure as a temporary unavailability.
func (s *Service) redisError(op string, err error) error {
	return &errs.Error{Kind: errs.Unavailable, Code: "unavailable",
		Message: "Sign-in is briefly unavailable; please try again in a moment.", Err: fmt.Errorf("%s: %w", op, err)}
}
