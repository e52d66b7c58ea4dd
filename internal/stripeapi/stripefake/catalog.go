package stripefake

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Objects leave out the fields that are null in everything the fake makes:
// stripe-go decodes an absent field and a null one alike, and so does a map
// lookup.

var productFields = []string{"name", "description", "active", "metadata", "features"}

func createProduct(s *Server, _ string, p params) (map[string]any, *apiError) {
	if e := p.only(append(productFields, "id")...); e != nil {
		return nil, e
	}
	if _, ok := p.str("name"); !ok {
		return nil, missing("name")
	}
	id, custom := p.str("id")
	if !custom {
		id = newID("prod_")
	}
	if s.objects[id] != nil {
		return nil, &apiError{status: 400, Type: "invalid_request_error", Code: "resource_already_exists", Param: "id",
			Message: "Product already exists."}
	}
	t := s.now()
	prod := map[string]any{
		"id": id, "object": "product", "active": true, "attributes": []any{}, "created": t,
		"features": []any{}, "images": []any{}, "livemode": false, "metadata": map[string]any{},
		"type": "service", "updated": t,
	}
	if e := setProductFields(prod, p); e != nil {
		return nil, e
	}
	s.add(prod)
	s.emit("product.created", prod, nil)
	return prod, nil
}

func updateProduct(s *Server, id string, p params) (map[string]any, *apiError) {
	if e := p.only(productFields...); e != nil {
		return nil, e
	}
	prod := s.get("product", id)
	if prod == nil {
		return nil, noSuch("product", id, "id", 404)
	}
	next := clone(prod).(map[string]any)
	if e := setProductFields(next, p); e != nil {
		return nil, e
	}
	s.update(prod, next, "product.updated")
	return next, nil
}

// setProductFields applies the params a create and an update share.
func setProductFields(prod map[string]any, p params) *apiError {
	if name, ok := p.str("name"); ok {
		if name == "" {
			return invalid("name", "You must supply a non-empty value for name.")
		}
		prod["name"] = name
	}
	if d, ok := p.str("description"); ok {
		prod["description"] = nullIfEmpty(d)
	}
	if active, ok := p.bool("active"); ok {
		prod["active"] = active
	}
	if p.has("features") {
		features := []any{}
		for i, f := range p.list("features") {
			name, _ := asParams(f).str("name")
			if name == "" {
				return missing(fmt.Sprintf("features[%d][name]", i))
			}
			features = append(features, map[string]any{"name": name})
		}
		prod["features"] = features
	}
	prod["metadata"] = applyMetadata(prod["metadata"].(map[string]any), p)
	return nil
}

func listProducts(s *Server, _ string, p params) (map[string]any, *apiError) {
	active, byActive := p.bool("active")
	return s.list("product", p, func(prod map[string]any) bool {
		return !byActive || prod["active"] == active
	}, "active")
}

var priceFields = []string{"active", "lookup_key", "transfer_lookup_key", "metadata", "nickname"}

func createPrice(s *Server, _ string, p params) (map[string]any, *apiError) {
	if e := p.only(append(priceFields, "product", "currency", "unit_amount", "recurring")...); e != nil {
		return nil, e
	}
	if p.has("product_data") {
		return nil, invalid("product_data", "stripefake: create the product first; product_data is imitated only in Checkout's price_data")
	}
	price, e := s.newPrice(p, "")
	if e != nil {
		return nil, e
	}
	if e := s.setPriceFields(price, p); e != nil {
		return nil, e
	}
	s.add(price)
	s.emit("price.created", price, nil)
	return price, nil
}

var currencyCode = regexp.MustCompile(`^[a-zA-Z]{3}$`)

// newPrice builds a price, not yet stored, from the params a price create
// and a Checkout line item's price_data share. at names them in errors
// ("line_items[0][price_data]").
func (s *Server) newPrice(p params, at string) (map[string]any, *apiError) {
	name := func(key string) string {
		if at == "" {
			return key
		}
		head, tail, _ := strings.Cut(key, "[")
		if tail != "" {
			tail = "[" + tail
		}
		return at + "[" + head + "]" + tail
	}
	currency, _ := p.str("currency")
	switch {
	case currency == "":
		return nil, missing(name("currency"))
	case !currencyCode.MatchString(currency):
		return nil, invalid(name("currency"), "Invalid currency: "+currency)
	}
	amount, ok := p.int("unit_amount")
	switch {
	case !ok:
		return nil, missing(name("unit_amount"))
	case amount < 0:
		return nil, invalid(name("unit_amount"), "This value must be greater than or equal to 0.")
	}
	product, hasProduct := p.str("product")
	productName, _ := p.sub("product_data").str("name")
	switch {
	case hasProduct && s.get("product", product) == nil:
		return nil, noSuch("product", product, name("product"), 400)
	case !hasProduct && productName == "":
		return nil, missing(name("product"))
	case !hasProduct:
		product = newID("prod_") // price_data's product lives only in the session
	}
	price := map[string]any{
		"id": newID("price_"), "object": "price", "active": true, "billing_scheme": "per_unit",
		"created": s.now(), "currency": strings.ToLower(currency), "livemode": false,
		"metadata": map[string]any{}, "product": product, "tax_behavior": "unspecified",
		"type": "one_time", "unit_amount": amount, "unit_amount_decimal": strconv.FormatInt(amount, 10),
	}
	if p.has("recurring") {
		interval, _ := p.sub("recurring").str("interval")
		if !slices.Contains([]string{"day", "week", "month", "year"}, interval) {
			return nil, invalid(name("recurring[interval]"), "Invalid recurring[interval]: must be one of day, month, week, or year")
		}
		count, ok := p.sub("recurring").int("interval_count")
		if !ok {
			count = 1
		}
		price["type"] = "recurring"
		price["recurring"] = map[string]any{"interval": interval, "interval_count": count, "usage_type": "licensed"}
	}
	return price, nil
}

func updatePrice(s *Server, id string, p params) (map[string]any, *apiError) {
	// Not unit_amount, currency nor recurring: what a price charges never
	// changes, and Stripe rejects them as unknown params.
	if e := p.only(priceFields...); e != nil {
		return nil, e
	}
	price := s.get("price", id)
	if price == nil {
		return nil, noSuch("price", id, "id", 404)
	}
	next := clone(price).(map[string]any)
	if e := s.setPriceFields(next, p); e != nil {
		return nil, e
	}
	s.update(price, next, "price.updated")
	return next, nil
}

// setPriceFields applies the params a create and an update share. Lookup
// keys are unique across all prices, active or not: taking one that another
// price holds needs transfer_lookup_key, which clears it from the holder.
func (s *Server) setPriceFields(price map[string]any, p params) *apiError {
	if active, ok := p.bool("active"); ok {
		price["active"] = active
	}
	if n, ok := p.str("nickname"); ok {
		price["nickname"] = nullIfEmpty(n)
	}
	price["metadata"] = applyMetadata(price["metadata"].(map[string]any), p)
	key, ok := p.str("lookup_key")
	if !ok {
		return nil
	}
	transfer, _ := p.bool("transfer_lookup_key")
	for _, id := range s.order["price"] {
		holder := s.objects[id]
		if key == "" || id == price["id"] || holder["lookup_key"] != key {
			continue
		}
		if !transfer {
			return invalid("lookup_key", fmt.Sprintf("A price (`%s`) already uses that lookup key.", id))
		}
		moved := clone(holder).(map[string]any)
		moved["lookup_key"] = nil
		s.update(holder, moved, "price.updated")
	}
	price["lookup_key"] = nullIfEmpty(key)
	return nil
}

func listPrices(s *Server, _ string, p params) (map[string]any, *apiError) {
	keys := p.strs("lookup_keys")
	if len(keys) > 10 {
		return nil, invalid("lookup_keys", "You may pass at most 10 lookup keys.")
	}
	active, byActive := p.bool("active")
	return s.list("price", p, func(price map[string]any) bool {
		key, _ := price["lookup_key"].(string)
		return (!byActive || price["active"] == active) &&
			(!p.has("lookup_keys") || slices.Contains(keys, key) && key != "") &&
			matches(p, "product", price["product"]) && matches(p, "type", price["type"]) &&
			matches(p, "currency", price["currency"])
	}, "active", "lookup_keys", "product", "currency", "type")
}

// matches reports whether the filter param key is absent or equals v
// (ignoring case).
func matches(p params, key string, v any) bool {
	want, ok := p.str(key)
	got, _ := v.(string)
	return !ok || strings.EqualFold(want, got)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func asParams(v any) params {
	p, _ := v.(params)
	return p
}
