package billing

import (
	"sort"
	"time"
)

// DefaultPastDueGrace is how long a patron whose payment failed keeps access
// while Stripe retries the charge.
const DefaultPastDueGrace = 7 * 24 * time.Hour

// Access is whether a member may use what patrons get, and why.
type Access struct {
	Active bool
	Source string     // SourceSubscription, SourceComplimentary, or "" when inactive
	Tier   string     // tier slug, "" when unknown or inactive
	Until  *time.Time // when this access ends unless renewed; nil when open-ended
}

const (
	SourceSubscription  = "subscription"
	SourceComplimentary = "complimentary"
)

// SubscriptionFacts is what access needs to know about one subscription.
type SubscriptionFacts struct {
	ID                 string
	Status             string
	Tier               string
	Interval           string // billing interval: month, year
	CurrentPeriodStart *time.Time
	CurrentPeriodEnd   *time.Time
	TrialEnd           *time.Time
	CancelAtPeriodEnd  bool
	// PaymentFailedAt is the first failed attempt at the invoice that made
	// the subscription past_due, when known.
	PaymentFailedAt *time.Time
	// FirstPaymentReversed: the subscription's first payment was refunded
	// in full or is disputed (and not won). Such a subscription counts as
	// never having given access.
	FirstPaymentReversed bool
}

// Grant is complimentary access given by staff.
type Grant struct {
	Tier      string
	StartsAt  time.Time
	EndsAt    *time.Time // nil: until revoked
	RevokedAt *time.Time
}

// DecideAccess is the access rule, and the only place it lives:
//
//   - active, trialing: yes, until the period (or trial) ends; with
//     cancel_at_period_end the access stops at current_period_end;
//   - past_due: yes until grace after the failed payment (the start of the
//     unpaid period when the failure time is unknown);
//   - incomplete, incomplete_expired, unpaid, canceled, paused: no;
//   - a complimentary grant: yes from its start until it ends or is revoked;
//   - a subscription whose first payment was refunded in full or disputed
//     (and not won) gives nothing, whatever its status.
//
// A paid subscription wins over a grant; among several, the one that lasts
// longest. It also returns the next instant the answer could change by the
// passing of time alone (nil if none), so a scheduled job can recompute then.
func DecideAccess(subs []SubscriptionFacts, grants []Grant, now time.Time, grace time.Duration) (Access, *time.Time) {
	var best *Access
	var recheck *time.Time
	soonest := func(t time.Time) {
		if t.After(now) && (recheck == nil || t.Before(*recheck)) {
			recheck = &t
		}
	}
	consider := func(a Access) {
		if best == nil || beats(a, *best) {
			best = &a
		}
	}
	sorted := append([]SubscriptionFacts(nil), subs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	for _, s := range sorted {
		if s.FirstPaymentReversed {
			continue
		}
		switch s.Status {
		case "active", "trialing":
			end := s.CurrentPeriodEnd
			if s.Status == "trialing" && s.TrialEnd != nil {
				end = s.TrialEnd
			}
			if s.CancelAtPeriodEnd && end != nil {
				soonest(*end)
				if !now.Before(*end) {
					continue
				}
			}
			consider(Access{Active: true, Source: SourceSubscription, Tier: s.Tier, Until: copyTime(end)})
		case "past_due":
			failed := s.PaymentFailedAt
			if failed == nil {
				failed = s.CurrentPeriodStart
			}
			if failed == nil {
				continue // nothing to count the grace from: no access rather than a guess
			}
			end := failed.Add(grace)
			soonest(end)
			if now.Before(end) {
				consider(Access{Active: true, Source: SourceSubscription, Tier: s.Tier, Until: &end})
			}
		}
	}
	for _, g := range grants {
		if g.RevokedAt != nil && !g.RevokedAt.After(now) {
			continue
		}
		soonest(g.StartsAt)
		if g.StartsAt.After(now) {
			continue
		}
		end := g.EndsAt
		if g.RevokedAt != nil && (end == nil || g.RevokedAt.Before(*end)) {
			end = g.RevokedAt
		}
		if end != nil {
			soonest(*end)
			if !now.Before(*end) {
				continue
			}
		}
		consider(Access{Active: true, Source: SourceComplimentary, Tier: g.Tier, Until: copyTime(end)})
	}
	if best == nil {
		return Access{}, recheck
	}
	return *best, recheck
}

// beats orders two grants of access: paid over complimentary, then the one
// lasting longer (open-ended longest).
func beats(a, b Access) bool {
	if a.Source != b.Source {
		return a.Source == SourceSubscription
	}
	switch {
	case a.Until == nil:
		return b.Until != nil
	case b.Until == nil:
		return false
	}
	return a.Until.After(*b.Until)
}

func copyTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := t.UTC()
	return &c
}
