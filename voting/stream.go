package voting

import (
	"context"
	"time"
)

// Events about a round, fanned out through Redis pub/sub so every replica's
// live pages hear them.
const (
	EventTally  = "tally"  // the tally changed
	EventClosed = "closed" // the round closed
	EventRound  = "round"  // staff changed the round (title, closing time, …)
)

func (s *Service) eventsChannel(roundID string) string {
	return s.redis.Key("round", "{"+roundID+"}", "events")
}

// announce tells every replica's listeners about a round; losing one is
// harmless (the next change, or a reload, shows the state).
func (s *Service) announce(ctx context.Context, roundID, event string) {
	if err := s.redis.Client.Publish(context.WithoutCancel(ctx), s.eventsChannel(roundID), event).Err(); err != nil {
		s.logger.WarnContext(ctx, "announce round event", "round_id", roundID, "err", err)
	}
}

// announceEvery is how often at most a replica announces that a round's
// tally changed: listeners send at most two updates a second anyway, and
// under a burst of votes one announcement stands for many.
const announceEvery = 100 * time.Millisecond

// tallyChanged announces a change of a round's tally, at most once per
// announceEvery per round on this replica: a change within that time is
// announced when it ends.
func (s *Service) tallyChanged(roundID string) {
	s.announceMu.Lock()
	defer s.announceMu.Unlock()
	if pending, waiting := s.announcing[roundID]; waiting {
		if !pending {
			s.announcing[roundID] = true
		}
		return
	}
	s.announcing[roundID] = false
	s.announce(context.Background(), roundID, EventTally)
	s.announceLater(roundID)
}

func (s *Service) announceLater(roundID string) {
	time.AfterFunc(announceEvery, func() {
		s.announceMu.Lock()
		pending := s.announcing[roundID]
		if !pending {
			delete(s.announcing, roundID)
			s.announceMu.Unlock()
			return
		}
		s.announcing[roundID] = false
		s.announceMu.Unlock()
		s.announce(context.Background(), roundID, EventTally)
		s.announceLater(roundID)
	})
}

// Listen delivers a round's events until ctx ends, when the channel is
// closed.
func (s *Service) Listen(ctx context.Context, roundID string) (<-chan string, error) {
	sub := s.redis.Client.Subscribe(ctx, s.eventsChannel(roundID))
	if _, err := sub.Receive(ctx); err != nil { // the subscription is in place
		sub.Close()
		return nil, err
	}
	out := make(chan string, 16)
	go func() {
		defer close(out)
		defer sub.Close()
		msgs := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- m.Payload:
				default: // a slow listener misses a beat, never blocks the rest
				}
			}
		}
	}()
	return out, nil
}
