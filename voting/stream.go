package voting

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
	if _, waiting := s.announcing[roundID]; waiting {
		s.announcing[roundID] = true
		s.announceMu.Unlock()
		return
	}
	s.announcing[roundID] = false
	s.announceMu.Unlock()
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

// listeners fans a replica's one Redis subscription out to every local
// listener: a channel is subscribed while at least one listener wants its
// round, however many clients watch it.
type listeners struct {
	mu      sync.Mutex
	sub     *redis.PubSub
	byChan  map[string]map[chan string]struct{}
	waiting map[string][]chan struct{} // subscriptions not yet confirmed by Redis
	leaving map[string][]chan struct{} // unsubscriptions not yet confirmed
}

// Listen delivers a round's events until ctx ends, when the channel is
// closed. It returns once Redis has confirmed the subscription, so no event
// published after it returns is missed. A slow listener misses events
// rather than hold up the others.
func (s *Service) Listen(ctx context.Context, roundID string) (<-chan string, error) {
	l := &s.listeners
	channel := s.eventsChannel(roundID)
	out := make(chan string, 16)
	l.mu.Lock()
	if l.sub == nil {
		l.sub = s.redis.Client.Subscribe(context.WithoutCancel(ctx))
		l.byChan, l.waiting, l.leaving = map[string]map[chan string]struct{}{}, map[string][]chan struct{}{}, map[string][]chan struct{}{}
		go s.fanOut(l.sub)
	}
	var confirmed chan struct{}
	if l.byChan[channel] == nil {
		l.byChan[channel] = map[chan string]struct{}{}
		confirmed = make(chan struct{})
		l.waiting[channel] = append(l.waiting[channel], confirmed)
		if err := l.sub.Subscribe(ctx, channel); err != nil {
			delete(l.byChan, channel)
			l.waiting[channel] = slices.DeleteFunc(l.waiting[channel], func(w chan struct{}) bool { return w == confirmed })
			l.mu.Unlock()
			return nil, err
		}
	} else if w := l.waiting[channel]; len(w) > 0 {
		confirmed = w[0] // someone else's subscription is on its way
	}
	l.byChan[channel][out] = struct{}{}
	l.mu.Unlock()
	// The last listener of a round unsubscribes; its channel closes once
	// Redis has confirmed that (or after a while, whatever Redis says).
	leave := func() {
		l.mu.Lock()
		delete(l.byChan[channel], out)
		var gone chan struct{}
		if len(l.byChan[channel]) == 0 {
			delete(l.byChan, channel)
			gone = make(chan struct{})
			l.leaving[channel] = append(l.leaving[channel], gone)
			if l.sub.Unsubscribe(context.Background(), channel) != nil {
				l.leaving[channel] = slices.DeleteFunc(l.leaving[channel], func(w chan struct{}) bool { return w == gone })
				gone = nil
			}
		}
		l.mu.Unlock()
		if gone != nil {
			select {
			case <-gone:
			case <-time.After(5 * time.Second):
			}
		}
		close(out) // fanOut no longer sees it: no send can follow
	}
	if confirmed != nil {
		select {
		case <-confirmed:
		case <-ctx.Done():
			leave()
			return nil, ctx.Err()
		}
	}
	go func() {
		<-ctx.Done()
		leave()
	}()
	return out, nil
}

// fanOut hands each message of the replica's subscription to the round's
// listeners, and confirmations to whoever waits for them.
func (s *Service) fanOut(sub *redis.PubSub) {
	l := &s.listeners
	for m := range sub.ChannelWithSubscriptions() {
		l.mu.Lock()
		switch m := m.(type) {
		case *redis.Subscription:
			waiters := l.waiting
			if m.Kind == "unsubscribe" {
				waiters = l.leaving
			}
			if w := waiters[m.Channel]; len(w) > 0 {
				close(w[0])
				if waiters[m.Channel] = w[1:]; len(w) == 1 {
					delete(waiters, m.Channel)
				}
			}
		case *redis.Message:
			for out := range l.byChan[m.Channel] {
				select {
				case out <- m.Payload:
				default: // a slow listener misses a beat, never blocks the rest
				}
			}
		}
		l.mu.Unlock()
	}
}
