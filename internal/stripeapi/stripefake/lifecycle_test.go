package stripefake_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/patronage/patronage/internal/stripeapi/stripefake"
)

// jan31 is a month end, so periods show Stripe's month arithmetic: Feb 29
// (2024 is a leap year), then back to Mar 31.
var jan31 = time.Date(2024, 1, 31, 10, 0, 0, 0, time.UTC)

func types(events []map[string]any) string {
	var out []string
	for _, ev := range events {
		out = append(out, ev["type"].(string))
	}
	return strings.Join(out, " ")
}

func object(ev map[string]any) map[string]any {
	return ev["data"].(map[string]any)["object"].(map[string]any)
}

func newCustomer(t *testing.T, sc *client.API, email string) *stripe.Customer {
	t.Helper()
	c, err := sc.Customers.New(&stripe.CustomerParams{Email: stripe.String(email)})
	if err != nil {
		t.Fatalf("create customer: %v", err)
	}
	return c
}

// subscribed is a fake at jan31 with a customer subscribed to 5.00 EUR a
// month, its events so far taken.
func subscribed(t *testing.T) (*stripefake.Server, *client.API, *stripe.Price, map[string]any) {
	t.Helper()
	fake := stripefake.New(t)
	fake.SetNow(jan31)
	sc := fake.Client(t)
	newProduct(t, sc, "prod_friend")
	price := newMonthly(t, sc, "prod_friend", "friend_monthly_eur", 500, false)
	cus := newCustomer(t, sc, "ada@example.org")
	sub, err := fake.CreateSubscription(cus.ID, price.ID, stripefake.SubscriptionOptions{Metadata: map[string]string{"member_id": "42"}})
	if err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	if got, want := types(fake.TakeEvents()), "product.created price.created customer.created customer.subscription.created charge.succeeded invoice.paid"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	return fake, sc, price, sub
}

func TestRenewalFailsThenRetrySucceeds(t *testing.T) {
	fake, sc, _, created := subscribed(t)
	subID := created["id"].(string)
	firstEnd := time.Date(2024, 2, 29, 10, 0, 0, 0, time.UTC).Unix()
	if created["current_period_end"] != firstEnd || created["status"] != "active" || created["latest_invoice"] == nil {
		t.Fatalf("new subscription: period end %v status %v latest_invoice %v, want %d active with an invoice",
			created["current_period_end"], created["status"], created["latest_invoice"], firstEnd)
	}

	invID, err := fake.RenewSubscription(subID, false)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	events := fake.TakeEvents()
	if got, want := types(events), "invoice.payment_failed customer.subscription.updated"; got != want {
		t.Fatalf("failed renewal events = %s, want %s", got, want)
	}
	if events[0]["created"] != firstEnd {
		t.Errorf("event created %v, want the period end %d: the clock moves to it", events[0]["created"], firstEnd)
	}
	prev := events[1]["data"].(map[string]any)["previous_attributes"].(map[string]any)
	if prev["status"] != "active" || prev["current_period_end"] != firstEnd {
		t.Errorf("previous_attributes = %v, want status active and the old period end", prev)
	}

	sub, err := sc.Subscriptions.Get(subID, nil)
	if err != nil {
		t.Fatalf("get subscription: %v", err)
	}
	secondEnd := time.Date(2024, 3, 31, 10, 0, 0, 0, time.UTC).Unix()
	if sub.Status != stripe.SubscriptionStatusPastDue || sub.CurrentPeriodStart != firstEnd || sub.CurrentPeriodEnd != secondEnd || sub.LatestInvoice.ID != invID {
		t.Errorf("subscription: %s %d–%d latest %s, want past_due %d–%d latest %s",
			sub.Status, sub.CurrentPeriodStart, sub.CurrentPeriodEnd, sub.LatestInvoice.ID, firstEnd, secondEnd, invID)
	}
	inv, err := sc.Invoices.Get(invID, nil)
	if err != nil {
		t.Fatalf("get invoice: %v", err)
	}
	if inv.Status != stripe.InvoiceStatusOpen || inv.Paid || inv.AttemptCount != 1 || inv.AmountDue != 500 ||
		inv.BillingReason != stripe.InvoiceBillingReasonSubscriptionCycle || inv.Charge != nil || inv.Subscription.ID != subID {
		t.Errorf("failed invoice = %+v, want open, unpaid, 1 attempt, 500 due, subscription_cycle, no charge", inv)
	}
	if p := inv.Lines.Data[0].Period; p.Start != firstEnd || p.End != secondEnd {
		t.Errorf("line period %d–%d, want %d–%d", p.Start, p.End, firstEnd, secondEnd)
	}

	if err := fake.PayInvoice(invID); err != nil {
		t.Fatalf("pay invoice: %v", err)
	}
	events = fake.TakeEvents()
	if got, want := types(events), "charge.succeeded invoice.paid customer.subscription.updated"; got != want {
		t.Fatalf("retry events = %s, want %s", got, want)
	}
	if object(events[2])["status"] != "active" {
		t.Errorf("subscription after retry: %v, want active", object(events[2])["status"])
	}
	inv, err = sc.Invoices.Get(invID, &stripe.InvoiceParams{Expand: []*string{stripe.String("charge")}})
	if err != nil {
		t.Fatalf("get invoice: %v", err)
	}
	if inv.Status != stripe.InvoiceStatusPaid || !inv.Paid || inv.AmountPaid != 500 || inv.AmountRemaining != 0 ||
		inv.Charge == nil || inv.Charge.Amount != 500 || inv.Charge.Invoice.ID != invID {
		t.Errorf("paid invoice = %+v, want paid 500 by a 500 charge", inv)
	}
	if err := fake.PayInvoice(invID); err == nil {
		t.Error("paying a paid invoice again: no error")
	}

	list := sc.Invoices.List(&stripe.InvoiceListParams{Subscription: stripe.String(subID), Status: stripe.String("paid")})
	var n int
	for list.Next() {
		n++
	}
	if err := list.Err(); err != nil || n != 2 {
		t.Errorf("paid invoices of the subscription: %d (err %v), want 2", n, err)
	}
}

func TestEventsListNewestFirst(t *testing.T) {
	fake := stripefake.New(t)
	fake.SetNow(jan31)
	sc := fake.Client(t)
	var want []string
	for _, email := range []string{"a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"} {
		newCustomer(t, sc, email)
		fake.Advance(time.Minute)
	}
	for _, ev := range fake.Events() {
		want = append([]string{ev["id"].(string)}, want...)
	}

	params := &stripe.EventListParams{Type: stripe.String("customer.*")}
	params.Limit = stripe.Int64(2)
	var got []string
	it := sc.Events.List(params)
	for it.Next() {
		got = append(got, it.Event().ID)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("list events: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event ids = %v, want newest first %v", got, want)
	}

	params = &stripe.EventListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: jan31.Add(2 * time.Minute).Unix()}}
	params.Limit = stripe.Int64(2)
	got = nil
	for it := sc.Events.List(params); it.Next(); {
		got = append(got, it.Event().ID)
	}
	if !reflect.DeepEqual(got, want[:3]) {
		t.Errorf("created[gte] = %v, want the newest three %v", got, want[:3])
	}

	// Paging back from the oldest, stripe-go yields oldest first.
	params = &stripe.EventListParams{}
	params.Limit = stripe.Int64(2)
	params.EndingBefore = stripe.String(want[4])
	got = nil
	for it := sc.Events.List(params); it.Next(); {
		got = append([]string{it.Event().ID}, got...)
	}
	if !reflect.DeepEqual(got, want[:4]) {
		t.Errorf("ending_before the oldest = %v, want %v", got, want[:4])
	}

	ev, err := sc.Events.Get(want[0], nil)
	if err != nil {
		t.Fatalf("get event: %v", err)
	}
	if ev.Type != "customer.created" || ev.APIVersion != "2023-10-16" || ev.Data.Object["email"] != "e@x.org" ||
		ev.Created != jan31.Add(4*time.Minute).Unix() || ev.Request.ID == "" {
		t.Errorf("event = %+v, want customer.created for e@x.org at 2023-10-16, made by a request", ev)
	}

	params = &stripe.EventListParams{Type: stripe.String("invoice.*")}
	if it := sc.Events.List(params); it.Next() {
		t.Errorf("type invoice.* listed %s", it.Event().Type)
	}
	_, err = sc.Events.Get("evt_nope", nil)
	if se := stripeError(t, err); se.HTTPStatusCode != 404 {
		t.Errorf("unknown event: %d, want 404", se.HTTPStatusCode)
	}
}

func TestCatalogEvents(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	newProduct(t, sc, "prod_friend")
	params := &stripe.ProductParams{Name: stripe.String("Friends")}
	params.SetIdempotencyKey("rename")
	for range 2 { // the replay changes nothing and sends nothing
		if _, err := sc.Products.Update("prod_friend", params); err != nil {
			t.Fatalf("update product: %v", err)
		}
	}
	if _, err := sc.Products.Update("prod_friend", &stripe.ProductParams{Name: stripe.String("Friends")}); err != nil {
		t.Fatalf("update product: %v", err)
	}
	events := fake.TakeEvents()
	if got, want := types(events), "product.created product.updated"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	prev := events[1]["data"].(map[string]any)["previous_attributes"].(map[string]any)
	if prev["name"] != "Supporter" || object(events[1])["name"] != "Friends" {
		t.Errorf("product.updated: name %v, previous %v, want Friends and Supporter", object(events[1])["name"], prev)
	}
	if req := events[1]["request"].(map[string]any); req["idempotency_key"] != "rename" {
		t.Errorf("request = %v, want the idempotency key", req)
	}
	if len(fake.TakeEvents()) != 0 || len(fake.Events()) != 2 {
		t.Errorf("TakeEvents again or Events: want nothing new and 2 in all")
	}
}

func TestCheckoutEvents(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	newProduct(t, sc, "prod_friend")
	price := newMonthly(t, sc, "prod_friend", "k", 500, false)
	sess, err := sc.CheckoutSessions.New(&stripe.CheckoutSessionParams{
		Mode:          stripe.String("subscription"),
		CustomerEmail: stripe.String("ada@example.org"),
		SuccessURL:    stripe.String("https://news.example/thanks"),
		LineItems:     []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price.ID), Quantity: stripe.Int64(2)}},
	})
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	fake.TakeEvents()
	done, err := fake.CompleteCheckoutSession(sess.ID)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	events := fake.TakeEvents()
	if got, want := types(events), "customer.created customer.subscription.created charge.succeeded invoice.paid checkout.session.completed"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	inv := object(events[3])
	if inv["amount_paid"] != int64(1000) || inv["billing_reason"] != "subscription_create" || inv["id"] != done["invoice"] ||
		inv["charge"] != object(events[2])["id"] || object(events[1])["latest_invoice"] != inv["id"] {
		t.Errorf("first invoice = %v, want 1000 paid by the charge, the subscription's latest", inv)
	}
	if completed := object(events[4]); completed["subscription"] != object(events[1])["id"] || completed["customer"] != object(events[0])["id"] {
		t.Errorf("checkout.session.completed = %v, want the new subscription and customer", completed)
	}
}

func TestDonationCheckoutPaymentIntent(t *testing.T) {
	fake := stripefake.New(t)
	sc := fake.Client(t)
	sess, err := sc.CheckoutSessions.New(&stripe.CheckoutSessionParams{
		Mode:       stripe.String("payment"),
		SuccessURL: stripe.String("https://news.example/thanks"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{Currency: stripe.String("eur"), UnitAmount: stripe.Int64(2500),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("Donation")}},
		}},
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{Metadata: map[string]string{"donation": "yes"}},
	})
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	done, err := fake.CompleteCheckoutSession(sess.ID)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if got, want := types(fake.TakeEvents()), "charge.succeeded checkout.session.completed"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
	pi, err := sc.PaymentIntents.Get(done["payment_intent"].(string), &stripe.PaymentIntentParams{Expand: []*string{stripe.String("latest_charge")}})
	if err != nil {
		t.Fatalf("get payment intent: %v", err)
	}
	if pi.Status != stripe.PaymentIntentStatusSucceeded || pi.Amount != 2500 || pi.Currency != "eur" || pi.Metadata["donation"] != "yes" ||
		pi.LatestCharge == nil || pi.LatestCharge.Amount != 2500 || pi.LatestCharge.PaymentIntent.ID != pi.ID {
		t.Errorf("payment intent = %+v, want succeeded 2500 eur with donation metadata and its charge", pi)
	}
}

func TestRefundsAndDisputes(t *testing.T) {
	fake, sc, _, sub := subscribed(t)
	inv, _ := fake.Invoice(sub["latest_invoice"].(string))
	chargeID := inv["charge"].(string)

	reID, err := fake.Refund(chargeID, 200)
	if err != nil {
		t.Fatalf("partial refund: %v", err)
	}
	if _, err := fake.Refund(chargeID, 301); err == nil {
		t.Error("refunding more than is left: no error")
	}
	if _, err := fake.Refund(chargeID, 0); err != nil { // the 300 left
		t.Fatalf("refund the rest: %v", err)
	}
	events := fake.TakeEvents()
	if got := types(events); got != "charge.refunded charge.refunded" {
		t.Fatalf("events = %s, want charge.refunded twice", got)
	}
	if first := object(events[0]); first["amount_refunded"] != int64(200) || first["refunded"] != false || first["refunds"] != nil {
		t.Errorf("first charge.refunded: refunded %v of it, fully %v, refunds %v; want 200, false, no list",
			first["amount_refunded"], first["refunded"], first["refunds"])
	}
	re, err := sc.Refunds.Get(reID, nil)
	if err != nil {
		t.Fatalf("get refund: %v", err)
	}
	if re.Amount != 200 || re.Charge.ID != chargeID || re.Status != stripe.RefundStatusSucceeded || re.Currency != "eur" {
		t.Errorf("refund = %+v, want 200 eur succeeded on %s", re, chargeID)
	}
	ch, err := sc.Charges.Get(chargeID, &stripe.ChargeParams{Expand: []*string{stripe.String("refunds")}})
	if err != nil {
		t.Fatalf("get charge: %v", err)
	}
	if ch.AmountRefunded != 500 || !ch.Refunded || ch.Refunds == nil || len(ch.Refunds.Data) != 2 || ch.Refunds.Data[1].ID != reID {
		t.Errorf("charge = refunded %d, fully %v, refunds %+v; want 500, true, two, oldest %s", ch.AmountRefunded, ch.Refunded, ch.Refunds, reID)
	}
	if _, err := fake.Dispute(chargeID); err == nil {
		t.Error("disputing a fully refunded charge: no error")
	}

	// A second month's charge, disputed.
	invID, err := fake.RenewSubscription(sub["id"].(string), true)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	inv, _ = fake.Invoice(invID)
	fake.TakeEvents()
	dpID, err := fake.Dispute(inv["charge"].(string))
	if err != nil {
		t.Fatalf("dispute: %v", err)
	}
	if _, err := fake.Refund(inv["charge"].(string), 0); err == nil {
		t.Error("refunding a disputed charge: no error")
	}
	if err := fake.CloseDispute(dpID, false); err != nil {
		t.Fatalf("close dispute: %v", err)
	}
	if got := types(fake.TakeEvents()); got != "charge.dispute.created charge.dispute.closed" {
		t.Errorf("events = %s, want charge.dispute.created charge.dispute.closed", got)
	}
	dp, err := sc.Disputes.Get(dpID, nil)
	if err != nil {
		t.Fatalf("get dispute: %v", err)
	}
	if dp.Amount != 500 || dp.Status != stripe.DisputeStatusLost || dp.Reason != stripe.DisputeReasonFraudulent || dp.Charge.ID != inv["charge"] {
		t.Errorf("dispute = %+v, want 500 lost fraudulent on %v", dp, inv["charge"])
	}
	if ch, _ := fake.Charge(inv["charge"].(string)); ch["disputed"] != true {
		t.Error("charge not marked disputed")
	}
	if err := fake.CloseDispute(dpID, true); err == nil {
		t.Error("closing a closed dispute: no error")
	}
}

func TestDeleteCustomer(t *testing.T) {
	fake, sc, price, live := subscribed(t)
	cusID := live["customer"].(string)
	old, err := fake.CreateSubscription(cusID, price.ID, stripefake.SubscriptionOptions{})
	if err != nil {
		t.Fatalf("second subscription: %v", err)
	}
	if err := fake.EndSubscription(old["id"].(string)); err != nil {
		t.Fatalf("end subscription: %v", err)
	}
	fake.TakeEvents()

	if err := fake.DeleteCustomer(cusID); err != nil {
		t.Fatalf("delete customer: %v", err)
	}
	events := fake.TakeEvents()
	if got, want := types(events), "customer.subscription.deleted customer.deleted"; got != want {
		t.Fatalf("events = %s, want %s (the ended subscription is not canceled again)", got, want)
	}
	if sub := object(events[0]); sub["id"] != live["id"] || sub["status"] != "canceled" || sub["ended_at"] == nil {
		t.Errorf("deleted subscription = %v, want %v canceled and ended", sub["id"], live["id"])
	}
	if cus := object(events[1]); cus["deleted"] != true || cus["email"] != "ada@example.org" {
		t.Errorf("customer.deleted object = %v, want the customer as it was, deleted", cus)
	}

	got, err := sc.Customers.Get(cusID, nil)
	if err != nil {
		t.Fatalf("get deleted customer: %v", err)
	}
	if !got.Deleted || got.ID != cusID || got.Email != "" {
		t.Errorf("deleted customer = %+v, want the stub", got)
	}
	_, err = sc.Customers.Update(cusID, &stripe.CustomerParams{Name: stripe.String("Ada")})
	if se := stripeError(t, err); se.HTTPStatusCode != 404 {
		t.Errorf("update deleted customer: %d, want 404", se.HTTPStatusCode)
	}
	if it := sc.Customers.List(&stripe.CustomerListParams{Email: stripe.String("ada@example.org")}); it.Next() {
		t.Errorf("list customers returned deleted %s", it.Customer().ID)
	}
	var subs []string
	for it := sc.Subscriptions.List(&stripe.SubscriptionListParams{Customer: stripe.String(cusID)}); it.Next(); {
		subs = append(subs, it.Subscription().ID)
	}
	if len(subs) != 0 {
		t.Errorf("default subscription list = %v, want none: canceled ones are left out", subs)
	}
	all := &stripe.SubscriptionListParams{Customer: stripe.String(cusID), Status: stripe.String("all")}
	for it := sc.Subscriptions.List(all); it.Next(); {
		subs = append(subs, it.Subscription().ID)
	}
	if len(subs) != 2 {
		t.Errorf("status=all = %v, want both", subs)
	}
}

func TestTrialPauseAndResume(t *testing.T) {
	fake := stripefake.New(t)
	fake.SetNow(jan31)
	sc := fake.Client(t)
	newProduct(t, sc, "prod_friend")
	price := newMonthly(t, sc, "prod_friend", "k", 500, false)
	cus := newCustomer(t, sc, "ada@example.org")
	sub, err := fake.CreateSubscription(cus.ID, price.ID, stripefake.SubscriptionOptions{TrialDays: 14})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	trialEnd := jan31.AddDate(0, 0, 14).Unix()
	if sub["status"] != "trialing" || sub["trial_end"] != trialEnd || sub["current_period_end"] != trialEnd || sub["latest_invoice"] != nil {
		t.Errorf("trial subscription = %v, want trialing until %d, nothing billed", sub, trialEnd)
	}
	id := sub["id"].(string)
	fake.TakeEvents()
	if err := fake.TrialWillEnd(id); err != nil {
		t.Fatalf("trial will end: %v", err)
	}
	if err := fake.EndTrial(id, false); err != nil {
		t.Fatalf("end trial: %v", err)
	}
	if got, want := types(fake.TakeEvents()), "customer.subscription.trial_will_end customer.subscription.updated customer.subscription.paused"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
	fake.Advance(24 * time.Hour)
	if err := fake.ResumeSubscription(id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	events := fake.TakeEvents()
	if got, want := types(events), "customer.subscription.updated customer.subscription.resumed charge.succeeded invoice.paid"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	resumed, now := object(events[1]), jan31.AddDate(0, 0, 15).Unix()
	if resumed["status"] != "active" || resumed["current_period_start"] != now || resumed["billing_cycle_anchor"] != now {
		t.Errorf("resumed = %v, want active with a period from now (%d)", resumed, now)
	}
	if err := fake.ResumeSubscription(id); err == nil {
		t.Error("resuming an active subscription: no error")
	}
}

func TestCouponAndPriceChange(t *testing.T) {
	fake, sc, _, sub := subscribed(t)
	id := sub["id"].(string)
	dearer, err := sc.Prices.New(&stripe.PriceParams{
		Product: stripe.String("prod_friend"), Currency: stripe.String("eur"), UnitAmount: stripe.Int64(999),
		Recurring: &stripe.PriceRecurringParams{Interval: stripe.String("month")},
	})
	if err != nil {
		t.Fatalf("create price: %v", err)
	}
	fake.TakeEvents()

	if err := fake.ChangePrice(id, dearer.ID); err != nil {
		t.Fatalf("change price: %v", err)
	}
	events := fake.TakeEvents()
	if got, want := types(events), "customer.subscription.updated charge.succeeded invoice.paid"; got != want {
		t.Fatalf("upgrade events = %s, want %s", got, want)
	}
	prev := events[0]["data"].(map[string]any)["previous_attributes"].(map[string]any)
	oldItem := prev["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
	newItem := object(events[0])["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
	if oldItem["price"].(map[string]any)["unit_amount"] != int64(500) || newItem["price"].(map[string]any)["id"] != dearer.ID || oldItem["id"] != newItem["id"] {
		t.Errorf("items: old %v new %v, want the same item moved from 500 to %s", oldItem, newItem, dearer.ID)
	}
	if inv := object(events[2]); inv["amount_paid"] != int64(499) || inv["billing_reason"] != "subscription_update" {
		t.Errorf("proration invoice: %v %v, want 499 subscription_update", inv["amount_paid"], inv["billing_reason"])
	}

	// 12.5% of 999 is 124.875: 125 off, rounded half up.
	if err := fake.ApplyCoupon(id, 12.5, 0, "once", 0); err != nil {
		t.Fatalf("apply coupon: %v", err)
	}
	if err := fake.ApplyCoupon(id, 10, 100, "forever", 0); err == nil {
		t.Error("coupon with percent and amount: no error")
	}
	for i, want := range []int64{874, 999} { // a "once" coupon is spent by the first renewal
		invID, err := fake.RenewSubscription(id, true)
		if err != nil {
			t.Fatalf("renew: %v", err)
		}
		inv, err := sc.Invoices.Get(invID, nil)
		if err != nil {
			t.Fatalf("get invoice: %v", err)
		}
		if inv.AmountPaid != want || inv.Subtotal != 999 {
			t.Errorf("renewal %d: paid %d of %d, want %d of 999", i, inv.AmountPaid, inv.Subtotal, want)
		}
	}
	if got, _ := fake.Subscription(id); got["discount"] != nil {
		t.Errorf("discount after use = %v, want nil", got["discount"])
	}

	if err := fake.SetCancelAtPeriodEnd(id, true); err != nil {
		t.Fatalf("cancel at period end: %v", err)
	}
	got, _ := fake.Subscription(id)
	if got["cancel_at"] != got["current_period_end"] || got["canceled_at"] == nil || got["cancel_at_period_end"] != true {
		t.Errorf("cancelling subscription = %v, want cancel_at the period end", got)
	}
	if _, err := fake.RenewSubscription(id, true); err == nil {
		t.Error("renewing a subscription set to cancel: no error")
	}
	if err := fake.EndSubscription(id); err != nil {
		t.Fatalf("end: %v", err)
	}
	if got := types(fake.TakeEvents()); !strings.HasSuffix(got, "customer.subscription.updated customer.subscription.deleted") {
		t.Errorf("events end %q, want ...updated deleted", got)
	}
}

func TestAtAPIVersion(t *testing.T) {
	fake, _, _, sub := subscribed(t)
	if _, err := fake.RenewSubscription(sub["id"].(string), true); err != nil {
		t.Fatalf("renew: %v", err)
	}
	events := fake.TakeEvents() // charge.succeeded invoice.paid customer.subscription.updated
	paid, updated := events[1], events[2]

	basil := stripefake.AtAPIVersion(updated, "2025-03-31.basil")
	obj := object(basil)
	item := obj["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
	if _, ok := obj["current_period_end"]; ok || item["current_period_end"] != object(updated)["current_period_end"] || basil["api_version"] != "2025-03-31.basil" {
		t.Errorf("basil subscription: top-level end present %v, item end %v; want it only on the item, %v", ok, item["current_period_end"], object(updated)["current_period_end"])
	}
	prev := basil["data"].(map[string]any)["previous_attributes"].(map[string]any)
	oldItem := prev["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
	if _, ok := prev["current_period_end"]; ok || oldItem["current_period_end"] != sub["current_period_end"] {
		t.Errorf("basil previous_attributes = %v, want the old period on the items", prev)
	}
	if _, ok := object(updated)["current_period_end"]; !ok {
		t.Error("AtAPIVersion changed the event it was given")
	}

	inv := object(stripefake.AtAPIVersion(paid, "2025-06-30.basil"))
	parent, _ := inv["parent"].(map[string]any)
	details, _ := parent["subscription_details"].(map[string]any)
	for _, gone := range []string{"subscription", "paid", "charge", "payment_intent", "tax"} {
		if _, ok := inv[gone]; ok {
			t.Errorf("basil invoice still has %s", gone)
		}
	}
	if details["subscription"] != sub["id"] || inv["total_taxes"] == nil {
		t.Errorf("basil invoice parent = %v, total_taxes %v; want subscription %v and []", parent, inv["total_taxes"], sub["id"])
	}

	older := stripefake.AtAPIVersion(paid, "2024-06-20")
	if older["api_version"] != "2024-06-20" || object(older)["paid"] != true {
		t.Errorf("2024-06-20 rendering = %v, want only api_version changed", older)
	}
}

func TestSignedDelivery(t *testing.T) {
	fake, _, _, _ := subscribed(t)
	ev := fake.Events()[3] // customer.subscription.created
	const secret = "whsec_test"
	body, header := stripefake.SignedDelivery(ev, secret, time.Now())

	got, err := webhook.ConstructEventWithOptions(body, header, secret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got.ID != ev["id"] || got.Type != "customer.subscription.created" || got.Data.Object["id"] != object(ev)["id"] {
		t.Errorf("event = %s %s, want %v customer.subscription.created", got.ID, got.Type, ev["id"])
	}
	if _, err := webhook.ConstructEventWithOptions(body, header, "whsec_other", webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err == nil {
		t.Error("verified with the wrong secret")
	}
	_, old := stripefake.SignedDelivery(ev, secret, time.Now().Add(-time.Hour))
	if _, err := webhook.ConstructEventWithOptions(body, old, secret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err == nil {
		t.Error("verified a signature an hour old")
	}
}
