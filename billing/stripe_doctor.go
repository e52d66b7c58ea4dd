package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/stripeapi"
)

// Check is one finding of Doctor: what was looked at, what was found, and,
// when it is wrong, what to do about it.
type Check struct {
	Subject string // "key", "webhook endpoint", "tier coffee", …
	Found   string
	Fix     string // empty when all is well
}

// OK reports whether the check found nothing to fix.
func (c Check) OK() bool { return c.Fix == "" }

// DoctorInput is the configuration Doctor checks against Stripe.
type DoctorInput struct {
	SecretKey  string // STRIPE_SECRET_KEY
	WebhookURL string // where Stripe should send events
	// WebhookURLProblem says why WebhookURL cannot be checked (Stripe
	// cannot reach it); the endpoint check is then skipped.
	WebhookURLProblem string
	WebhookSecrets    []string // STRIPE_WEBHOOK_SECRET
}

// Doctor checks that the Stripe account is ready for Patronage: the key
// and its mode, the webhook endpoint (events, API version, status), the
// billing portal configuration, and every active tier's product and prices.
// It changes nothing. An error is returned only when Stripe cannot be
// asked at all; everything else is a Check.
func (s *Service) Doctor(ctx context.Context, in DoctorInput) ([]Check, error) {
	var checks []Check
	add := func(subject, found, fix string) { checks = append(checks, Check{subject, found, fix}) }

	sc, err := s.stripeClient()
	if err != nil {
		add("key", "STRIPE_SECRET_KEY is not set", "Set STRIPE_SECRET_KEY to a secret key (Stripe Dashboard → Developers → API keys).")
		return checks, nil
	}
	mode := "test"
	if strings.Contains(in.SecretKey, "_live_") {
		mode = "live"
	}
	// stripe-go's account read takes no context; its client gives up
	// after 20 s.
	acct, err := sc.Accounts.Get()
	var se *stripe.Error
	switch {
	case errors.As(err, &se) && (se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden):
		add("key", fmt.Sprintf("Stripe refused the %s-mode key (HTTP %d)", mode, se.HTTPStatusCode),
			"Set STRIPE_SECRET_KEY to a valid secret key of the account (Stripe Dashboard → Developers → API keys); a restricted key needs read access to the account.")
		return checks, nil
	case err != nil:
		return checks, stripeapi.MapError(err)
	}
	switch {
	case mode == "live" && !acct.ChargesEnabled:
		add("key", fmt.Sprintf("live-mode key of account %s, which cannot take payments yet", acct.ID),
			"Finish activating the account in the Stripe Dashboard.")
	default:
		add("key", fmt.Sprintf("%s-mode key of account %s", mode, acct.ID), "")
	}

	checks = append(checks, s.checkWebhook(ctx, sc, in)...)
	checks = append(checks, s.checkPortal(ctx, sc))
	tierChecks, err := s.checkTiers(ctx, sc)
	if err != nil {
		return checks, err
	}
	return append(checks, tierChecks...), nil
}

func (s *Service) checkWebhook(ctx context.Context, sc *client.API, in DoctorInput) []Check {
	setup := fmt.Sprintf("Run `patronage stripe setup-webhook --url %s`.", in.WebhookURL)
	secret := Check{"webhook secret", fmt.Sprintf("%d signing secret(s) set", len(in.WebhookSecrets)), ""}
	if len(in.WebhookSecrets) == 0 {
		secret.Found = "STRIPE_WEBHOOK_SECRET is empty: Stripe's events are refused with 503"
		secret.Fix = setup + " It prints a new endpoint's secret to set STRIPE_WEBHOOK_SECRET to."
	}
	if in.WebhookURLProblem != "" {
		return []Check{secret, {"webhook endpoint", in.WebhookURLProblem, "Run doctor with --url set to the public address Stripe sends to."}}
	}
	keep, stale, err := endpointsAt(ctx, sc, in.WebhookURL)
	if err != nil {
		return []Check{secret, {"webhook endpoint", "Stripe's endpoints could not be listed: " + errs.From(err).Message,
			"Give the key read and write access to webhook endpoints."}}
	}
	if keep == nil && len(stale) == 0 {
		return []Check{secret, {"webhook endpoint", "no endpoint sends events to " + in.WebhookURL, setup}}
	}
	if keep == nil {
		keep, stale = stale[0], stale[1:]
	}
	if len(in.WebhookSecrets) == 0 {
		// The API shows a secret only when it makes the endpoint.
		secret.Fix = fmt.Sprintf("Reveal the signing secret of %s in the Stripe Dashboard (Developers → Webhooks) and set STRIPE_WEBHOOK_SECRET to it.", keep.ID)
	}
	checks := []Check{secret}
	found := fmt.Sprintf("%s sends to %s", keep.ID, in.WebhookURL)
	var fixes []string
	if keep.Status != "enabled" {
		fixes = append(fixes, "it is disabled")
	}
	want, got := WebhookEvents(), slices.Sorted(slices.Values(keep.EnabledEvents))
	var lacking, extra []string
	for _, e := range want {
		if !slices.Contains(got, e) {
			lacking = append(lacking, e)
		}
	}
	for _, e := range got {
		if !slices.Contains(want, e) {
			extra = append(extra, e)
		}
	}
	if slices.Contains(got, "*") {
		lacking, extra = nil, []string{"every event type (*)"}
	}
	if len(lacking) > 0 {
		fixes = append(fixes, "it does not send "+strings.Join(lacking, ", "))
	}
	if len(extra) > 0 {
		fixes = append(fixes, "it also sends "+strings.Join(extra, ", ")+", which Patronage stores and ignores")
	}
	if keep.APIVersion != stripe.APIVersion {
		fixes = append(fixes, fmt.Sprintf("it renders events at %s, not %s, the one Patronage reads (setup-webhook makes a new endpoint: Stripe cannot change an endpoint's version)",
			VersionName(keep.APIVersion), stripe.APIVersion))
	}
	check := Check{Subject: "webhook endpoint", Found: found}
	if len(fixes) > 0 {
		check.Found += ", but " + strings.Join(fixes, "; ")
		check.Fix = setup
	} else {
		check.Found += fmt.Sprintf(", enabled, the %d events Patronage handles, API version %s", len(want), stripe.APIVersion)
	}
	checks = append(checks, check)
	for _, ep := range stale {
		checks = append(checks, Check{"webhook endpoint", fmt.Sprintf("%s also sends to %s (%s, %s)", ep.ID, in.WebhookURL, VersionName(ep.APIVersion), ep.Status),
			fmt.Sprintf("Once STRIPE_WEBHOOK_SECRET holds the secret of %s, run `patronage stripe setup-webhook --url %s --delete-stale`.", keep.ID, in.WebhookURL)})
	}
	return checks
}

func (s *Service) checkPortal(ctx context.Context, sc *client.API) Check {
	const setup = "Run `patronage stripe setup-portal` and set STRIPE_PORTAL_CONFIGURATION to the id it prints."
	conf, err := s.findPortal(ctx, sc)
	switch {
	case err != nil:
		return Check{"billing portal", errs.From(err).Message, setup}
	case conf == nil:
		return Check{"billing portal", "STRIPE_PORTAL_CONFIGURATION is empty and Patronage has made no portal configuration: patrons get the account's default portal, if it has been saved", setup}
	}
	want, err := s.wantPortal(ctx, PortalSettings{})
	want.profile = false
	if err != nil {
		return Check{"billing portal", conf.ID + ": " + errs.From(err).Message, "Fix the tiers, then run `patronage stripe setup-portal`."}
	}
	if d := want.differences(conf); len(d) > 0 {
		return Check{"billing portal", conf.ID + " differs from the tiers in: " + strings.Join(d, ", "), "Run `patronage stripe setup-portal`."}
	}
	if s.opts.PortalConfiguration == "" {
		return Check{"billing portal", conf.ID + " matches the tiers, but patrons do not get it", "Set STRIPE_PORTAL_CONFIGURATION=" + conf.ID + "."}
	}
	return Check{"billing portal", fmt.Sprintf("%s: cancel at period end, switch between %d tier(s), payment method, invoice history", conf.ID, len(want.products)), ""}
}

func (s *Service) checkTiers(ctx context.Context, sc *client.API) ([]Check, error) {
	const push = "Run `patronage stripe push-tiers`."
	tiers, err := listTiers(ctx, s.db, true)
	if err != nil {
		return nil, err
	}
	if len(tiers) == 0 {
		return []Check{{"tiers", "there is no active tier: nobody can become a patron", "Create a tier (POST /api/v1/staff/tiers), then run `patronage stripe push-tiers`."}}, nil
	}
	var checks []Check
	for _, t := range tiers {
		subject := "tier " + t.Slug
		if t.StripeProductID == "" {
			checks = append(checks, Check{subject, "not in Stripe", push})
			continue
		}
		prod, err := sc.Products.Get(t.StripeProductID, &stripe.ProductParams{Params: stripe.Params{Context: ctx}})
		switch {
		case isMissing(err):
			checks = append(checks, Check{subject, "product " + t.StripeProductID + " is not in this Stripe account", push})
			continue
		case err != nil:
			return checks, stripeapi.MapError(err)
		case !prod.Active:
			checks = append(checks, Check{subject, "product " + t.StripeProductID + " is archived", push})
			continue
		}
		var wrong []string
		for _, p := range t.Prices {
			what := fmt.Sprintf("%s %s", p.Currency, p.Interval)
			if p.StripePriceID == "" {
				wrong = append(wrong, what+": no Stripe price")
				continue
			}
			sp, err := sc.Prices.Get(p.StripePriceID, &stripe.PriceParams{Params: stripe.Params{Context: ctx}})
			switch {
			case isMissing(err):
				wrong = append(wrong, what+": price "+p.StripePriceID+" is not in this Stripe account")
			case err != nil:
				return checks, stripeapi.MapError(err)
			case !sp.Active:
				wrong = append(wrong, what+": price "+p.StripePriceID+" is archived")
			case !priceMatches(sp, t.StripeProductID, p):
				wrong = append(wrong, what+": price "+p.StripePriceID+" charges something else")
			}
		}
		if len(wrong) > 0 {
			checks = append(checks, Check{subject, strings.Join(wrong, "; "), push})
			continue
		}
		checks = append(checks, Check{subject, fmt.Sprintf("product %s with %d active price(s)", t.StripeProductID, len(t.Prices)), ""})
	}
	return checks, nil
}
