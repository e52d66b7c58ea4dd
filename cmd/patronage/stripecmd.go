package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	neturl "net/url"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
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
  patronage stripe setup-webhook [--url URL] [--delete-stale]
      Make Stripe send the events Patronage handles, and only those, to URL
      (default: BASE_URL/webhooks/stripe), rendered at the API version
      stripe-go v76 pins (2023-10-16), and print a new endpoint's signing
      secret for STRIPE_WEBHOOK_SECRET. An endpoint there already is updated
      in place; one at another API version is kept beside a new one until a
      later run with --delete-stale. A second run changes nothing.
  patronage stripe setup-portal [--headline TEXT] [--privacy-url URL] [--terms-url URL]
      Make the billing portal configuration patrons get from the active
      tiers (cancel at period end, switch tier or interval, payment method,
      invoice history) and print its id for STRIPE_PORTAL_CONFIGURATION.
      The tiers must be in Stripe (push-tiers). A second run changes nothing.
  patronage stripe doctor [--url URL]
      Check the key and its mode, the webhook endpoint (events, API version),
      the billing portal and every active tier's price, and say what to fix.
      Changes nothing; exits 1 when something needs fixing.
`

var stripeSubcommands = []string{"push-tiers", "import-tiers", "sync", "setup-webhook", "setup-portal", "doctor"}

func runStripe(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stdout, stripeUsage)
		if len(args) == 0 {
			return &usageError{"stripe: missing subcommand (" + strings.Join(stripeSubcommands, ", ") + ")"}
		}
		return errHelp
	}
	sub := args[0]
	if !slices.Contains(stripeSubcommands, sub) {
		return &usageError{fmt.Sprintf("stripe: unknown subcommand %q (want %s)", sub, strings.Join(stripeSubcommands, ", "))}
	}
	var sinceFlag, urlFlag string
	var deleteStale bool
	var portal billing.PortalSettings
	err := parseFlagsWith("stripe "+sub, strings.TrimSpace(stripeUsage), args[1:], stdout, func(fs *flag.FlagSet) {
		switch sub {
		case "sync":
			fs.StringVar(&sinceFlag, "since", "", "only objects created on or after this date (YYYY-MM-DD)")
		case "setup-webhook", "doctor":
			fs.StringVar(&urlFlag, "url", "", "where Stripe sends events (default BASE_URL/webhooks/stripe)")
			if sub == "setup-webhook" {
				fs.BoolVar(&deleteStale, "delete-stale", false, "delete the other endpoints at the URL")
			}
		case "setup-portal":
			fs.StringVar(&portal.Headline, "headline", "", "the portal's headline (a new portal's default: NEWSROOM_NAME)")
			fs.StringVar(&portal.PrivacyPolicyURL, "privacy-url", "", "the newsroom's privacy policy")
			fs.StringVar(&portal.TermsOfServiceURL, "terms-url", "", "the newsroom's terms")
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
	catalog, templates, err := newWording(cfg)
	if err != nil {
		return err
	}
	memberService, err := newMembers(cfg, db, nil, logger, hooks, catalog, templates)
	if err != nil {
		return err
	}
	svc, err := newBilling(cfg, db, memberService, logger, hooks, templates)
	if err != nil {
		return err
	}
	switch sub {
	case "sync":
		return runStripeSync(ctx, svc, db, logger, since, stdout)
	case "setup-webhook", "doctor":
		url, err := webhookURL(urlFlag, cfg.BaseURL, cfg.StripeSecretKey)
		if sub == "doctor" {
			in := billing.DoctorInput{SecretKey: cfg.StripeSecretKey, WebhookURL: url, WebhookSecrets: cfg.StripeWebhookSecrets}
			if err != nil { // the other checks are still worth making
				in.WebhookURLProblem = strings.TrimPrefix(err.Error(), "stripe: ")
			}
			return runStripeDoctor(ctx, svc, in, stdout)
		}
		if err != nil {
			return err
		}
		return runSetupWebhook(ctx, svc, url, deleteStale, len(cfg.StripeWebhookSecrets) > 0, stdout)
	case "setup-portal":
		for _, u := range []string{portal.PrivacyPolicyURL, portal.TermsOfServiceURL} {
			if p, err := neturl.Parse(u); u != "" && (err != nil || p.Scheme != "https" || p.Host == "") {
				return &usageError{fmt.Sprintf("stripe setup-portal: %q is not an https:// URL", u)}
			}
		}
		portal.DefaultHeadline = cfg.NewsroomName
		rep, err := svc.SetupPortal(ctx, portal)
		if err != nil {
			return err
		}
		switch {
		case rep.Created:
			fmt.Fprintf(stdout, "Created billing portal configuration %s from the tiers.\n", rep.ConfigurationID)
		case len(rep.Updated) > 0:
			fmt.Fprintf(stdout, "Updated billing portal configuration %s: %s.\n", rep.ConfigurationID, strings.Join(rep.Updated, ", "))
		default:
			fmt.Fprintf(stdout, "Billing portal configuration %s matches the tiers; nothing changed.\n", rep.ConfigurationID)
		}
		if cfg.StripePortalConfiguration != rep.ConfigurationID {
			fmt.Fprintf(stdout, "Set STRIPE_PORTAL_CONFIGURATION=%s and restart, so that patrons get it.\n", rep.ConfigurationID)
		}
		return nil
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

// webhookURL is the --url given, else BASE_URL's /webhooks/stripe. Stripe
// cannot deliver to this machine's loopback, and live mode wants https.
func webhookURL(given string, base *neturl.URL, key string) (string, error) {
	raw := given
	if raw == "" {
		raw = base.String() + "/webhooks/stripe"
	}
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", &usageError{fmt.Sprintf("stripe: --url %q is not an absolute https:// URL", raw)}
	}
	if host := u.Hostname(); host == "localhost" || strings.HasSuffix(host, ".localhost") || isLoopback(host) {
		return "", &usageError{fmt.Sprintf("stripe: Stripe cannot reach %s on this machine; give --url the public address (or, developing locally, forward events with `stripe listen`)", raw)}
	}
	if u.Scheme != "https" && strings.Contains(key, "_live_") {
		return "", &usageError{fmt.Sprintf("stripe: live mode sends events to https:// URLs only, not %s", raw)}
	}
	return raw, nil
}

func isLoopback(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func runSetupWebhook(ctx context.Context, svc *billing.Service, url string, deleteStale, haveSecret bool, stdout io.Writer) error {
	rep, err := svc.SetupWebhook(ctx, url, deleteStale)
	if err != nil {
		return err
	}
	events := len(billing.WebhookEvents())
	switch {
	case rep.Created:
		fmt.Fprintf(stdout, "Created webhook endpoint %s for %s: %d events, API version %s.\nIts signing secret (the API shows it only now; the Dashboard can reveal it later):\n\n    %s\n\n",
			rep.EndpointID, url, events, stripe.APIVersion, rep.Secret)
		if len(rep.Stale) == 0 {
			fmt.Fprintf(stdout, "Set STRIPE_WEBHOOK_SECRET=%s and restart.\n", rep.Secret)
		}
	case len(rep.Updated) > 0:
		fmt.Fprintf(stdout, "Updated webhook endpoint %s for %s: %s. Its secret is unchanged.\n", rep.EndpointID, url, strings.Join(rep.Updated, ", "))
	default:
		fmt.Fprintf(stdout, "Webhook endpoint %s for %s is up to date (%d events, API version %s); nothing changed.\n", rep.EndpointID, url, events, stripe.APIVersion)
	}
	if !rep.Created && !haveSecret {
		fmt.Fprintf(stdout, "STRIPE_WEBHOOK_SECRET is empty: reveal the signing secret of %s in the Stripe Dashboard (Developers → Webhooks) and set it.\n", rep.EndpointID)
	}
	for _, id := range rep.Deleted {
		fmt.Fprintf(stdout, "Deleted the old endpoint %s.\n", id)
	}
	if len(rep.Stale) > len(rep.Deleted) {
		var old []string
		for _, ep := range rep.Stale {
			old = append(old, fmt.Sprintf("%s (%s, %s)", ep.ID, billing.VersionName(ep.APIVersion), ep.Status))
		}
		fmt.Fprintf(stdout, "Stripe also sends to %s from %s; each endpoint signs with its own secret and Patronage takes each event once.\n", url, strings.Join(old, ", "))
		if rep.Created {
			fmt.Fprintf(stdout, "Set STRIPE_WEBHOOK_SECRET=%s,<the secret you have now>, restart, then run\n    patronage stripe setup-webhook --url %s --delete-stale\n", rep.Secret, url)
			if deleteStale {
				fmt.Fprintln(stdout, "Nothing was deleted in this run: the new secret is not in use yet.")
			}
		} else {
			fmt.Fprintf(stdout, "Once STRIPE_WEBHOOK_SECRET holds the secret of %s, run\n    patronage stripe setup-webhook --url %s --delete-stale\n", rep.EndpointID, url)
		}
	}
	return nil
}

func runStripeDoctor(ctx context.Context, svc *billing.Service, in billing.DoctorInput, stdout io.Writer) error {
	checks, err := svc.Doctor(ctx, in)
	fixes := 0
	for _, c := range checks {
		mark := "ok "
		if !c.OK() {
			mark = "FIX"
			fixes++
		}
		fmt.Fprintf(stdout, "%s  %s: %s\n", mark, c.Subject, c.Found)
		if !c.OK() {
			fmt.Fprintf(stdout, "     → %s\n", c.Fix)
		}
	}
	if err != nil {
		return err
	}
	if fixes > 0 {
		return errs.WithCode(errs.Conflict, "stripe_not_ready", "stripe doctor: %d thing(s) to fix", fixes)
	}
	fmt.Fprintln(stdout, "Stripe is ready for Patronage.")
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
