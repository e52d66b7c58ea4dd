package billing_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
)

// The migration that started the membership events records every current
// patron's status and interval as billing decides them, so their next
// change (a failed payment, an upgrade) is told from the right place: an
// old round still counts as announced only when closed.
func TestTheUpgradeKnowsEachPatronsMembership(t *testing.T) {
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		before := fstest.MapFS{}
		err := fs.WalkDir(sqldb.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || path >= "0013" {
				return err
			}
			b, err := fs.ReadFile(sqldb.Migrations(), path)
			before[path] = &fstest.MapFile{Data: b}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Migrate(ctx, before); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO members (id, email, role, created_at, updated_at) VALUES ('mem_pay', 'pay@example.org', 'patron', $1, $1),
				('mem_due', 'due@example.org', 'patron', $1, $1), ('mem_gift', 'gift@example.org', 'patron', $1, $1), ('mem_none', 'none@example.org', 'patron', $1, $1)`, []any{now}},
			{`INSERT INTO subscriptions (id, member_id, customer_id, tier_slug, status, billing_interval, state_at, updated_at) VALUES
				('sub_a', 'mem_pay', 'cus_a', 'coffee', 'active', 'year', $1, $1), ('sub_b', 'mem_due', 'cus_b', 'coffee', 'past_due', 'month', $1, $1)`, []any{now}},
			{`INSERT INTO member_access (member_id, active, source, tier_slug, changed_at) VALUES ('mem_pay', TRUE, 'subscription', 'coffee', $1),
				('mem_due', TRUE, 'subscription', 'coffee', $1), ('mem_gift', TRUE, 'complimentary', 'press', $1), ('mem_none', FALSE, '', '', $1)`, []any{now}},
			{`INSERT INTO rounds (id, title, opens_at, closes_at, closed_at, created_at, updated_at) VALUES
				('rnd_closed', 'Old', $1, $2, $2, $1, $1), ('rnd_open', 'Now', $1, $3, NULL, $1, $1), ('rnd_later', 'Later', $3, $4, NULL, $1, $1)`,
				[]any{now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), now.Add(24 * time.Hour), now.Add(48 * time.Hour)}},
		} {
			if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Migrate(ctx, sqldb.Migrations()); err != nil {
			t.Fatal(err)
		}
		for member, want := range map[string]string{"mem_pay": "active year", "mem_due": "past_due month", "mem_gift": "complimentary ", "mem_none": " "} {
			var status, interval string
			if err := db.QueryRowContext(ctx, `SELECT membership_status, billing_interval FROM member_access WHERE member_id = $1`, member).Scan(&status, &interval); err != nil {
				t.Fatal(err)
			}
			if got := status + " " + interval; got != want {
				t.Errorf("%s: %q, want %q", member, got, want)
			}
		}
		for round, want := range map[string]bool{"rnd_closed": true, "rnd_open": false, "rnd_later": false} {
			var announced bool
			if err := db.QueryRowContext(ctx, `SELECT open_announced FROM rounds WHERE id = $1`, round).Scan(&announced); err != nil || announced != want {
				t.Errorf("%s announced %v (%v), want %v", round, announced, err, want)
			}
		}
	})
}
