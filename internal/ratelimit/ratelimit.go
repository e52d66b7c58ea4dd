// Package ratelimit counts requests against limits kept in Redis, through
// go-redis/redis_rate (GCRA, one atomic script per check), so every replica
// shares one count. It decides no limits itself; callers name them.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/redisx"
)

// Rule is a named limit, e.g. 5 sign-in mails an hour per email.
type Rule struct {
	Name  string
	Limit redis_rate.Limit
}

// PerHour is a rule allowing n an hour, all of them at once if need be.
func PerHour(name string, n int) Rule {
	return Rule{Name: name, Limit: redis_rate.PerHour(n)}
}

// PerSecond is a rule of n a second, with a burst of n.
func PerSecond(name string, n int) Rule {
	return Rule{Name: name, Limit: redis_rate.PerSecond(n)}
}

// Limiter checks rules.
type Limiter struct {
	limiter *redis_rate.Limiter
}

// New returns a limiter on r, its keys under r's prefix.
func New(r *redisx.Redis) *Limiter {
	return &Limiter{limiter: redis_rate.NewLimiter(prefixed{UniversalClient: r.Client, prefix: r.Prefix})}
}

// Allow counts one hit of subject (an IP, an email) against rule and says
// whether it is allowed and, if not, when to retry. Subjects are hashed, so
// Redis never holds an email address.
func (l *Limiter) Allow(ctx context.Context, rule Rule, subject string) (bool, time.Duration, error) {
	res, err := l.limiter.Allow(ctx, rule.Name+":"+ids.Hash(subject), rule.Limit)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", rule.Name, err)
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, res.RetryAfter, nil
}

// prefixed puts Patronage's key prefix in front of redis_rate's own "rate:"
// keys, so rate counters live with the rest of an installation's keys.
type prefixed struct {
	redis.UniversalClient
	prefix string
}

func (p prefixed) keys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p.prefix + k
	}
	return out
}

func (p prefixed) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.UniversalClient.Eval(ctx, script, p.keys(keys), args...)
}

func (p prefixed) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.UniversalClient.EvalSha(ctx, sha1, p.keys(keys), args...)
}

func (p prefixed) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.UniversalClient.EvalRO(ctx, script, p.keys(keys), args...)
}

func (p prefixed) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.UniversalClient.EvalShaRO(ctx, sha1, p.keys(keys), args...)
}

func (p prefixed) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return p.UniversalClient.Del(ctx, p.keys(keys)...)
}
