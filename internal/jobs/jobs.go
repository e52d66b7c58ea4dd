// Package jobs runs Patronage's durable job queue on the system-of-record
// database, through River (riverqueue/river): jobs are rows, inserted in the
// same transaction as the data they act on, retried with exponential backoff,
// and discarded (kept, visible) after their last attempt. It picks River's
// driver for the dialect and applies River's own migrations; it decides
// nothing about what a job does.
package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/patronage/patronage/internal/sqldb"
)

// Client is River's client over database/sql transactions.
type Client = river.Client[*sql.Tx]

func driver(db *sqldb.DB) riverdriver.Driver[*sql.Tx] {
	if db.Dialect == sqldb.SQLite {
		return riversqlite.New(db.DB)
	}
	return riverdatabasesql.New(db.DB)
}

// Migrate applies River's own migrations (its job and leader tables).
func Migrate(ctx context.Context, db *sqldb.DB) (int, error) {
	m, err := rivermigrate.New(driver(db), nil)
	if err != nil {
		return 0, fmt.Errorf("job queue migrations: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return 0, fmt.Errorf("job queue migrations: %w", err)
	}
	return len(res.Versions), nil
}

// Options tune the queue.
type Options struct {
	MaxAttempts int // attempts before a job is discarded; default 10
	Workers     int // concurrent jobs; default 10
	// PollInterval is how often idle workers look for new jobs (database/sql
	// has no LISTEN/NOTIFY here); default 200ms.
	PollInterval time.Duration
	// RescueAfter is how long a job may stay running before it is taken
	// for lost (its process died) and run again; default 10 minutes.
	RescueAfter time.Duration
	// Periodic jobs are inserted on their schedule by whichever process
	// River elects leader, so several replicas run each once.
	Periodic []*river.PeriodicJob
	// Queues are further queues beside the default one, each with its
	// own workers: jobs there never wait for the default queue's.
	Queues map[string]int
}

// New builds a client that works the given workers. Start it with
// client.Start and stop it with client.Stop; a client with no workers can
// only insert.
func New(db *sqldb.DB, workers *river.Workers, logger *slog.Logger, opts Options) (*Client, error) {
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 10
	}
	if opts.Workers == 0 {
		opts.Workers = 10
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.RescueAfter == 0 {
		opts.RescueAfter = 10 * time.Minute
	}
	cfg := &river.Config{
		// A job may not outlive the time after which it is taken for lost.
		JobTimeout:           min(time.Minute, opts.RescueAfter),
		RescueStuckJobsAfter: opts.RescueAfter,
		Logger:               logger,
		MaxAttempts:          opts.MaxAttempts,
		FetchPollInterval:    opts.PollInterval,
		// While jobs keep coming, fetch again almost at once: River's
		// default 100 ms pause capped a backlog at ten batches a second,
		// i.e. ten times the worker count, with the CPU mostly idle.
		FetchCooldown: min(opts.PollInterval, 5*time.Millisecond),
	}
	if workers != nil {
		cfg.Workers = workers
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Workers}}
		for name, n := range opts.Queues {
			cfg.Queues[name] = river.QueueConfig{MaxWorkers: max(n, 1)}
		}
		cfg.PeriodicJobs = opts.Periodic
	}
	c, err := river.NewClient(driver(db), cfg)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	return c, nil
}

// MailQueue is the queue mail waits in, with workers of its own: a mail
// server that is slow or down holds up mail, never Stripe's events.
const MailQueue = "mail"

// MailAttempts is how often a queued mail is offered to the mail server:
// River waits attempt⁴ seconds between tries, so the last of 12 comes
// about eleven hours after the first.
const MailAttempts = 12
