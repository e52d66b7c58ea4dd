package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

// Staff writes to voting land in the audit log with who, what, when,
// before and after; the log pages newest first and refuses a cursor it
// did not give out; readers cannot see it.
func TestStaffWritesAreAudited(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	token, staffMember := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + token}
	var topics []string
	for i := range 3 {
		var out struct{ Topic struct{ ID string } }
		json.Unmarshal(postJSON(h, "/api/v1/staff/topics", fmt.Sprintf(`{"title":"Topic %d"}`, i), staff...).Body.Bytes(), &out)
		topics = append(topics, out.Topic.ID)
	}
	body := fmt.Sprintf(`{"title":"Round","opens_at":%q,"closes_at":%q,"topic_ids":[%q,%q]}`,
		time.Now().Add(time.Hour).Format(time.RFC3339), time.Now().Add(2*time.Hour).Format(time.RFC3339), topics[0], topics[1])
	var created struct{ Round struct{ ID string } }
	json.Unmarshal(postJSON(h, "/api/v1/staff/rounds", body, staff...).Body.Bytes(), &created)
	if rec := do(h, "PATCH", "/api/v1/staff/rounds/"+created.Round.ID, "application/json", strings.NewReader(`{"title":"Renamed"}`), staff...); rec.Code != http.StatusOK {
		t.Fatalf("rename = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "PATCH", "/api/v1/staff/topics/"+topics[2], "application/json", strings.NewReader(`{"status":"declined","decline_reason":"Old news"}`), staff...); rec.Code != http.StatusOK {
		t.Fatalf("decline = %d %s", rec.Code, rec.Body)
	}

	type entry struct {
		ID    string
		Actor struct {
			ID    *string
			Label string
		}
		Action      string
		SubjectType string `json:"subject_type"`
		SubjectID   string `json:"subject_id"`
		Before      json.RawMessage
		After       json.RawMessage
	}
	page := func(query string) ([]entry, *string) {
		t.Helper()
		rec := do(h, "GET", "/api/v1/staff/audit"+query, "", nil, staff...)
		var out struct {
			Entries    []entry
			NextCursor *string `json:"next_cursor"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("audit%s = %d %s", query, rec.Code, rec.Body)
		}
		return out.Entries, out.NextCursor
	}
	idsOf := func(es []entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	rounds, _ := page("?subject_type=round&subject_id=" + created.Round.ID)
	if len(rounds) != 2 || rounds[0].Action != "round.update" || rounds[1].Action != "round.create" {
		t.Fatalf("the round's entries = %+v, want update then create", rounds)
	}
	if u := rounds[0]; u.Actor.ID == nil || *u.Actor.ID != staffMember.ID || !strings.Contains(string(u.Before), `"Title":"Round"`) ||
		!strings.Contains(string(u.After), `"Title":"Renamed"`) {
		t.Errorf("the update's entry = actor %v %q, before %s, after %s", u.Actor.ID, u.Actor.Label, u.Before, u.After)
	}
	declined, _ := page("?subject_type=topic&subject_id=" + topics[2])
	if len(declined) != 2 || declined[0].Action != "topic.update" || !strings.Contains(string(declined[0].After), "Old news") {
		t.Errorf("the declined topic's entries = %+v", declined)
	}

	// Pages of two, newest first, cover everything once.
	all, _ := page("?limit=200")
	var paged []entry
	cursor := ""
	for {
		es, next := page("?limit=2" + cursor)
		paged = append(paged, es...)
		if next == nil {
			break
		}
		cursor = "&cursor=" + *next
	}
	if len(all) < 6 || strings.Join(idsOf(paged), ",") != strings.Join(idsOf(all), ",") {
		t.Errorf("paging by 2 gave %d entries, all at once %d", len(paged), len(all))
	}
	for _, bad := range []string{"?cursor=nonsense", "?limit=0", "?limit=1000"} {
		if rec := do(h, "GET", "/api/v1/staff/audit"+bad, "", nil, staff...); rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("audit%s = %d, want 422", bad, rec.Code)
		}
	}
	reader := signUpAndSignIn(t, ts, "reader@example.org")
	if rec := do(h, "GET", "/api/v1/staff/audit", "", nil, "Cookie", withCookie(reader)); rec.Code != http.StatusForbidden {
		t.Errorf("a reader reading the audit log = %d, want 403", rec.Code)
	}
}
