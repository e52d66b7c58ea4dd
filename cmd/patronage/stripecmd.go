package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/patronage/patronage/members"
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
`

func runStripe(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stdout, stripeUsage)
		if len(args) == 0 {
			return &usageError{"stripe: missing subcommand (push-tiers or import-tiers)"}
		}
		return errHelp
	}
	sub := args[0]
	if sub != "push-tiers" && sub != "import-tiers" {
		return &usageError{fmt.Sprintf("stripe: unknown subcommand %q (want push-tiers or import-tiers)", sub)}
	}
	if err := parseFlags("stripe "+sub, strings.TrimSpace(stripeUsage), args[1:], stdout); err != nil {
		return err
	}
	cfg, db, logger, err := openAdmin(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	memberService, err := newMembers(cfg, db, nil, logger)
	if err != nil {
		return err
	}
	svc, err := newBilling(cfg, db, memberService, logger)
	if err != nil {
		return err
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
