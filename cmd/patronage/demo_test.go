package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/metrics"
)

// demo seed fills a fresh database, on either engine, with a history that
// shows what the dashboard is for, every figure of it made by the same
// processing real webhooks get; a second run refuses.
func TestDemoSeed(t *testing.T) {
	envs := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(t *testing.T) map[string]string { return map[string]string{"DATA_DIR": t.TempDir()} },
	}
	if testenv.PostgresURL(t) != "" {
		envs["postgres"] = func(t *testing.T) map[string]string {
			env := map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": testenv.PostgresSchemaURL(t)}
			if u := testenv.RedisURL(t); u != "" {
				env["REDIS_URL"], env["REDIS_KEY_PREFIX"] = u, testenv.RedisPrefix(t)
			}
			return env
		}
	}
	for name, makeEnv := range envs {
		t.Run(name, func(t *testing.T) {
			env := makeEnv(t)
			out, stderr, code := runCommand(t, env, "demo", "seed", "--patrons", "40", "--months", "6", "--seed", "7")
			if code != 0 {
				t.Fatalf("demo seed: exit %d\n%s\n%s", code, out, stderr)
			}
			for _, want := range []string{"40 patrons", "Stripe events", "admin create --email", "/staff"} {
				if !strings.Contains(out, want) {
					t.Errorf("the summary does not mention %q:\n%s", want, out)
				}
			}
			db, err := sqldb.Open(context.Background(), sqldb.Options{URL: env["DATABASE_URL"], DataDir: env["DATA_DIR"]})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			checkDemoHistory(t, db)

			_, stderr, code = runCommand(t, env, "demo", "seed", "--patrons", "5", "--months", "2")
			if code != 1 || !strings.Contains(stderr, "already has tiers") {
				t.Errorf("a second seed: exit %d %q, want 1 refusing a database that has data", code, stderr)
			}
		})
	}
}

func checkDemoHistory(t *testing.T, db *sqldb.DB) {
	t.Helper()
	ctx := context.Background()
	strs := func(q string) []string {
		t.Helper()
		got, err := sqldb.QueryStrings(ctx, db, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		slices.Sort(got)
		return got
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}

	if got := strs(`SELECT DISTINCT LOWER(currency) FROM subscriptions`); !slices.Equal(got, []string{"eur", "jpy", "usd"}) {
		t.Errorf("subscription currencies = %v, want eur, jpy, usd", got)
	}
	if got := strs(`SELECT DISTINCT billing_interval FROM subscription_history`); !slices.Equal(got, []string{"month", "year"}) {
		t.Errorf("intervals = %v, want month and year", got)
	}
	if n := count(`SELECT COUNT(*) FROM stripe_events WHERE status NOT IN ('processed', 'ignored')`); n != 0 {
		t.Errorf("%d stored events were not processed", n)
	}
	if n := count(`SELECT COUNT(*) FROM stripe_events WHERE status = 'processed'`); n < 200 {
		t.Errorf("%d events processed, want a few hundred", n)
	}

	// A declined card, then paid: past_due → active in a subscription's history.
	rows, err := db.QueryContext(ctx, `SELECT subscription_id, status FROM subscription_history ORDER BY subscription_id, seq`)
	if err != nil {
		t.Fatal(err)
	}
	recovered, prevSub, prevStatus := 0, "", ""
	for rows.Next() {
		var sub, status string
		if err := rows.Scan(&sub, &status); err != nil {
			t.Fatal(err)
		}
		if sub == prevSub && prevStatus == "past_due" && status == "active" {
			recovered++
		}
		prevSub, prevStatus = sub, status
	}
	rows.Close()
	if recovered == 0 {
		t.Error("no subscription went from past_due back to active")
	}
	if n := count(`SELECT COUNT(*) FROM refunds`); n == 0 {
		t.Error("no refund")
	}
	if n := count(`SELECT COUNT(*) FROM donations WHERE status = 'paid'`); n == 0 {
		t.Error("no paid donation")
	}
	// Churned, then back: a member with an ended subscription and a later one.
	if n := count(`SELECT COUNT(*) FROM subscriptions a JOIN subscriptions b ON a.member_id = b.member_id AND a.id <> b.id
		WHERE a.status = 'canceled' AND b.stripe_created_at > a.ended_at`); n == 0 {
		t.Error("no patron left and came back")
	}
	if n := count(`SELECT COUNT(*) FROM subscription_history WHERE status = 'trialing'`); n == 0 {
		t.Error("no trial")
	}

	// Voting: closed rounds whose final totals are their ballots, and one open.
	if n := count(`SELECT COUNT(*) FROM rounds WHERE closed_at IS NULL`); n != 1 {
		t.Errorf("%d open rounds, want 1", n)
	}
	if n := count(`SELECT COUNT(*) FROM rounds r WHERE closed_at IS NOT NULL AND EXISTS (SELECT 1 FROM ballots b WHERE b.round_id = r.id)`); n == 0 {
		t.Error("no closed round with ballots")
	}
	if n := count(`SELECT COUNT(*) FROM round_topics rt JOIN rounds r ON r.id = rt.round_id WHERE r.closed_at IS NOT NULL
		AND rt.final_total <> COALESCE((SELECT SUM(weight) FROM ballots b WHERE b.round_id = rt.round_id AND b.topic_id = rt.topic_id), 0)`); n != 0 {
		t.Errorf("%d closed round topics have a final total other than their ballots' sum", n)
	}
	if n := count(`SELECT COUNT(*) FROM rounds r WHERE closed_at IS NOT NULL AND voters <> (SELECT COUNT(DISTINCT member_id) FROM ballots b WHERE b.round_id = r.id)`); n != 0 {
		t.Errorf("%d closed rounds count their voters wrong", n)
	}

	// The dashboard's figures, in each currency.
	m := metrics.NewService(db)
	h, err := m.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	snaps := h.At(now)
	rev, err := m.RevenueBetween(ctx, now.AddDate(0, -7, 0), now)
	if err != nil {
		t.Fatal(err)
	}
	var gifts int64
	for _, cur := range []string{"eur", "usd", "jpy"} {
		s, r := snaps[cur], rev[cur]
		if s == nil || s.MRR <= 0 || s.PayingPatrons <= 0 {
			t.Errorf("%s: snapshot %+v, want MRR and paying patrons", cur, s)
		}
		if r == nil || r.Gross <= 0 {
			t.Errorf("%s: revenue %+v, want some", cur, r)
			continue
		}
		gifts += r.Donations
	}
	if gifts <= 0 {
		t.Error("no gift revenue in any currency")
	}
	// What the dashboard reads (the counters billing kept as the events
	// were processed) is what the history says.
	counted, _, err := m.Snapshot(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, cur := range []string{"eur", "usd", "jpy"} {
		if counted[cur] == nil || snaps[cur] == nil || *counted[cur] != *snaps[cur] {
			t.Errorf("%s: the counters say %+v, the history %+v", cur, counted[cur], snaps[cur])
		}
		moves, err := m.Movements(ctx, now.AddDate(0, -7, 0), now, cur)
		if err != nil {
			t.Fatal(err)
		}
		for _, mv := range moves {
			if want := h.Movements(mv.Month, cur); mv != want {
				t.Errorf("%s %s: the counters' movements %+v, the history's %+v", cur, mv.Month.Format("2006-01"), mv, want)
			}
		}
	}
}
