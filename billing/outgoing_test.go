package billing_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/outgoing"
)

// told reads the events stored for the newsroom's endpoints since the
// last call: their types, sorted, and their bodies by type.
type told struct {
	t    *testing.T
	db   *sqldb.DB
	seen map[string]bool
}

func (o *told) next() ([]string, map[string]map[string]any) {
	o.t.Helper()
	rows, err := o.db.Query(`SELECT id, type, payload FROM outgoing_events`)
	if err != nil {
		o.t.Fatal(err)
	}
	defer rows.Close()
	var types []string
	bodies := map[string]map[string]any{}
	for rows.Next() {
		var id, typ, payload string
		if err := rows.Scan(&id, &typ, &payload); err != nil {
			o.t.Fatal(err)
		}
		if o.seen[id] {
			continue
		}
		o.seen[id] = true
		var env map[string]any
		if err := json.Unmarshal([]byte(payload), &env); err != nil || env["id"] != id || env["type"] != typ {
			o.t.Fatalf("stored body %s (%v)", payload, err)
		}
		types = append(types, typ)
		bodies[typ] = env["data"].(map[string]any)
	}
	slices.Sort(types)
	return types, bodies
}

func (o *told) want(step string, want ...string) map[string]map[string]any {
	o.t.Helper()
	got, bodies := o.next()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		o.t.Fatalf("%s: the newsroom was told %v, want %v", step, got, want)
	}
	return bodies
}

func field(data map[string]any, obj, key string) any {
	m, _ := data[obj].(map[string]any)
	return m[key]
}

// A patron's life — joining, a renewal, an upgrade, a failed payment and
// its recovery, a cancellation that ends at the period's end — tells the
// newsroom's endpoints each change once, with what changed.
func TestAPatronsLifeIsToldToTheNewsroom(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		for _, mode := range []billing.WebhookMode{billing.ModeFetch, billing.ModePayload} {
			t.Run(string(mode), func(t *testing.T) {
				if mode == billing.ModePayload {
					db = freshDB(t, db)
				}
				hooks := outgoing.NewService(outgoing.Deps{DB: db})
				url, all := "https://93.184.215.14/hooks", []string{"*"}
				if _, _, err := hooks.CreateEndpoint(context.Background(), members.CommandLine, outgoing.EndpointInput{URL: &url, Events: &all}); err != nil {
					t.Fatal(err)
				}
				w := newWorld(t, db, mode, hooks)
				o := &told{t: t, db: db, seen: map[string]bool{}}

				_, subID := w.subscribe("life@example.org", "coffee", "month")
				w.deliver(w.stripe.TakeEvents()...)
				got := o.want("join", "member.created", "membership.activated")
				if field(got["membership.activated"], "member", "email") != "life@example.org" ||
					field(got["membership.activated"], "membership", "tier") != "coffee" ||
					field(got["membership.activated"], "membership", "interval") != "month" ||
					field(got["membership.activated"], "membership", "status") != "active" ||
					field(got["membership.activated"], "previous", "active") != false {
					t.Fatalf("membership.activated says %v", got["membership.activated"])
				}

				if _, err := w.stripe.RenewSubscription(subID, true); err != nil {
					t.Fatal(err)
				}
				w.syncClock(w.stripeNow())
				w.deliver(w.stripe.TakeEvents()...)
				o.want("a paid renewal")

				w.step(time.Hour)
				if err := w.stripe.ChangePrice(subID, w.priceID("press", "month")); err != nil {
					t.Fatal(err)
				}
				w.deliver(w.stripe.TakeEvents()...)
				got = o.want("upgrade", "membership.changed")
				if field(got["membership.changed"], "membership", "tier") != "press" || field(got["membership.changed"], "previous", "tier") != "coffee" {
					t.Fatalf("membership.changed says %v", got["membership.changed"])
				}

				failed, err := w.stripe.RenewSubscription(subID, false)
				if err != nil {
					t.Fatal(err)
				}
				w.syncClock(w.stripeNow())
				w.deliver(w.stripe.TakeEvents()...)
				got = o.want("payment failure", "membership.past_due")
				if field(got["membership.past_due"], "membership", "status") != "past_due" || field(got["membership.past_due"], "membership", "active") != true {
					t.Fatalf("membership.past_due says %v", got["membership.past_due"])
				}

				w.step(3 * 24 * time.Hour)
				if err := w.stripe.PayInvoice(failed); err != nil {
					t.Fatal(err)
				}
				w.deliver(w.stripe.TakeEvents()...)
				got = o.want("recovery", "membership.activated")
				if field(got["membership.activated"], "previous", "status") != "past_due" {
					t.Fatalf("recovery says %v", got["membership.activated"])
				}

				w.step(24 * time.Hour)
				if err := w.stripe.SetCancelAtPeriodEnd(subID, true); err != nil {
					t.Fatal(err)
				}
				w.deliver(w.stripe.TakeEvents()...)
				o.want("cancel at period end") // still a patron until then
				sub, _ := w.stripe.Subscription(subID)
				w.step(time.Unix(sub["current_period_end"].(int64), 0).UTC().Sub(w.now))
				if err := w.stripe.EndSubscription(subID); err != nil {
					t.Fatal(err)
				}
				w.deliver(w.stripe.TakeEvents()...)
				got = o.want("end", "membership.ended")
				if field(got["membership.ended"], "membership", "status") != "none" || field(got["membership.ended"], "previous", "tier") != "press" {
					t.Fatalf("membership.ended says %v", got["membership.ended"])
				}
				// Delivering the whole season again tells nothing twice.
				w.deliver(w.stripe.Events()...)
				o.want("every event again")

			})
		}
	})
}
