package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

// Staff open a round; a patron with access votes, repeats, runs out of
// votes, withdraws; a reader without access cannot vote; the round closes
// and its public results name no one.
func TestVotingOverHTTP(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	token, _ := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + token}
	var topics []string
	for i := range 4 {
		rec := postJSON(h, "/api/v1/staff/topics", fmt.Sprintf(`{"title":"Topic %d","summary":"Why it matters"}`, i), staff...)
		var out struct{ Topic struct{ ID string } }
		if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("create topic = %d %s", rec.Code, rec.Body)
		}
		topics = append(topics, out.Topic.ID)
	}
	if rec := postJSON(h, "/api/v1/staff/topics", `{"title":""}`, staff...); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("topic without a title = %d, want 422", rec.Code)
	}
	body := fmt.Sprintf(`{"title":"What next?","opens_at":%q,"closes_at":%q,"votes_per_patron":2,"topic_ids":["%s"]}`,
		time.Now().Add(-time.Hour).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), strings.Join(topics, `","`))
	rec := postJSON(h, "/api/v1/staff/rounds", body, staff...)
	var created struct{ Round struct{ ID string } }
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &created) != nil {
		t.Fatalf("create round = %d %s", rec.Code, rec.Body)
	}
	round := created.Round.ID
	votes := "/api/v1/rounds/" + round + "/votes"

	reader := signUpAndSignIn(t, ts, "reader@example.org")
	if rec := postJSON(h, votes, `{"topic_id":"`+topics[0]+`"}`, "Cookie", withCookie(reader), "Sec-Fetch-Site", "same-origin"); rec.Code != http.StatusForbidden || decodeError(t, rec).Code != "patron_required" {
		t.Errorf("vote without access = %d %s, want 403 patron_required", rec.Code, rec.Body)
	}
	if rec := postJSON(h, votes, `{"topic_id":"`+topics[0]+`"}`); rec.Code != http.StatusUnauthorized {
		t.Errorf("vote signed out = %d, want 401", rec.Code)
	}

	patron := signUpAndSignIn(t, ts, "patron@example.org")
	var me struct{ Member struct{ ID string } }
	json.Unmarshal(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(patron)).Body.Bytes(), &me)
	setSubscription(t, ts, me.Member.ID, "active", time.Now().Add(720*time.Hour))
	as := []string{"Cookie", withCookie(patron), "Sec-Fetch-Site", "same-origin"}

	if rec := postJSON(h, votes, `{"topic_id":"`+topics[0]+`"}`, "Cookie", withCookie(patron), "Sec-Fetch-Site", "cross-site"); rec.Code != http.StatusForbidden {
		t.Errorf("a cross-site vote riding on the cookie = %d, want 403", rec.Code)
	}
	rec = postJSON(h, votes, `{"topic_id":"`+topics[0]+`"}`, as...)
	if rec.Code != http.StatusCreated || !strings.Contains(rec.Body.String(), `"votes_left":1`) || !strings.Contains(rec.Body.String(), `{"topic_id":"`+topics[0]+`","votes":1}`) {
		t.Fatalf("vote = %d %s, want 201 with 1 left and the live tally", rec.Code, rec.Body)
	}
	if rec := postJSON(h, votes, `{"topic_id":"`+topics[0]+`"}`, as...); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"votes":1}`) {
		t.Errorf("same vote again = %d %s, want 200 and no double count", rec.Code, rec.Body)
	}
	if rec := postJSON(h, votes, `{"topic_id":"`+topics[1]+`"}`, as...); rec.Code != http.StatusCreated {
		t.Errorf("second vote = %d %s", rec.Code, rec.Body)
	}
	if rec := postJSON(h, votes, `{"topic_id":"`+topics[2]+`"}`, as...); rec.Code != http.StatusConflict || decodeError(t, rec).Code != "vote_budget_exhausted" {
		t.Errorf("third vote with a budget of 2 = %d %s", rec.Code, rec.Body)
	}
	if rec := postJSON(h, votes, `{"topic_id":"top_nowhere"}`, as...); rec.Code != http.StatusNotFound || decodeError(t, rec).Code != "topic_not_found" {
		t.Errorf("vote for a topic not in the round = %d %s", rec.Code, rec.Body)
	}
	if rec := postJSON(h, votes, `{}`, as...); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("vote without a topic = %d, want 422", rec.Code)
	}
	if rec := do(h, "DELETE", votes+"/"+topics[1], "", nil, as...); rec.Code != http.StatusNoContent {
		t.Errorf("withdraw = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "DELETE", votes+"/"+topics[1], "", nil, as...); rec.Code != http.StatusNotFound {
		t.Errorf("withdraw again = %d, want 404", rec.Code)
	}
	rec = do(h, "GET", "/api/v1/rounds/"+round, "", nil, as...)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"my_votes":["`+topics[0]+`"]`) || !strings.Contains(rec.Body.String(), `"votes_left":1`) {
		t.Errorf("round for the patron = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/v1/rounds/"+round+"/results", "", nil); rec.Code != http.StatusConflict {
		t.Errorf("results of an open round = %d, want 409", rec.Code)
	}
	// While the round is open staff see no count for the member at all.
	if body := do(h, "GET", "/api/v1/staff/members/"+me.Member.ID, "", nil, staff...).Body.String(); !strings.Contains(body, `"votes_cast":0`) {
		t.Errorf("member detail for staff while the round is open = %s, want votes_cast 0", body)
	}
	if rec := do(h, "GET", "/api/v1/rounds", "", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), round) {
		t.Errorf("round list = %d %s", rec.Code, rec.Body)
	}

	if rec := postJSON(h, "/api/v1/staff/rounds/"+round+"/close", "", staff...); rec.Code != http.StatusOK {
		t.Fatalf("close = %d %s", rec.Code, rec.Body)
	}
	rec = do(h, "GET", "/api/v1/rounds/"+round+"/results", "", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"voters":1`) || !strings.Contains(rec.Body.String(), `{"topic_id":"`+topics[0]+`","votes":1,"won":true}`) ||
		strings.Contains(rec.Body.String(), me.Member.ID) {
		t.Errorf("results = %d %s, want topic 0 won with 1 vote, 1 voter, no member ids", rec.Code, rec.Body)
	}
	if rec := postJSON(h, votes, `{"topic_id":"`+topics[3]+`"}`, as...); rec.Code != http.StatusConflict || decodeError(t, rec).Code != "round_closed" {
		t.Errorf("vote after close = %d %s", rec.Code, rec.Body)
	}
	// Once closed, staff see how many votes the member cast, never which.
	if body := do(h, "GET", "/api/v1/staff/members/"+me.Member.ID, "", nil, staff...).Body.String(); !strings.Contains(body, `"votes_cast":1`) ||
		strings.Contains(body, topics[0]) {
		t.Errorf("member detail for staff = %s, want votes_cast 1 and no topic", body)
	}

	// The newsroom publishes the story: the results link to it.
	patch := func(body string) *httptest.ResponseRecorder {
		return do(h, "PATCH", "/api/v1/staff/topics/"+topics[0], "application/json", strings.NewReader(body), staff...)
	}
	if rec := patch(`{"status":"covered"}`); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("covered without an article = %d, want 422", rec.Code)
	}
	if rec := patch(`{"status":"covered","article_url":"https://news.example/story"}`); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"covered"`) {
		t.Fatalf("mark covered = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/v1/rounds/"+round+"/results", "", nil); !strings.Contains(rec.Body.String(), `"covered":"https://news.example/story"`) {
		t.Errorf("results after coverage = %s, want the article", rec.Body)
	}
}

// A member casting faster than the limit gets 429 with Retry-After.
func TestCastingIsRateLimitedPerMember(t *testing.T) {
	ts := newFullTestServer(t, func(d *Deps) { d.VotesPerMemberPerSec = 2 })
	h := ts.Handler()
	patron := signUpAndSignIn(t, ts, "quick@example.org")
	as := []string{"Cookie", withCookie(patron), "Sec-Fetch-Site", "same-origin"}
	codes := []int{}
	for range 3 {
		codes = append(codes, postJSON(h, "/api/v1/rounds/rnd_any/votes", `{"topic_id":"top_any"}`, as...).Code)
	}
	rec := postJSON(h, "/api/v1/rounds/rnd_any/votes", `{"topic_id":"top_any"}`, as...)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("casts = %v then %d (Retry-After %q), want 429 once over 2 a second", codes, rec.Code, rec.Header().Get("Retry-After"))
	}
}

// A patron suggests three topics in a month, a fourth is 429; staff approve
// one and decline another, and the patron sees the reason on /account.
func TestSuggestions(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	token, _ := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + token}
	reader := signUpAndSignIn(t, ts, "idea@example.org")
	as := []string{"Cookie", withCookie(reader), "Sec-Fetch-Site", "same-origin"}
	if rec := postJSON(h, "/api/v1/topics/suggestions", `{"title":"Bus routes"}`, as...); rec.Code != http.StatusForbidden {
		t.Errorf("suggestion without access = %d, want 403", rec.Code)
	}
	var me struct{ Member struct{ ID string } }
	json.Unmarshal(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(reader)).Body.Bytes(), &me)
	setSubscription(t, ts, me.Member.ID, "active", time.Now().Add(720*time.Hour))

	var ids []string
	for i := range 3 {
		rec := postJSON(h, "/api/v1/topics/suggestions", fmt.Sprintf(`{"title":"Idea %d","summary":"Worth a look"}`, i), as...)
		var out struct{ Suggestion struct{ ID string } }
		if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("suggestion %d = %d %s", i, rec.Code, rec.Body)
		}
		ids = append(ids, out.Suggestion.ID)
	}
	if rec := postJSON(h, "/api/v1/topics/suggestions", `{"title":"One too many"}`, as...); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("fourth suggestion = %d (Retry-After %q), want 429", rec.Code, rec.Header().Get("Retry-After"))
	}
	rec := do(h, "GET", "/api/v1/staff/topics/suggestions", "", nil, staff...)
	if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), `"status":"suggested"`) != 3 || !strings.Contains(rec.Body.String(), me.Member.ID) {
		t.Fatalf("pending suggestions = %d %s", rec.Code, rec.Body)
	}
	patch := func(id, body string) int {
		return do(h, "PATCH", "/api/v1/staff/topics/"+id, "application/json", strings.NewReader(body), staff...).Code
	}
	if code := patch(ids[0], `{"status":"proposed"}`); code != http.StatusOK {
		t.Errorf("approve = %d", code)
	}
	if code := patch(ids[1], `{"status":"declined","decline_reason":"We covered this in May."}`); code != http.StatusOK {
		t.Errorf("decline = %d", code)
	}
	page := do(h, "GET", "/account", "", nil, "Cookie", withCookie(reader)).Body.String()
	for _, want := range []string{"Idea 0 — accepted", "Idea 1 — declined: We covered this in May.", "Idea 2 — waiting for the newsroom"} {
		if !strings.Contains(page, want) {
			t.Errorf("/account lacks %q", want)
		}
	}
}

// The vote page works with plain form posts: a patron votes, sees the vote
// counted and withdraws it; a reader without access is told to join.
func TestVotePageWithoutJavaScript(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	token, _ := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + token}
	var topics []string
	for _, title := range []string{"Housing", "Water"} {
		rec := postJSON(h, "/api/v1/staff/topics", `{"title":"`+title+`"}`, staff...)
		var out struct{ Topic struct{ ID string } }
		json.Unmarshal(rec.Body.Bytes(), &out)
		topics = append(topics, out.Topic.ID)
	}
	body := fmt.Sprintf(`{"title":"Spring round","opens_at":%q,"closes_at":%q,"topic_ids":["%s"]}`,
		time.Now().Add(-time.Hour).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), strings.Join(topics, `","`))
	var created struct{ Round struct{ ID string } }
	json.Unmarshal(postJSON(h, "/api/v1/staff/rounds", body, staff...).Body.Bytes(), &created)

	if page := do(h, "GET", "/vote", "", nil).Body.String(); !strings.Contains(page, "Spring round") || !strings.Contains(page, "Sign in") {
		t.Fatalf("/vote signed out lacks the round or the sign-in link:\n%s", page)
	}
	reader := signUpAndSignIn(t, ts, "page@example.org")
	if page := do(h, "GET", "/vote", "", nil, "Cookie", withCookie(reader)).Body.String(); !strings.Contains(page, "Become a patron") || strings.Contains(page, "Vote for this") {
		t.Errorf("/vote without access should invite to join and offer no vote button")
	}
	var me struct{ Member struct{ ID string } }
	json.Unmarshal(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(reader)).Body.Bytes(), &me)
	setSubscription(t, ts, me.Member.ID, "active", time.Now().Add(720*time.Hour))

	form := func(values string) *httptest.ResponseRecorder {
		return do(h, "POST", "/vote/"+created.Round.ID, "application/x-www-form-urlencoded", strings.NewReader(values),
			"Cookie", withCookie(reader), "Sec-Fetch-Site", "same-origin")
	}
	if rec := form("topic_id=" + topics[0]); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/vote" {
		t.Fatalf("vote by form = %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	page := do(h, "GET", "/vote", "", nil, "Cookie", withCookie(reader)).Body.String()
	if !strings.Contains(page, "<strong>2</strong> votes left") || !strings.Contains(page, "Withdraw my vote") || !strings.Contains(page, ">1 vote</p>") {
		t.Errorf("/vote after voting lacks the count, the votes left or the withdraw button:\n%s", page)
	}
	if rec := form("topic_id=top_nowhere"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "not in this round") {
		t.Errorf("vote for a stranger topic = %d", rec.Code)
	}
	if rec := form("topic_id=" + topics[0] + "&action=withdraw"); rec.Code != http.StatusSeeOther {
		t.Errorf("withdraw by form = %d", rec.Code)
	}
	if page := do(h, "GET", "/vote/results/"+created.Round.ID, "", nil).Body.String(); !strings.Contains(page, "Housing — 0 votes") {
		t.Errorf("results page while open:\n%s", page)
	}
}

// Staff change a round: anything before it opens (a new topic list hands
// the old topics back), only title, description and closing time once
// open, nothing once closed; what changed shows at once.
func TestStaffChangeARound(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	token, _ := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + token}
	var topics []string
	for i := range 4 {
		var out struct{ Topic struct{ ID string } }
		json.Unmarshal(postJSON(h, "/api/v1/staff/topics", fmt.Sprintf(`{"title":"Topic %d"}`, i), staff...).Body.Bytes(), &out)
		topics = append(topics, out.Topic.ID)
	}
	patch := func(round, body string) *httptest.ResponseRecorder {
		return do(h, "PATCH", "/api/v1/staff/rounds/"+round, "application/json", strings.NewReader(body), staff...)
	}
	soon := time.Now().Add(time.Hour).Format(time.RFC3339)
	later := time.Now().Add(2 * time.Hour).Format(time.RFC3339)
	var created struct{ Round struct{ ID string } }
	rec := postJSON(h, "/api/v1/staff/rounds", fmt.Sprintf(`{"title":"Planned","opens_at":%q,"closes_at":%q,"topic_ids":[%q,%q]}`, soon, later, topics[0], topics[1]), staff...)
	if json.Unmarshal(rec.Body.Bytes(), &created) != nil || rec.Code != http.StatusCreated {
		t.Fatalf("create round = %d %s", rec.Code, rec.Body)
	}
	round := created.Round.ID

	if rec := patch(round, fmt.Sprintf(`{"topic_ids":[%q,%q],"votes_per_patron":1,"results":"sealed"}`, topics[2], topics[3])); rec.Code != http.StatusOK {
		t.Fatalf("change a planned round = %d %s", rec.Code, rec.Body)
	}
	// The first two topics are proposed again: another round may take them.
	rec = postJSON(h, "/api/v1/staff/rounds", fmt.Sprintf(`{"title":"Other","opens_at":%q,"closes_at":%q,"topic_ids":[%q,%q]}`, soon, later, topics[0], topics[1]), staff...)
	if rec.Code != http.StatusCreated {
		t.Errorf("a round on the handed-back topics = %d %s, want 201", rec.Code, rec.Body)
	}
	rec = patch(round, `{"votes_per_patron":0,"weighting":"loudest"}`)
	if e := decodeError(t, rec); rec.Code != http.StatusUnprocessableEntity || e.Fields["votes_per_patron"] == "" || e.Fields["weighting"] == "" {
		t.Errorf("invalid change = %d %+v, want 422 naming votes_per_patron and weighting", rec.Code, e)
	}

	// Open it now: its terms are fixed, its title and closing time are not.
	if rec := patch(round, fmt.Sprintf(`{"opens_at":%q}`, time.Now().Add(-time.Minute).Format(time.RFC3339))); rec.Code != http.StatusOK {
		t.Fatalf("open the round = %d %s", rec.Code, rec.Body)
	}
	if rec := patch(round, fmt.Sprintf(`{"topic_ids":[%q,%q]}`, topics[0], topics[2])); rec.Code != http.StatusConflict || decodeError(t, rec).Code != "round_started" {
		t.Errorf("change an open round's topics = %d %s, want 409 round_started", rec.Code, rec.Body)
	}
	if rec := patch(round, fmt.Sprintf(`{"closes_at":%q}`, time.Now().Add(-time.Minute).Format(time.RFC3339))); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("a closing time in the past = %d, want 422", rec.Code)
	}
	if rec := patch(round, `{"title":"Renamed","description":"Now with a description"}`); rec.Code != http.StatusOK {
		t.Fatalf("rename an open round = %d %s", rec.Code, rec.Body)
	}
	var got struct {
		Round struct {
			Title, Results string
			Open           bool
			VotesPerPatron int `json:"votes_per_patron"`
		}
	}
	json.Unmarshal(do(h, "GET", "/api/v1/rounds/"+round, "", nil).Body.Bytes(), &got)
	if got.Round.Title != "Renamed" || !got.Round.Open || got.Round.VotesPerPatron != 1 || got.Round.Results != "sealed" {
		t.Errorf("round after changes = %+v", got.Round)
	}

	if rec := postJSON(h, "/api/v1/staff/rounds/"+round+"/close", "", staff...); rec.Code != http.StatusOK {
		t.Fatalf("close = %d %s", rec.Code, rec.Body)
	}
	if rec := patch(round, `{"title":"After"}`); rec.Code != http.StatusConflict || decodeError(t, rec).Code != "round_closed" {
		t.Errorf("change a closed round = %d %s, want 409 round_closed", rec.Code, rec.Body)
	}
	if rec := patch("rnd_missing", `{"title":"x"}`); rec.Code != http.StatusNotFound {
		t.Errorf("change an unknown round = %d, want 404", rec.Code)
	}
}
