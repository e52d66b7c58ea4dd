package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

type sseEvent struct{ name, data string }

// readEvents turns a stream into events on a channel.
func readEvents(t *testing.T, url string) <-chan sseEvent {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func nextEvent(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return sseEvent{}
	}
}

// A vote cast shows up in the live stream; closing the round ends it. A
// sealed round's stream carries no counts.
func TestRoundStream(t *testing.T) {
	ts := newFullTestServer(t)
	srv := httptest.NewServer(ts.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(ts.StopStreams)
	h := ts.Handler()
	token, _ := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + token}
	newRound := func(results string) (string, []string) {
		var topics []string
		for i := range 2 {
			var out struct{ Topic struct{ ID string } }
			json.Unmarshal(postJSON(h, "/api/v1/staff/topics", fmt.Sprintf(`{"title":"T%d"}`, i), staff...).Body.Bytes(), &out)
			topics = append(topics, out.Topic.ID)
		}
		body := fmt.Sprintf(`{"title":"R","results":%q,"opens_at":%q,"closes_at":%q,"topic_ids":["%s"]}`, results,
			time.Now().Add(-time.Hour).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), strings.Join(topics, `","`))
		var created struct{ Round struct{ ID string } }
		json.Unmarshal(postJSON(h, "/api/v1/staff/rounds", body, staff...).Body.Bytes(), &created)
		return created.Round.ID, topics
	}
	patron := signUpAndSignIn(t, ts, "live@example.org")
	var me struct{ Member struct{ ID string } }
	json.Unmarshal(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(patron)).Body.Bytes(), &me)
	setSubscription(t, ts, me.Member.ID, "active", time.Now().Add(720*time.Hour))
	as := []string{"Cookie", withCookie(patron), "Sec-Fetch-Site", "same-origin"}

	live, topics := newRound("live")
	events := readEvents(t, srv.URL+"/api/v1/rounds/"+live+"/stream")
	if ev := nextEvent(t, events); ev.name != "open" {
		t.Fatalf("first event = %+v, want open", ev)
	}
	if ev := nextEvent(t, events); ev.name != "tally" || strings.Contains(ev.data, `"votes":1`) {
		t.Fatalf("second event = %+v, want the empty tally", ev)
	}
	if rec := postJSON(h, "/api/v1/rounds/"+live+"/votes", `{"topic_id":"`+topics[0]+`"}`, as...); rec.Code != http.StatusCreated {
		t.Fatalf("vote = %d %s", rec.Code, rec.Body)
	}
	if ev := nextEvent(t, events); ev.name != "tally" || !strings.Contains(ev.data, `{"topic_id":"`+topics[0]+`","votes":1}`) {
		t.Fatalf("after a vote = %+v, want the tally with it", ev)
	}
	postJSON(h, "/api/v1/staff/rounds/"+live+"/close", "", staff...)
	if ev := nextEvent(t, events); ev.name != "closed" {
		t.Fatalf("after closing = %+v, want closed", ev)
	}
	if _, ok := <-events; ok {
		t.Error("the stream went on after the round closed")
	}

	sealed, topics := newRound("sealed")
	events = readEvents(t, srv.URL+"/api/v1/rounds/"+sealed+"/stream")
	if ev := nextEvent(t, events); ev.name != "open" {
		t.Fatalf("sealed first event = %+v", ev)
	}
	postJSON(h, "/api/v1/rounds/"+sealed+"/votes", `{"topic_id":"`+topics[0]+`"}`, as...)
	postJSON(h, "/api/v1/staff/rounds/"+sealed+"/close", "", staff...)
	if ev := nextEvent(t, events); ev.name != "closed" {
		t.Errorf("a sealed round's stream sent %+v before closing; want nothing but open and closed", ev)
	}
}
