package jobs_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
)

type noteArgs struct {
	Note string `json:"note"`
}

func (noteArgs) Kind() string { return "test_note" }

type noteWorker struct {
	river.WorkerDefaults[noteArgs]
	done chan string
}

func (w *noteWorker) Work(ctx context.Context, job *river.Job[noteArgs]) error {
	w.done <- job.Args.Note
	return nil
}

// A job exists exactly when the transaction that inserted it commits.
func TestJobsCommitWithTheirTransaction(t *testing.T) {
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := jobs.Migrate(ctx, db); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		w := &noteWorker{done: make(chan string, 10)}
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		client, err := jobs.New(db, workers, testenv.Logger(), jobs.Options{PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer client.Stop(ctx)

		rolledBack := errors.New("changed my mind")
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := client.InsertTx(ctx, tx, noteArgs{Note: "never"}, nil); err != nil {
				return err
			}
			return rolledBack
		})
		if !errors.Is(err, rolledBack) {
			t.Fatal(err)
		}
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := client.InsertTx(ctx, tx, noteArgs{Note: "committed"}, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-w.done:
			if got != "committed" {
				t.Errorf("worked %q, want the committed job only", got)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the committed job was not worked within 15s")
		}
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM river_job`).Scan(&n); err != nil || n != 1 {
			t.Errorf("river_job rows = %d (%v), want 1: the rolled-back job must not exist", n, err)
		}
	})
}
