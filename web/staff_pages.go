package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/voting"
)

// Pages where patrons suggest topics and staff run rounds and moderate
// suggestions. They post plain forms to the same voting service the API
// uses, so the rules (and their messages) are the same.

// staffVotingData is what the staff voting pages show.
type staffVotingData struct {
	Proposed    []voting.Topic
	Won         []voting.Topic
	Rounds      []staffRound
	Suggestions []voting.Suggestion
}

type staffRound struct {
	voting.Round
	State string // planned, open, closed
}

func (s *Server) voteDisabled(c *gin.Context) bool {
	if s.voting == nil {
		s.failPage(c, errs.WithCode(errs.Unavailable, "unavailable", "Voting is not running on this server."))
		return true
	}
	return false
}

// staffPageMember is the signed-in staff member for a staff page; a reader
// sees 403, a signed-out visitor is sent to sign in and back.
func (s *Server) staffPageMember(c *gin.Context, next string) (members.Member, bool) {
	m, ok := s.pageMemberFor(c, next)
	if ok && !m.Role.IsStaff() {
		s.failPage(c, errs.WithCode(errs.Forbidden, "forbidden", "This page is for the newsroom's staff."))
		return m, false
	}
	return m, ok
}

// suggestPage is the form where a patron suggests a topic.
func (s *Server) suggestPage(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	if _, ok := s.pageMemberFor(c, "/topics/suggest"); !ok {
		return
	}
	s.renderPage(c, http.StatusOK, "suggest.html", pageData{Title: s.loc(c).T("suggest.heading"), Form: map[string]string{}})
}

// suggestForm records a suggestion, then sends the patron to their account
// page, where its fate shows; a refusal shows the form again with why.
func (s *Server) suggestForm(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	m, ok := s.pageMemberFor(c, "/topics/suggest")
	if !ok {
		return
	}
	form := map[string]string{"title": c.PostForm("title"), "summary": c.PostForm("summary")}
	if _, err := s.voting.SuggestTopic(c.Request.Context(), m.ID, form["title"], form["summary"]); err != nil {
		s.showProblem(c, err, pageData{Title: s.loc(c).T("suggest.heading"), Form: form}, func(status int, d pageData) {
			s.renderPage(c, status, "suggest.html", d)
		})
		return
	}
	c.Redirect(http.StatusSeeOther, "/account")
}

// showProblem shows a form's page again with what was wrong: the error's
// status, its message and the offending fields, through render. A fault of
// ours is the error page.
func (s *Server) showProblem(c *gin.Context, err error, d pageData, render func(status int, d pageData)) {
	e := errs.From(err)
	status := statusOf[e.Kind]
	if status == 0 || status >= 500 {
		s.failPage(c, err)
		return
	}
	if ra := e.Details["retry_after"]; ra != "" {
		c.Header("Retry-After", ra)
	}
	d.Error, d.Fields = forPerson(s.loc(c), e), e.Fields
	render(status, d)
}

// staffVotingPage is where staff add topics, open, close and follow
// rounds, and mark won topics covered.
func (s *Server) staffVotingPage(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	if _, ok := s.staffPageMember(c, "/staff/voting"); !ok {
		return
	}
	s.renderStaffVoting(c, http.StatusOK, pageData{})
}

func (s *Server) renderStaffVoting(c *gin.Context, status int, d pageData) {
	ctx := c.Request.Context()
	var st staffVotingData
	var err error
	if st.Proposed, err = s.voting.TopicsWithStatus(ctx, "proposed"); err != nil {
		s.failPage(c, err)
		return
	}
	if st.Won, err = s.voting.TopicsWithStatus(ctx, "won"); err != nil {
		s.failPage(c, err)
		return
	}
	rounds, err := s.voting.StaffRounds(ctx)
	if err != nil {
		s.failPage(c, err)
		return
	}
	now := time.Now()
	for _, r := range rounds {
		state := "planned"
		switch {
		case r.ClosedAt != nil || !now.Before(r.ClosesAt):
			state = "closed"
		case r.Open(now):
			state = "open"
		}
		st.Rounds = append(st.Rounds, staffRound{Round: r, State: state})
	}
	if d.Form == nil {
		d.Form = map[string]string{}
	}
	if _, ok := d.Form["votes_per_patron"]; !ok {
		d.Form["votes_per_patron"] = "3"
	}
	d.Title, d.Staff = s.loc(c).T("staff.voting.heading"), &st
	s.renderPage(c, status, "staff_voting.html", d)
}

// staffVotingForm handles the forms of the staff voting page: what to do
// is in the form's "action".
func (s *Server) staffVotingForm(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	m, ok := s.staffPageMember(c, "/staff/voting")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	var err error
	form := map[string]string{}
	switch c.PostForm("action") {
	case "topic":
		_, err = s.voting.CreateTopic(ctx, actorOf(m), c.PostForm("title"), c.PostForm("summary"))
		form["topic_title"], form["topic_summary"] = c.PostForm("title"), c.PostForm("summary")
	case "round":
		for _, k := range []string{"title", "description", "opens_at", "closes_at", "votes_per_patron", "weighting", "results"} {
			form[k] = c.PostForm(k)
		}
		in := voting.RoundInput{Title: form["title"], Description: form["description"], Weighting: form["weighting"], Results: form["results"],
			TopicIDs: c.PostFormArray("topic_id")}
		for _, id := range in.TopicIDs {
			form["topic:"+id] = "1" // ticked again if the form comes back
		}
		fields := map[string]string{}
		if in.OpensAt, err = parseLocalTime(form["opens_at"], time.Now()); err != nil {
			fields["opens_at"] = "must be a date and time"
		}
		if in.ClosesAt, err = parseLocalTime(form["closes_at"], time.Time{}); err != nil {
			fields["closes_at"] = "must be a date and time"
		}
		if in.VotesPerPatron, err = strconv.Atoi(strings.TrimSpace(form["votes_per_patron"])); err != nil {
			fields["votes_per_patron"] = "must be a whole number from 1 to 50"
		}
		err = nil
		if len(fields) > 0 {
			err = errs.InvalidFields(fields)
		} else {
			_, err = s.voting.CreateRound(ctx, actorOf(m), in)
		}
	case "close":
		_, err = s.voting.CloseRound(ctx, actorOf(m), c.PostForm("round_id"))
	case "covered":
		url := c.PostForm("article_url")
		status := "covered"
		_, err = s.voting.UpdateTopic(ctx, actorOf(m), c.PostForm("topic_id"), voting.TopicPatch{Status: &status, ArticleURL: &url})
	default:
		err = errs.InvalidFields(map[string]string{"action": "must be topic, round, close or covered"})
	}
	if err != nil {
		s.showProblem(c, err, pageData{Form: form}, func(status int, d pageData) { s.renderStaffVoting(c, status, d) })
		return
	}
	c.Redirect(http.StatusSeeOther, "/staff/voting")
}

// parseLocalTime reads a datetime-local field (taken as UTC) or RFC 3339;
// empty means def, when def is set.
func parseLocalTime(v string, def time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" && !def.IsZero() {
		return def, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errs.E(errs.Invalid, "not a time")
}

// staffSuggestionsPage lists suggestions waiting for a decision.
func (s *Server) staffSuggestionsPage(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	if _, ok := s.staffPageMember(c, "/staff/suggestions"); !ok {
		return
	}
	s.renderStaffSuggestions(c, http.StatusOK, pageData{})
}

func (s *Server) renderStaffSuggestions(c *gin.Context, status int, d pageData) {
	pending, err := s.voting.PendingSuggestions(c.Request.Context())
	if err != nil {
		s.failPage(c, err)
		return
	}
	d.Title, d.Staff = s.loc(c).T("staff.suggestions.heading"), &staffVotingData{Suggestions: pending}
	s.renderPage(c, status, "staff_suggestions.html", d)
}

// staffSuggestionForm approves a suggestion (it becomes a proposed topic)
// or declines it with a reason its patron sees.
func (s *Server) staffSuggestionForm(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	m, ok := s.staffPageMember(c, "/staff/suggestions")
	if !ok {
		return
	}
	var p voting.TopicPatch
	switch c.PostForm("decision") {
	case "approve":
		st := "proposed"
		p.Status = &st
	case "decline":
		st, reason := "declined", c.PostForm("reason")
		p.Status, p.DeclineReason = &st, &reason
	default:
		s.renderStaffSuggestions(c, http.StatusUnprocessableEntity, pageData{Error: s.loc(c).T("staff.suggestions.choose")})
		return
	}
	if _, err := s.voting.UpdateTopic(c.Request.Context(), actorOf(m), c.Param("id"), p); err != nil {
		s.showProblem(c, err, pageData{}, func(status int, d pageData) { s.renderStaffSuggestions(c, status, d) })
		return
	}
	c.Redirect(http.StatusSeeOther, "/staff/suggestions")
}
