package redisx_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/testenv"
)

func TestKeysCarryThePrefixAndCleanUpStaysInside(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, r *redisx.Redis) {
		ctx := context.Background()
		key := r.Key("round", "{r1}", "tally")
		if !strings.HasPrefix(key, r.Prefix) || !strings.HasSuffix(key, "round:{r1}:tally") {
			t.Fatalf("Key = %q, want prefix %q and the parts joined by colons", key, r.Prefix)
		}
		if err := r.Client.Set(ctx, key, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		outside := "outside-" + strings.TrimSuffix(r.Prefix, ":")
		if err := r.Client.Set(ctx, outside, "keep", 0).Err(); err != nil {
			t.Fatal(err)
		}
		defer r.Client.Del(ctx, outside)

		if err := r.DeleteByPrefix(ctx); err != nil {
			t.Fatalf("DeleteByPrefix: %v", err)
		}
		if n, _ := r.Client.Exists(ctx, key).Result(); n != 0 {
			t.Errorf("a key under the prefix survived DeleteByPrefix")
		}
		if v, _ := r.Client.Get(ctx, outside).Result(); v != "keep" {
			t.Errorf("DeleteByPrefix removed a key outside the prefix")
		}
	})
}

func TestDeleteByPrefixRefusesAnEmptyPrefix(t *testing.T) {
	r := testenv.EmbeddedRedis(t)
	r.Prefix = ""
	if err := r.DeleteByPrefix(context.Background()); err == nil {
		t.Fatal("DeleteByPrefix with an empty prefix would flush everything; it must refuse")
	}
}

func TestLuaScriptsRunOnEveryBackend(t *testing.T) {
	// Later features change tallies with Lua; the embedded Redis must run it too.
	testenv.EachRedis(t, func(t *testing.T, r *redisx.Redis) {
		incr := redis.NewScript(`return redis.call("INCRBY", KEYS[1], ARGV[1])`)
		got, err := incr.Run(context.Background(), r.Client, []string{r.Key("n")}, 5).Int()
		if err != nil || got != 5 {
			t.Errorf("script = (%d, %v), want 5", got, err)
		}
	})
}

func TestOpenReportsAnUnreachableServer(t *testing.T) {
	_, err := redisx.Open(context.Background(), "redis://127.0.0.1:1/0", "x:", testenv.Logger())
	if err == nil || !strings.Contains(err.Error(), "connect to Redis at 127.0.0.1:1") {
		t.Fatalf("err = %v, want it to name the unreachable address", err)
	}
}
