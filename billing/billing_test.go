package billing_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
)

type discardMail struct{}

func (discardMail) Send(context.Context, mail.Message) error { return nil }

type fixture struct {
	billing *billing.Service
	members *members.Service
	stripe  *stripefake.Server
	db      *sqldb.DB
}

func eachDB(t *testing.T, fn func(t *testing.T, f fixture)) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		fake := stripefake.New(t)
		fn(t, newFixture(t, db, fake, fake.Client(t)))
	})
}

func newFixture(t *testing.T, db *sqldb.DB, fake *stripefake.Server, sc *client.API) fixture {
	base, _ := url.Parse("https://patrons.test")
	templates, err := mail.NewTemplates("The Test Times", i18ntest.Catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	m := members.NewService(members.Deps{DB: db, Redis: testenv.EmbeddedRedis(t), Mailer: discardMail{}, Templates: templates, BaseURL: base, Logger: testenv.Logger()})
	b := billing.NewService(billing.Deps{DB: db, Stripe: sc, Members: m, BaseURL: base, Logger: testenv.Logger()})
	return fixture{billing: b, members: m, stripe: fake, db: db}
}

var coffee = billing.TierInput{
	Slug: "coffee", Name: "Coffee", Description: "A cup a month.", Benefits: []string{"Vote on topics"},
	Prices: []billing.PriceInput{{Currency: "EUR", Interval: "month", Amount: 500}, {Currency: "EUR", Interval: "year", Amount: 5000}, {Currency: "JPY", Interval: "month", Amount: 500}},
}

func TestPushTiersIsIdempotent(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		ch, err := f.billing.CreateTier(ctx, members.CommandLine, coffee)
		if err != nil || ch.StripeErr != nil {
			t.Fatalf("create = %v, %v", err, ch.StripeErr)
		}
		if got := f.stripe.Created("product"); got != 1 {
			t.Errorf("products created = %d, want 1", got)
		}
		if got := f.stripe.Created("price"); got != 3 {
			t.Errorf("prices created = %d, want 3", got)
		}
		for _, p := range ch.Tier.Prices {
			sp, ok := f.stripe.Price(p.StripePriceID)
			if !ok {
				t.Fatalf("price %s/%s has no Stripe price", p.Currency, p.Interval)
			}
			if sp["lookup_key"] != billing.LookupKey("coffee", p.Interval, p.Currency) || sp["unit_amount"] != p.Amount {
				t.Errorf("Stripe price %v does not mirror %+v", sp, p)
			}
		}
		// JPY is zero-decimal: 500 means ¥500 in Stripe too, not ¥50,000.
		jpy, _ := ch.Tier.PriceFor("JPY", billing.Month)
		if sp, _ := f.stripe.Price(jpy.StripePriceID); sp["unit_amount"] != int64(500) || sp["currency"] != "jpy" {
			t.Errorf("JPY price in Stripe = %v", sp)
		}

		for run := 1; run <= 2; run++ {
			rep, err := f.billing.PushTiers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Created() != 0 || rep.ProductsUpdated != 0 || rep.PricesArchived != 0 {
				t.Errorf("push %d changed Stripe: %+v", run, rep)
			}
		}
		if f.stripe.Created("product") != 1 || f.stripe.Created("price") != 3 {
			t.Errorf("repeat pushes created objects: %d products, %d prices", f.stripe.Created("product"), f.stripe.Created("price"))
		}
	})
}

func TestAChangedAmountMakesANewPriceAndArchivesTheOld(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		ch, _ := f.billing.CreateTier(ctx, members.CommandLine, coffee)
		old, _ := ch.Tier.PriceFor("EUR", billing.Month)
		prices := []billing.PriceInput{{Currency: "EUR", Interval: "month", Amount: 600}, {Currency: "EUR", Interval: "year", Amount: 5000}}
		ch, err := f.billing.UpdateTier(ctx, members.CommandLine, "coffee", billing.TierPatch{Prices: &prices})
		if err != nil || ch.StripeErr != nil {
			t.Fatalf("update = %v, %v", err, ch.StripeErr)
		}
		now, _ := ch.Tier.PriceFor("EUR", billing.Month)
		if now.StripePriceID == old.StripePriceID || now.StripePriceID == "" {
			t.Fatalf("the new amount kept the old Stripe price %s", old.StripePriceID)
		}
		oldSP, _ := f.stripe.Price(old.StripePriceID)
		newSP, _ := f.stripe.Price(now.StripePriceID)
		if oldSP["active"] != false || oldSP["lookup_key"] != nil {
			t.Errorf("old price = %v, want archived without the lookup key", oldSP)
		}
		if newSP["lookup_key"] != "patronage_coffee_month_eur" || newSP["unit_amount"] != int64(600) {
			t.Errorf("new price = %v, want the lookup key and 600", newSP)
		}
		year, _ := ch.Tier.PriceFor("EUR", billing.Year)
		if sp, _ := f.stripe.Price(year.StripePriceID); sp["active"] != true {
			t.Error("an unchanged price was disturbed")
		}
		// The dropped JPY price is archived too.
		archived := 0
		for _, p := range f.stripe.Prices() {
			if p["active"] == false {
				archived++
			}
		}
		if archived != 2 {
			t.Errorf("archived prices = %d, want 2 (old EUR monthly, dropped JPY)", archived)
		}
	})
}

func TestImportTiersAdoptsExistingProductsWithoutCreatingPrices(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		sc := f.stripe.Client(t)
		// The newsroom's account already sells a membership.
		prod, err := sc.Products.New(&stripe.ProductParams{Name: stripe.String("Supporter Club"), Description: stripe.String("Our supporters.")})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			interval string
			amount   int64
		}{{"month", 800}, {"year", 8000}} {
			_, err := sc.Prices.New(&stripe.PriceParams{Product: stripe.String(prod.ID), Currency: stripe.String("gbp"), UnitAmount: stripe.Int64(p.amount),
				Recurring: &stripe.PriceRecurringParams{Interval: stripe.String(p.interval)}})
			if err != nil {
				t.Fatal(err)
			}
		}
		before := f.stripe.Created("price")

		rep, err := f.billing.ImportTiers(ctx, members.CommandLine)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.TiersCreated) != 1 || rep.TiersCreated[0] != "supporter-club" {
			t.Fatalf("import = %+v", rep)
		}
		tier, err := f.billing.FindTier(ctx, "supporter-club")
		if err != nil || tier.StripeProductID != prod.ID || len(tier.Prices) != 2 {
			t.Fatalf("imported tier = %+v, %v", tier, err)
		}
		push, err := f.billing.PushTiers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if push.PricesCreated != 0 || push.ProductsCreated != 0 || push.PricesAdopted != 2 {
			t.Errorf("push after import = %+v, want the two prices adopted and nothing created", push)
		}
		if f.stripe.Created("price") != before {
			t.Error("import or push created prices")
		}
		again, _ := f.billing.ImportTiers(ctx, members.CommandLine)
		if len(again.TiersCreated) != 0 {
			t.Errorf("a second import created %v", again.TiersCreated)
		}
	})
}

func TestARetriedCheckoutMakesOneSessionAndOneCustomer(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		if _, err := f.billing.CreateTier(ctx, members.CommandLine, coffee); err != nil {
			t.Fatal(err)
		}
		req := billing.SubscriptionRequest{Email: "Reader@example.org", Tier: "coffee", Interval: "month", Currency: "eur"}
		var wg sync.WaitGroup
		ids := make(chan string, 5)
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := f.billing.StartSubscriptionCheckout(ctx, req)
				if err != nil {
					t.Errorf("checkout: %v", err)
					return
				}
				ids <- s.ID
			}()
		}
		wg.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		if len(seen) != 1 || f.stripe.Created("checkout.session") != 1 {
			t.Errorf("5 identical requests made sessions %v (%d created), want one", seen, f.stripe.Created("checkout.session"))
		}
		if f.stripe.Created("customer") != 1 {
			t.Errorf("customers created = %d, want 1", f.stripe.Created("customer"))
		}
		m, err := f.members.FindMemberByEmail(ctx, "reader@example.org")
		if err != nil || m.StripeCustomerID == "" {
			t.Fatalf("member = %+v, %v", m, err)
		}
		for id := range seen {
			s, _ := f.stripe.CheckoutSession(id)
			md, _ := s["metadata"].(map[string]any)
			if s["customer"] != m.StripeCustomerID || s["client_reference_id"] != m.ID || s["mode"] != "subscription" ||
				md["member_id"] != m.ID || md["tier"] != "coffee" || md["interval"] != "month" {
				t.Errorf("session = %v", s)
			}
		}
		// A different choice is a different session, on the same customer.
		req.Interval = "year"
		if _, err := f.billing.StartSubscriptionCheckout(ctx, req); err != nil {
			t.Fatal(err)
		}
		if f.stripe.Created("customer") != 1 || f.stripe.Created("checkout.session") != 2 {
			t.Errorf("after a second choice: %d customers, %d sessions", f.stripe.Created("customer"), f.stripe.Created("checkout.session"))
		}
		// An explicit client key asks for a fresh session for the same choice.
		req.RequestKey = "retry-abc"
		a, _ := f.billing.StartSubscriptionCheckout(ctx, req)
		b, _ := f.billing.StartSubscriptionCheckout(ctx, req)
		if a.ID != b.ID || f.stripe.Created("checkout.session") != 3 {
			t.Errorf("same Idempotency-Key gave %s and %s", a.ID, b.ID)
		}
	})
}

func TestStripeFailuresBecomeClearErrors(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		if _, err := f.billing.CreateTier(ctx, members.CommandLine, coffee); err != nil {
			t.Fatal(err)
		}
		f.stripe.FailNext(1, 500)
		_, err := f.billing.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{Email: "r@example.org", Tier: "coffee", Interval: "month", Currency: "EUR"})
		if e := errs.From(err); e.Kind != errs.Unavailable || e.Code != "payments_unavailable" {
			t.Errorf("Stripe 500 = %v, want payments_unavailable", err)
		}
		_, err = f.billing.PortalURL(ctx, "mem_nobody")
		if !errs.Is(err, errs.NotFound) {
			t.Errorf("portal for unknown member = %v", err)
		}
		m, _ := f.members.FindOrCreateMember(ctx, "never-paid@example.org")
		if _, err := f.billing.PortalURL(ctx, m.ID); errs.From(err).Code != "no_billing_account" {
			t.Errorf("portal before paying = %v, want no_billing_account", err)
		}
	})
}

func TestDonationsRespectZeroDecimalCurrencies(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		s, err := f.billing.StartDonationCheckout(ctx, billing.DonationRequest{Amount: 1000, Currency: "jpy", Message: "ありがとう"})
		if err != nil {
			t.Fatal(err)
		}
		sess, _ := f.stripe.CheckoutSession(s.ID)
		if sess["amount_total"] != int64(1000) || sess["currency"] != "jpy" || sess["mode"] != "payment" {
			t.Errorf("JPY gift session = %v, want ¥1,000 exactly", sess)
		}
	})
}

func TestEveryMutatingStripeCallCarriesAnIdempotencyKey(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		if _, err := f.billing.CreateTier(ctx, members.CommandLine, coffee); err != nil {
			t.Fatal(err)
		}
		name := "Coffee & cake"
		prices := []billing.PriceInput{{Currency: "EUR", Interval: "month", Amount: 700}}
		if _, err := f.billing.UpdateTier(ctx, members.CommandLine, "coffee", billing.TierPatch{Name: &name, Prices: &prices}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.billing.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{Email: "r@example.org", Tier: "coffee", Interval: "month", Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.billing.StartDonationCheckout(ctx, billing.DonationRequest{Amount: 500, Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		m, _ := f.members.FindMemberByEmail(ctx, "r@example.org")
		if _, err := f.billing.PortalURL(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		posts := 0
		for _, r := range f.stripe.Requests() {
			if r.Method != "POST" {
				continue
			}
			posts++
			// stripe-go would add a random key of its own; ours are derived.
			if !strings.HasPrefix(r.IdempotencyKey, "patronage-") {
				t.Errorf("POST %s carried idempotency key %q, not one of ours", r.Path, r.IdempotencyKey)
			}
		}
		if posts < 8 {
			t.Errorf("only %d POSTs seen; the scenario should make at least 8", posts)
		}
	})
}

func TestARenameUndoneIsPushedBothWays(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		ch, _ := f.billing.CreateTier(ctx, members.CommandLine, coffee)
		for _, name := range []string{"Espresso", "Coffee"} {
			n := name
			if _, err := f.billing.UpdateTier(ctx, members.CommandLine, "coffee", billing.TierPatch{Name: &n}); err != nil {
				t.Fatal(err)
			}
			if p, _ := f.stripe.Product(ch.Tier.StripeProductID); p["name"] != name {
				t.Errorf("after renaming to %s, Stripe's product is named %v", name, p["name"])
			}
		}
	})
}

func TestTwoAnonymousGiversOfTheSameAmountGetTwoSessions(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		a, err := f.billing.StartDonationCheckout(ctx, billing.DonationRequest{Amount: 500, Currency: "EUR", ClientIP: "198.51.100.1"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.billing.StartDonationCheckout(ctx, billing.DonationRequest{Amount: 500, Currency: "EUR", ClientIP: "203.0.113.9"})
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == b.ID {
			t.Error("two readers giving the same amount were sent to the same Checkout Session")
		}
		again, _ := f.billing.StartDonationCheckout(ctx, billing.DonationRequest{Amount: 500, Currency: "EUR", ClientIP: "198.51.100.1", RequestKey: "form:n1"})
		twice, _ := f.billing.StartDonationCheckout(ctx, billing.DonationRequest{Amount: 500, Currency: "EUR", ClientIP: "198.51.100.1", RequestKey: "form:n1"})
		if again.ID != twice.ID || again.ID == a.ID {
			t.Errorf("a double-submitted form made sessions %s and %s", again.ID, twice.ID)
		}
	})
}

func TestAnAmountChangedAndChangedBackStaysPayable(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		if _, err := f.billing.CreateTier(ctx, members.CommandLine, coffee); err != nil {
			t.Fatal(err)
		}
		var ch billing.TierChange
		for _, amount := range []int64{600, 500} {
			prices := []billing.PriceInput{{Currency: "EUR", Interval: "month", Amount: amount}}
			var err error
			if ch, err = f.billing.UpdateTier(ctx, members.CommandLine, "coffee", billing.TierPatch{Prices: &prices}); err != nil || ch.StripeErr != nil {
				t.Fatalf("set %d: %v %v", amount, err, ch.StripeErr)
			}
		}
		p, _ := ch.Tier.PriceFor("EUR", billing.Month)
		sp, ok := f.stripe.Price(p.StripePriceID)
		if !ok || sp["active"] != true || sp["unit_amount"] != int64(500) {
			t.Fatalf("after 500 → 600 → 500 the tier points at %v, want an active 500 price", sp)
		}
		if _, err := f.billing.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{Email: "r@example.org", Tier: "coffee", Interval: "month", Currency: "EUR"}); err != nil {
			t.Errorf("checkout after the change back: %v", err)
		}
	})
}

// The billing portal patrons are sent to is the configuration set up from
// the tiers; set-up refuses while a tier is missing from Stripe.
func TestPatronsGetThePortalSetUpFromTheTiers(t *testing.T) {
	eachDB(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		f.stripe.FailNext(1, 500)
		if ch, err := f.billing.CreateTier(ctx, members.CommandLine, coffee); err != nil || ch.StripeErr == nil {
			t.Fatalf("create with Stripe down = %v, %v; want the tier kept and Stripe's failure reported", err, ch.StripeErr)
		}
		if _, err := f.billing.SetupPortal(ctx, billing.PortalSettings{Headline: "The Test Times"}); errs.From(err).Code != "tiers_not_in_stripe" {
			t.Fatalf("setup-portal before the tier is in Stripe = %v, want tiers_not_in_stripe", err)
		}
		if _, err := f.billing.PushTiers(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err := f.billing.SetupPortal(ctx, billing.PortalSettings{Headline: "The Test Times"})
		if err != nil || !rep.Created {
			t.Fatalf("setup-portal = %+v, %v", rep, err)
		}
		base, _ := url.Parse("https://patrons.test")
		b := billing.NewService(billing.Deps{DB: f.db, Stripe: f.stripe.Client(t), Members: f.members, BaseURL: base, Logger: testenv.Logger(),
			Options: billing.Options{PortalConfiguration: rep.ConfigurationID}})
		if _, err := b.StartSubscriptionCheckout(ctx, billing.SubscriptionRequest{Email: "r@example.org", Tier: "coffee", Interval: "month", Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		m, _ := f.members.FindMemberByEmail(ctx, "r@example.org")
		if _, err := b.PortalURL(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		var got string
		for _, r := range f.stripe.Requests() {
			if r.Path == "/v1/billing_portal/sessions" {
				got = r.Form.Get("configuration")
			}
		}
		if got != rep.ConfigurationID {
			t.Errorf("portal session configuration = %q, want %s", got, rep.ConfigurationID)
		}
	})
}
