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

// SyncStripeArgs is the scheduled reconciliation with Stripe: it runs when
// the last one (scheduled or by hand) started Every ago or more.
type SyncStripeArgs struct {
	Every time.Duration `json:"every,omitempty"`
}

// Kind names the job in the queue.
func (SyncStripeArgs) Kind() string { return "billing_sync_stripe" }

type syncStripeWorker struct {
	river.WorkerDefaults[SyncStripeArgs]
	billing *Service
	timeout time.Duration
}

func (w *syncStripeWorker) Work(ctx context.Context, job *river.Job[SyncStripeArgs]) error {
	rep, ran, err := w.billing.SyncStripeIfDue(ctx, job.Args.Every)
	if err != nil {
		w.billing.logger.ErrorContext(ctx, "reconciliation with Stripe failed", "attempt", job.Attempt, "err", err)
		return err
	}
	if ran {
		w.billing.logger.InfoContext(ctx, "reconciled with Stripe", "drift", len(rep.Drift), "subscriptions", rep.Subscriptions, "events_replayed", rep.EventsReplayed)
	}
	return nil
}

// SyncStripeIfDue reconciles with Stripe unless the last reconciliation
// started less than every ago; ran says whether it did.
func (s *Service) SyncStripeIfDue(ctx context.Context, every time.Duration) (rep SyncReport, ran bool, err error) {
	if every > 0 {
		last, found, err := s.LastSyncReport(ctx)
		if err != nil {
			return SyncReport{}, false, err
		}
		if found && s.now().Sub(last.StartedAt) < every {
			return SyncReport{}, false, nil
		}
	}
	rep, err = s.SyncStripe(ctx, nil)
	return rep, err == nil, err
}

// syncCheckInterval is how often the leader looks whether a scheduled
// reconciliation is due: the schedule lives in the reports, not in the
// leader's memory, so restarts and deploys do not push it back.
const syncCheckInterval = 15 * time.Minute

// Timeout lets a reconciliation of a large account run its course, within
// the time after which the queue would take it for lost.
func (w *syncStripeWorker) Timeout(*river.Job[SyncStripeArgs]) time.Duration { return w.timeout }

// AddJobs registers billing's workers (patron mail's among them) and
// returns its periodic jobs: the access recheck every minute, and
// reconciliation with Stripe every syncEvery (none when 0 or Stripe is not
// configured). rescueAfter is the queue's limit on a running job.
func (s *Service) AddJobs(workers *river.Workers, syncEvery, rescueAfter time.Duration) []*river.PeriodicJob {
	river.AddWorker(workers, &recheckAccessWorker{billing: s})
	river.AddWorker(workers, &syncStripeWorker{billing: s, timeout: rescueAfter * 9 / 10})
	river.AddWorker(workers, &mailWorker{billing: s})
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(AccessRecheckInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return RecheckAccessArgs{}, &river.InsertOpts{MaxAttempts: 1}
			},
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
	if syncEvery > 0 && s.stripe != nil {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(min(syncEvery, syncCheckInterval)),
			func() (river.JobArgs, *river.InsertOpts) {
				return SyncStripeArgs{Every: syncEvery}, &river.InsertOpts{MaxAttempts: 3}
			}, &river.PeriodicJobOpts{RunOnStart: true}))
	}
	return periodic
}
