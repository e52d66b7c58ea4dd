package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/voting"
)

// voteTopic is a topic on the vote page.
type voteTopic struct {
	ID      string
	Title   string
	Summary string
	Votes   int64
	Mine    bool
	Won     bool
	Covered string
}

// voteData is what the vote and results pages show.
type voteData struct {
	Round     *voting.Round
	Topics    []voteTopic
	ShowTally bool
	SignedIn  bool
	CanVote   bool
	VotesLeft int
	Closed    bool
	Voters    int
	Recent    []voting.Round
}

// votePage shows the open round: its topics, the reader's votes and how
// many are left, and the tally when it is visible. It works with plain
// form posts.
func (s *Server) votePage(c *gin.Context) {
	s.renderVote(c, http.StatusOK, "")
}

func (s *Server) renderVote(c *gin.Context, status int, problem string) {
	if s.voteDisabled(c) {
		return
	}
	d, err := s.voteDataFor(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.renderPage(c, status, "vote.html", pageData{Title: s.loc(c).T("vote.heading"), Vote: &d, Error: problem})
}

// voteDataFor is the open round as the reader sees it, and the others.
func (s *Server) voteDataFor(c *gin.Context) (voteData, error) {
	rounds, err := s.voting.ListRounds(c.Request.Context())
	if err != nil {
		return voteData{}, err
	}
	now := time.Now()
	d := voteData{}
	for i := range rounds {
		if rounds[i].Open(now) && d.Round == nil {
			d.Round = &rounds[i]
		} else if !rounds[i].Open(now) {
			d.Recent = append(d.Recent, rounds[i])
		}
	}
	if d.Round != nil {
		if err := s.fillVote(c, &d, now); err != nil {
			return voteData{}, err
		}
	}
	return d, nil
}

func (s *Server) fillVote(c *gin.Context, d *voteData, now time.Time) error {
	ctx := c.Request.Context()
	topics, err := s.voting.TopicsOf(ctx, d.Round.ID)
	if err != nil {
		return err
	}
	var tally voting.Tally
	if d.Round.TalliesVisible(now) {
		if tally, err = s.voting.TallyOf(ctx, d.Round.ID); err != nil {
			return err
		}
		d.ShowTally = true
	}
	mine := map[string]bool{}
	m, err := s.signedIn(c)
	if err != nil {
		return err
	}
	d.VotesLeft = d.Round.VotesPerPatron
	if m != nil {
		d.SignedIn = true
		access, err := s.accessOf(c, m.ID)
		if err != nil {
			return err
		}
		d.CanVote = access.Active
		ids, err := s.voting.MyVotes(ctx, d.Round.ID, m.ID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			mine[id] = true
		}
		d.VotesLeft -= len(ids)
	}
	for _, t := range topics {
		d.Topics = append(d.Topics, voteTopic{ID: t.ID, Title: t.Title, Summary: t.Summary, Votes: tally[t.ID], Mine: mine[t.ID]})
	}
	return nil
}

// voteForm casts or withdraws a vote from the page, then shows it again.
func (s *Server) voteForm(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	m, err := s.currentMember(c)
	if errs.Is(err, errs.Unauthenticated) {
		c.Redirect(http.StatusSeeOther, "/signin?next=/vote")
		return
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	if err := s.allow(c, s.limits.votesPerMember, m.ID); err != nil {
		s.renderVote(c, http.StatusTooManyRequests, forPerson(s.loc(c), errs.From(err)))
		return
	}
	ctx := c.Request.Context()
	round, topic := c.Param("id"), c.PostForm("topic_id")
	if c.PostForm("action") == "withdraw" {
		err = s.voting.WithdrawVote(ctx, round, m.ID, topic)
	} else {
		_, err = s.voting.CastVote(ctx, round, m.ID, topic)
	}
	if err != nil {
		e := errs.From(err)
		status := statusOf[e.Kind]
		if status == 0 || status >= 500 {
			s.failPage(c, err)
			return
		}
		s.renderVote(c, status, forPerson(s.loc(c), e))
		return
	}
	c.Redirect(http.StatusSeeOther, "/vote")
}

// voteResultsPage shows a round's outcome: final totals once closed, with
// the article for a covered topic; the live tally while open if visible.
func (s *Server) voteResultsPage(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	ctx := c.Request.Context()
	r, err := s.voting.FindRound(ctx, c.Param("id"))
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := voteData{Round: &r}
	res, err := s.voting.ResultsOf(ctx, r.ID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	topics, err := s.voting.TopicsOf(ctx, r.ID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	titles := map[string]voting.RoundTopic{}
	for _, t := range topics {
		titles[t.ID] = t
	}
	if res.Closed {
		d.Closed, d.Voters, d.ShowTally = true, res.Voters, true
		for _, t := range res.Topics {
			d.Topics = append(d.Topics, voteTopic{ID: t.TopicID, Title: titles[t.TopicID].Title, Votes: t.Total, Won: t.Won, Covered: t.ArticleURL})
		}
	} else if err := s.fillVote(c, &d, time.Now()); err != nil {
		s.failPage(c, err)
		return
	}
	s.renderPage(c, http.StatusOK, "vote_results.html", pageData{Title: s.loc(c).T("results.title", "Round", r.Title), Vote: &d})
}
