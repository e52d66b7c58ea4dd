package stripefake

import (
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// apiVersion is the version the fake's objects are shaped for, and the one
// its events are rendered at unless AtAPIVersion says otherwise.
const apiVersion = "2023-10-16"

// Events returns every event recorded so far, oldest first.
func (s *Server) Events() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events(0)
}

// TakeEvents returns the events recorded since the previous TakeEvents call,
// oldest first: what Stripe would have delivered in the meantime.
func (s *Server) TakeEvents() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.events(s.taken)
	s.taken = len(s.order["event"])
	return out
}

func (s *Server) events(from int) []map[string]any {
	ids := s.order["event"][from:]
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, clone(s.objects[id]).(map[string]any))
	}
	return out
}

// emit records an event about obj, a snapshot taken now: Stripe's event
// carries the object as it was when the event happened, not as it is when
// the event is read. prev, for *.updated events, holds the changed fields'
// old values. The caller holds s.mu.
func (s *Server) emit(typ string, obj, prev map[string]any) {
	data := map[string]any{"object": clone(obj)}
	if prev != nil {
		data["previous_attributes"] = clone(prev)
	}
	req := map[string]any{"id": nil, "idempotency_key": nil}
	if s.req != nil {
		req = clone(s.req).(map[string]any)
	}
	s.add(map[string]any{
		"id": newID("evt_"), "object": "event", "api_version": apiVersion, "created": s.now(),
		"data": data, "livemode": false, "pending_webhooks": int64(1), "request": req, "type": typ,
	})
}

// update stores next in place of old and records the typ event when
// anything changed: Stripe sends no *.updated event for an update that
// changes nothing. The caller holds s.mu.
func (s *Server) update(old, next map[string]any, typ string) {
	s.objects[next["id"].(string)] = next
	s.updated(typ, old, next)
}

// updated records the typ event for obj, whose values before the change
// are in before, when anything changed. An object with an "updated"
// timestamp has it moved to now, as Stripe does on a real change.
func (s *Server) updated(typ string, before, obj map[string]any) {
	prev := changes(before, obj)
	if len(prev) == 0 {
		return
	}
	if _, ok := obj["updated"]; ok {
		obj["updated"] = s.now()
		if obj["updated"] != before["updated"] {
			prev["updated"] = before["updated"]
		}
	}
	s.emit(typ, obj, prev)
}

// changes is previous_attributes: the top-level fields of after that
// differ from before, with before's values (nil for a field before lacked).
func changes(before, after map[string]any) map[string]any {
	prev := map[string]any{}
	for k, v := range after {
		if k != "updated" && !reflect.DeepEqual(before[k], v) {
			prev[k] = clone(before[k])
		}
	}
	for k, v := range before {
		if _, ok := after[k]; !ok {
			prev[k] = clone(v)
		}
	}
	return prev
}

func listEvents(s *Server, _ string, p params) (map[string]any, *apiError) {
	typ, byType := p.str("type")
	types := p.strs("types")
	switch {
	case byType && p.has("types"):
		return nil, invalid("types", "You may pass either `type` or `types`, but not both.")
	case len(types) > 20:
		return nil, invalid("types", "You may pass at most 20 types.")
	}
	inRange, e := createdFilter(p)
	if e != nil {
		return nil, e
	}
	return s.list("event", p, func(ev map[string]any) bool {
		t := ev["type"].(string)
		if byType {
			// Stripe's * wildcard: "invoice.*" or "customer.subscription.*".
			if ok, _ := path.Match(typ, t); !ok {
				return false
			}
		}
		return (!p.has("types") || slices.Contains(types, t)) && inRange(ev)
	}, "type", "types", "created")
}

// createdFilter reads the created param of a list: a timestamp, or bounds
// in created[gt], [gte], [lt] and [lte].
func createdFilter(p params) (func(map[string]any) bool, *apiError) {
	if !p.has("created") {
		return func(map[string]any) bool { return true }, nil
	}
	if _, exact := p.str("created"); exact {
		n, ok := p.int("created")
		if !ok {
			return nil, invalid("created", "Invalid integer: "+p["created"].(string))
		}
		return func(obj map[string]any) bool { return obj["created"] == n }, nil
	}
	r := p.sub("created")
	if e := r.onlyAt("created", "gt", "gte", "lt", "lte"); e != nil {
		return nil, e
	}
	bounds := map[string]int64{}
	for k, v := range r {
		n, ok := r.int(k)
		if !ok {
			return nil, invalid("created["+k+"]", fmt.Sprintf("Invalid integer: %v", v))
		}
		bounds[k] = n
	}
	return func(obj map[string]any) bool {
		c := obj["created"].(int64)
		for k, n := range bounds {
			if k == "gt" && c <= n || k == "gte" && c < n || k == "lt" && c >= n || k == "lte" && c > n {
				return false
			}
		}
		return true
	}, nil
}

// basil is the first API version that moved subscription periods onto
// items and invoices' subscription under parent.
const basil = "2025-03-31"

// AtAPIVersion returns a copy of ev as Stripe renders it for a webhook
// endpoint pinned to version, so a test can check that a handler copes with
// an endpoint on a newer version than the code's. From 2025-03-31 (basil)
// on, a subscription's current_period_start and current_period_end move
// onto each of its items, and an invoice loses subscription, paid, charge,
// payment_intent and tax and gains parent and total_taxes. Invoice line
// items and discounts keep their 2023-10-16 shape. For older versions only
// api_version changes.
func AtAPIVersion(ev map[string]any, version string) map[string]any {
	out := clone(ev).(map[string]any)
	out["api_version"] = version
	if date, _, _ := strings.Cut(version, "."); date < basil {
		return out
	}
	data, _ := out["data"].(map[string]any)
	obj, _ := data["object"].(map[string]any)
	prev, _ := data["previous_attributes"].(map[string]any)
	switch obj["object"] {
	case "subscription":
		basilSubscription(obj, prev)
	case "invoice":
		basilInvoice(obj, prev)
	}
	return out
}

var periodFields = []string{"current_period_start", "current_period_end"}

func basilSubscription(sub, prev map[string]any) {
	setOnItems := func(items any, values map[string]any) {
		list, _ := items.(map[string]any)
		data, _ := list["data"].([]any)
		for _, item := range data {
			for k, v := range values {
				item.(map[string]any)[k] = v
			}
		}
	}
	period := map[string]any{}
	for _, k := range periodFields {
		period[k] = sub[k]
		delete(sub, k)
	}
	setOnItems(sub["items"], period)
	if prev == nil {
		return
	}
	// A changed period shows, as in basil, as the items' old values.
	old := map[string]any{}
	for _, k := range periodFields {
		if v, ok := prev[k]; ok {
			old[k] = v
			delete(prev, k)
		}
	}
	if len(old) == 0 {
		return
	}
	if _, ok := prev["items"]; !ok {
		prev["items"] = clone(sub["items"])
	}
	setOnItems(prev["items"], old)
}

func basilInvoice(inv, prev map[string]any) {
	var parent any
	if sub, ok := inv["subscription"].(string); ok {
		parent = map[string]any{
			"type":                 "subscription_details",
			"subscription_details": map[string]any{"subscription": sub, "metadata": map[string]any{}},
			"quote_details":        nil,
		}
	}
	for _, k := range []string{"subscription", "paid", "charge", "payment_intent", "tax"} {
		delete(inv, k)
		delete(prev, k)
	}
	inv["parent"] = parent
	inv["total_taxes"] = []any{}
}

// SignedDelivery is ev as Stripe would POST it to a webhook endpoint whose
// signing secret is secret: the JSON body and the Stripe-Signature header,
// signed at at.
func SignedDelivery(ev map[string]any, secret string, at time.Time) (body []byte, header string) {
	body, err := json.Marshal(ev)
	if err != nil {
		// Events are built from JSON values only; this is a caller's
		// hand-made event with something else in it.
		panic(fmt.Sprintf("stripefake: event does not encode as JSON: %v", err))
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return body, signed.Header
}
