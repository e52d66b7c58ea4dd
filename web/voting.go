package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/voting"
)

type roundTopicJSON struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Summary string `json:"summary"`
}

type tallyJSON struct {
	TopicID string `json:"topic_id"`
	Votes   int64  `json:"votes"`
}

type roundJSON struct {
	ID             string           `json:"id"`
	Title          string           `json:"title"`
	Description    string           `json:"description"`
	OpensAt        string           `json:"opens_at"`
	ClosesAt       string           `json:"closes_at"`
	Open           bool             `json:"open"`
	VotesPerPatron int              `json:"votes_per_patron"`
	Weighting      string           `json:"weighting"`
	Results        string           `json:"results"`
	Topics         []roundTopicJSON `json:"topics,omitempty"`
	Tally          []tallyJSON      `json:"tally,omitempty"`
	MyVotes        []string         `json:"my_votes,omitempty"`
	VotesLeft      *int             `json:"votes_left,omitempty"`
}

func toRoundJSON(r voting.Round, now time.Time) roundJSON {
	return roundJSON{ID: r.ID, Title: r.Title, Description: r.Description, OpensAt: rfc3339(r.OpensAt), ClosesAt: rfc3339(r.ClosesAt),
		Open: r.Open(now), VotesPerPatron: r.VotesPerPatron, Weighting: r.Weighting, Results: r.Results}
}

func (s *Server) votingService(c *gin.Context) (*voting.Service, bool) {
	if s.voting == nil {
		s.fail(c, errs.WithCode(errs.Unavailable, "unavailable", "Voting is not running on this server."))
		return nil, false
	}
	return s.voting, true
}

// votingMember is the signed-in member changing their votes, within the
// per-member rate limit; on false the answer has been written.
func (s *Server) votingMember(c *gin.Context) (members.Member, bool) {
	m, err := s.currentMember(c)
	if err == nil {
		err = s.allow(c, s.limits.votesPerMember, m.ID)
	}
	if err != nil {
		s.fail(c, err)
		return members.Member{}, false
	}
	return m, true
}

// tallyOf is a round's counts in topic order, each topic listed.
func tallyOf(topicIDs []string, t voting.Tally) []tallyJSON {
	out := make([]tallyJSON, 0, len(topicIDs))
	for _, id := range topicIDs {
		out = append(out, tallyJSON{TopicID: id, Votes: t[id]})
	}
	return out
}

// listRounds lists open and recently closed rounds.
func (s *Server) listRounds(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	rounds, err := v.ListRounds(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	now := time.Now()
	out := make([]roundJSON, 0, len(rounds))
	for _, r := range rounds {
		out = append(out, toRoundJSON(r, now))
	}
	c.JSON(http.StatusOK, gin.H{"rounds": out})
}

// getRound shows a round, its topics, its tally when visible, and for a
// signed-in member their votes and how many are left.
func (s *Server) getRound(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	r, topics, err := v.CachedRound(ctx, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	now := time.Now()
	out := toRoundJSON(r, now)
	for _, t := range topics {
		out.Topics = append(out.Topics, roundTopicJSON{ID: t.ID, Title: t.Title, Summary: t.Summary})
	}
	if r.TalliesVisible(now) {
		tally, err := v.TallyOf(ctx, r.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		out.Tally = tallyOf(r.TopicIDs, tally)
	}
	if m, err := s.signedIn(c); err != nil {
		s.fail(c, err)
		return
	} else if m != nil {
		mine, err := v.MyVotes(ctx, r.ID, m.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		left := r.VotesPerPatron - len(mine)
		out.MyVotes, out.VotesLeft = mine, &left
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"round": out})
}

type castRequest struct {
	TopicID string `json:"topic_id"`
}

// castVote records the signed-in patron's vote: 201 when new, 200 when it
// was already cast.
func (s *Server) castVote(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	m, ok := s.votingMember(c) // who is asking, before what they ask
	if !ok {
		return
	}
	var req castRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.TopicID == "" {
		s.fail(c, errs.InvalidFields(map[string]string{"topic_id": "is required"}))
		return
	}
	ctx := c.Request.Context()
	res, err := v.CastVote(ctx, c.Param("id"), m.ID, req.TopicID)
	if err != nil {
		s.fail(c, err)
		return
	}
	body := gin.H{"votes_left": res.VotesLeft}
	if res.Round.TalliesVisible(time.Now()) {
		tally := res.Tally
		if tally == nil {
			tally, err = v.TallyOf(ctx, res.Round.ID)
		}
		if err == nil {
			body["tally"] = tallyOf(res.Round.TopicIDs, tally)
		}
	}
	status := http.StatusCreated
	if res.Repeated {
		status = http.StatusOK
	}
	c.JSON(status, body)
}

// withdrawVote takes the signed-in patron's vote back while the round is open.
func (s *Server) withdrawVote(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	m, ok := s.votingMember(c)
	if !ok {
		return
	}
	if err := v.WithdrawVote(c.Request.Context(), c.Param("id"), m.ID, c.Param("topic_id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type resultJSON struct {
	TopicID string  `json:"topic_id"`
	Votes   int64   `json:"votes"`
	Won     bool    `json:"won"`
	Covered *string `json:"covered,omitempty"` // the article's URL
}

// roundResults is a closed round's outcome, public and without names.
func (s *Server) roundResults(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	res, err := v.ResultsOf(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if !res.Closed {
		s.fail(c, errs.WithCode(errs.Conflict, "round_open", "The round is still open; its results come when it closes."))
		return
	}
	out := make([]resultJSON, 0, len(res.Topics))
	for _, r := range res.Topics {
		out = append(out, resultJSON{TopicID: r.TopicID, Votes: r.Total, Won: r.Won, Covered: optional(r.ArticleURL)})
	}
	c.JSON(http.StatusOK, gin.H{"round_id": res.RoundID, "voters": res.Voters, "topics": out})
}

type topicRequest struct {
	Title   string `json:"title"`
	Summary string `json:"summary"`
}

func (s *Server) staffCreateTopic(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	var req topicRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	t, err := v.CreateTopic(c.Request.Context(), s.staffActor(c), req.Title, req.Summary)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"topic": gin.H{"id": t.ID, "title": t.Title, "summary": t.Summary, "status": t.Status}})
}

type roundRequest struct {
	Title          string    `json:"title"`
	Description    string    `json:"description"`
	OpensAt        time.Time `json:"opens_at"`
	ClosesAt       time.Time `json:"closes_at"`
	VotesPerPatron int       `json:"votes_per_patron"`
	Weighting      string    `json:"weighting"`
	Results        string    `json:"results"`
	TopicIDs       []string  `json:"topic_ids"`
}

func (s *Server) staffCreateRound(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	var req roundRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	r, err := v.CreateRound(c.Request.Context(), s.staffActor(c), voting.RoundInput{Title: req.Title, Description: req.Description, OpensAt: req.OpensAt,
		ClosesAt: req.ClosesAt, VotesPerPatron: req.VotesPerPatron, Weighting: req.Weighting, Results: req.Results, TopicIDs: req.TopicIDs})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"round": toRoundJSON(r, time.Now())})
}

type roundPatchRequest struct {
	Title          *string    `json:"title"`
	Description    *string    `json:"description"`
	OpensAt        *time.Time `json:"opens_at"`
	ClosesAt       *time.Time `json:"closes_at"`
	VotesPerPatron *int       `json:"votes_per_patron"`
	Weighting      *string    `json:"weighting"`
	Results        *string    `json:"results"`
	TopicIDs       []string   `json:"topic_ids"`
}

// staffUpdateRound edits a round: anything before it opens, only its
// title, description and closing time once open.
func (s *Server) staffUpdateRound(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	var req roundPatchRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	r, err := v.UpdateRound(c.Request.Context(), s.staffActor(c), c.Param("id"), voting.RoundPatch{Title: req.Title, Description: req.Description,
		OpensAt: req.OpensAt, ClosesAt: req.ClosesAt, VotesPerPatron: req.VotesPerPatron, Weighting: req.Weighting, Results: req.Results, TopicIDs: req.TopicIDs})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"round": toRoundJSON(r, time.Now())})
}

func (s *Server) staffCloseRound(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	if _, err := v.CloseRound(c.Request.Context(), s.staffActor(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	s.roundResults(c)
}

type topicPatchRequest struct {
	Title         *string `json:"title"`
	Summary       *string `json:"summary"`
	Status        *string `json:"status"`
	ArticleURL    *string `json:"article_url"`
	DeclineReason *string `json:"decline_reason"`
}

// staffUpdateTopic edits a topic; marking a won topic covered mails its
// voters the article.
func (s *Server) staffUpdateTopic(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	var req topicPatchRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	t, err := v.UpdateTopic(c.Request.Context(), s.staffActor(c), c.Param("id"), voting.TopicPatch{Title: req.Title, Summary: req.Summary, Status: req.Status,
		ArticleURL: req.ArticleURL, DeclineReason: req.DeclineReason})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"topic": gin.H{"id": t.ID, "title": t.Title, "summary": t.Summary, "status": t.Status}})
}

type suggestionJSON struct {
	ID            string  `json:"id"`
	Title         string  `json:"title"`
	Summary       string  `json:"summary"`
	Status        string  `json:"status"`
	DeclineReason *string `json:"decline_reason"`
	CreatedAt     string  `json:"created_at"`
	SuggestedBy   string  `json:"suggested_by,omitempty"`
}

func toSuggestionJSON(sg voting.Suggestion, staff bool) suggestionJSON {
	out := suggestionJSON{ID: sg.ID, Title: sg.Title, Summary: sg.Summary, Status: sg.Status, DeclineReason: optional(sg.DeclineReason),
		CreatedAt: rfc3339(sg.CreatedAt)}
	if staff {
		out.SuggestedBy = sg.SuggestedBy
	}
	return out
}

// suggestTopic records a patron's suggestion (3 in 30 days).
func (s *Server) suggestTopic(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	m, err := s.currentMember(c) // who is asking, before what they ask
	if err != nil {
		s.fail(c, err)
		return
	}
	var req topicRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	sg, err := v.SuggestTopic(c.Request.Context(), m.ID, req.Title, req.Summary)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"suggestion": toSuggestionJSON(sg, false)})
}

// staffSuggestions lists suggestions waiting for a decision, oldest first.
func (s *Server) staffSuggestions(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	list, err := v.PendingSuggestions(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]suggestionJSON, 0, len(list))
	for _, sg := range list {
		out = append(out, toSuggestionJSON(sg, true))
	}
	c.JSON(http.StatusOK, gin.H{"suggestions": out})
}
