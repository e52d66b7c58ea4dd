package billing

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/stripeapi"
)

// What `patronage stripe setup-webhook`, `setup-portal` and `doctor` do:
// make the Stripe account ready for Patronage, and say what is not.

// WebhookEvents are the event types the Stripe webhook endpoint sends:
// exactly those billing handles, sorted.
func WebhookEvents() []string {
	return slices.Sorted(slices.Values(EventTypes))
}

// WebhookSetup is what SetupWebhook found and did.
type WebhookSetup struct {
	EndpointID string
	Created    bool
	Secret     string   // the new endpoint's signing secret; Stripe shows it once
	Updated    []string // what an update to an existing endpoint changed
	// Stale are the other endpoints sending to the URL: made with another
	// API version (which Stripe cannot change) or duplicates.
	Stale   []StaleEndpoint
	Deleted []string // stale endpoints deleted (deleteStale)
}

// StaleEndpoint is an endpoint at the URL that is not the one kept.
type StaleEndpoint struct {
	ID, APIVersion, Status string
}

// Changed reports whether the run changed anything in Stripe.
func (w WebhookSetup) Changed() bool {
	return w.Created || len(w.Updated) > 0 || len(w.Deleted) > 0
}

// SetupWebhook makes the account send every event Patronage handles, and
// only those, to url, rendered at the API version stripe-go v76 pins. An
// endpoint there already is updated in place; one at another API version
// cannot be (Stripe fixes the version at creation), so a new endpoint is
// made beside it and the old one is reported stale: both deliver, and the
// intake takes each event once, until deleteStale removes the old one on a
// later run. deleteStale never removes anything in the run that made the
// new endpoint, whose secret is not deployed yet.
func (s *Service) SetupWebhook(ctx context.Context, url string, deleteStale bool) (WebhookSetup, error) {
	var out WebhookSetup
	sc, err := s.stripeClient()
	if err != nil {
		return out, err
	}
	keep, stale, err := endpointsAt(ctx, sc, url)
	if err != nil {
		return out, err
	}
	for _, ep := range stale {
		out.Stale = append(out.Stale, StaleEndpoint{ID: ep.ID, APIVersion: ep.APIVersion, Status: ep.Status})
	}
	if keep == nil {
		params := WebhookEndpointParams(url)
		params.Context = ctx
		ep, err := sc.WebhookEndpoints.New(params)
		if err != nil {
			return out, stripeapi.MapError(err)
		}
		out.EndpointID, out.Created, out.Secret = ep.ID, true, ep.Secret
		return out, nil
	}
	out.EndpointID = keep.ID
	var params *stripe.WebhookEndpointParams
	params, out.Updated = RepairWebhookEndpointParams(keep)
	if len(out.Updated) > 0 {
		params.Context = ctx
		if _, err := sc.WebhookEndpoints.Update(keep.ID, params); err != nil {
			return out, stripeapi.MapError(err)
		}
	}
	if deleteStale {
		for _, ep := range stale {
			_, err := sc.WebhookEndpoints.Del(ep.ID, &stripe.WebhookEndpointParams{Params: stripe.Params{Context: ctx}})
			switch {
			case err == nil:
				out.Deleted = append(out.Deleted, ep.ID)
			case !isMissing(err): // one already gone is not reported as deleted
				return out, stripeapi.MapError(err)
			}
		}
	}
	return out, nil
}

// WebhookEndpointParams creates the endpoint Patronage wants at url.
func WebhookEndpointParams(url string) *stripe.WebhookEndpointParams {
	return &stripe.WebhookEndpointParams{
		URL:           stripe.String(url),
		EnabledEvents: stripe.StringSlice(WebhookEvents()),
		APIVersion:    stripe.String(stripe.APIVersion),
		Description:   stripe.String("Patronage: the events it handles"),
		Metadata:      map[string]string{"patronage": "webhook"},
	}
}

// RepairWebhookEndpointParams updates ep to what WebhookEndpointParams
// made, and says what it changes; with nothing to change, the list is
// empty. The API version is not among them: Stripe cannot change it.
func RepairWebhookEndpointParams(ep *stripe.WebhookEndpoint) (*stripe.WebhookEndpointParams, []string) {
	params := &stripe.WebhookEndpointParams{}
	var changes []string
	if want := WebhookEvents(); !slices.Equal(slices.Sorted(slices.Values(ep.EnabledEvents)), want) {
		params.EnabledEvents = stripe.StringSlice(want)
		changes = append(changes, "events")
	}
	if ep.Status != "enabled" {
		params.Disabled = stripe.Bool(false)
		changes = append(changes, "enabled again")
	}
	return params, changes
}

// VersionName names an endpoint's API version for a person; Stripe leaves
// it empty for an endpoint that follows the account's default.
func VersionName(v string) string {
	if v == "" {
		return "the account's default API version"
	}
	return "API version " + v
}

// endpointsAt lists the endpoints sending to url: the one to keep (at the
// pinned API version, an enabled one first, else the oldest) and the rest.
func endpointsAt(ctx context.Context, sc *client.API, url string) (keep *stripe.WebhookEndpoint, rest []*stripe.WebhookEndpoint, err error) {
	params := &stripe.WebhookEndpointListParams{}
	params.Context = ctx
	params.Limit = stripe.Int64(100)
	var at []*stripe.WebhookEndpoint
	iter := sc.WebhookEndpoints.List(params)
	for iter.Next() {
		if ep := iter.WebhookEndpoint(); ep.URL == url {
			at = append(at, ep)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, nil, stripeapi.MapError(err)
	}
	slices.SortStableFunc(at, func(a, b *stripe.WebhookEndpoint) int { return int(a.Created - b.Created) })
	rank := func(ep *stripe.WebhookEndpoint) int {
		switch {
		case ep.APIVersion != stripe.APIVersion:
			return 0
		case ep.Status != "enabled":
			return 1
		}
		return 2
	}
	for _, ep := range at {
		if rank(ep) > 0 && (keep == nil || rank(ep) > rank(keep)) {
			keep = ep
		}
	}
	for _, ep := range at {
		if ep != keep {
			rest = append(rest, ep)
		}
	}
	return keep, rest, nil
}

// PortalSettings are what the billing portal shows besides the tiers.
type PortalSettings struct {
	// Each is set when given and otherwise left as it is, so a later run
	// without them keeps what an earlier one set.
	Headline          string // at most 60 characters; longer is cut
	PrivacyPolicyURL  string
	TermsOfServiceURL string
	// DefaultHeadline is the headline of a new configuration when Headline
	// is empty (the newsroom's name); Stripe wants one.
	DefaultHeadline string
}

// PortalSetup is what SetupPortal found and did.
type PortalSetup struct {
	ConfigurationID string
	Created         bool
	Updated         []string // what differed in the configuration found
}

// maxPortalProducts is Stripe's limit of products a portal switches between.
const maxPortalProducts = 10

// cancellationReasons are the reasons the portal asks a leaving patron for.
var cancellationReasons = []string{"too_expensive", "unused", "low_quality", "missing_features", "other"}

// portalWant is the configuration the portal should have.
type portalWant struct {
	headline, privacy, terms, returnURL string
	defaultHeadline                     string
	products                            map[string][]string // product id → its active price ids, sorted
	// profile compares the business profile too; doctor leaves it out,
	// since it does not know the flags setup-portal was given.
	profile bool
}

// wantPortal derives the portal from the active tiers: patrons cancel at
// the period's end, switch between every tier price (tier, interval or
// currency), change their payment method and see their invoices. Every
// active tier must be in Stripe already (push-tiers).
func (s *Service) wantPortal(ctx context.Context, set PortalSettings) (portalWant, error) {
	tiers, err := listTiers(ctx, s.db, true)
	if err != nil {
		return portalWant{}, err
	}
	w := portalWant{headline: truncate(strings.TrimSpace(set.Headline), 60), privacy: set.PrivacyPolicyURL, terms: set.TermsOfServiceURL,
		defaultHeadline: truncate(strings.TrimSpace(set.DefaultHeadline), 60),
		returnURL:       s.baseURL.String() + "/account", products: map[string][]string{}, profile: true}
	var missing []string
	for _, t := range tiers {
		var prices []string
		for _, p := range t.Prices {
			if p.StripePriceID != "" {
				prices = append(prices, p.StripePriceID)
			}
		}
		if t.StripeProductID == "" || len(prices) < len(t.Prices) {
			missing = append(missing, t.Slug)
			continue
		}
		if len(prices) > 0 {
			slices.Sort(prices)
			w.products[t.StripeProductID] = prices
		}
	}
	switch {
	case len(missing) > 0:
		return w, errs.WithCode(errs.Conflict, "tiers_not_in_stripe", "Tier(s) %s are not in Stripe yet: run `patronage stripe push-tiers` first.", strings.Join(missing, ", "))
	case len(w.products) == 0:
		return w, errs.WithCode(errs.Conflict, "no_tiers", "There is no active tier with a price to switch between: create a tier first.")
	case len(w.products) > maxPortalProducts:
		return w, errs.WithCode(errs.Conflict, "too_many_tiers", "Stripe's portal switches between at most %d products and there are %d active tiers.", maxPortalProducts, len(w.products))
	}
	return w, nil
}

// params is the create or update request for w. A headline, policy or
// terms URL not given is left as it is; a new configuration gets the
// default headline.
func (w portalWant) params(ctx context.Context, creating bool) *stripe.BillingPortalConfigurationParams {
	products := make([]*stripe.BillingPortalConfigurationFeaturesSubscriptionUpdateProductParams, 0, len(w.products))
	for _, id := range slices.Sorted(maps.Keys(w.products)) {
		products = append(products, &stripe.BillingPortalConfigurationFeaturesSubscriptionUpdateProductParams{
			Product: stripe.String(id), Prices: stripe.StringSlice(w.products[id])})
	}
	p := &stripe.BillingPortalConfigurationParams{
		BusinessProfile:  &stripe.BillingPortalConfigurationBusinessProfileParams{},
		DefaultReturnURL: stripe.String(w.returnURL),
		Features: &stripe.BillingPortalConfigurationFeaturesParams{
			CustomerUpdate: &stripe.BillingPortalConfigurationFeaturesCustomerUpdateParams{
				Enabled: stripe.Bool(true), AllowedUpdates: stripe.StringSlice([]string{"address", "name"})},
			InvoiceHistory:      &stripe.BillingPortalConfigurationFeaturesInvoiceHistoryParams{Enabled: stripe.Bool(true)},
			PaymentMethodUpdate: &stripe.BillingPortalConfigurationFeaturesPaymentMethodUpdateParams{Enabled: stripe.Bool(true)},
			SubscriptionCancel: &stripe.BillingPortalConfigurationFeaturesSubscriptionCancelParams{
				Enabled: stripe.Bool(true), Mode: stripe.String("at_period_end"), ProrationBehavior: stripe.String("none"),
				CancellationReason: &stripe.BillingPortalConfigurationFeaturesSubscriptionCancelCancellationReasonParams{
					Enabled: stripe.Bool(true), Options: stripe.StringSlice(cancellationReasons)}},
			SubscriptionPause: &stripe.BillingPortalConfigurationFeaturesSubscriptionPauseParams{Enabled: stripe.Bool(false)},
			SubscriptionUpdate: &stripe.BillingPortalConfigurationFeaturesSubscriptionUpdateParams{
				Enabled: stripe.Bool(true), DefaultAllowedUpdates: stripe.StringSlice([]string{"price"}),
				ProrationBehavior: stripe.String("create_prorations"), Products: products},
		},
		Metadata: map[string]string{"patronage": "portal"},
	}
	switch {
	case w.headline != "":
		p.BusinessProfile.Headline = stripe.String(w.headline)
	case creating:
		p.BusinessProfile.Headline = stripe.String(w.defaultHeadline)
	}
	if w.privacy != "" {
		p.BusinessProfile.PrivacyPolicyURL = stripe.String(w.privacy)
	}
	if w.terms != "" {
		p.BusinessProfile.TermsOfServiceURL = stripe.String(w.terms)
	}
	p.Context = ctx
	return p
}

// differences lists how a configuration in Stripe differs from w.
func (w portalWant) differences(c *stripe.BillingPortalConfiguration) []string {
	var d []string
	differ := func(ok bool, what string) {
		if !ok {
			d = append(d, what)
		}
	}
	differ(c.Active, "active")
	if bp := c.BusinessProfile; w.profile {
		differ(bp != nil && (w.headline == "" || bp.Headline == w.headline) && (w.privacy == "" || bp.PrivacyPolicyURL == w.privacy) &&
			(w.terms == "" || bp.TermsOfServiceURL == w.terms), "business profile")
	}
	differ(c.DefaultReturnURL == w.returnURL, "return URL")
	f := c.Features
	if f == nil {
		return append(d, "features")
	}
	cu := f.CustomerUpdate
	differ(cu != nil && cu.Enabled && sameSet(enumStrings(cu.AllowedUpdates), []string{"address", "name"}), "customer details (name and address)")
	differ(f.InvoiceHistory != nil && f.InvoiceHistory.Enabled, "invoice history")
	differ(f.PaymentMethodUpdate != nil && f.PaymentMethodUpdate.Enabled, "payment method update")
	sc := f.SubscriptionCancel
	differ(sc != nil && sc.Enabled && sc.Mode == "at_period_end" && sc.ProrationBehavior == "none", "cancel at period end")
	differ(sc != nil && sc.CancellationReason != nil && sc.CancellationReason.Enabled &&
		sameSet(enumStrings(sc.CancellationReason.Options), cancellationReasons), "cancellation reasons")
	differ(f.SubscriptionPause == nil || !f.SubscriptionPause.Enabled, "pause off")
	su := f.SubscriptionUpdate
	differ(su != nil && su.Enabled && sameSet(enumStrings(su.DefaultAllowedUpdates), []string{"price"}) &&
		su.ProrationBehavior == "create_prorations", "switching tiers and intervals")
	got := map[string][]string{}
	if su != nil {
		for _, p := range su.Products {
			got[p.Product] = slices.Sorted(slices.Values(p.Prices))
		}
	}
	differ(maps.EqualFunc(got, w.products, slices.Equal), "the tiers' prices")
	return d
}

func enumStrings[T ~string](list []T) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = string(v)
	}
	return out
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// SetupPortal makes the billing portal configuration patrons get from the
// tiers: the configuration id in Options.PortalConfiguration, else the one
// an earlier run made (metadata patronage=portal), else a new one. A
// configuration that already matches is left alone.
func (s *Service) SetupPortal(ctx context.Context, set PortalSettings) (PortalSetup, error) {
	var out PortalSetup
	sc, err := s.stripeClient()
	if err != nil {
		return out, err
	}
	want, err := s.wantPortal(ctx, set)
	if err != nil {
		return out, err
	}
	current, err := s.findPortal(ctx, sc)
	if err != nil {
		return out, err
	}
	if current == nil {
		conf, err := sc.BillingPortalConfigurations.New(want.params(ctx, true))
		if err != nil {
			return out, stripeapi.MapError(err)
		}
		out.ConfigurationID, out.Created = conf.ID, true
		return out, nil
	}
	out.ConfigurationID = current.ID
	out.Updated = want.differences(current)
	if len(out.Updated) == 0 {
		return out, nil
	}
	params := want.params(ctx, false)
	params.Active = stripe.Bool(true)
	if _, err := sc.BillingPortalConfigurations.Update(current.ID, params); err != nil {
		return out, stripeapi.MapError(err)
	}
	return out, nil
}

// findPortal is the configured portal configuration, else the newest one
// Patronage made, else nil.
func (s *Service) findPortal(ctx context.Context, sc *client.API) (*stripe.BillingPortalConfiguration, error) {
	if id := s.opts.PortalConfiguration; id != "" {
		conf, err := sc.BillingPortalConfigurations.Get(id, &stripe.BillingPortalConfigurationParams{Params: stripe.Params{Context: ctx}})
		if isMissing(err) {
			return nil, errs.WithCode(errs.NotFound, "portal_configuration_not_found", "STRIPE_PORTAL_CONFIGURATION is %s, which this Stripe account does not have: empty it to make a new one.", id)
		}
		return conf, stripeapi.MapError(err)
	}
	params := &stripe.BillingPortalConfigurationListParams{}
	params.Context = ctx
	params.Limit = stripe.Int64(100)
	iter := sc.BillingPortalConfigurations.List(params)
	for iter.Next() {
		if c := iter.BillingPortalConfiguration(); c.Metadata["patronage"] == "portal" {
			return c, nil
		}
	}
	return nil, stripeapi.MapError(iter.Err())
}
