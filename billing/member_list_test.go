package billing

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
)

// Staff's member list filters by access, tier and text (a literal % or _
// matches only itself) and pages by id, on both databases.
func TestListMembersFiltersAndPages(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s := NewService(Deps{DB: db})
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, m := range []struct {
			name   string
			active bool
			tier   string
		}{{"Ada_1", true, "coffee"}, {"Bob", true, "lunch"}, {"Cy 50%", false, ""}, {"Dee", false, "coffee"}} {
			id := fmt.Sprintf("mem_%d", i)
			if _, err := db.Exec(`INSERT INTO members (id, email, name, role, created_at, updated_at) VALUES ($1, $2, $3, 'patron', $4, $4)`,
				id, fmt.Sprintf("p%d@example.org", i), m.name, now); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`INSERT INTO member_access (member_id, active, source, tier_slug, changed_at) VALUES ($1, $2, 'subscription', $3, $4)`,
				id, m.active, m.tier, now); err != nil {
				t.Fatal(err)
			}
		}
		names := func(f MemberFilter) []string {
			t.Helper()
			if f.Limit == 0 {
				f.Limit = 10
			}
			rows, err := s.ListMembers(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range rows {
				out = append(out, r.Member.Name)
			}
			return out
		}
		for _, tt := range []struct {
			f    MemberFilter
			want string
		}{
			{MemberFilter{Status: "active"}, "[Ada_1 Bob]"},
			{MemberFilter{Status: "inactive"}, "[Cy 50% Dee]"},
			{MemberFilter{Tier: "coffee"}, "[Ada_1]"}, // Dee's coffee access has ended
			{MemberFilter{Query: "a_"}, "[Ada_1]"},
			{MemberFilter{Query: "50%"}, "[Cy 50%]"},
			{MemberFilter{Query: "P2@EXAMPLE"}, "[Cy 50%]"},
			{MemberFilter{Limit: 2}, "[Ada_1 Bob]"},
			{MemberFilter{Limit: 2, After: "mem_1"}, "[Cy 50% Dee]"},
		} {
			if got := fmt.Sprint(names(tt.f)); got != tt.want {
				t.Errorf("%+v: %s, want %s", tt.f, got, tt.want)
			}
		}
	})
}

// A complimentary grant gives access at once and its revocation takes it
// back, on both databases.
func TestComplimentaryGrantAndRevoke(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s := NewService(Deps{DB: db})
		now := time.Now().UTC()
		if _, err := db.Exec(`INSERT INTO members (id, email, role, created_at, updated_at) VALUES ('mem_g', 'g@example.org', 'patron', $1, $1)`, now); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO tiers (slug, name, created_at, updated_at) VALUES ('coffee', 'Coffee', $1, $1)`, now); err != nil {
			t.Fatal(err)
		}
		until := now.Add(48 * time.Hour)
		a, err := s.GrantComplimentary(ctx, members.CommandLine, "mem_g", GrantInput{Tier: "coffee", Until: &until})
		if err != nil || !a.Active || a.Source != "complimentary" || a.Tier != "coffee" {
			t.Fatalf("after the grant: %+v, %v", a, err)
		}
		if a, err = s.RevokeComplimentary(ctx, members.CommandLine, "mem_g"); err != nil || a.Active {
			t.Fatalf("after the revocation: %+v, %v", a, err)
		}
		if _, err := s.RevokeComplimentary(ctx, members.CommandLine, "mem_g"); !errs.Is(err, errs.NotFound) {
			t.Errorf("revoking again = %v, want not found", err)
		}
	})
}

// Scrubbing a member blanks their gifts' email and message and their
// Stripe customers' email, keeping the amounts, on both databases; one
// with a live subscription is refused.
func TestScrubMember(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		s := NewService(Deps{DB: db})
		now := time.Now().UTC()
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(q, args...); err != nil {
				t.Fatal(err)
			}
		}
		exec(`INSERT INTO members (id, email, role, created_at, updated_at) VALUES ('mem_s', 's@example.org', 'patron', $1, $1)`, now)
		exec(`INSERT INTO donations (id, member_id, email, amount, currency, message, status, stripe_created_at, state_at) VALUES ('cs_1', 'mem_s', 's@example.org', 900, 'eur', 'hi', 'paid', $1, $1)`, now)
		exec(`INSERT INTO donations (id, email, amount, currency, message, status, stripe_created_at, state_at) VALUES ('cs_2', 'S@example.org', 500, 'eur', 'before signing up', 'paid', $1, $1)`, now)
		exec(`INSERT INTO stripe_customers (id, member_id, email, state_at, updated_at) VALUES ('cus_s', 'mem_s', 's@example.org', $1, $1)`, now)
		exec(`INSERT INTO subscriptions (id, member_id, customer_id, status, updated_at) VALUES ('sub_s', 'mem_s', 'cus_s', 'active', $1)`, now)
		exec(`INSERT INTO stripe_events (id, type, api_version, object_id, created_at, received_at, livemode, payload)
			VALUES ('evt_1', 'customer.updated', '2023-10-16', 'cus_s', $1, $1, FALSE, '{"data":{"object":{"email":"S@Example.org"}}}'),
			       ('evt_2', 'customer.updated', '2023-10-16', 'cus_t', $1, $1, FALSE, '{"data":{"object":{"email":"xs@example.org"}}}')`, now)
		exec(`INSERT INTO subscription_history (subscription_id, seq, at, member_id, status, price_id, currency, unit_amount, quantity, billing_interval, interval_count, event_id)
			VALUES ('sub_s', 1, $1, 'mem_s', 'canceled', 'p', 'eur', 500, 1, 'month', 1, 'evt_h')`, now)
		m := members.Member{ID: "mem_s", Email: "s@example.org"}
		scrub := func() error { return db.InTx(ctx, func(tx *sql.Tx) error { return s.ScrubMember(ctx, tx, m) }) }
		if err := scrub(); !errs.Is(err, errs.Conflict) {
			t.Fatalf("scrub with a live subscription = %v, want a conflict", err)
		}
		exec(`UPDATE subscriptions SET status = 'canceled' WHERE id = 'sub_s'`)
		if err := scrub(); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := db.QueryRow(`SELECT COUNT(*) FROM donations WHERE email <> '' OR message <> ''`).Scan(&left); err != nil || left != 0 {
			t.Errorf("gifts still holding an email or message: %d %v", left, err)
		}
		if err := db.QueryRow(`SELECT COUNT(*) FROM stripe_customers WHERE email <> ''`).Scan(&left); err != nil || left != 0 {
			t.Errorf("customers still holding an email: %d %v", left, err)
		}
		var payloads []string
		for _, id := range []string{"evt_1", "evt_2"} {
			var p string
			if err := db.QueryRow(`SELECT payload FROM stripe_events WHERE id = $1`, id).Scan(&p); err != nil {
				t.Fatal(err)
			}
			payloads = append(payloads, p)
		}
		if payloads[0] != `{"erased":true}` || !strings.Contains(payloads[1], "xs@example.org") {
			t.Errorf("event payloads after the scrub = %q; want the member's scrubbed and another address containing it kept", payloads)
		}
		var named int
		if err := db.QueryRow(`SELECT COUNT(*) FROM subscription_history WHERE member_id IS NOT NULL`).Scan(&named); err != nil || named != 0 {
			t.Errorf("subscription history still naming the member: %d %v", named, err)
		}
		var total int64
		if err := db.QueryRow(`SELECT SUM(amount) FROM donations`).Scan(&total); err != nil || total != 1400 {
			t.Errorf("gift amounts after the scrub = %d %v, want 1400", total, err)
		}
	})
}
