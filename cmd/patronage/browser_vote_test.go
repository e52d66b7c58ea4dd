package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/sqldb"
)

// TestAPatronVotesAndWithdrawsInTheBrowser casts and withdraws a vote on
// /vote in a real Chromium, with nothing but the page's forms.
func TestAPatronVotesAndWithdrawsInTheBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	addr := freeLoopbackAddr(t)
	env := map[string]string{"HTTP_ADDR": addr, "DATA_DIR": filepath.Join(t.TempDir(), "data"), "BASE_URL": "http://" + addr}
	s := startServer(t, env)
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	token := tokenPattern.FindString(out)

	// Staff open a round on two topics.
	var topics []string
	for _, title := range []string{"Flood defences", "School meals"} {
		status, body := call(t, "POST", s.URL+"/api/v1/staff/topics", token, `{"title":"`+title+`"}`)
		var created struct{ Topic struct{ ID string } }
		if status != 201 || json.Unmarshal([]byte(body), &created) != nil {
			t.Fatalf("create topic = %d %s", status, body)
		}
		topics = append(topics, created.Topic.ID)
	}
	round := fmt.Sprintf(`{"title":"What should we investigate?","opens_at":%q,"closes_at":%q,"topic_ids":["%s"]}`,
		time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), strings.Join(topics, `","`))
	if status, body := call(t, "POST", s.URL+"/api/v1/staff/rounds", token, round); status != 201 {
		t.Fatalf("create round = %d %s", status, body)
	}

	// A reader signs up and becomes a patron (as a processed Stripe event
	// would make them).
	const email = "voter@example.org"
	if status, body := call(t, "POST", s.URL+"/api/v1/members", "", `{"email":"`+email+`"}`); status != 202 {
		t.Fatalf("sign up = %d %s", status, body)
	}
	link := waitForSignInLink(t, s, email)
	grantAccess(t, env["DATA_DIR"], email)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b := openBrowser(t, ctx, chromium)
	b.open(link)
	b.open(s.URL + "/vote")
	b.wantHeading("Vote on what we cover next")
	b.wantText("What should we investigate?")
	b.wantText("You have 3 votes left.")

	flood := `//li[h3[normalize-space()="Flood defences"]]`
	b.press(flood, "Vote for this")
	b.wantAt("/vote", "")
	b.wantText("You have 2 votes left.")
	if got := b.text("li.mine h3"); got != "Flood defences" {
		t.Errorf("the topic marked as mine is %q, want Flood defences", got)
	}
	if !strings.Contains(b.text("li.mine"), "1 vote") {
		t.Errorf("the live count after voting: %q", b.text("li.mine"))
	}
	b.press(flood, "Withdraw my vote")
	b.wantAt("/vote", "")
	b.wantText("You have 3 votes left.")
	if b.present(`//li[contains(@class, "mine")]`) {
		t.Error("a topic is still marked as mine after withdrawing")
	}
}

// grantAccess gives the member with email an active subscription and
// recomputes their access, as the webhook handlers would.
func grantAccess(t *testing.T, dataDir, email string) {
	t.Helper()
	ctx := context.Background()
	db, memberID := openWithMember(t, dataDir, email)
	now := sqldb.Now()
	if _, err := db.Exec(`INSERT INTO subscriptions (id, member_id, customer_id, status, current_period_start, current_period_end, state_at, updated_at)
		VALUES ('sub_browser', $1, 'cus_browser', 'active', $2, $3, $2, $2)`, memberID, now, now.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := billing.NewService(billing.Deps{DB: db}).RecomputeAccess(ctx, memberID); err != nil {
		t.Fatal(err)
	}
}

// openWithMember opens the embedded database in dataDir (closed when the
// test ends) and finds the member with email.
func openWithMember(t *testing.T, dataDir, email string) (*sqldb.DB, string) {
	t.Helper()
	db, err := sqldb.Open(context.Background(), sqldb.Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var memberID string
	if err := db.QueryRow(`SELECT id FROM members WHERE email = $1`, email).Scan(&memberID); err != nil {
		t.Fatal(err)
	}
	return db, memberID
}
