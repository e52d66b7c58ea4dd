package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

func postForm(h http.Handler, path string, form url.Values, headers ...string) *httptest.ResponseRecorder {
	return do(h, "POST", path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), headers...)
}

// A patron suggests a topic from the page; a mistake shows the form again
// with what they typed; staff decline it on their page and the patron
// reads the reason on their account page.
func TestSuggestingAndModeratingOnPages(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	if rec := do(h, "GET", "/topics/suggest", "", nil); rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "next=/topics/suggest") {
		t.Errorf("signed-out suggest page = %d to %q, want 303 to sign in and back", rec.Code, rec.Header().Get("Location"))
	}
	patron := signUpAndSignIn(t, ts, "suggester@example.org")
	var me struct{ Member struct{ ID string } }
	json.Unmarshal(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(patron)).Body.Bytes(), &me)
	setSubscription(t, ts, me.Member.ID, "active", time.Now().Add(720*time.Hour))
	as := []string{"Cookie", withCookie(patron), "Sec-Fetch-Site", "same-origin"}

	if rec := do(h, "GET", "/topics/suggest", "", nil, as...); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `name="title"`) {
		t.Fatalf("suggest page = %d", rec.Code)
	}
	rec := postForm(h, "/topics/suggest", url.Values{"title": {""}, "summary": {"Kept when the title is missing"}}, as...)
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "Kept when the title is missing") || !strings.Contains(rec.Body.String(), "title") {
		t.Errorf("suggestion without a title = %d, want 422 with the summary kept", rec.Code)
	}
	if rec := postForm(h, "/topics/suggest", url.Values{"title": {"Bus lanes"}}, "Cookie", withCookie(patron), "Sec-Fetch-Site", "cross-site"); rec.Code != http.StatusForbidden {
		t.Errorf("a cross-site suggestion = %d, want 403", rec.Code)
	}
	if rec := postForm(h, "/topics/suggest", url.Values{"title": {"Bus lanes"}, "summary": {"Who decides where they go"}}, as...); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/account" {
		t.Fatalf("suggestion = %d to %q, want 303 to /account", rec.Code, rec.Header().Get("Location"))
	}
	if page := do(h, "GET", "/account", "", nil, as...).Body.String(); !strings.Contains(page, "Bus lanes") || !strings.Contains(page, "waiting for the newsroom") {
		t.Errorf("account page does not show the waiting suggestion")
	}

	if rec := do(h, "GET", "/staff/suggestions", "", nil, as...); rec.Code != http.StatusForbidden {
		t.Errorf("a patron on the staff page = %d, want 403", rec.Code)
	}
	_, staffMember := staffSetup(t, ts, members.RoleStaff)
	sess, err := ts.members.StartSession(context.Background(), staffMember.ID)
	if err != nil {
		t.Fatal(err)
	}
	staff := []string{"Cookie", SessionCookie + "=" + sess, "Sec-Fetch-Site", "same-origin"}
	page := do(h, "GET", "/staff/suggestions", "", nil, staff...).Body.String()
	if !strings.Contains(page, "Bus lanes") || strings.Contains(page, "suggester@example.org") {
		t.Fatalf("staff suggestions page lacks the suggestion or names its patron")
	}
	var pending struct{ Suggestions []struct{ ID string } }
	json.Unmarshal(do(h, "GET", "/api/v1/staff/topics/suggestions", "", nil, staff...).Body.Bytes(), &pending)
	if len(pending.Suggestions) != 1 {
		t.Fatalf("pending suggestions = %+v", pending)
	}
	id := pending.Suggestions[0].ID
	if rec := postForm(h, "/staff/suggestions/"+id, url.Values{"decision": {"maybe"}}, staff...); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("no decision = %d, want 422", rec.Code)
	}
	if rec := postForm(h, "/staff/suggestions/"+id, url.Values{"decision": {"decline"}, "reason": {"Covered last month"}}, staff...); rec.Code != http.StatusSeeOther {
		t.Fatalf("decline = %d %s", rec.Code, rec.Body)
	}
	if rec := postForm(h, "/staff/suggestions/"+id, url.Values{"decision": {"approve"}}, staff...); rec.Code != http.StatusConflict {
		t.Errorf("approving a declined suggestion = %d, want 409", rec.Code)
	}
	if page := do(h, "GET", "/account", "", nil, as...).Body.String(); !strings.Contains(page, "declined: Covered last month") {
		t.Errorf("account page does not show the decline reason")
	}
}

// Staff run a round from their page: add topics, open a round on them,
// see it open, close it, and mark the winner covered; a reader cannot.
func TestRunningARoundOnTheStaffPage(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	if rec := do(h, "GET", "/staff/voting", "", nil); rec.Code != http.StatusSeeOther {
		t.Errorf("signed-out staff page = %d, want 303 to sign in", rec.Code)
	}
	_, staffMember := staffSetup(t, ts, members.RoleAdmin)
	sess, err := ts.members.StartSession(context.Background(), staffMember.ID)
	if err != nil {
		t.Fatal(err)
	}
	staff := []string{"Cookie", SessionCookie + "=" + sess, "Sec-Fetch-Site", "same-origin"}
	for _, title := range []string{"Rents", "Rivers"} {
		if rec := postForm(h, "/staff/voting", url.Values{"action": {"topic"}, "title": {title}}, staff...); rec.Code != http.StatusSeeOther {
			t.Fatalf("add topic = %d %s", rec.Code, rec.Body)
		}
	}
	page := do(h, "GET", "/staff/voting", "", nil, staff...).Body.String()
	if !strings.Contains(page, "Rents") || !strings.Contains(page, "Rivers") {
		t.Fatalf("staff page lacks the proposed topics")
	}
	ids := []string{}
	for _, part := range strings.Split(page, `name="topic_id" value="`)[1:] {
		ids = append(ids, part[:strings.Index(part, `"`)])
	}
	closes := time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02T15:04")
	rec := postForm(h, "/staff/voting", url.Values{"action": {"round"}, "title": {"Autumn"}, "closes_at": {closes}, "votes_per_patron": {"abc"}, "topic_id": ids}, staff...)
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `value="Autumn"`) ||
		!strings.Contains(rec.Body.String(), `value="`+ids[0]+`" checked`) {
		t.Errorf("round with a bad budget = %d, want 422 with the title and the ticked topics kept", rec.Code)
	}
	rec = postForm(h, "/staff/voting", url.Values{"action": {"round"}, "title": {"Autumn"}, "closes_at": {closes}, "votes_per_patron": {"2"},
		"weighting": {"equal"}, "results": {"live"}, "topic_id": ids}, staff...)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("open round = %d %s", rec.Code, rec.Body)
	}
	var list struct{ Rounds []struct{ ID, Title string } }
	json.Unmarshal(do(h, "GET", "/api/v1/rounds", "", nil).Body.Bytes(), &list)
	if len(list.Rounds) != 1 || list.Rounds[0].Title != "Autumn" {
		t.Fatalf("rounds after the form = %+v", list.Rounds)
	}
	round := list.Rounds[0].ID
	if page := do(h, "GET", "/staff/voting", "", nil, staff...).Body.String(); !strings.Contains(page, "Autumn") || !strings.Contains(page, "<td>open</td>") {
		t.Errorf("staff page does not show the open round")
	}

	patron := signUpAndSignIn(t, ts, "voter@example.org")
	var me struct{ Member struct{ ID string } }
	json.Unmarshal(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(patron)).Body.Bytes(), &me)
	setSubscription(t, ts, me.Member.ID, "active", time.Now().Add(720*time.Hour))
	if rec := postForm(h, "/vote/"+round, url.Values{"topic_id": {ids[0]}}, "Cookie", withCookie(patron), "Sec-Fetch-Site", "same-origin"); rec.Code != http.StatusSeeOther {
		t.Fatalf("vote = %d", rec.Code)
	}
	if rec := postForm(h, "/staff/voting", url.Values{"action": {"close"}, "round_id": {round}}, staff...); rec.Code != http.StatusSeeOther {
		t.Fatalf("close = %d %s", rec.Code, rec.Body)
	}
	if rec := postForm(h, "/staff/voting", url.Values{"action": {"covered"}, "topic_id": {ids[0]}, "article_url": {"not a url"}}, staff...); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("covered without a URL = %d, want 422", rec.Code)
	}
	if rec := postForm(h, "/staff/voting", url.Values{"action": {"covered"}, "topic_id": {ids[0]}, "article_url": {"https://news.example/rents"}}, staff...); rec.Code != http.StatusSeeOther {
		t.Fatalf("covered = %d %s", rec.Code, rec.Body)
	}
	if page := do(h, "GET", "/vote/results/"+round, "", nil).Body.String(); !strings.Contains(page, "https://news.example/rents") {
		t.Errorf("results page lacks the article")
	}
	reader := signUpAndSignIn(t, ts, "reader@example.org")
	if rec := postForm(h, "/staff/voting", url.Values{"action": {"topic"}, "title": {"Sneaky"}}, "Cookie", withCookie(reader), "Sec-Fetch-Site", "same-origin"); rec.Code != http.StatusForbidden {
		t.Errorf("a reader posting to the staff page = %d, want 403", rec.Code)
	}
}
