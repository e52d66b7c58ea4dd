package stripefake

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
)

// The account's own objects that `patronage stripe setup-webhook`,
// `setup-portal` and `doctor` work on: the account, webhook endpoints and
// billing portal configurations.

// maxWebhookEndpoints is Stripe's limit of endpoints per account and mode.
const maxWebhookEndpoints = 16

func getAccount(s *Server, _ string, p params) (map[string]any, *apiError) {
	if e := p.only(); e != nil {
		return nil, e
	}
	return map[string]any{
		"id": "acct_stripefake", "object": "account", "type": "standard", "country": "DE", "default_currency": "eur",
		"charges_enabled": true, "payouts_enabled": true, "details_submitted": true, "email": "newsroom@example.org",
		"business_profile": map[string]any{"name": "stripefake"},
	}, nil
}

var (
	eventName   = regexp.MustCompile(`^(\*|[a-z_]+(\.[a-z_]+)+)$`)
	versionDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

func createWebhookEndpoint(s *Server, _ string, p params) (map[string]any, *apiError) {
	if e := p.only("url", "enabled_events", "api_version", "description", "metadata", "connect"); e != nil {
		return nil, e
	}
	if _, ok := p.str("url"); !ok {
		return nil, missing("url")
	}
	if !p.has("enabled_events") {
		return nil, missing("enabled_events")
	}
	live := 0
	for _, id := range s.order["webhook_endpoint"] {
		if s.objects[id]["deleted"] != true {
			live++
		}
	}
	if live >= maxWebhookEndpoints {
		return nil, invalid("url", fmt.Sprintf("You have reached the maximum of %d test webhook endpoints.", maxWebhookEndpoints))
	}
	// Without api_version the endpoint follows the account's default
	// version, and Stripe shows its api_version as null.
	var version any
	if v, ok := p.str("api_version"); ok {
		if !versionDate.MatchString(v) {
			return nil, invalid("api_version", "Invalid API version: "+v)
		}
		version = v
	}
	connect, _ := p.bool("connect")
	id := newID("we_")
	ep := map[string]any{
		"id": id, "object": "webhook_endpoint", "api_version": version, "application": nil, "created": s.now(),
		"description": nil, "enabled_events": []any{}, "livemode": false, "metadata": map[string]any{},
		"status": "enabled", "url": "",
	}
	if connect {
		ep["connect"] = true
	}
	if e := setWebhookEndpointFields(ep, p); e != nil {
		return nil, e
	}
	s.add(ep)
	// Stripe shows the signing secret in the answer to the create alone.
	out := clone(ep).(map[string]any)
	out["secret"] = newID("whsec_")
	return out, nil
}

func updateWebhookEndpoint(s *Server, id string, p params) (map[string]any, *apiError) {
	if e := p.only("url", "enabled_events", "description", "metadata", "disabled"); e != nil {
		return nil, e
	}
	ep := s.get("webhook_endpoint", id)
	if ep == nil {
		return nil, noSuch("webhook_endpoint", id, "id", 404)
	}
	next := clone(ep).(map[string]any)
	if e := setWebhookEndpointFields(next, p); e != nil {
		return nil, e
	}
	if disabled, ok := p.bool("disabled"); ok {
		next["status"] = map[bool]string{true: "disabled", false: "enabled"}[disabled]
	}
	s.objects[id] = next
	return next, nil
}

// setWebhookEndpointFields applies the params a create and an update share.
func setWebhookEndpointFields(ep map[string]any, p params) *apiError {
	if raw, ok := p.str("url"); ok {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return invalid("url", "Invalid URL: "+raw)
		}
		ep["url"] = raw
	}
	if p.has("enabled_events") {
		events := p.strs("enabled_events")
		if len(events) == 0 {
			return invalid("enabled_events", "You must specify at least one event in enabled_events.")
		}
		list := []any{}
		for i, ev := range events {
			if !eventName.MatchString(ev) {
				return invalid(fmt.Sprintf("enabled_events[%d]", i), fmt.Sprintf("Invalid event type: %s", ev))
			}
			list = append(list, ev)
		}
		ep["enabled_events"] = list
	}
	if d, ok := p.str("description"); ok {
		ep["description"] = nullIfEmpty(d)
	}
	ep["metadata"] = applyMetadata(ep["metadata"].(map[string]any), p)
	return nil
}

func listWebhookEndpoints(s *Server, _ string, p params) (map[string]any, *apiError) {
	return s.list("webhook_endpoint", p, func(ep map[string]any) bool { return ep["deleted"] != true })
}

func deleteWebhookEndpoint(s *Server, id string, p params) (map[string]any, *apiError) {
	if e := p.only(); e != nil {
		return nil, e
	}
	if s.get("webhook_endpoint", id) == nil {
		return nil, noSuch("webhook_endpoint", id, "id", 404)
	}
	stub := map[string]any{"id": id, "object": "webhook_endpoint", "deleted": true}
	s.objects[id] = stub
	return stub, nil
}

// WebhookEndpoints returns the endpoints not deleted, oldest first.
func (s *Server) WebhookEndpoints() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, id := range s.order["webhook_endpoint"] {
		if ep := s.get("webhook_endpoint", id); ep != nil {
			out = append(out, clone(ep).(map[string]any))
		}
	}
	return out
}

// PortalConfiguration returns a billing portal configuration.
func (s *Server) PortalConfiguration(id string) (map[string]any, bool) {
	return s.lookup("billing_portal.configuration", id)
}

var (
	cancellationReasons = []string{"customer_service", "low_quality", "missing_features", "other", "switched_service", "too_complex", "too_expensive", "unused"}
	prorations          = []string{"always_invoice", "create_prorations", "none"}
	portalFields        = []string{"business_profile", "default_return_url", "features", "login_page", "metadata"}
)

func createPortalConfiguration(s *Server, _ string, p params) (map[string]any, *apiError) {
	if e := p.only(portalFields...); e != nil {
		return nil, e
	}
	for _, key := range []string{"business_profile", "features"} {
		if !p.has(key) {
			return nil, missing(key)
		}
	}
	t := s.now()
	conf := map[string]any{
		"id": newID("bpc_"), "object": "billing_portal.configuration", "active": true, "application": nil,
		"business_profile": map[string]any{"headline": nil, "privacy_policy_url": nil, "terms_of_service_url": nil},
		"created":          t, "default_return_url": nil, "is_default": false, "livemode": false,
		"login_page": map[string]any{"enabled": false, "url": nil}, "metadata": map[string]any{}, "updated": t,
		"features": map[string]any{
			"customer_update":       map[string]any{"allowed_updates": []any{}, "enabled": false},
			"invoice_history":       map[string]any{"enabled": false},
			"payment_method_update": map[string]any{"enabled": false},
			"subscription_cancel": map[string]any{
				"cancellation_reason": map[string]any{"enabled": false, "options": []any{}},
				"enabled":             false, "mode": "at_period_end", "proration_behavior": "none",
			},
			"subscription_pause": map[string]any{"enabled": false},
			"subscription_update": map[string]any{
				"default_allowed_updates": []any{}, "enabled": false, "products": []any{}, "proration_behavior": "none",
			},
		},
	}
	if e := s.setPortalFields(conf, p, true); e != nil {
		return nil, e
	}
	return s.add(conf), nil
}

func updatePortalConfiguration(s *Server, id string, p params) (map[string]any, *apiError) {
	if e := p.only(append(portalFields, "active")...); e != nil {
		return nil, e
	}
	conf := s.get("billing_portal.configuration", id)
	if conf == nil {
		return nil, noSuch("billing_portal.configuration", id, "configuration", 404)
	}
	next := clone(conf).(map[string]any)
	if e := s.setPortalFields(next, p, false); e != nil {
		return nil, e
	}
	if active, ok := p.bool("active"); ok {
		next["active"] = active
	}
	next["updated"] = s.now()
	s.objects[id] = next
	return next, nil
}

func listPortalConfigurations(s *Server, _ string, p params) (map[string]any, *apiError) {
	active, byActive := p.bool("active")
	def, byDefault := p.bool("is_default")
	list, e := s.list("billing_portal.configuration", p, func(c map[string]any) bool {
		return (!byActive || c["active"] == active) && (!byDefault || c["is_default"] == def)
	}, "active", "is_default")
	if list != nil {
		list["url"] = "/v1/billing_portal/configurations"
	}
	return list, e
}

// setPortalFields applies a create's or an update's params; nested hashes
// change only the fields they name, as Stripe's do, and a list given
// replaces the list.
func (s *Server) setPortalFields(conf map[string]any, p params, creating bool) *apiError {
	if bp := p.sub("business_profile"); p.has("business_profile") {
		if e := bp.onlyAt("business_profile", "headline", "privacy_policy_url", "terms_of_service_url"); e != nil {
			return e
		}
		profile := conf["business_profile"].(map[string]any)
		for k, v := range bp {
			if k == "headline" && len(v.(string)) > 60 {
				return invalid("business_profile[headline]", "Invalid string: must be at most 60 characters")
			}
			profile[k] = nullIfEmpty(v.(string))
		}
	}
	if u, ok := p.str("default_return_url"); ok {
		conf["default_return_url"] = nullIfEmpty(u)
	}
	if lp := p.sub("login_page"); p.has("login_page") {
		enabled, _ := lp.bool("enabled")
		conf["login_page"].(map[string]any)["enabled"] = enabled
	}
	conf["metadata"] = applyMetadata(conf["metadata"].(map[string]any), p)
	if !p.has("features") {
		return nil
	}
	f := p.sub("features")
	if e := f.onlyAt("features", "customer_update", "invoice_history", "payment_method_update", "subscription_cancel", "subscription_pause", "subscription_update"); e != nil {
		return e
	}
	features := conf["features"].(map[string]any)
	for _, name := range []string{"customer_update", "invoice_history", "payment_method_update", "subscription_pause"} {
		if !f.has(name) {
			continue
		}
		sub, feature := f.sub(name), features[name].(map[string]any)
		enabled, ok := sub.bool("enabled")
		if !ok && creating && name != "subscription_pause" {
			return missing("features[" + name + "][enabled]")
		}
		if ok {
			feature["enabled"] = enabled
		}
		if name == "customer_update" && sub.has("allowed_updates") {
			feature["allowed_updates"] = anyList(sub.strs("allowed_updates"))
		}
	}
	if f.has("subscription_cancel") {
		sub, feature := f.sub("subscription_cancel"), features["subscription_cancel"].(map[string]any)
		if enabled, ok := sub.bool("enabled"); ok {
			feature["enabled"] = enabled
		} else if creating {
			return missing("features[subscription_cancel][enabled]")
		}
		if mode, ok := sub.str("mode"); ok {
			if mode != "at_period_end" && mode != "immediately" {
				return invalid("features[subscription_cancel][mode]", "Invalid features[subscription_cancel][mode]: must be one of at_period_end or immediately")
			}
			feature["mode"] = mode
		}
		if pb, ok := sub.str("proration_behavior"); ok {
			if !slices.Contains(prorations, pb) {
				return invalid("features[subscription_cancel][proration_behavior]", "Invalid proration_behavior: "+pb)
			}
			feature["proration_behavior"] = pb
		}
		if cr := sub.sub("cancellation_reason"); sub.has("cancellation_reason") {
			reason := feature["cancellation_reason"].(map[string]any)
			if enabled, ok := cr.bool("enabled"); ok {
				reason["enabled"] = enabled
			}
			options := cr.strs("options")
			for i, o := range options {
				if !slices.Contains(cancellationReasons, o) {
					return invalid(fmt.Sprintf("features[subscription_cancel][cancellation_reason][options][%d]", i), "Invalid cancellation reason: "+o)
				}
			}
			reason["options"] = anyList(options)
		}
	}
	if f.has("subscription_update") {
		sub, feature := f.sub("subscription_update"), features["subscription_update"].(map[string]any)
		if creating {
			for _, key := range []string{"enabled", "default_allowed_updates", "products"} {
				if !sub.has(key) {
					return missing("features[subscription_update][" + key + "]")
				}
			}
		}
		if enabled, ok := sub.bool("enabled"); ok {
			feature["enabled"] = enabled
		}
		if sub.has("default_allowed_updates") {
			updates := sub.strs("default_allowed_updates")
			for i, u := range updates {
				if u != "price" && u != "quantity" && u != "promotion_code" {
					return invalid(fmt.Sprintf("features[subscription_update][default_allowed_updates][%d]", i), "Invalid allowed update: "+u)
				}
			}
			feature["default_allowed_updates"] = anyList(updates)
		}
		if pb, ok := sub.str("proration_behavior"); ok {
			if !slices.Contains(prorations, pb) {
				return invalid("features[subscription_update][proration_behavior]", "Invalid proration_behavior: "+pb)
			}
			feature["proration_behavior"] = pb
		}
		if sub.has("products") {
			products, e := s.portalProducts(sub.list("products"))
			if e != nil {
				return e
			}
			feature["products"] = products
		}
		if feature["enabled"] == true && len(feature["products"].([]any)) == 0 {
			return invalid("features[subscription_update][products]", "You must specify at least one product when subscription updates are enabled.")
		}
	}
	return nil
}

// portalProducts checks the products a portal may switch between: each
// exists, and each price is an active recurring price of that product.
func (s *Server) portalProducts(items []any) ([]any, *apiError) {
	if len(items) > 10 {
		return nil, invalid("features[subscription_update][products]", "You can specify at most 10 products.")
	}
	out := []any{}
	for i, item := range items {
		at := fmt.Sprintf("features[subscription_update][products][%d]", i)
		ip, _ := item.(params)
		product, _ := ip.str("product")
		if product == "" {
			return nil, missing(at + "[product]")
		}
		if s.get("product", product) == nil {
			return nil, noSuch("product", product, at+"[product]", 400)
		}
		prices := ip.strs("prices")
		if len(prices) == 0 {
			return nil, missing(at + "[prices]")
		}
		for j, id := range prices {
			price := s.get("price", id)
			switch {
			case price == nil:
				return nil, noSuch("price", id, fmt.Sprintf("%s[prices][%d]", at, j), 400)
			case price["product"] != product:
				return nil, invalid(fmt.Sprintf("%s[prices][%d]", at, j), fmt.Sprintf("The price %s does not belong to the product %s.", id, product))
			case price["active"] != true || price["recurring"] == nil:
				return nil, invalid(fmt.Sprintf("%s[prices][%d]", at, j), fmt.Sprintf("The price %s must be an active recurring price.", id))
			}
		}
		out = append(out, map[string]any{"product": product, "prices": anyList(prices)})
	}
	return out, nil
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
