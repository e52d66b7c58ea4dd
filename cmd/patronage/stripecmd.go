package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/webhooks"
)

const stripeUsage = `Usage:
  patronage stripe push-tiers
      Mirror every tier to Stripe: a Product per tier, a Price per tier price
      (found again by lookup key patronage_<slug>_<interval>_<currency>).
      Idempotent: a second run creates nothing. A changed amount becomes a new
      Price that takes the lookup key; the old one is archived, and existing
      subscribers keep paying what they pay.
  patronage stripe import-tiers
      Adopt Products with monthly or yearly Prices that already exist in the
      Stripe account as tiers; the next push-tiers gives their prices our
      lookup keys without creating new ones.
  patronage stripe sync [--since YYYY-MM-DD]
      Reconcile with Stripe: list customers, subscriptions and invoices
      (created since the date, or all) and repair every difference, printing
      each; then queue the events of the last 30 days Stripe holds that were
      never delivered. A second run right after changes nothing. A running
      server also does this every STRIPE_SYNC_INTERVAL.
`

func runStripe(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stdout, stripeUsage)
		if len(args) == 0 {
			return &usageError{"stripe: missing subcommand (push-tiers, import-tiers or sync)"}
		}
		return errHelp
	}
	sub := args[0]
	if sub != "push-tiers" && sub != "import-tiers" && sub != "sync" {
		return &usageError{fmt.Sprintf("stripe: unknown subcommand %q (want push-tiers, import-tiers or sync)", sub)}
	}
	var sinceFlag string
	err := parseFlagsWith("stripe "+sub, strings.TrimSpace(stripeUsage), args[1:], stdout, func(fs *flag.FlagSet) {
		if sub == "sync" {
			fs.StringVar(&sinceFlag, "since", "", "only objects created on or after this date (YYYY-MM-DD)")
		}
	})
	if err != nil {
		return err
	}
	var since *time.Time
	if sinceFlag != "" {
		t, err := time.Parse("2006-01-02", sinceFlag)
		if err != nil {
			return &usageError{fmt.Sprintf("stripe sync: --since %q is not a date (want YYYY-MM-DD)", sinceFlag)}
		}
		since = &t
	}
	cfg, db, logger, err := openAdmin(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	hooks, err := newOutgoing(cfg, db, logger)
	if err != nil {
		return err
	}
	memberService, err := newMembers(cfg, db, nil, logger, hooks)
	if err != nil {
		return err
	}
	svc, err := newBilling(cfg, db, memberService, logger, hooks)
	if err != nil {
		return err
	}
	if sub == "sync" {
		return runStripeSync(ctx, svc, db, logger, since, stdout)
	}
	if sub == "import-tiers" {
		rep, err := svc.ImportTiers(ctx, members.CommandLine)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Imported %d tier(s): %s\nSkipped %d product(s) already mirrored, without a free slug, or without monthly/yearly prices.\n",
			len(rep.TiersCreated), strings.Join(rep.TiersCreated, ", "), len(rep.Skipped))
		return nil
	}
	rep, err := svc.PushTiers(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Stripe is up to date: %d product(s) created, %d updated; %d price(s) created, %d adopted, %d archived.\n",
		rep.ProductsCreated, rep.ProductsUpdated, rep.PricesCreated, rep.PricesAdopted, rep.PricesArchived)
	return nil
}

// runStripeSync reconciles with Stripe and prints every drift it repaired.
func runStripeSync(ctx context.Context, svc *billing.Service, db *sqldb.DB, logger *slog.Logger, since *time.Time, stdout io.Writer) error {
	queue, err := jobs.New(db, nil, logger, jobs.Options{})
	if err != nil {
		return err
	}
	svc.SetEventSink(webhooks.NewIntake(db, queue, nil).BillingSink())
	rep, err := svc.SyncStripe(ctx, since)
	if err != nil {
		return err
	}
	for _, d := range rep.Drift {
		fmt.Fprintf(stdout, "fixed %s %s: %s\n", d.Kind, d.ID, d.What)
	}
	fmt.Fprintf(stdout, "Checked %d customer(s), %d subscription(s), %d invoice(s); %d drift(s) fixed, %d missed event(s) queued.\n",
		rep.Customers, rep.Subscriptions, rep.Invoices, len(rep.Drift), rep.EventsReplayed)
	return nil
}
