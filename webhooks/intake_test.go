package webhooks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/webhooks"
)

func TestDuplicateDeliveriesStoreAndQueueOnce(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := jobs.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		queue, err := jobs.New(db, nil, testenv.Logger(), jobs.Options{})
		if err != nil {
			t.Fatal(err)
		}
		in := webhooks.NewIntake(db, queue, nil)
		body := event("2023-10-16")
		ev, err := webhooks.Verify(body, sign(body, secret, time.Now()), []string{secret})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		fresh := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				isNew, err := in.Accept(ctx, ev, body)
				if err != nil {
					t.Errorf("Accept: %v", err)
					return
				}
				if isNew {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if fresh != 1 {
			t.Errorf("8 concurrent deliveries were new %d times, want 1", fresh)
		}
		var events, queued int
		db.QueryRow(`SELECT COUNT(*) FROM stripe_events`).Scan(&events)
		db.QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = 'stripe_event'`).Scan(&queued)
		if events != 1 || queued != 1 {
			t.Errorf("stored %d events and queued %d jobs, want 1 and 1", events, queued)
		}
	})
}
