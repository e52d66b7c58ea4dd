package voting_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/outgoing"
	"github.com/patronage/patronage/voting"
)

// storedEvents is every event stored for the newsroom's endpoints, by
// type, with its data.
func storedEvents(t *testing.T, db *sqldb.DB) map[string][]map[string]any {
	t.Helper()
	rows, err := db.Query(`SELECT payload FROM outgoing_events ORDER BY created_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]map[string]any{}
	for rows.Next() {
		var payload string
		var env struct {
			Type string
			Data map[string]any
		}
		if err := rows.Scan(&payload); err != nil || json.Unmarshal([]byte(payload), &env) != nil {
			t.Fatalf("stored %q: %v", payload, err)
		}
		out[env.Type] = append(out[env.Type], env.Data)
	}
	return out
}

// A round tells the newsroom when it opens (at once, or when its time
// comes), when it closes (with its totals and winners) and when a won
// topic is covered, each once.
func TestRoundsTellTheNewsroomWhenTheyOpenCloseAndAreCovered(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		hooks := outgoing.NewService(outgoing.Deps{DB: db})
		url, events := "https://93.184.215.14/hooks", []string{outgoing.RoundOpened, outgoing.RoundClosed, outgoing.TopicCovered}
		if _, _, err := hooks.CreateEndpoint(ctx, members.CommandLine, outgoing.EndpointInput{URL: &url, Events: &events}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		v := voting.NewService(voting.Deps{DB: db, Redis: testenv.EmbeddedRedis(t), Events: hooks, Now: func() time.Time { return now },
			Eligibility: newVoters(map[string]voting.Voter{"mem_a": {Active: true, Weight: 1}, "mem_b": {Active: true, Weight: 1}})})
		a, _ := v.CreateTopic(ctx, members.CommandLine, "Rivers", "")
		b, _ := v.CreateTopic(ctx, members.CommandLine, "Rents", "")
		c, _ := v.CreateTopic(ctx, members.CommandLine, "Roads", "")
		d, _ := v.CreateTopic(ctx, members.CommandLine, "Rails", "")
		open, err := v.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "Now", OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(3 * time.Hour), TopicIDs: []string{a.ID, b.ID}})
		if err != nil {
			t.Fatal(err)
		}
		later, err := v.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "Later", OpensAt: now.Add(time.Hour), ClosesAt: now.Add(2 * time.Hour), TopicIDs: []string{c.ID, d.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if got := storedEvents(t, db)["round.opened"]; len(got) != 1 || field(got[0], "round", "id") != open.ID {
			t.Fatalf("round.opened %v: want the open round only", got)
		}
		if n, err := v.AnnounceOpenedRounds(ctx); err != nil || n != 0 {
			t.Fatalf("announced %d (%v) before the later round's time", n, err)
		}
		now = now.Add(61 * time.Minute)
		for range 2 {
			if _, err := v.AnnounceOpenedRounds(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := storedEvents(t, db)["round.opened"]; len(got) != 2 || field(got[1], "round", "id") != later.ID {
			t.Fatalf("round.opened %v: want the later round announced once when its time came", got)
		}

		for _, vote := range [][2]string{{"mem_a", a.ID}, {"mem_b", a.ID}, {"mem_b", b.ID}} {
			if _, err := v.CastVote(ctx, open.ID, vote[0], vote[1]); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if _, err := v.CloseRound(ctx, members.CommandLine, open.ID); err != nil {
				t.Fatal(err)
			}
		}
		closed := storedEvents(t, db)["round.closed"]
		if len(closed) != 1 || field(closed[0], "round", "voters") != float64(2) {
			t.Fatalf("round.closed %v: want one, with 2 voters", closed)
		}
		topics := closed[0]["topics"].([]any)
		first := topics[0].(map[string]any)
		if first["id"] != a.ID || first["total"] != float64(2) || first["won"] != true || topics[1].(map[string]any)["won"] != false {
			t.Fatalf("round.closed topics %v: want Rivers won with 2", topics)
		}

		covered, article := "covered", "https://news.example/rivers"
		for range 2 {
			if _, err := v.UpdateTopic(ctx, members.CommandLine, a.ID, voting.TopicPatch{Status: &covered, ArticleURL: &article}); err != nil {
				t.Fatal(err)
			}
		}
		got := storedEvents(t, db)["topic.covered"]
		if len(got) != 1 || field(got[0], "topic", "article_url") != article || field(got[0], "topic", "voters") != float64(2) {
			t.Fatalf("topic.covered %v: want one, with the article and 2 voters", got)
		}
	})
}

func field(data map[string]any, obj, key string) any {
	m, _ := data[obj].(map[string]any)
	return m[key]
}
