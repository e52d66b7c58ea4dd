package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/demo"
	"github.com/patronage/patronage/internal/money"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/voting"
)

const demoUsage = `Usage:
  patronage demo seed [--patrons N] [--months M] [--seed S]
      Fill a fresh database with a synthetic history: three tiers priced in
      EUR, USD and JPY, monthly and yearly; N patrons (default 300) joining
      over the last M months (default 24), with trials, renewals, declined
      cards and recoveries, upgrades, downgrades, coupons, refunds,
      cancellations and returns; one-time gifts; voting rounds, closed and
      open. Stripe is played by a built-in fake (no Stripe account is
      touched) and every event it emits is verified, stored and processed
      as a real webhook delivery is. The same --seed makes the same history.
      A database that already has tiers or rounds is refused. For
      evaluation databases only: the tiers point at the fake's prices.
`

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stdout, demoUsage)
		if len(args) == 0 {
			return &usageError{"demo: missing subcommand (seed)"}
		}
		return errHelp
	}
	if args[0] != "seed" {
		return &usageError{fmt.Sprintf("demo: unknown subcommand %q (want seed)", args[0])}
	}
	var opt demo.Options
	err := parseFlagsWith("demo seed", strings.TrimSpace(demoUsage), args[1:], stdout, func(fs *flag.FlagSet) {
		fs.IntVar(&opt.Patrons, "patrons", 300, "how many readers subscribe at some point")
		fs.IntVar(&opt.Months, "months", 24, "how many months of history, ending now")
		fs.Uint64Var(&opt.Seed, "seed", 1, "random seed; the same seed makes the same history")
	})
	if err != nil {
		return err
	}
	if opt.Patrons < 1 || opt.Patrons > 100_000 {
		return &usageError{"demo seed: --patrons must be from 1 to 100000"}
	}
	if opt.Months < 1 || opt.Months > 120 {
		return &usageError{"demo seed: --months must be from 1 to 120"}
	}

	cfg, db, logger, err := openAdmin(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	// Ballots of the open round update its live tally: in the configured
	// Redis, in that of a server running on DATA_DIR, or else in one of our
	// own, whose tallies the next server rebuilds from the ballots.
	rdb, err := serverRedis(ctx, cfg, logger)
	if errors.Is(err, redisx.ErrNoSharedRedis) {
		rdb, err = redisx.Open(ctx, "", cfg.RedisKeyPrefix, logger)
	}
	if err != nil {
		return err
	}
	defer rdb.Close()

	fmt.Fprintf(stdout, "Seeding %s with %d patrons over %d months (seed %d)…\n", db.Where, opt.Patrons, opt.Months, opt.Seed)
	began := time.Now()
	sum, err := demo.Seed(ctx, demo.Deps{DB: db, Redis: rdb, BaseURL: cfg.BaseURL, Logger: logger,
		Eligibility: func(b *billing.Service) voting.Eligibility { return voters{billing: b} },
		Wire: func(b *billing.Service, v *voting.Service) {
			withdrawOnLostAccess(b, v, slog.New(slog.DiscardHandler))
		},
	}, opt)
	if err != nil {
		return err
	}
	printDemoSummary(stdout, sum, time.Since(began))
	fmt.Fprintf(stdout, "\nSee it: start the server (patronage serve), make yourself staff with\n"+
		"  patronage admin create --email you@example.org\n"+
		"and open the sign-in link it prints; the dashboard is at %s/staff.\n", strings.TrimSuffix(cfg.BaseURL.String(), "/"))
	return nil
}

func printDemoSummary(w io.Writer, s demo.Summary, took time.Duration) {
	fmt.Fprintf(w, "\nHistory from %s to %s, made in %s:\n", s.From.Format(time.DateOnly), s.To.Format(time.DateOnly), took.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  patrons          %d (%d subscriptions, %d trials, %d coupons), %d paying now\n", s.Patrons, s.Subscriptions, s.Trials, s.Coupons, s.PayingPatrons)
	fmt.Fprintf(w, "  plan changes     %d upgrades, %d downgrades\n", s.Upgrades, s.Downgrades)
	fmt.Fprintf(w, "  failed payments  %d (%d recovered)\n", s.FailedPayments, s.Recovered)
	fmt.Fprintf(w, "  churn            %d subscriptions ended, %d patrons came back\n", s.Churned, s.Returned)
	fmt.Fprintf(w, "  gifts            %d (%d givers who never subscribed); %d refunds in all\n", s.Donations, s.Donors, s.Refunds)
	fmt.Fprintf(w, "  voting           %d closed round(s), %d open, %d ballots\n", s.ClosedRounds, s.OpenRounds, s.Ballots)
	fmt.Fprintf(w, "  Stripe events    %d delivered and processed\n", s.Events)
	var mrr []string
	for _, cur := range s.Currencies {
		mrr = append(mrr, money.Format(s.MRR[cur], strings.ToUpper(cur)))
	}
	fmt.Fprintf(w, "  MRR now          %s\n", strings.Join(mrr, ", "))
}
