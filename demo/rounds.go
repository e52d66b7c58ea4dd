package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/voting"
)

var topicIdeas = []struct{ title, summary string }{
	{"Who owns the river banks?", "Land registry records against the flood maps."},
	{"The rent index, audited", "How the city's rent index is computed, and by whom."},
	{"School meals, costed", "What a school lunch costs the city, and what it buys."},
	{"Night buses", "Where the last buses go, and who is left waiting."},
	{"The harbour contract", "The dredging tender, line by line."},
	{"Heat in the old town", "Street temperatures in summer, mapped by readers."},
	{"Where the recycling goes", "Following the bins to the end of the line."},
	{"Doctors leaving", "Why the district's GPs retire early."},
	{"The bridge that never opened", "Eleven years and four budgets."},
	{"Council lobbying diary", "Every meeting logged, and what followed."},
	{"Youth clubs closing", "What replaced them, if anything."},
	{"Water prices", "Why the bills rose faster than the costs."},
	{"The stadium subsidy", "Who paid, who profited."},
	{"Care homes inspected", "Reports the inspectorate did not publish."},
	{"Cycling deaths", "Each junction, each inquest."},
	{"Empty offices", "Vacancy rates and the conversion that stalled."},
	{"Police overtime", "Where the hours went."},
	{"The airport noise map", "What the new flight paths sound like at home."},
	{"Library hours", "Cut by a third in five years."},
	{"Street trees", "Planted, felled, and never replaced."},
	{"Local elections money", "Donations below the reporting line."},
	{"Pharmacy deserts", "Neighbourhoods an hour from a pharmacy."},
	{"The tram extension", "Promised in three manifestos."},
	{"Short lets", "How many flats became hotels."},
}

// planRounds plans voting rounds spread over the history, each open for
// two weeks and closed by the schedule, and one round open now.
func (s *story) planRounds(months int) {
	closed := max(1, months/4)
	span := s.end.Sub(s.start)
	next := 0
	topics := func(n int) []int {
		var out []int
		for range n {
			out = append(out, next%len(topicIdeas))
			next++
		}
		return out
	}
	for k := range closed {
		closes := s.start.Add(span * time.Duration(k+1) / time.Duration(closed+1)).Truncate(time.Hour)
		opens := closes.Add(-14 * day)
		weighting := "equal"
		if k%2 == 1 {
			weighting = "tier"
		}
		s.planRound(fmt.Sprintf("What should we investigate next? (%s)", opens.Format("January 2006")), opens, closes, weighting, topics(4), opens.Add(3*day))
	}
	opens := s.end.Add(-4 * day).Truncate(time.Hour)
	s.planRound("What should we investigate next?", opens, s.end.Add(10*day).Truncate(time.Hour), "equal", topics(5), s.end.Add(-time.Hour))
}

// planRound plans a round from its preparation by staff to its close, and
// the coverage of its winner.
func (s *story) planRound(title string, opens, closes time.Time, weighting string, ideas []int, voteAt time.Time) {
	var round voting.Round
	s.at(opens.Add(-2*day), func(ctx context.Context) error {
		var ids []string
		for _, i := range ideas {
			t, err := s.voting.CreateTopic(ctx, Staff, topicIdeas[i].title, topicIdeas[i].summary)
			if err != nil {
				return fmt.Errorf("create topic: %w", err)
			}
			ids = append(ids, t.ID)
		}
		var err error
		round, err = s.voting.CreateRound(ctx, Staff, voting.RoundInput{Title: title,
			Description: "Pick up to three. The leading topic is the next investigation.", OpensAt: opens, ClosesAt: closes,
			VotesPerPatron: 3, Weighting: weighting, Results: "live", TopicIDs: ids})
		if err != nil {
			return fmt.Errorf("create round: %w", err)
		}
		if closes.After(s.end) {
			s.sum.OpenRounds++
		}
		return nil
	})
	s.at(voteAt, func(ctx context.Context) error { return s.vote(ctx, round) })
	s.at(closes, func(ctx context.Context) error {
		res, err := s.voting.CloseRound(ctx, voting.Schedule, round.ID)
		if err != nil {
			return fmt.Errorf("close round: %w", err)
		}
		s.sum.ClosedRounds++
		for _, t := range res.Topics {
			if !t.Won {
				continue
			}
			id := t.TopicID
			s.at(closes.Add(21*day), func(ctx context.Context) error {
				covered, url := "covered", fmt.Sprintf("https://news.demo.example.org/investigations/%s", id)
				_, err := s.voting.UpdateTopic(ctx, Staff, id, voting.TopicPatch{Status: &covered, ArticleURL: &url})
				return err
			})
			break
		}
		return nil
	})
}

// vote has most readers who ever subscribed try to vote; the voting
// service takes the ballots of those with access now and refuses the rest,
// as it would on /vote. Some topics are more popular than others.
func (s *story) vote(ctx context.Context, round voting.Round) error {
	if err := s.flush(ctx); err != nil { // access as of this moment
		return err
	}
	type ballot struct{ member, topic string }
	var ballots []ballot
	pull := make([]float64, len(round.TopicIDs))
	for i := range pull {
		pull[i] = 0.2 + s.rng.Float64()
	}
	for _, p := range s.patrons {
		if p.member == "" || !s.chance(0.6) {
			continue
		}
		chosen := map[int]bool{}
		for range 1 + s.rng.IntN(3) {
			chosen[s.pick(pull)] = true
		}
		for i := range round.TopicIDs {
			if chosen[i] {
				ballots = append(ballots, ballot{p.member, round.TopicIDs[i]})
			}
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 16)
	for _, b := range ballots {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := s.voting.CastVote(ctx, round.ID, b.member, b.topic)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				s.sum.Ballots++
			case errs.Is(err, errs.Forbidden):
				// Not a patron now: the service said no, as it should.
			case firstErr == nil:
				firstErr = fmt.Errorf("cast vote: %w", err)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// pick draws an index with probability proportional to its weight.
func (s *story) pick(weights []float64) int {
	var total float64
	for _, w := range weights {
		total += w
	}
	r := s.rng.Float64() * total
	for i, w := range weights {
		if r < w {
			return i
		}
		r -= w
	}
	return len(weights) - 1
}
