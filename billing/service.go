package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/members"
)

// Service is the billing domain.
type Service struct {
	db      *sqldb.DB
	stripe  *client.API // nil when STRIPE_SECRET_KEY is unset
	members *members.Service
	baseURL *url.URL
	logger  *slog.Logger
	now     func() time.Time
	opts    Options

	mode      WebhookMode
	grace     time.Duration
	templates *mail.Templates

	subMu       sync.Mutex
	subscribers []func(AccessChange)

	eventSink EventSink                   // set by the process that runs the queue
	queue     atomic.Pointer[jobs.Client] // patron mail's; see AttachQueue
	events    members.EventSink

	cacheMu    sync.Mutex
	cached     []Tier
	cachedAt   time.Time
	cacheValid bool
}

// Options are the newsroom's billing choices.
type Options struct {
	AllowPromotionCodes bool
	// DonationBounds limits one-time gifts per currency, in minor units;
	// currencies not listed use DefaultDonationBounds.
	DonationBounds map[string]Bounds
	// PortalConfiguration is the billing portal configuration (bpc_…)
	// patrons get; empty uses the account's default.
	PortalConfiguration string
}

// Bounds is an inclusive range of amounts in minor units.
type Bounds struct{ Min, Max int64 }

// DefaultDonationBounds applies to a currency with no bounds of its own.
var DefaultDonationBounds = Bounds{Min: 100, Max: 1_000_000}

// Deps is what the Service needs.
type Deps struct {
	DB      *sqldb.DB
	Stripe  *client.API // nil when payments are not configured
	Members *members.Service
	BaseURL *url.URL
	Logger  *slog.Logger
	Now     func() time.Time
	Options Options
	// WebhookMode is where event handlers take state from (default fetch).
	WebhookMode WebhookMode
	// PastDueGrace is how long access outlasts a failed payment (default 7 days).
	PastDueGrace time.Duration
	// Templates renders patron mail; nil sends none.
	Templates *mail.Templates
	// Events hears membership and donation events inside the transactions
	// that make them; nil hears nothing.
	Events members.EventSink
}

// NewService builds the billing service.
func NewService(d Deps) *Service {
	now := d.Now
	if now == nil {
		now = sqldb.Now
	}
	mode, grace := d.WebhookMode, d.PastDueGrace
	if mode == "" {
		mode = ModeFetch
	}
	if grace <= 0 {
		grace = DefaultPastDueGrace
	}
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{db: d.DB, stripe: d.Stripe, members: d.Members, baseURL: d.BaseURL, logger: logger, now: now, opts: d.Options,
		mode: mode, grace: grace, templates: d.Templates, events: d.Events}
}

// StripeConfigured reports whether a Stripe key is set.
func (s *Service) StripeConfigured() bool { return s.stripe != nil }

func (s *Service) stripeClient() (*client.API, error) {
	if s.stripe == nil {
		return nil, stripeapi.ErrNotConfigured
	}
	return s.stripe, nil
}

// activeTier finds an active tier for checkout, from the cached public list
// when it is there (a tier created in the last moments is read from the
// database).
func (s *Service) activeTier(ctx context.Context, slug string) (Tier, error) {
	tiers, err := s.ActiveTiers(ctx)
	if err != nil {
		return Tier{}, err
	}
	for _, t := range tiers {
		if t.Slug == slug {
			return t, nil
		}
	}
	t, err := findTier(ctx, s.db, slug)
	if err != nil {
		return Tier{}, err
	}
	if !t.Active {
		return Tier{}, errTierNotFound
	}
	return t, nil
}

// publicTierTTL bounds how stale another replica's tier list may be; this
// replica forgets its copy at once when staff change a tier.
const publicTierTTL = 2 * time.Second

// ActiveTiers lists the tiers readers may choose, in display order. It is
// read on every join page, so it is kept in memory for a moment.
func (s *Service) ActiveTiers(ctx context.Context) ([]Tier, error) {
	s.cacheMu.Lock()
	if s.cacheValid && time.Since(s.cachedAt) < publicTierTTL {
		tiers := s.cached
		s.cacheMu.Unlock()
		return tiers, nil
	}
	s.cacheMu.Unlock()
	tiers, err := listTiers(ctx, s.db, true)
	if err != nil {
		return nil, err
	}
	s.cacheMu.Lock()
	s.cached, s.cachedAt, s.cacheValid = tiers, time.Now(), true
	s.cacheMu.Unlock()
	return tiers, nil
}

func (s *Service) forgetTiers() {
	s.cacheMu.Lock()
	s.cacheValid = false
	s.cacheMu.Unlock()
}

// AllTiers lists every tier, archived ones included, for staff.
func (s *Service) AllTiers(ctx context.Context) ([]Tier, error) { return listTiers(ctx, s.db, false) }

// FindTier returns one tier by slug.
func (s *Service) FindTier(ctx context.Context, slug string) (Tier, error) {
	return findTier(ctx, s.db, slug)
}

// TierChange is a tier after a staff change and whether Stripe has it.
type TierChange struct {
	Tier      Tier
	StripeErr error // the push to Stripe failed; `patronage stripe push-tiers` retries
}

// CreateTier validates and stores a new tier, then mirrors it to Stripe
// when Stripe is configured.
func (s *Service) CreateTier(ctx context.Context, actor members.Actor, in TierInput) (TierChange, error) {
	t, err := s.createTier(ctx, actor, in)
	if err != nil {
		return TierChange{}, err
	}
	return s.afterChange(ctx, t.Slug)
}

// createTier validates and stores a tier, without touching Stripe.
func (s *Service) createTier(ctx context.Context, actor members.Actor, in TierInput) (Tier, error) {
	v := validator{}
	slug := strings.TrimSpace(in.Slug)
	v.check(slugPattern.MatchString(slug), "slug", "must be 1 to 40 lower-case letters, digits or hyphens")
	v.name(in.Name)
	v.description(in.Description)
	benefits := v.benefits(in.Benefits)
	t := Tier{Slug: slug, Name: strings.TrimSpace(in.Name), Description: strings.TrimSpace(in.Description), Benefits: benefits,
		VoteWeight: 1, Active: true, CreatedAt: s.now(), UpdatedAt: s.now()}
	if in.VoteWeight != nil {
		v.voteWeight(*in.VoteWeight)
		t.VoteWeight = *in.VoteWeight
	}
	if in.Active != nil {
		t.Active = *in.Active
	}
	if in.SortOrder != nil {
		t.SortOrder = *in.SortOrder
	}
	t.Prices = v.prices(in.Prices)
	if err := v.err(); err != nil {
		return Tier{}, err
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := insertTier(ctx, tx, t); err != nil {
			return err
		}
		return members.RecordAudit(ctx, tx, members.AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "tier.create",
			SubjectType: "tier", SubjectID: t.Slug, After: auditJSON(t), CreatedAt: t.CreatedAt})
	})
	if err != nil {
		return Tier{}, err
	}
	s.forgetTiers()
	return t, nil
}

// UpdateTier applies a patch; archiving is {"active": false}. Changed
// amounts become new Stripe prices on the next push: Stripe prices are
// immutable and existing subscribers keep what they pay.
func (s *Service) UpdateTier(ctx context.Context, actor members.Actor, slug string, p TierPatch) (TierChange, error) {
	var before Tier
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		t, err := findTier(ctx, tx, slug)
		if err != nil {
			return err
		}
		before = t
		before.Prices = append([]Price(nil), t.Prices...)
		v := validator{}
		if p.Name != nil {
			v.name(*p.Name)
			t.Name = strings.TrimSpace(*p.Name)
		}
		if p.Description != nil {
			v.description(*p.Description)
			t.Description = strings.TrimSpace(*p.Description)
		}
		if p.Benefits != nil {
			t.Benefits = v.benefits(*p.Benefits)
		}
		if p.VoteWeight != nil {
			v.voteWeight(*p.VoteWeight)
			t.VoteWeight = *p.VoteWeight
		}
		if p.Active != nil {
			t.Active = *p.Active
		}
		if p.SortOrder != nil {
			t.SortOrder = *p.SortOrder
		}
		if p.Prices != nil {
			t.Prices = v.prices(*p.Prices)
		}
		if err := v.err(); err != nil {
			return err
		}
		t.UpdatedAt = s.now()
		if err := updateTier(ctx, tx, t); err != nil {
			return err
		}
		if p.Prices != nil {
			if err := replacePrices(ctx, tx, slug, before.Prices, t.Prices); err != nil {
				return err
			}
		}
		return members.RecordAudit(ctx, tx, members.AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "tier.update",
			SubjectType: "tier", SubjectID: slug, Before: auditJSON(before), After: auditJSON(t), CreatedAt: t.UpdatedAt})
	})
	if err != nil {
		return TierChange{}, err
	}
	s.forgetTiers()
	return s.afterChange(ctx, slug)
}

// afterChange pushes a changed tier to Stripe when configured. A failed
// push does not undo the change: the tier is ours, Stripe mirrors it, and
// the next push catches up.
func (s *Service) afterChange(ctx context.Context, slug string) (TierChange, error) {
	var change TierChange
	if s.stripe != nil {
		if _, err := s.pushTier(ctx, slug); err != nil {
			change.StripeErr = err // reported in the answer; the web layer logs it
		}
	}
	t, err := findTier(ctx, s.db, slug)
	change.Tier = t
	return change, err
}

func auditJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
