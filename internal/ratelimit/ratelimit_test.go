package ratelimit_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/patronage/patronage/internal/ratelimit"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/testenv"
)

func TestALimitHoldsUnderConcurrency(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, r *redisx.Redis) {
		l := ratelimit.New(r)
		rule := ratelimit.PerHour("signin-email", 5)
		var allowed atomic.Int32
		var wg sync.WaitGroup
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, retry, err := l.Allow(context.Background(), rule, "reader@example.org")
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					allowed.Add(1)
				} else if retry <= 0 {
					t.Errorf("a refusal came without a retry time")
				}
			}()
		}
		wg.Wait()
		if got := allowed.Load(); got != 5 {
			t.Errorf("40 concurrent hits allowed %d, want exactly 5", got)
		}
		if ok, _, _ := l.Allow(context.Background(), rule, "other@example.org"); !ok {
			t.Error("another subject was refused: limits must be per subject")
		}
	})
}

func TestCountersLiveUnderThePrefixWithoutTheSubject(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, r *redisx.Redis) {
		l := ratelimit.New(r)
		if _, _, err := l.Allow(context.Background(), ratelimit.PerHour("x", 1), "reader@example.org"); err != nil {
			t.Fatal(err)
		}
		keys, err := r.Client.Keys(context.Background(), r.Prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("keys under the prefix = %v, want one counter", keys)
		}
		if strings.Contains(keys[0], "reader") {
			t.Errorf("counter key %q holds the email", keys[0])
		}
	})
}
