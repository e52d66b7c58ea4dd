package main

import (
	"context"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/voting"
)

// Billing's access decides who votes and with what weight, and a member
// who loses access loses their votes in open rounds at once.
func TestVotingFollowsBillingsAccess(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		rdb := testenv.EmbeddedRedis(t)
		if testenv.RedisURL(t) != "" {
			rdb = testenv.RealRedis(t)
		}
		b := billing.NewService(billing.Deps{DB: db, Logger: testenv.Logger()})
		v := voting.NewService(voting.Deps{DB: db, Redis: rdb, Eligibility: voters{billing: b}, Logger: testenv.Logger()})
		withdrawOnLostAccess(b, v, testenv.Logger())

		now := sqldb.Now()
		for _, st := range []struct {
			query string
			args  []any
		}{
			{`INSERT INTO members (id, email, role, created_at, updated_at) VALUES ('mem_v', 'v@example.org', 'patron', $1, $1)`, []any{now}},
			{`INSERT INTO tiers (slug, name, vote_weight, created_at, updated_at) VALUES ('press', 'Press', 2, $1, $1)`, []any{now}},
			{`INSERT INTO subscriptions (id, member_id, customer_id, tier_slug, status, current_period_start, current_period_end, state_at, updated_at)
				VALUES ('sub_v', 'mem_v', 'cus_v', 'press', 'active', $1, $2, $1, $1)`, []any{now, now.Add(30 * 24 * time.Hour)}},
		} {
			if _, err := db.Exec(st.query, st.args...); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.RecomputeAccess(ctx, "mem_v"); err != nil {
			t.Fatal(err)
		}
		var topics []string
		for _, title := range []string{"Housing", "Water"} {
			tp, err := v.CreateTopic(ctx, members.CommandLine, title, "")
			if err != nil {
				t.Fatal(err)
			}
			topics = append(topics, tp.ID)
		}
		r, err := v.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "Next", OpensAt: now.Add(-time.Hour), ClosesAt: now.Add(time.Hour), Weighting: "tier", TopicIDs: topics})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.CastVote(ctx, r.ID, "mem_v", topics[0]); err != nil {
			t.Fatal(err)
		}
		if tally, err := v.TallyOf(ctx, r.ID); err != nil || tally[topics[0]] != 2 {
			t.Fatalf("tally = %v, %v; want the press tier's weight, 2", tally, err)
		}

		if _, err := db.Exec(`UPDATE subscriptions SET status = 'canceled' WHERE id = 'sub_v'`); err != nil {
			t.Fatal(err)
		}
		if err := b.RecomputeAccess(ctx, "mem_v"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, func() bool {
			tally, err := v.TallyOf(ctx, r.ID)
			return err == nil && tally[topics[0]] == 0
		})
		var ballots int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ballots WHERE member_id = 'mem_v'`).Scan(&ballots); err != nil || ballots != 0 {
			t.Errorf("ballots left = %d, %v; want 0", ballots, err)
		}
	})
}
