// Package voting owns what patrons vote on: topics, rounds, ballots and
// their tallies. Every ballot is a database row, the truth; the live tally
// of a round and each patron's votes in it live in Redis, changed together
// by one Lua script and rebuilt from the ballots whenever Redis has lost
// them. It never decides who has paid: an Eligibility, which cmd wires to
// billing, says who may vote and what their ballot weighs.
package voting

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/ttlcache"
	"github.com/patronage/patronage/members"
)

// Voter is what voting needs to know about a member.
type Voter struct {
	Active bool // has access now
	Weight int  // their tier's vote_weight (≥ 1), used by tier-weighted rounds
}

// Eligibility says which members may vote now and what their ballots
// weigh (cmd wires it to billing). It reads inside the transaction storing
// their ballots and holds what it read until that commits, so a change of
// access waits for ballots being stored, and the withdrawal that follows a
// lost access finds them. A member it does not list may not vote.
type Eligibility interface {
	// Weight is only needed (and read) when weights is set.
	Voters(ctx context.Context, tx *sql.Tx, memberIDs []string, weights bool) (map[string]Voter, error)
}

// Service is the voting domain.
type Service struct {
	db       *sqldb.DB
	redis    *redisx.Redis
	eligible Eligibility
	logger   *slog.Logger
	now      func() time.Time
	events   members.EventSink

	onCovered func(ctx context.Context, tx *sql.Tx, t Topic, articleURL string, voterIDs []string) error

	// A rebuild of a round's tally must not interleave with casts in that
	// round on this replica: casts hold the read side, a rebuild the write.
	locksMu    sync.Mutex
	locks      map[string]*sync.RWMutex
	rebuilding map[string]bool // rounds with a rebuild started by rebuildLater

	rounds *ttlcache.Cache[string, cachedRound]

	announceMu sync.Mutex
	announcing map[string]bool // rounds announced lately → a change since

	listeners listeners
	tallies   *ttlcache.Cache[string, Tally]

	startCommitters sync.Once
	pending         chan *cast
}

// Deps is what the Service needs.
type Deps struct {
	DB          *sqldb.DB
	Redis       *redisx.Redis
	Eligibility Eligibility
	Logger      *slog.Logger
	Now         func() time.Time
	// OnCovered hears, once per topic, that a won topic was covered, with
	// who voted for it (to mail them the article). It runs inside the
	// transaction that marks the topic covered: what it writes there (the
	// mail it queues) commits with the change, and its error undoes it.
	OnCovered func(ctx context.Context, tx *sql.Tx, t Topic, articleURL string, voterIDs []string) error
	// Events hears round.opened, round.closed and topic.covered inside the
	// transactions that make them; nil hears nothing.
	Events members.EventSink
}

// NewService builds the voting service.
func NewService(d Deps) *Service {
	now := d.Now
	if now == nil {
		now = sqldb.Now
	}
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{db: d.DB, redis: d.Redis, eligible: d.Eligibility, logger: logger, now: now, events: d.Events, locks: map[string]*sync.RWMutex{}, rebuilding: map[string]bool{}, rounds: ttlcache.New[string, cachedRound](roundCacheTTL, 10000),
		tallies: ttlcache.New[string, Tally](tallyCacheTTL, 10000), announcing: map[string]bool{},
		pending: make(chan *cast, 4*maxBatch), onCovered: d.OnCovered}
}

func (s *Service) roundLock(roundID string) *sync.RWMutex {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	l, ok := s.locks[roundID]
	if !ok {
		l = &sync.RWMutex{}
		s.locks[roundID] = l
	}
	return l
}

// roundCacheTTL bounds how long a replica serves a round's definition from
// memory. A replica changing a round forgets its copy at once; others catch
// up within this time. Nothing that must be exact rests on the copy: a
// ballot's transaction re-reads whether the round is open and its budget.
const roundCacheTTL = time.Second

type cachedRound struct {
	round  Round
	topics []RoundTopic
}

// cachedRound is a round and its topics, read at most once per
// roundCacheTTL. Callers must not change what it returns.
func (s *Service) cachedRound(ctx context.Context, id string) (Round, []RoundTopic, error) {
	if c, ok := s.rounds.Get(id); ok {
		return c.round, c.topics, nil
	}
	r, err := s.FindRound(ctx, id)
	if err != nil {
		return Round{}, nil, err
	}
	topics, err := s.TopicsOf(ctx, id)
	if err != nil {
		return Round{}, nil, err
	}
	s.rounds.Put(id, cachedRound{round: r, topics: topics})
	return r, topics, nil
}

// CachedRound is a round and its topics as the voting pages show them, at
// most roundCacheTTL old.
func (s *Service) CachedRound(ctx context.Context, id string) (Round, []RoundTopic, error) {
	return s.cachedRound(ctx, id)
}

func (s *Service) forgetRound(id string) { s.rounds.Forget(id) }

var (
	errRoundNotFound  = errs.WithCode(errs.NotFound, "round_not_found", "No round has this id.")
	errTopicNotFound  = errs.WithCode(errs.NotFound, "topic_not_found", "This topic is not in this round.")
	errRoundClosed    = errs.WithCode(errs.Conflict, "round_closed", "This round is not open for votes.")
	errPatronRequired = errs.WithCode(errs.Forbidden, "patron_required", "Only patrons vote: become one to have a say.")
	errBudget         = errs.WithCode(errs.Conflict, "vote_budget_exhausted", "You have used every vote you have in this round; withdraw one to vote for another topic.")
	errVoteNotFound   = errs.WithCode(errs.NotFound, "vote_not_found", "You have not voted for this topic in this round.")
)
