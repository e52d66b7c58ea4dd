package stripefake_test

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
)

// stripeError unwraps err as the *stripe.Error stripe-go decoded.
func stripeError(t *testing.T, err error) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want *stripe.Error", err, err)
	}
	return se
}

func newProduct(t *testing.T, sc *client.API, id string) *stripe.Product {
	t.Helper()
	p, err := sc.Products.New(&stripe.ProductParams{ID: stripe.String(id), Name: stripe.String("Supporter")})
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	return p
}

func newMonthly(t *testing.T, sc *client.API, product, lookupKey string, amount int64, transfer bool) *stripe.Price {
	t.Helper()
	params := &stripe.PriceParams{
		Product:    stripe.String(product),
		Currency:   stripe.String("EUR"),
		UnitAmount: stripe.Int64(amount),
		Recurring:  &stripe.PriceRecurringParams{Interval: stripe.String("month")},
		LookupKey:  stripe.String(lookupKey),
	}
	if transfer {
		params.TransferLookupKey = stripe.Bool(true)
	}
	p, err := sc.Prices.New(params)
	if err != nil {
		t.Fatalf("create price: %v", err)
	}
	return p
}

func pricesByLookupKey(t *testing.T, sc *client.API, key string) []*stripe.Price {
	t.Helper()
	it := sc.Prices.List(&stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{key})})
	var out []*stripe.Price
	for it.Next() {
		out = append(out, it.Price())
	}
	if err := it.Err(); err != nil {
		t.Fatalf("list prices: %v", err)
	}
	return out
}

func TestProductCustomIDAndDuplicate(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)

	p, err := sc.Products.New(&stripe.ProductParams{
		ID:       stripe.String("patronage-tier-friend"),
		Name:     stripe.String("Friend"),
		Features: []*stripe.ProductFeatureParams{{Name: stripe.String("Newsletter")}},
		Params:   stripe.Params{Metadata: map[string]string{"tier": "friend"}},
	})
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	if p.ID != "patronage-tier-friend" || p.Name != "Friend" || !p.Active || p.Metadata["tier"] != "friend" {
		t.Errorf("product = %+v, want id patronage-tier-friend, name Friend, active, metadata tier=friend", p)
	}
	if len(p.Features) != 1 || p.Features[0].Name != "Newsletter" {
		t.Errorf("features = %+v, want [Newsletter]", p.Features)
	}

	_, err = sc.Products.New(&stripe.ProductParams{ID: stripe.String("patronage-tier-friend"), Name: stripe.String("Again")})
	se := stripeError(t, err)
	if se.HTTPStatusCode != 400 || se.Code != stripe.ErrorCodeResourceAlreadyExists || se.Param != "id" {
		t.Errorf("duplicate id: got %d %s param %q, want 400 resource_already_exists param id", se.HTTPStatusCode, se.Code, se.Param)
	}
	if got := fake.Created("product"); got != 1 {
		t.Errorf("Created(product) = %d, want 1", got)
	}

	got, err := sc.Products.Update(p.ID, &stripe.ProductParams{Active: stripe.Bool(false), Name: stripe.String("Friends")})
	if err != nil {
		t.Fatalf("update product: %v", err)
	}
	if got.Active || got.Name != "Friends" {
		t.Errorf("updated product: active %v name %q, want false Friends", got.Active, got.Name)
	}
}

func TestListProductsPagesNewestFirst(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	for _, id := range []string{"a", "b", "c"} {
		newProduct(t, sc, id)
	}
	params := &stripe.ProductListParams{}
	params.Limit = stripe.Int64(2) // forces stripe-go to page with starting_after
	it := sc.Products.List(params)
	var ids []string
	for it.Next() {
		ids = append(ids, it.Product().ID)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("list products: %v", err)
	}
	if got := strings.Join(ids, ","); got != "c,b,a" {
		t.Errorf("ids = %s, want c,b,a", got)
	}
}

func TestPriceLookupKeys(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	newProduct(t, sc, "prod_friend")
	old := newMonthly(t, sc, "prod_friend", "friend_monthly_eur", 500, false)
	if old.Currency != "eur" || old.Type != stripe.PriceTypeRecurring || old.Recurring.Interval != "month" || old.Recurring.IntervalCount != 1 {
		t.Errorf("price = %+v, want eur recurring monthly", old)
	}
	if got := pricesByLookupKey(t, sc, "friend_monthly_eur"); len(got) != 1 || got[0].ID != old.ID {
		t.Fatalf("list by lookup key = %v, want [%s]", got, old.ID)
	}

	_, err := sc.Prices.New(&stripe.PriceParams{
		Product: stripe.String("prod_friend"), Currency: stripe.String("eur"), UnitAmount: stripe.Int64(700),
		LookupKey: stripe.String("friend_monthly_eur"),
	})
	se := stripeError(t, err)
	if want := "A price (`" + old.ID + "`) already uses that lookup key."; se.Msg != want || se.Param != "lookup_key" {
		t.Errorf("taken lookup key: message %q param %q, want %q param lookup_key", se.Msg, se.Param, want)
	}

	moved := newMonthly(t, sc, "prod_friend", "friend_monthly_eur", 700, true)
	if got := pricesByLookupKey(t, sc, "friend_monthly_eur"); len(got) != 1 || got[0].ID != moved.ID {
		t.Errorf("after transfer, list by lookup key = %v, want [%s]", got, moved.ID)
	}
	if p, _ := fake.Price(old.ID); p["lookup_key"] != nil || p["active"] != true {
		t.Errorf("old price lookup_key %v active %v, want nil and still active", p["lookup_key"], p["active"])
	}
	if got := len(fake.Prices()); got != 2 {
		t.Errorf("len(Prices()) = %d, want 2", got)
	}
}

func TestPriceUnitAmountIsImmutable(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	newProduct(t, sc, "prod_friend")
	p := newMonthly(t, sc, "prod_friend", "k", 500, false)

	_, err := sc.Prices.Update(p.ID, &stripe.PriceParams{UnitAmount: stripe.Int64(900)})
	se := stripeError(t, err)
	if se.HTTPStatusCode != 400 || se.Code != stripe.ErrorCodeParameterUnknown || se.Param != "unit_amount" {
		t.Errorf("update unit_amount: got %d %s param %q, want 400 parameter_unknown param unit_amount", se.HTTPStatusCode, se.Code, se.Param)
	}
	got, err := sc.Prices.Update(p.ID, &stripe.PriceParams{Active: stripe.Bool(false)})
	if err != nil {
		t.Fatalf("archive price: %v", err)
	}
	if got.Active || got.UnitAmount != 500 {
		t.Errorf("archived price: active %v amount %d, want false 500", got.Active, got.UnitAmount)
	}
}

func TestUnknownPriceIs404(t *testing.T) {
	sc := stripefake.New(t).Client(t)
	_, err := sc.Prices.Get("price_nope", nil)
	se := stripeError(t, err)
	if se.HTTPStatusCode != 404 || se.Code != stripe.ErrorCodeResourceMissing || se.Param != "id" || se.Msg != "No such price: 'price_nope'" {
		t.Errorf("got %d %s param %q %q, want 404 resource_missing param id", se.HTTPStatusCode, se.Code, se.Param, se.Msg)
	}
}

func TestCustomerCreateAndRetrieve(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	params := &stripe.CustomerParams{Email: stripe.String("ada@example.org"), Name: stripe.String("Ada")}
	params.AddMetadata("member_id", "42")
	c, err := sc.Customers.New(params)
	if err != nil {
		t.Fatalf("create customer: %v", err)
	}
	if !strings.HasPrefix(c.ID, "cus_") {
		t.Errorf("id = %q, want cus_ prefix", c.ID)
	}
	got, err := sc.Customers.Get(c.ID, nil)
	if err != nil {
		t.Fatalf("get customer: %v", err)
	}
	if got.Email != "ada@example.org" || got.Name != "Ada" || got.Metadata["member_id"] != "42" {
		t.Errorf("customer = %+v, want ada@example.org, Ada, member_id 42", got)
	}
}

func TestSubscriptionCheckout(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	newProduct(t, sc, "prod_friend")
	price := newMonthly(t, sc, "prod_friend", "friend_monthly_eur", 500, false)
	cus, err := sc.Customers.New(&stripe.CustomerParams{Email: stripe.String("ada@example.org")})
	if err != nil {
		t.Fatalf("create customer: %v", err)
	}

	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:          stripe.String(cus.ID),
		ClientReferenceID: stripe.String("member-42"),
		SuccessURL:        stripe.String("https://news.example/thanks"),
		CancelURL:         stripe.String("https://news.example/join"),
		LineItems:         []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price.ID), Quantity: stripe.Int64(2)}},
		SubscriptionData:  &stripe.CheckoutSessionSubscriptionDataParams{Metadata: map[string]string{"member_id": "42"}},
	}
	params.AddMetadata("member_id", "42")
	params.AddExpand("line_items")
	sess, err := sc.CheckoutSessions.New(params)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	if !strings.HasPrefix(sess.ID, "cs_test_") || sess.URL != fake.URL+"/checkout/"+sess.ID {
		t.Errorf("id %q url %q, want cs_test_ id and fake hosted URL", sess.ID, sess.URL)
	}
	if sess.Status != "open" || sess.AmountTotal != 1000 || sess.Currency != "eur" || sess.Customer.ID != cus.ID ||
		sess.ClientReferenceID != "member-42" || sess.Metadata["member_id"] != "42" {
		t.Errorf("session = %+v, want open, 1000 eur, customer %s, member-42", sess, cus.ID)
	}
	if len(sess.LineItems.Data) != 1 || sess.LineItems.Data[0].Price.ID != price.ID || sess.LineItems.Data[0].Quantity != 2 {
		t.Errorf("line items = %+v, want 2 × %s", sess.LineItems.Data, price.ID)
	}

	done, err := fake.CompleteCheckoutSession(sess.ID)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	sub, err := sc.Subscriptions.Get(done["subscription"].(string), nil)
	if err != nil {
		t.Fatalf("get subscription: %v", err)
	}
	if sub.Status != stripe.SubscriptionStatusActive || sub.Customer.ID != cus.ID || sub.Metadata["member_id"] != "42" ||
		len(sub.Items.Data) != 1 || sub.Items.Data[0].Price.ID != price.ID || sub.CurrentPeriodEnd <= sub.CurrentPeriodStart {
		t.Errorf("subscription = %+v, want active for %s with member_id 42 and %s", sub, cus.ID, price.ID)
	}
	got, err := sc.CheckoutSessions.Get(sess.ID, nil)
	if err != nil {
		t.Fatalf("get session: %v", err)
	}
	if got.Status != "complete" || got.PaymentStatus != "paid" || got.Subscription.ID != sub.ID {
		t.Errorf("session after completion: %s %s sub %v, want complete paid %s", got.Status, got.PaymentStatus, got.Subscription, sub.ID)
	}
	if fake.Created("subscription") != 1 || fake.Created("customer") != 1 {
		t.Errorf("Created: subscription %d customer %d, want 1 and 1", fake.Created("subscription"), fake.Created("customer"))
	}

	portal, err := sc.BillingPortalSessions.New(&stripe.BillingPortalSessionParams{
		Customer: stripe.String(cus.ID), ReturnURL: stripe.String("https://news.example/account"),
	})
	if err != nil {
		t.Fatalf("portal session: %v", err)
	}
	if !strings.HasPrefix(portal.ID, "bps_") || portal.Customer != cus.ID || portal.URL == "" {
		t.Errorf("portal session = %+v, want bps_ id for %s with a URL", portal, cus.ID)
	}
}

func TestPaymentCheckoutWithPriceData(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	sess, err := sc.CheckoutSessions.New(&stripe.CheckoutSessionParams{
		Mode:          stripe.String(string(stripe.CheckoutSessionModePayment)),
		CustomerEmail: stripe.String("ada@example.org"),
		SuccessURL:    stripe.String("https://news.example/thanks"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String("JPY"),
				UnitAmount:  stripe.Int64(3000),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("One-off gift")},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{Metadata: map[string]string{"gift": "yes"}},
	})
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	if sess.Mode != stripe.CheckoutSessionModePayment || sess.AmountTotal != 3000 || sess.Currency != "jpy" ||
		sess.CustomerEmail != "ada@example.org" || sess.Customer != nil {
		t.Errorf("session = %+v, want payment of 3000 jpy for ada@example.org, no customer", sess)
	}
	if fake.Created("price") != 0 || fake.Created("product") != 0 {
		t.Errorf("inline price_data created catalog objects: prices %d products %d", fake.Created("price"), fake.Created("product"))
	}
}

func TestCheckoutValidation(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	newProduct(t, sc, "prod_friend")
	monthly := newMonthly(t, sc, "prod_friend", "k", 500, false)
	once, err := sc.Prices.New(&stripe.PriceParams{
		Product: stripe.String("prod_friend"), Currency: stripe.String("eur"), UnitAmount: stripe.Int64(100),
	})
	if err != nil {
		t.Fatalf("create price: %v", err)
	}
	line := func(price string) []*stripe.CheckoutSessionLineItemParams {
		return []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}}
	}
	tests := []struct {
		name      string
		params    *stripe.CheckoutSessionParams
		wantParam string
		wantMsg   string
	}{
		{"missing success_url", &stripe.CheckoutSessionParams{Mode: stripe.String("subscription"), LineItems: line(monthly.ID)},
			"success_url", "Missing required param: success_url."},
		{"missing mode", &stripe.CheckoutSessionParams{SuccessURL: stripe.String("https://x"), LineItems: line(monthly.ID)},
			"mode", "Missing required param: mode."},
		{"one-time price in subscription mode", &stripe.CheckoutSessionParams{Mode: stripe.String("subscription"), SuccessURL: stripe.String("https://x"), LineItems: line(once.ID)},
			"line_items", "You must provide at least one recurring price in `subscription` mode when using prices."},
		{"recurring price in payment mode", &stripe.CheckoutSessionParams{Mode: stripe.String("payment"), SuccessURL: stripe.String("https://x"), LineItems: line(monthly.ID)},
			"line_items", "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices."},
		{"unknown price", &stripe.CheckoutSessionParams{Mode: stripe.String("payment"), SuccessURL: stripe.String("https://x"), LineItems: line("price_nope")},
			"line_items[0][price]", "No such price: 'price_nope'"},
		{"unknown customer", &stripe.CheckoutSessionParams{Mode: stripe.String("payment"), SuccessURL: stripe.String("https://x"), LineItems: line(once.ID), Customer: stripe.String("cus_nope")},
			"customer", "No such customer: 'cus_nope'"},
		{"no line items", &stripe.CheckoutSessionParams{Mode: stripe.String("payment"), SuccessURL: stripe.String("https://x")},
			"line_items", "Missing required param: line_items."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sc.CheckoutSessions.New(tt.params)
			se := stripeError(t, err)
			if se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeInvalidRequest || se.Param != tt.wantParam || se.Msg != tt.wantMsg {
				t.Errorf("got %d %s param %q %q, want 400 invalid_request_error param %q %q",
					se.HTTPStatusCode, se.Type, se.Param, se.Msg, tt.wantParam, tt.wantMsg)
			}
		})
	}
	if got := fake.Created("checkout.session"); got != 0 {
		t.Errorf("Created(checkout.session) = %d, want 0", got)
	}
}

func TestIdempotentReplay(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	params := func(email string) *stripe.CustomerParams {
		p := &stripe.CustomerParams{Email: stripe.String(email)}
		p.SetIdempotencyKey("patronage-customer-42")
		return p
	}
	first, err := sc.Customers.New(params("ada@example.org"))
	if err != nil {
		t.Fatalf("first: %v", err)
	}
	second, err := sc.Customers.New(params("ada@example.org"))
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if second.ID != first.ID {
		t.Errorf("replayed id = %s, want %s", second.ID, first.ID)
	}
	if got := second.LastResponse.Header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed = %q, want true", got)
	}
	if got := fake.Created("customer"); got != 1 {
		t.Errorf("Created(customer) = %d, want 1", got)
	}

	_, err = sc.Customers.New(params("grace@example.org"))
	se := stripeError(t, err)
	if se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeIdempotency {
		t.Errorf("same key, other params: got %d %s, want 400 idempotency_error", se.HTTPStatusCode, se.Type)
	}
	reqs := fake.Requests()
	if len(reqs) != 3 || reqs[0].IdempotencyKey != "patronage-customer-42" || reqs[2].Form.Get("email") != "grace@example.org" {
		t.Errorf("requests = %+v, want 3 POST /v1/customers with the key", reqs)
	}
}

func TestFailNext(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	fake.FailNext(1, http.StatusInternalServerError)

	params := &stripe.CustomerParams{Email: stripe.String("ada@example.org")}
	params.SetIdempotencyKey("k")
	_, err := sc.Customers.New(params)
	se := stripeError(t, err)
	if se.HTTPStatusCode != 500 || se.Type != stripe.ErrorTypeAPI {
		t.Errorf("injected failure: got %d %s, want 500 api_error", se.HTTPStatusCode, se.Type)
	}
	if _, err := sc.Customers.New(params); err != nil {
		t.Fatalf("retry after failure: %v", err)
	}
	if got := fake.Created("customer"); got != 1 {
		t.Errorf("Created(customer) = %d, want 1", got)
	}
}

func TestRefusesWhatItDoesNotImitate(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)

	_, err := sc.Coupons.Get("co_123", nil)
	se := stripeError(t, err)
	if se.HTTPStatusCode != 404 || !strings.Contains(se.Msg, "/v1/coupons/co_123") {
		t.Errorf("unknown endpoint: got %d %q, want 404 naming the path", se.HTTPStatusCode, se.Msg)
	}

	_, err = sc.Customers.New(&stripe.CustomerParams{Email: stripe.String("a@b.c"), TaxExempt: stripe.String("none")})
	se = stripeError(t, err)
	if se.Code != stripe.ErrorCodeParameterUnknown || se.Param != "tax_exempt" {
		t.Errorf("unknown param: got %s param %q, want parameter_unknown tax_exempt", se.Code, se.Param)
	}

	bad, err := stripeapi.New(stripeapi.Options{SecretKey: "sk_live_nope", APIBase: fake.URL, MaxNetworkRetries: stripeapi.NoRetries})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Customers.Get("cus_1", nil)
	if se := stripeError(t, err); se.HTTPStatusCode != 401 {
		t.Errorf("live key: got %d, want 401", se.HTTPStatusCode)
	}
}

func TestConcurrentCreates(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := sc.Customers.New(&stripe.CustomerParams{}); err != nil {
				t.Errorf("create customer: %v", err)
			}
		}()
	}
	wg.Wait()
	if got := fake.Created("customer"); got != 20 {
		t.Errorf("Created(customer) = %d, want 20", got)
	}
}
