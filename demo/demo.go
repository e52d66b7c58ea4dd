// Package demo fills a fresh database with a synthetic but consistent
// history — patrons joining, renewing, failing to pay, changing plans,
// leaving and coming back, giving, voting — so a newly installed dashboard
// has something true to show.
//
// It plays Stripe with stripefake, the stateful test double, on a clock it
// moves through the past months, and feeds every event that fake emits
// through the same path a real delivery takes: the signature is verified,
// the event is stored and queued by webhooks.Intake, and the job queue's
// webhooks.Worker hands it to billing. Tiers, checkouts, votes and rounds go
// through the billing and voting services' own methods. It never writes a
// row of another package's tables itself, and never talks to Stripe.
package demo

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/metrics"
	"github.com/patronage/patronage/voting"
	"github.com/patronage/patronage/webhooks"
)

// Options shape the history.
type Options struct {
	Patrons int       // readers who subscribe at some point; default 300
	Months  int       // how far back the history starts; default 24
	Seed    uint64    // the same seed makes the same history (ids aside)
	End     time.Time // the history's last instant; default now
}

// Deps is what Seed needs; cmd builds it as for the other commands.
type Deps struct {
	DB      *sqldb.DB
	Redis   *redisx.Redis // live tallies of the open round
	BaseURL *url.URL
	Logger  *slog.Logger
	// Eligibility says who may vote, from billing's access: the rule the
	// server uses, wired by cmd.
	Eligibility func(*billing.Service) voting.Eligibility
	// Wire connects billing to voting as the server does (votes withdrawn
	// when access is lost); nil connects nothing.
	Wire func(*billing.Service, *voting.Service)
	// Record, when set, receives every batch of Stripe events in the order
	// they are delivered, before they are processed: the history as Stripe
	// sent it, for a test to deliver again elsewhere.
	Record func(events []map[string]any)
}

// Summary is what Seed made.
type Summary struct {
	From, To        time.Time
	Patrons         int // members who subscribed
	Donors          int // members and anonymous givers who only gave
	Events          int // Stripe events delivered and processed
	Subscriptions   int
	Trials          int
	FailedPayments  int
	Recovered       int // past_due subscriptions paid again
	Upgrades        int
	Downgrades      int
	Churned         int // subscriptions that ended
	Returned        int // patrons who subscribed again after leaving
	Refunds         int
	Donations       int
	Coupons         int
	ClosedRounds    int
	OpenRounds      int
	Ballots         int
	Currencies      []string         // lower case, sorted
	MRR             map[string]int64 // by currency, at To, minor units
	PayingPatrons   int
	ProcessingTotal time.Duration
}

// ErrNotEmpty is returned when the database already holds tiers or rounds.
var ErrNotEmpty = errs.WithCode(errs.Conflict, "database_not_empty",
	"This database already has tiers or voting rounds: demo seed only fills a fresh one. Point DATA_DIR (or DATABASE_URL) at an empty database.")

// clock is the simulated time every service reads while the history is
// made; the fake Stripe keeps its own, set to the same instants.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }

type noMail struct{}

func (noMail) Send(context.Context, mail.Message) error { return nil }

// world is the newsroom being simulated and the machinery it runs on.
type world struct {
	log     *slog.Logger
	clock   *clock
	stripe  *stripefake.Server
	members *members.Service
	billing *billing.Service
	voting  *voting.Service
	pipe    *pipeline
	sum     *Summary
}

// Seed makes the history. It refuses a database that already has tiers or
// rounds (ErrNotEmpty), so running it twice changes nothing.
func Seed(ctx context.Context, d Deps, opt Options) (Summary, error) {
	if opt.Patrons <= 0 {
		opt.Patrons = 300
	}
	if opt.Months <= 0 {
		opt.Months = 24
	}
	if opt.End.IsZero() {
		opt.End = time.Now()
	}
	end := opt.End.UTC().Truncate(time.Second)
	start := end.AddDate(0, -opt.Months, 0)
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	clk := newClock(start)

	fake := stripefake.Start()
	defer fake.Close()
	fake.SetNow(start)
	sc, err := stripeClient(fake)
	if err != nil {
		return Summary{}, err
	}
	ms := members.NewService(members.Deps{DB: d.DB, Mailer: noMail{}, BaseURL: d.BaseURL, Logger: logger, Now: clk.now})
	defer ms.Close(context.WithoutCancel(ctx))
	// Payload mode: the events carry the state at their time, so nothing is
	// re-fetched from a Stripe that has moved on. No templates: no mail.
	bs := billing.NewService(billing.Deps{DB: d.DB, Stripe: sc, Members: ms, BaseURL: d.BaseURL, Logger: logger, Now: clk.now,
		WebhookMode: billing.ModePayload})
	var elig voting.Eligibility
	if d.Eligibility != nil {
		elig = d.Eligibility(bs)
	}
	vs := voting.NewService(voting.Deps{DB: d.DB, Redis: d.Redis, Eligibility: elig, Logger: logger, Now: clk.now})
	if d.Wire != nil {
		d.Wire(bs, vs)
	}

	if err := refuseUsed(ctx, bs, vs); err != nil {
		return Summary{}, err
	}
	pipe, err := startPipeline(d.DB, bs, logger, clk)
	if err != nil {
		return Summary{}, err
	}
	pipe.record = d.Record

	sum := &Summary{From: start, To: end, MRR: map[string]int64{}}
	w := &world{log: logger, clock: clk, stripe: fake, members: ms, billing: bs, voting: vs, pipe: pipe, sum: sum}
	began := time.Now()
	if err := w.run(ctx, opt, start, end); err != nil {
		return Summary{}, err
	}
	sum.ProcessingTotal = time.Since(began)
	sum.Events = pipe.processed

	h, err := metrics.NewService(d.DB).History(ctx)
	if err != nil {
		return Summary{}, err
	}
	for cur, snap := range h.At(end) {
		sum.MRR[cur] = snap.MRR
	}
	sum.Currencies = h.Currencies()
	sum.PayingPatrons = h.PayingPatrons(end)
	return *sum, nil
}

func stripeClient(fake *stripefake.Server) (*client.API, error) {
	return stripeapi.New(stripeapi.Options{SecretKey: stripefake.SecretKey, APIBase: fake.URL, MaxNetworkRetries: stripeapi.NoRetries})
}

func refuseUsed(ctx context.Context, b *billing.Service, v *voting.Service) error {
	tiers, err := b.AllTiers(ctx)
	if err != nil {
		return err
	}
	rounds, err := v.ListRounds(ctx)
	if err != nil {
		return err
	}
	if len(tiers) > 0 || len(rounds) > 0 {
		return ErrNotEmpty
	}
	return nil
}

// pipeline delivers the fake's events the way Stripe's deliveries arrive:
// each is signed, verified and stored with its job by the intake, exactly
// as POST /webhooks/stripe does. Then, instead of waiting for the queue to
// poll, the demo takes the jobs off the queue and runs the queue's own
// worker (webhooks.Worker.Work, which hands the event to billing) on each,
// in the order Stripe sent them: the same processing, without a poll
// interval and a completion round trip per day of history.
type pipeline struct {
	intake    *webhooks.Intake
	queue     *jobs.Client
	worker    *webhooks.Worker
	secret    string
	processed int
	record    func([]map[string]any)
}

func startPipeline(db *sqldb.DB, b *billing.Service, logger *slog.Logger, clk *clock) (*pipeline, error) {
	queue, err := jobs.New(db, nil, logger, jobs.Options{}) // insert-only
	if err != nil {
		return nil, err
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	return &pipeline{intake: webhooks.NewIntake(db, queue, clk.now), queue: queue,
		worker: webhooks.NewWorker(db, webhooks.BillingHandlers(b), logger, clk.now),
		secret: "whsec_demo_" + hex.EncodeToString(key[:])}, nil
}

// deliver hands events to the intake, all at once as a busy endpoint
// receives them, then works each new one.
func (p *pipeline) deliver(ctx context.Context, events []map[string]any) error {
	if len(events) == 0 {
		return nil
	}
	if p.record != nil {
		p.record(events)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fresh := make([]bool, len(events))
	sem := make(chan struct{}, 64)
	for i, ev := range events {
		body, header := stripefake.SignedDelivery(ev, p.secret, time.Now())
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			parsed, err := webhooks.Verify(body, header, []string{p.secret})
			if err == nil {
				fresh[i], err = p.intake.Accept(ctx, parsed, body)
			}
			if err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, fmt.Errorf("deliver %v: %w", ev["id"], err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	// The demo's database is fresh (Seed refuses any other), so every
	// waiting event job is one just queued here.
	if _, err := p.queue.JobDeleteMany(ctx, river.NewJobDeleteManyParams().Kinds(webhooks.ProcessArgs{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStateScheduled)); err != nil {
		return fmt.Errorf("take event jobs off the queue: %w", err)
	}
	for i, ev := range events {
		if !fresh[i] {
			continue
		}
		job := &river.Job[webhooks.ProcessArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 1, Kind: webhooks.ProcessArgs{}.Kind()},
			Args: webhooks.ProcessArgs{EventID: ev["id"].(string)}}
		if err := p.worker.Work(ctx, job); err != nil {
			return fmt.Errorf("process %s %v: %w", ev["type"], ev["id"], err)
		}
		p.processed++
	}
	return nil
}
