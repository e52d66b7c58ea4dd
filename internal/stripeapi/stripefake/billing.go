package stripefake

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The lifecycle methods below do what happens in Stripe without a request
// from Patronage: a member subscribing in the Dashboard, a renewal, a
// declined card, a refund or a dispute. Each changes state the way Stripe
// would and records the events Stripe would send, in Stripe's order. Each
// returns an error, changing nothing, when Stripe could not do it (an
// unknown id, a canceled subscription).
//
// The fake bills the simple way Patronage's subscriptions are billed: one
// card that always works unless told otherwise, no taxes, prices per unit.

// SubscriptionOptions shapes a subscription made by CreateSubscription.
type SubscriptionOptions struct {
	// TrialDays > 0 starts a trial of that many days; nothing is billed
	// until EndTrial.
	TrialDays int
	Metadata  map[string]string
	// Quantity of the price; 0 means 1.
	Quantity int64
}

// CreateSubscription subscribes a customer to a recurring price as the
// Dashboard would, and returns the subscription. Without a trial it starts
// active and its first invoice is paid: customer.subscription.created,
// charge.succeeded, invoice.paid. With a trial it starts trialing, its
// period is the trial, and it pauses if the trial ends unpaid (EndTrial);
// only customer.subscription.created is sent.
func (s *Server) CreateSubscription(customerID, priceID string, opt SubscriptionOptions) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.get("customer", customerID) == nil {
		return nil, fmt.Errorf("stripefake: no customer %q", customerID)
	}
	price := s.get("price", priceID)
	switch {
	case price == nil:
		return nil, fmt.Errorf("stripefake: no price %q", priceID)
	case price["type"] != "recurring":
		return nil, fmt.Errorf("stripefake: price %q is not recurring", priceID)
	case price["active"] != true:
		return nil, fmt.Errorf("stripefake: price %q is inactive", priceID)
	case opt.Quantity < 0 || opt.TrialDays < 0:
		return nil, fmt.Errorf("stripefake: negative quantity or trial")
	}
	qty := max(opt.Quantity, 1)
	meta := map[string]any{}
	for k, v := range opt.Metadata {
		meta[k] = v
	}
	sub, _ := s.subscribe(customerID, []any{map[string]any{"price": price, "quantity": qty}}, meta, opt.TrialDays)
	return clone(sub).(map[string]any), nil
}

// subscribe stores a subscription to the recurring prices among lines
// (maps with "price" and "quantity", as Checkout's line items are) and
// records customer.subscription.created. Without a trial it bills every
// line, one-time prices included, on a first invoice it pays, and returns
// that invoice; with one, inv is nil. The caller holds s.mu.
func (s *Server) subscribe(customer string, lines []any, metadata map[string]any, trialDays int) (sub, inv map[string]any) {
	id, start := newID("sub_"), s.now()
	items := []any{}
	for _, li := range lines {
		price := li.(map[string]any)["price"].(map[string]any)
		if price["type"] != "recurring" {
			continue
		}
		items = append(items, map[string]any{
			"id": newID("si_"), "object": "subscription_item", "billing_thresholds": nil, "created": start,
			"metadata": map[string]any{}, "price": clone(price), "quantity": li.(map[string]any)["quantity"],
			"subscription": id, "tax_rates": []any{},
		})
	}
	sub = map[string]any{
		"id": id, "object": "subscription", "billing_cycle_anchor": start, "cancel_at": nil,
		"cancel_at_period_end": false, "canceled_at": nil,
		"cancellation_details": map[string]any{"comment": nil, "feedback": nil, "reason": nil},
		"collection_method":    "charge_automatically", "created": start, "currency": items[0].(map[string]any)["price"].(map[string]any)["currency"],
		"current_period_start": start, "customer": customer, "days_until_due": nil, "default_payment_method": nil,
		"description": nil, "discount": nil, "ended_at": nil,
		"items":          listOf(items, "/v1/subscription_items?subscription="+id, false),
		"latest_invoice": nil, "livemode": false, "metadata": clone(metadata), "pause_collection": nil,
		"start_date": start, "status": "active", "trial_end": nil, "trial_start": nil,
		"trial_settings": map[string]any{"end_behavior": map[string]any{"missing_payment_method": "create_invoice"}},
	}
	if trialDays > 0 {
		end := time.Unix(start, 0).UTC().AddDate(0, 0, trialDays).Unix()
		sub["status"], sub["trial_start"], sub["trial_end"] = "trialing", start, end
		sub["billing_cycle_anchor"], sub["current_period_end"] = end, end
		// A trial started without a card pauses when it ends unpaid.
		sub["trial_settings"] = map[string]any{"end_behavior": map[string]any{"missing_payment_method": "pause"}}
		s.add(sub)
		s.emit("customer.subscription.created", sub, nil)
		return sub, nil
	}
	end := periodEnd(sub, start)
	sub["current_period_end"] = end
	s.add(sub)

	var invLines []any
	for _, li := range lines {
		li := li.(map[string]any)
		price, qty := li["price"].(map[string]any), li["quantity"].(int64)
		line := invoiceLine(price, qty, id, start, end)
		if price["type"] != "recurring" {
			line["type"], line["subscription_item"] = "invoiceitem", nil
			line["period"] = map[string]any{"start": start, "end": start}
		} else {
			line["subscription_item"] = itemFor(sub, price["id"])
		}
		invLines = append(invLines, line)
	}
	inv = s.newInvoice(sub, "subscription_create", invLines, start, end, 0)
	sub["latest_invoice"] = inv["id"]
	s.emit("customer.subscription.created", sub, nil)
	s.payInvoice(inv)
	return sub, inv
}

// itemFor is the id of sub's item for price.
func itemFor(sub map[string]any, price any) any {
	for _, item := range subItems(sub) {
		if item["price"].(map[string]any)["id"] == price {
			return item["id"]
		}
	}
	return nil
}

func subItems(sub map[string]any) []map[string]any {
	var out []map[string]any
	for _, item := range sub["items"].(map[string]any)["data"].([]any) {
		out = append(out, item.(map[string]any))
	}
	return out
}

// periodEnd is the end of sub's billing period that starts at start: the
// first billing cycle anchor plus a whole number of its first item's
// intervals that is after start. Counting from the anchor, not from start,
// keeps a subscription anchored on the 31st billing on the 31st after a
// short month, as Stripe does.
func periodEnd(sub map[string]any, start int64) int64 {
	rec := subItems(sub)[0]["price"].(map[string]any)["recurring"].(map[string]any)
	anchor := time.Unix(sub["billing_cycle_anchor"].(int64), 0).UTC()
	n := int(rec["interval_count"].(int64))
	for k := 1; ; k++ {
		var end time.Time
		switch rec["interval"] {
		case "day":
			end = anchor.AddDate(0, 0, k*n)
		case "week":
			end = anchor.AddDate(0, 0, 7*k*n)
		case "year":
			end = addMonths(anchor, 12*k*n)
		default:
			end = addMonths(anchor, k*n)
		}
		if end.Unix() > start {
			return end.Unix()
		}
	}
}

// addMonths moves t by n months, keeping its day of the month where the
// month has it and taking the month's last day where it does not (Jan 31
// plus one month is Feb 28 or 29), unlike time.AddDate, which overflows
// into the next month.
func addMonths(t time.Time, n int) time.Time {
	first := time.Date(t.Year(), t.Month()+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(t.Day(), last)-1)
}

func invoiceLine(price map[string]any, qty int64, sub string, start, end int64) map[string]any {
	amount := price["unit_amount"].(int64) * qty
	return map[string]any{
		"id": newID("il_"), "object": "line_item", "amount": amount, "amount_excluding_tax": amount,
		"currency": price["currency"], "description": nil, "discount_amounts": []any{}, "discountable": true,
		"discounts": []any{}, "livemode": false, "metadata": map[string]any{},
		"period": map[string]any{"start": start, "end": end}, "price": clone(price), "proration": false,
		"proration_details": map[string]any{"credited_items": nil}, "quantity": qty, "subscription": sub,
		"subscription_item": nil, "tax_amounts": []any{}, "tax_rates": []any{}, "type": "subscription",
		"unit_amount_excluding_tax": strconv.FormatInt(price["unit_amount"].(int64), 10),
	}
}

// newInvoice stores a finalized, open invoice for sub billing lines less
// discount (what sub's discount takes off). Its top-level period is the
// lines' service period: Stripe's top level shows the previous period on
// renewals, a quirk no caller should depend on. The caller holds s.mu.
func (s *Server) newInvoice(sub map[string]any, reason string, lines []any, start, end, discount int64) map[string]any {
	id, t := newID("in_"), s.now()
	var subtotal int64
	for _, line := range lines {
		subtotal += line.(map[string]any)["amount"].(int64)
	}
	total := subtotal - discount
	customer := s.get("customer", sub["customer"].(string))
	seq := 1
	for _, other := range s.order["invoice"] {
		if s.objects[other]["customer"] == sub["customer"] {
			seq++
		}
	}
	inv := map[string]any{
		"id": id, "object": "invoice", "amount_due": total, "amount_paid": int64(0), "amount_remaining": total,
		"amount_shipping": int64(0), "attempt_count": int64(0), "attempted": false, "auto_advance": true,
		"billing_reason": reason, "charge": nil, "collection_method": "charge_automatically", "created": t,
		"currency": sub["currency"], "customer": sub["customer"], "customer_email": customer["email"],
		"customer_name": customer["name"], "discount": nil, "discounts": []any{}, "due_date": nil,
		"effective_at": t, "ending_balance": int64(0), "hosted_invoice_url": s.URL + "/invoice/" + id,
		"invoice_pdf": s.URL + "/invoice/" + id + "/pdf",
		"lines":       listOf(lines, "/v1/invoices/"+id+"/lines", false), "livemode": false,
		"metadata": map[string]any{}, "next_payment_attempt": nil,
		"number": fmt.Sprintf("%v-%04d", customer["invoice_prefix"], seq), "paid": false,
		"paid_out_of_band": false, "payment_intent": nil, "period_end": end, "period_start": start,
		"starting_balance": int64(0), "status": "open",
		"status_transitions": map[string]any{"finalized_at": t, "marked_uncollectible_at": nil, "paid_at": nil, "voided_at": nil},
		"subscription":       sub["id"], "subtotal": subtotal, "subtotal_excluding_tax": subtotal, "tax": nil,
		"total": total, "total_discount_amounts": []any{}, "total_excluding_tax": total,
	}
	if d, ok := sub["discount"].(map[string]any); ok && discount > 0 {
		inv["discount"], inv["discounts"] = clone(d), []any{d["id"]}
		inv["total_discount_amounts"] = []any{map[string]any{"amount": discount, "discount": d["id"]}}
		// Spread over the lines in order, so each line's share adds up to
		// the invoice's.
		left := discount
		for _, line := range lines {
			line := line.(map[string]any)
			share := min(left, line["amount"].(int64))
			if share > 0 {
				line["discount_amounts"] = []any{map[string]any{"amount": share, "discount": d["id"]}}
				left -= share
			}
		}
	}
	return s.add(inv)
}

// cycleInvoice stores the invoice for sub's period from start to end, with
// sub's discount taken off. A discount that ran out before start, or a
// "once" one just used, leaves sub, as Stripe removes it. The caller holds
// s.mu.
func (s *Server) cycleInvoice(sub map[string]any, reason string, start, end int64) map[string]any {
	var lines []any
	var subtotal int64
	for _, item := range subItems(sub) {
		line := invoiceLine(item["price"].(map[string]any), item["quantity"].(int64), sub["id"].(string), start, end)
		line["subscription_item"] = item["id"]
		subtotal += line["amount"].(int64)
		lines = append(lines, line)
	}
	d, ok := sub["discount"].(map[string]any)
	if discountEnd, expires := d["end"].(int64); ok && expires && start >= discountEnd {
		sub["discount"], ok = nil, false
	}
	if !ok {
		return s.newInvoice(sub, reason, lines, start, end, 0)
	}
	inv := s.newInvoice(sub, reason, lines, start, end, discountOff(d["coupon"].(map[string]any), subtotal))
	if d["coupon"].(map[string]any)["duration"] == "once" {
		sub["discount"] = nil
	}
	return inv
}

// discountOff is what coupon takes off subtotal: a percentage rounded half
// up to the minor unit, or a fixed amount, never more than subtotal.
func discountOff(coupon map[string]any, subtotal int64) int64 {
	if pct, ok := coupon["percent_off"].(float64); ok {
		// In hundredths of a percent, so the rounding is exact integer
		// arithmetic rather than float rounding near a half.
		hundredths := int64(math.Round(pct * 100))
		return min((subtotal*hundredths+5000)/10000, subtotal)
	}
	return min(coupon["amount_off"].(int64), subtotal)
}

// newPaymentIntent stores a payment intent waiting for its charge; the
// caller holds s.mu.
func (s *Server) newPaymentIntent(customer any, amount int64, currency, invoice any, metadata map[string]any) map[string]any {
	id := newID("pi_")
	return s.add(map[string]any{
		"id": id, "object": "payment_intent", "amount": amount, "amount_capturable": int64(0),
		"amount_received": int64(0), "capture_method": "automatic", "client_secret": id + "_secret_" + newID(""),
		"confirmation_method": "automatic", "created": s.now(), "currency": currency, "customer": customer,
		"description": nil, "invoice": invoice, "last_payment_error": nil, "latest_charge": nil,
		"livemode": false, "metadata": clone(metadata), "payment_method": nil,
		"payment_method_types": []any{"card"}, "status": "requires_payment_method",
	})
}

// charge makes pi succeed with a card charge and records charge.succeeded;
// the caller holds s.mu.
func (s *Server) charge(pi map[string]any) map[string]any {
	id, pm := newID("ch_"), newID("pm_")
	ch := s.add(map[string]any{
		"id": id, "object": "charge", "amount": pi["amount"], "amount_captured": pi["amount"],
		"amount_refunded": int64(0), "balance_transaction": newID("txn_"),
		"billing_details": map[string]any{"address": nil, "email": nil, "name": nil, "phone": nil},
		"captured":        true, "created": s.now(), "currency": pi["currency"], "customer": pi["customer"],
		"description": pi["description"], "disputed": false, "failure_code": nil, "failure_message": nil,
		"invoice": pi["invoice"], "livemode": false, "metadata": clone(pi["metadata"]),
		"outcome": map[string]any{"network_status": "approved_by_network", "reason": nil, "risk_level": "normal",
			"seller_message": "Payment complete.", "type": "authorized"},
		"paid": true, "payment_intent": pi["id"], "payment_method": pm,
		"payment_method_details": map[string]any{"type": "card", "card": map[string]any{
			"brand": "visa", "country": "US", "exp_month": int64(12), "exp_year": int64(2034),
			"funding": "credit", "last4": "4242"}},
		"receipt_url": s.URL + "/receipts/" + id, "refunded": false, "status": "succeeded",
	})
	pi["status"], pi["amount_received"], pi["latest_charge"] = "succeeded", pi["amount"], id
	pi["payment_method"], pi["last_payment_error"] = pm, nil
	s.emit("charge.succeeded", ch, nil)
	return ch
}

// invoiceIntent is the payment intent paying inv, made on first use; the
// caller holds s.mu.
func (s *Server) invoiceIntent(inv map[string]any) map[string]any {
	if id, ok := inv["payment_intent"].(string); ok {
		return s.objects[id]
	}
	pi := s.newPaymentIntent(inv["customer"], inv["amount_due"].(int64), inv["currency"], inv["id"], nil)
	pi["description"] = "Subscription update"
	if inv["billing_reason"] == "subscription_create" {
		pi["description"] = "Subscription creation"
	}
	inv["payment_intent"] = pi["id"]
	return pi
}

// payInvoice pays inv: charge.succeeded (unless nothing is due, which
// Stripe marks paid without a charge), then invoice.paid. The caller holds
// s.mu.
func (s *Server) payInvoice(inv map[string]any) {
	due := inv["amount_due"].(int64)
	if due > 0 {
		inv["charge"] = s.charge(s.invoiceIntent(inv))["id"]
		inv["attempt_count"] = inv["attempt_count"].(int64) + 1
		inv["attempted"] = true
	}
	inv["status"], inv["paid"], inv["amount_paid"], inv["amount_remaining"] = "paid", true, due, int64(0)
	inv["next_payment_attempt"] = nil
	inv["status_transitions"].(map[string]any)["paid_at"] = s.now()
	s.emit("invoice.paid", inv, nil)
}

// failInvoice declines the card paying inv and records
// invoice.payment_failed; Stripe tries again on its own schedule, which
// the fake leaves to PayInvoice. The caller holds s.mu.
func (s *Server) failInvoice(inv map[string]any) {
	pi := s.invoiceIntent(inv)
	pi["status"] = "requires_payment_method"
	pi["last_payment_error"] = map[string]any{"code": "card_declined", "decline_code": "generic_decline",
		"message": "Your card was declined.", "type": "card_error"}
	inv["attempt_count"] = inv["attempt_count"].(int64) + 1
	inv["attempted"] = true
	inv["next_payment_attempt"] = s.nowTime().AddDate(0, 0, 3).Unix()
	s.emit("invoice.payment_failed", inv, nil)
}

// subscription is the subscription with id, or an error naming it; the
// caller holds s.mu.
func (s *Server) subscription(id string) (map[string]any, error) {
	sub := s.get("subscription", id)
	if sub == nil {
		return nil, fmt.Errorf("stripefake: no subscription %q", id)
	}
	return sub, nil
}

func ended(sub map[string]any) bool {
	return sub["status"] == "canceled" || sub["status"] == "incomplete_expired"
}

// RenewSubscription is the end of a subscription's billing period: the
// clock moves to the period's end if it is behind it, the period moves on
// one interval, and the new period is invoiced (subscription_cycle), less
// any discount. When pay is true the card works: charge.succeeded,
// invoice.paid, then customer.subscription.updated (the new period,
// active). When it is false the card is declined: the invoice stays open
// after one attempt, invoice.payment_failed, then
// customer.subscription.updated (the new period, past_due). Returns the new
// invoice's id.
func (s *Server) RenewSubscription(subID string, pay bool) (invoiceID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.subscription(subID)
	if err != nil {
		return "", err
	}
	switch {
	case sub["status"] != "active" && sub["status"] != "past_due":
		return "", fmt.Errorf("stripefake: subscription %q is %v; only active and past_due ones renew", subID, sub["status"])
	case sub["cancel_at_period_end"] == true:
		return "", fmt.Errorf("stripefake: subscription %q cancels at its period end instead of renewing; use EndSubscription", subID)
	}
	start := sub["current_period_end"].(int64)
	s.moveClockTo(start)
	before := clone(sub).(map[string]any)
	end := periodEnd(sub, start)
	inv := s.cycleInvoice(sub, "subscription_cycle", start, end)
	sub["current_period_start"], sub["current_period_end"], sub["latest_invoice"] = start, end, inv["id"]
	if pay {
		s.payInvoice(inv)
		sub["status"] = "active"
	} else {
		s.failInvoice(inv)
		sub["status"] = "past_due"
	}
	s.updated("customer.subscription.updated", before, sub)
	return inv["id"].(string), nil
}

// PayInvoice is a retry of an open invoice that succeeds: charge.succeeded,
// invoice.paid, and, when its subscription was past_due or unpaid,
// customer.subscription.updated (active).
func (s *Server) PayInvoice(invoiceID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv := s.get("invoice", invoiceID)
	switch {
	case inv == nil:
		return fmt.Errorf("stripefake: no invoice %q", invoiceID)
	case inv["status"] != "open":
		return fmt.Errorf("stripefake: invoice %q is %v, not open", invoiceID, inv["status"])
	}
	s.payInvoice(inv)
	if subID, ok := inv["subscription"].(string); ok {
		if sub := s.get("subscription", subID); sub["status"] == "past_due" || sub["status"] == "unpaid" {
			before := clone(sub).(map[string]any)
			sub["status"] = "active"
			s.updated("customer.subscription.updated", before, sub)
		}
	}
	return nil
}

// ChangePrice moves a one-item subscription to another recurring price in
// the same currency, keeping the item's id and the billing period:
// customer.subscription.updated (previous_attributes has the old items).
// An upgrade is charged at once, the difference in unit amounts times the
// quantity, on a subscription_update invoice of two proration lines:
// charge.succeeded, invoice.paid. Stripe would prorate by the time left in
// the period; the fake charges the whole difference so amounts stay easy
// to predict. A downgrade, or any change during a trial, bills nothing.
func (s *Server) ChangePrice(subID, priceID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.subscription(subID)
	if err != nil {
		return err
	}
	price := s.get("price", priceID)
	items := subItems(sub)
	switch {
	case ended(sub):
		return fmt.Errorf("stripefake: subscription %q has ended", subID)
	case len(items) != 1:
		return fmt.Errorf("stripefake: ChangePrice imitates one-item subscriptions; %q has %d items", subID, len(items))
	case price == nil:
		return fmt.Errorf("stripefake: no price %q", priceID)
	case price["type"] != "recurring" || price["active"] != true:
		return fmt.Errorf("stripefake: price %q is not an active recurring price", priceID)
	case price["currency"] != sub["currency"]:
		return fmt.Errorf("stripefake: price %q is in %v, subscription %q in %v", priceID, price["currency"], subID, sub["currency"])
	}
	item := items[0]
	old, qty := item["price"].(map[string]any), item["quantity"].(int64)
	before := clone(sub).(map[string]any)
	item["price"] = clone(price)

	var inv map[string]any
	if diff := (price["unit_amount"].(int64) - old["unit_amount"].(int64)) * qty; diff > 0 && sub["status"] != "trialing" {
		now, end := s.now(), sub["current_period_end"].(int64)
		unused := invoiceLine(old, qty, subID, now, end)
		unused["amount"] = -unused["amount"].(int64)
		unused["amount_excluding_tax"] = unused["amount"]
		remaining := invoiceLine(price, qty, subID, now, end)
		for _, line := range []map[string]any{unused, remaining} {
			line["type"], line["proration"], line["subscription_item"] = "invoiceitem", true, item["id"]
		}
		inv = s.newInvoice(sub, "subscription_update", []any{unused, remaining}, now, end, 0)
		sub["latest_invoice"] = inv["id"]
	}
	s.updated("customer.subscription.updated", before, sub)
	if inv != nil {
		s.payInvoice(inv)
	}
	return nil
}

// SetCancelAtPeriodEnd schedules the subscription to end when its period
// does (cancel_at and canceled_at set), or undoes that:
// customer.subscription.updated.
func (s *Server) SetCancelAtPeriodEnd(subID string, cancel bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.subscription(subID)
	if err != nil {
		return err
	}
	if ended(sub) {
		return fmt.Errorf("stripefake: subscription %q has ended", subID)
	}
	before := clone(sub).(map[string]any)
	details := sub["cancellation_details"].(map[string]any)
	if cancel && sub["cancel_at_period_end"] != true {
		sub["cancel_at_period_end"], sub["cancel_at"], sub["canceled_at"] = true, sub["current_period_end"], s.now()
		details["reason"] = "cancellation_requested"
	} else if !cancel {
		sub["cancel_at_period_end"], sub["cancel_at"], sub["canceled_at"] = false, nil, nil
		details["reason"] = nil
	}
	s.updated("customer.subscription.updated", before, sub)
	return nil
}

// EndSubscription ends the subscription now, as an immediate cancellation
// or the end of a period it was set to cancel at:
// customer.subscription.deleted.
func (s *Server) EndSubscription(subID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.subscription(subID)
	if err != nil {
		return err
	}
	if ended(sub) {
		return fmt.Errorf("stripefake: subscription %q has already ended", subID)
	}
	s.endSubscription(sub)
	return nil
}

// endSubscription cancels sub now; the caller holds s.mu.
func (s *Server) endSubscription(sub map[string]any) {
	now := s.now()
	sub["status"], sub["ended_at"] = "canceled", now
	if sub["canceled_at"] == nil {
		sub["canceled_at"] = now
	}
	if details := sub["cancellation_details"].(map[string]any); details["reason"] == nil {
		details["reason"] = "cancellation_requested"
	}
	s.emit("customer.subscription.deleted", sub, nil)
}

// TrialWillEnd sends customer.subscription.trial_will_end, as Stripe does
// three days before a trial ends; nothing changes.
func (s *Server) TrialWillEnd(subID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.subscription(subID)
	if err != nil {
		return err
	}
	if sub["status"] != "trialing" {
		return fmt.Errorf("stripefake: subscription %q is %v, not trialing", subID, sub["status"])
	}
	s.emit("customer.subscription.trial_will_end", sub, nil)
	return nil
}

// EndTrial is the end of a subscription's trial; the clock moves to
// trial_end if it is behind it. When pay is true a card is on file: the
// first period starts at trial_end and its invoice (subscription_cycle) is
// paid: charge.succeeded, invoice.paid, then customer.subscription.updated
// (active). When it is false there is none and the subscription pauses:
// customer.subscription.updated (paused), then customer.subscription.paused.
func (s *Server) EndTrial(subID string, pay bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.subscription(subID)
	if err != nil {
		return err
	}
	if sub["status"] != "trialing" {
		return fmt.Errorf("stripefake: subscription %q is %v, not trialing", subID, sub["status"])
	}
	trialEnd := sub["trial_end"].(int64)
	s.moveClockTo(trialEnd)
	before := clone(sub).(map[string]any)
	if !pay {
		sub["status"] = "paused"
		s.updated("customer.subscription.updated", before, sub)
		s.emit("customer.subscription.paused", sub, nil)
		return nil
	}
	sub["billing_cycle_anchor"] = trialEnd
	end := periodEnd(sub, trialEnd)
	inv := s.cycleInvoice(sub, "subscription_cycle", trialEnd, end)
	s.payInvoice(inv)
	sub["status"], sub["current_period_start"], sub["current_period_end"] = "active", trialEnd, end
	sub["latest_invoice"] = inv["id"]
	s.updated("customer.subscription.updated", before, sub)
	return nil
}

// ResumeSubscription resumes a paused subscription with a card that works:
// a new period and billing cycle start now and its invoice is paid.
// Stripe reports the status change twice, as customer.subscription.updated
// (active) and customer.subscription.resumed; then charge.succeeded,
// invoice.paid.
func (s *Server) ResumeSubscription(subID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.subscription(subID)
	if err != nil {
		return err
	}
	if sub["status"] != "paused" {
		return fmt.Errorf("stripefake: subscription %q is %v, not paused", subID, sub["status"])
	}
	before := clone(sub).(map[string]any)
	now := s.now()
	sub["billing_cycle_anchor"] = now
	end := periodEnd(sub, now)
	inv := s.cycleInvoice(sub, "subscription_cycle", now, end)
	sub["status"], sub["current_period_start"], sub["current_period_end"] = "active", now, end
	sub["latest_invoice"] = inv["id"]
	s.updated("customer.subscription.updated", before, sub)
	s.emit("customer.subscription.resumed", sub, nil)
	s.payInvoice(inv)
	return nil
}

// ApplyCoupon puts a discount on the subscription, as a coupon applied in
// the Dashboard: percentOff (up to two decimals) or amountOff (minor units,
// in the subscription's currency), not both; duration "forever", "once"
// (the next invoice only) or "repeating" for months months. Invoices from
// RenewSubscription, EndTrial and ResumeSubscription take it off:
// customer.subscription.updated.
func (s *Server) ApplyCoupon(subID string, percentOff float64, amountOff int64, duration string, months int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.subscription(subID)
	if err != nil {
		return err
	}
	switch {
	case ended(sub):
		return fmt.Errorf("stripefake: subscription %q has ended", subID)
	case (percentOff > 0) == (amountOff > 0) || percentOff < 0 || percentOff > 100 || amountOff < 0:
		return fmt.Errorf("stripefake: a coupon takes a percentOff in (0, 100] or a positive amountOff")
	case !slices.Contains([]string{"forever", "once", "repeating"}, duration):
		return fmt.Errorf("stripefake: coupon duration %q is not forever, once or repeating", duration)
	case (duration == "repeating") != (months > 0):
		return fmt.Errorf("stripefake: months is for, and required by, a repeating coupon")
	}
	now := s.now()
	coupon := map[string]any{
		"id": newID("")[:8], "object": "coupon", "amount_off": nil, "created": now, "currency": nil,
		"duration": duration, "duration_in_months": nil, "livemode": false, "max_redemptions": nil,
		"metadata": map[string]any{}, "name": nil, "percent_off": nil, "redeem_by": nil,
		"times_redeemed": int64(1), "valid": true,
	}
	if percentOff > 0 {
		coupon["percent_off"] = percentOff
	} else {
		coupon["amount_off"], coupon["currency"] = amountOff, sub["currency"]
	}
	var end any
	if duration == "repeating" {
		coupon["duration_in_months"] = int64(months)
		end = addMonths(time.Unix(now, 0).UTC(), months).Unix()
	}
	before := clone(sub).(map[string]any)
	sub["discount"] = map[string]any{
		"id": newID("di_"), "object": "discount", "checkout_session": nil, "coupon": coupon,
		"customer": sub["customer"], "end": end, "invoice": nil, "invoice_item": nil,
		"promotion_code": nil, "start": now, "subscription": subID,
	}
	s.updated("customer.subscription.updated", before, sub)
	return nil
}

// Refund refunds amount (minor units) of a charge, or what is left of it
// when amount is 0, as a refund made in the Dashboard: charge.refunded,
// with the charge's amount_refunded and refunded (true once nothing is
// left) updated. Returns the refund's id.
func (s *Server) Refund(chargeID string, amount int64) (refundID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.get("charge", chargeID)
	if ch == nil {
		return "", fmt.Errorf("stripefake: no charge %q", chargeID)
	}
	left := ch["amount"].(int64) - ch["amount_refunded"].(int64)
	if amount == 0 {
		amount = left
	}
	switch {
	case ch["disputed"] == true:
		return "", fmt.Errorf("stripefake: charge %q has been disputed and cannot be refunded", chargeID)
	case amount <= 0 || amount > left:
		return "", fmt.Errorf("stripefake: refund of %d is more than the %d left on charge %q", amount, left, chargeID)
	}
	re := s.add(map[string]any{
		"id": newID("re_"), "object": "refund", "amount": amount, "balance_transaction": newID("txn_"),
		"charge": chargeID, "created": s.now(), "currency": ch["currency"], "metadata": map[string]any{},
		"payment_intent": ch["payment_intent"], "reason": "requested_by_customer", "receipt_number": nil,
		"source_transfer_reversal": nil, "status": "succeeded", "transfer_reversal": nil,
	})
	ch["amount_refunded"] = ch["amount_refunded"].(int64) + amount
	ch["refunded"] = ch["amount_refunded"] == ch["amount"]
	s.emit("charge.refunded", ch, nil)
	return re["id"].(string), nil
}

// refundsOf is a charge's refunds as expand[]=refunds shows them, newest
// first; the caller holds s.mu.
func (s *Server) refundsOf(chargeID string) map[string]any {
	var data []any
	ids := s.order["refund"]
	for i := len(ids) - 1; i >= 0; i-- {
		if re := s.objects[ids[i]]; re["charge"] == chargeID {
			data = append(data, clone(re))
		}
	}
	return listOf(data, "/v1/charges/"+chargeID+"/refunds", false)
}

// Dispute opens a dispute (reason fraudulent, needs_response) over what is
// left of a charge after refunds: charge.dispute.created. Returns the
// dispute's id.
func (s *Server) Dispute(chargeID string) (disputeID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.get("charge", chargeID)
	switch {
	case ch == nil:
		return "", fmt.Errorf("stripefake: no charge %q", chargeID)
	case ch["disputed"] == true:
		return "", fmt.Errorf("stripefake: charge %q is already disputed", chargeID)
	case ch["refunded"] == true:
		return "", fmt.Errorf("stripefake: charge %q is fully refunded", chargeID)
	}
	now := s.now()
	dp := s.add(map[string]any{
		"id": newID("dp_"), "object": "dispute", "amount": ch["amount"].(int64) - ch["amount_refunded"].(int64),
		"balance_transactions": []any{}, "charge": chargeID, "created": now, "currency": ch["currency"],
		"evidence": map[string]any{},
		"evidence_details": map[string]any{"due_by": time.Unix(now, 0).AddDate(0, 0, 7).Unix(), "has_evidence": false,
			"past_due": false, "submission_count": int64(0)},
		"is_charge_refundable": false, "livemode": false, "metadata": map[string]any{},
		"payment_intent": ch["payment_intent"], "reason": "fraudulent", "status": "needs_response",
	})
	ch["disputed"] = true
	s.emit("charge.dispute.created", dp, nil)
	return dp["id"].(string), nil
}

// CloseDispute closes an open dispute, won or lost:
// charge.dispute.closed.
func (s *Server) CloseDispute(disputeID string, won bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dp := s.get("dispute", disputeID)
	switch {
	case dp == nil:
		return fmt.Errorf("stripefake: no dispute %q", disputeID)
	case dp["status"] == "won" || dp["status"] == "lost":
		return fmt.Errorf("stripefake: dispute %q is already %v", disputeID, dp["status"])
	}
	dp["status"] = "lost"
	if won {
		dp["status"] = "won"
	}
	s.emit("charge.dispute.closed", dp, nil)
	return nil
}

var subscriptionStatuses = []string{"active", "all", "canceled", "ended", "incomplete", "incomplete_expired",
	"past_due", "paused", "trialing", "unpaid"}

// listSubscriptions leaves out ended subscriptions unless status asks for
// them, as Stripe does.
func listSubscriptions(s *Server, _ string, p params) (map[string]any, *apiError) {
	status, byStatus := p.str("status")
	if byStatus && !slices.Contains(subscriptionStatuses, status) {
		return nil, invalid("status", "Invalid status: must be one of active, all, canceled, ended, incomplete, incomplete_expired, past_due, paused, trialing, or unpaid")
	}
	price, byPrice := p.str("price")
	return s.list("subscription", p, func(sub map[string]any) bool {
		switch {
		case !matches(p, "customer", sub["customer"]):
			return false
		case byPrice && itemFor(sub, price) == nil:
			return false
		case !byStatus:
			return !ended(sub)
		case status == "all":
			return true
		case status == "ended":
			return ended(sub)
		}
		return sub["status"] == status
	}, "customer", "price", "status")
}

func listInvoices(s *Server, _ string, p params) (map[string]any, *apiError) {
	if status, ok := p.str("status"); ok && !slices.Contains([]string{"draft", "open", "paid", "uncollectible", "void"}, status) {
		return nil, invalid("status", "Invalid status: must be one of draft, open, paid, uncollectible, or void")
	}
	return s.list("invoice", p, func(inv map[string]any) bool {
		return matches(p, "customer", inv["customer"]) && matches(p, "subscription", inv["subscription"]) &&
			matches(p, "status", inv["status"])
	}, "customer", "subscription", "status")
}

func listRefunds(s *Server, _ string, p params) (map[string]any, *apiError) {
	return s.list("refund", p, func(re map[string]any) bool {
		return matches(p, "charge", re["charge"]) && matches(p, "payment_intent", re["payment_intent"])
	}, "charge", "payment_intent")
}
