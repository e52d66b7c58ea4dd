package members_test

import (
	"testing"
	"time"

	"github.com/patronage/patronage/internal/redisx"
)

// fastForward moves the embedded Redis's clock, so TTLs run out without
// waiting.
func fastForward(t *testing.T, r *redisx.Redis, d time.Duration) {
	t.Helper()
	m, ok := r.Embedded()
	if !ok {
		t.Fatal("fastForward needs the embedded Redis")
	}
	m.FastForward(d)
}
