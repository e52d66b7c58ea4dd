package billing

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// RecheckAccessArgs is the scheduled job that recomputes access whose
// period, grace or grant has ended: access changes when time passes, not
// only when Stripe says something.
type RecheckAccessArgs struct{}

// Kind names the job in the queue.
func (RecheckAccessArgs) Kind() string { return "billing_recheck_access" }

type recheckAccessWorker struct {
	river.WorkerDefaults[RecheckAccessArgs]
	billing *Service
}

func (w *recheckAccessWorker) Work(ctx context.Context, _ *river.Job[RecheckAccessArgs]) error {
	n, err := w.billing.RecomputeDueAccess(ctx)
	if n > 0 {
		w.billing.logger.InfoContext(ctx, "rechecked access", "members", n)
	}
	return err
}

// AccessRecheckInterval is how often access is rechecked: access ends at
// most this long after its instant.
const AccessRecheckInterval = time.Minute

// AddJobs registers billing's workers and returns its periodic jobs.
func (s *Service) AddJobs(workers *river.Workers) []*river.PeriodicJob {
	river.AddWorker(workers, &recheckAccessWorker{billing: s})
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(AccessRecheckInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return RecheckAccessArgs{}, &river.InsertOpts{MaxAttempts: 1}
			},
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
}
