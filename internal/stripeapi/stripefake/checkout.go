package stripefake

import (
	"fmt"
)

var customerFields = []string{"email", "name", "metadata", "description", "phone"}

func createCustomer(s *Server, _ string, p params) (map[string]any, *apiError) {
	if e := p.only(customerFields...); e != nil {
		return nil, e
	}
	id := newID("cus_")
	cus := map[string]any{
		"id": id, "object": "customer", "balance": int64(0), "created": s.now(), "delinquent": false,
		"invoice_prefix": id[4:12], "invoice_settings": map[string]any{}, "livemode": false,
		"metadata": map[string]any{}, "next_invoice_sequence": int64(1), "preferred_locales": []any{},
		"tax_exempt": "none",
	}
	setCustomerFields(cus, p)
	s.add(cus)
	s.emit("customer.created", cus, nil)
	return cus, nil
}

func updateCustomer(s *Server, id string, p params) (map[string]any, *apiError) {
	if e := p.only(customerFields...); e != nil {
		return nil, e
	}
	cus := s.get("customer", id)
	if cus == nil {
		return nil, noSuch("customer", id, "id", 404)
	}
	next := clone(cus).(map[string]any)
	setCustomerFields(next, p)
	s.update(cus, next, "customer.updated")
	return next, nil
}

// listCustomers leaves out deleted customers, as Stripe does. Its email
// filter is exact, case included, as Stripe's is.
func listCustomers(s *Server, _ string, p params) (map[string]any, *apiError) {
	email, byEmail := p.str("email")
	return s.list("customer", p, func(cus map[string]any) bool {
		return cus["deleted"] != true && (!byEmail || cus["email"] == email)
	}, "email")
}

// DeleteCustomer deletes a customer as Stripe does: each of its
// subscriptions that has not ended is canceled at once
// (customer.subscription.deleted each), then customer.deleted carries the
// customer as it was, marked deleted. Later reads answer the deleted stub.
func (s *Server) DeleteCustomer(customerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cus := s.get("customer", customerID)
	if cus == nil {
		return fmt.Errorf("stripefake: no customer %q", customerID)
	}
	for _, id := range s.order["subscription"] {
		if sub := s.objects[id]; sub["customer"] == customerID && !ended(sub) {
			s.endSubscription(sub)
		}
	}
	gone := clone(cus).(map[string]any)
	gone["deleted"] = true
	s.emit("customer.deleted", gone, nil)
	s.objects[customerID] = map[string]any{"id": customerID, "object": "customer", "deleted": true}
	return nil
}

func setCustomerFields(cus map[string]any, p params) {
	for _, k := range []string{"email", "name", "description", "phone"} {
		if v, ok := p.str(k); ok {
			cus[k] = nullIfEmpty(v)
		}
	}
	cus["metadata"] = applyMetadata(cus["metadata"].(map[string]any), p)
}

// checkoutPlan is what a Checkout Session holds that its JSON does not show
// until expanded or completed.
type checkoutPlan struct {
	lineItems             []any
	subscriptionMetadata  map[string]any
	paymentIntentMetadata map[string]any
}

func createCheckoutSession(s *Server, _ string, p params) (map[string]any, *apiError) {
	if e := p.only("mode", "success_url", "cancel_url", "line_items", "customer", "customer_email",
		"client_reference_id", "metadata", "subscription_data", "payment_intent_data",
		"allow_promotion_codes", "customer_creation", "locale", "billing_address_collection",
		"submit_type"); e != nil {
		return nil, e
	}
	mode, _ := p.str("mode")
	switch mode {
	case "payment", "subscription", "setup":
	case "":
		return nil, missing("mode")
	default:
		return nil, invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
	}
	successURL, ok := p.str("success_url")
	if !ok {
		return nil, missing("success_url")
	}
	customer, hasCustomer := p.str("customer")
	switch {
	case hasCustomer && p.has("customer_email"):
		return nil, invalid("customer_email", "You may only specify one of these parameters: customer, customer_email.")
	case hasCustomer && s.get("customer", customer) == nil:
		return nil, noSuch("customer", customer, "customer", 400)
	}
	for _, nested := range []string{"subscription_data", "payment_intent_data"} {
		if e := p.sub(nested).onlyAt(nested, "metadata"); e != nil {
			return nil, e
		}
	}
	items, currency, total, e := s.lineItems(mode, p)
	if e != nil {
		return nil, e
	}

	id, t := newID("cs_test_"), s.now()
	sess := map[string]any{
		"id": id, "object": "checkout.session", "amount_subtotal": total, "amount_total": total,
		"automatic_tax": map[string]any{"enabled": false}, "created": t, "currency": currency,
		"expires_at": t + 24*60*60, "livemode": false, "metadata": applyMetadata(map[string]any{}, p),
		"mode": mode, "payment_method_collection": "always", "payment_method_types": []any{"card"},
		"payment_status": "unpaid", "status": "open", "success_url": successURL, "ui_mode": "hosted",
		"url": s.URL + "/checkout/" + id,
	}
	for _, k := range []string{"cancel_url", "client_reference_id", "customer", "customer_email",
		"customer_creation", "locale", "billing_address_collection", "submit_type"} {
		if v, ok := p.str(k); ok {
			sess[k] = v
		}
	}
	if promo, ok := p.bool("allow_promotion_codes"); ok {
		sess["allow_promotion_codes"] = promo
	}
	switch {
	case mode == "setup":
		sess["amount_subtotal"], sess["amount_total"], sess["payment_status"] = nil, nil, "no_payment_required"
	case mode == "payment" && sess["customer_creation"] == nil:
		sess["customer_creation"] = "if_required"
	}
	s.checkouts[id] = &checkoutPlan{
		lineItems:             items,
		subscriptionMetadata:  applyMetadata(map[string]any{}, p.sub("subscription_data")),
		paymentIntentMetadata: applyMetadata(map[string]any{}, p.sub("payment_intent_data")),
	}
	return s.add(sess), nil
}

// lineItems checks a Checkout Session's line items against its mode and
// returns them as Stripe shows them under expand[]=line_items.
func (s *Server) lineItems(mode string, p params) (items []any, currency any, total int64, e *apiError) {
	raw := p.list("line_items")
	switch {
	case mode == "setup" && len(raw) > 0:
		return nil, nil, 0, invalid("line_items", "You can not pass `line_items` in `setup` mode.")
	case mode != "setup" && len(raw) == 0:
		return nil, nil, 0, missing("line_items")
	}
	recurring := 0
	for i, r := range raw {
		li, at := asParams(r), fmt.Sprintf("line_items[%d]", i)
		if e := li.onlyAt(at, "price", "price_data", "quantity"); e != nil {
			return nil, nil, 0, e
		}
		qty, ok := li.int("quantity")
		switch {
		case !ok:
			return nil, nil, 0, missing(at + "[quantity]")
		case qty < 1:
			return nil, nil, 0, invalid(at+"[quantity]", "This value must be greater than or equal to 1.")
		}
		price, e := s.linePrice(li, at)
		if e != nil {
			return nil, nil, 0, e
		}
		if price["type"] == "recurring" {
			recurring++
		}
		if currency != nil && currency != price["currency"] {
			return nil, nil, 0, invalid(at, "All line items must use the same currency.")
		}
		currency = price["currency"]
		amount := price["unit_amount"].(int64) * qty
		total += amount
		name, _ := li.sub("price_data").sub("product_data").str("name")
		if prod := s.get("product", price["product"].(string)); prod != nil {
			name, _ = prod["name"].(string)
		}
		items = append(items, map[string]any{
			"id": newID("li_"), "object": "item", "amount_discount": int64(0), "amount_subtotal": amount,
			"amount_tax": int64(0), "amount_total": amount, "currency": currency, "description": name,
			"price": clone(price), "quantity": qty,
		})
	}
	switch {
	case mode == "subscription" && recurring == 0:
		return nil, nil, 0, invalid("line_items", "You must provide at least one recurring price in `subscription` mode when using prices.")
	case mode == "payment" && recurring > 0:
		return nil, nil, 0, invalid("line_items", "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.")
	}
	return items, currency, total, nil
}

// linePrice is a line item's price: an active catalog price, or one made
// from price_data that belongs to this session alone.
func (s *Server) linePrice(li params, at string) (map[string]any, *apiError) {
	id, byID := li.str("price")
	switch {
	case byID && li.has("price_data"):
		return nil, invalid(at+"[price]", "You may only specify one of these parameters: price, price_data.")
	case byID:
		price := s.get("price", id)
		if price == nil {
			return nil, noSuch("price", id, at+"[price]", 400)
		}
		if price["active"] != true {
			return nil, invalid(at+"[price]", "The price specified is inactive. This field only accepts active prices.")
		}
		return price, nil
	case li.has("price_data"):
		pd, pdAt := li.sub("price_data"), at+"[price_data]"
		if e := pd.onlyAt(pdAt, "currency", "unit_amount", "product", "product_data", "recurring"); e != nil {
			return nil, e
		}
		price, e := s.newPrice(pd, pdAt)
		if e == nil {
			price["active"] = false
		}
		return price, e
	}
	return nil, missing(at + "[price]")
}

func createPortalSession(s *Server, _ string, p params) (map[string]any, *apiError) {
	if e := p.only("customer", "return_url", "configuration", "locale"); e != nil {
		return nil, e
	}
	customer, ok := p.str("customer")
	if !ok {
		return nil, missing("customer")
	}
	if s.get("customer", customer) == nil {
		return nil, noSuch("customer", customer, "customer", 400)
	}
	// Without a configuration the account's default serves, which the fake
	// has without one being made.
	conf := "bpc_stripefake"
	if c, ok := p.str("configuration"); ok {
		stored := s.get("billing_portal.configuration", c)
		if stored == nil {
			return nil, noSuch("billing_portal.configuration", c, "configuration", 400)
		}
		if stored["active"] != true {
			return nil, invalid("configuration", "The configuration "+c+" is not active.")
		}
		conf = c
	}
	id := newID("bps_")
	return s.add(map[string]any{
		"id": id, "object": "billing_portal.session", "configuration": conf, "created": s.now(),
		"customer": customer, "livemode": false, "locale": optional(p, "locale"),
		"return_url": optional(p, "return_url"), "url": s.URL + "/billing_portal/" + id,
	}), nil
}

// CompleteCheckoutSession does what a customer paying on the hosted page
// would, and returns the completed session. A session without a customer
// gets one when its mode needs one (customer.created). A subscription-mode
// session starts an active subscription carrying subscription_data[metadata]
// and pays its first invoice (customer.subscription.created,
// charge.succeeded, invoice.paid); a payment-mode session is paid through a
// payment intent carrying payment_intent_data[metadata] (charge.succeeded).
// checkout.session.completed comes last.
func (s *Server) CompleteCheckoutSession(id string) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.get("checkout.session", id)
	if sess == nil || sess["status"] != "open" {
		return nil, fmt.Errorf("stripefake: no open checkout session %q", id)
	}
	next := clone(sess).(map[string]any)
	mode := next["mode"]
	if cus, ok := next["customer"].(string); ok && s.get("customer", cus) == nil {
		return nil, fmt.Errorf("stripefake: checkout session %q is for deleted customer %q", id, cus)
	}
	if next["customer"] == nil && (mode == "subscription" || next["customer_creation"] == "always") {
		email, _ := next["customer_email"].(string)
		cus, _ := createCustomer(s, "", params{"email": email})
		next["customer"] = cus["id"]
	}
	email := next["customer_email"]
	if cus, _ := next["customer"].(string); cus != "" {
		email = s.get("customer", cus)["email"]
	}
	next["customer_details"] = map[string]any{"email": email, "tax_exempt": "none", "tax_ids": []any{}}
	next["status"], next["payment_status"] = "complete", "paid"
	plan := s.checkouts[id]
	switch mode {
	case "subscription":
		sub, inv := s.subscribe(next["customer"].(string), plan.lineItems, plan.subscriptionMetadata, 0)
		next["subscription"], next["invoice"] = sub["id"], inv["id"]
	case "payment":
		pi := s.newPaymentIntent(next["customer"], next["amount_total"].(int64), next["currency"], nil, plan.paymentIntentMetadata)
		s.charge(pi)
		next["payment_intent"] = pi["id"]
	case "setup":
		next["payment_status"], next["setup_intent"] = "no_payment_required", newID("seti_")
	}
	s.objects[id] = next
	s.emit("checkout.session.completed", next, nil)
	return clone(next).(map[string]any), nil
}

// optional is a string param as an object field: nil when absent.
func optional(p params, key string) any {
	if v, ok := p.str(key); ok {
		return v
	}
	return nil
}
