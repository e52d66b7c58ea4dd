package billing

import (
	"testing"
	"time"
)

func TestDecideAccess(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	day := 24 * time.Hour
	grace := 7 * day
	sub := func(status string, mod ...func(*SubscriptionFacts)) SubscriptionFacts {
		f := SubscriptionFacts{ID: "sub_" + status, Status: status, Tier: "reader", CurrentPeriodStart: at(-10 * day), CurrentPeriodEnd: at(20 * day)}
		for _, m := range mod {
			m(&f)
		}
		return f
	}
	cases := []struct {
		name       string
		subs       []SubscriptionFacts
		grants     []Grant
		wantActive bool
		wantSource string
		wantUntil  *time.Time
		wantCheck  *time.Time
	}{
		{name: "nothing", wantActive: false},
		{name: "active", subs: []SubscriptionFacts{sub("active")}, wantActive: true, wantSource: SourceSubscription, wantUntil: at(20 * day)},
		{name: "trialing runs to the trial end", subs: []SubscriptionFacts{sub("trialing", func(f *SubscriptionFacts) { f.TrialEnd = at(3 * day) })},
			wantActive: true, wantSource: SourceSubscription, wantUntil: at(3 * day)},
		{name: "cancel at period end, before the end", subs: []SubscriptionFacts{sub("active", func(f *SubscriptionFacts) { f.CancelAtPeriodEnd = true })},
			wantActive: true, wantSource: SourceSubscription, wantUntil: at(20 * day), wantCheck: at(20 * day)},
		{name: "cancel at period end, after the end", subs: []SubscriptionFacts{sub("active", func(f *SubscriptionFacts) {
			f.CancelAtPeriodEnd, f.CurrentPeriodEnd = true, at(-time.Second)
		})}, wantActive: false},
		{name: "past due within grace", subs: []SubscriptionFacts{sub("past_due", func(f *SubscriptionFacts) { f.PaymentFailedAt = at(-6 * day) })},
			wantActive: true, wantSource: SourceSubscription, wantUntil: at(day), wantCheck: at(day)},
		{name: "past due after grace", subs: []SubscriptionFacts{sub("past_due", func(f *SubscriptionFacts) { f.PaymentFailedAt = at(-8 * day) })},
			wantActive: false},
		{name: "past due, failure unknown: grace from the period start", subs: []SubscriptionFacts{sub("past_due", func(f *SubscriptionFacts) {
			f.CurrentPeriodStart = at(-2 * day)
		})}, wantActive: true, wantSource: SourceSubscription, wantUntil: at(5 * day), wantCheck: at(5 * day)},
		{name: "incomplete", subs: []SubscriptionFacts{sub("incomplete")}},
		{name: "incomplete_expired", subs: []SubscriptionFacts{sub("incomplete_expired")}},
		{name: "unpaid", subs: []SubscriptionFacts{sub("unpaid")}},
		{name: "canceled", subs: []SubscriptionFacts{sub("canceled")}},
		{name: "paused", subs: []SubscriptionFacts{sub("paused")}},
		{name: "open-ended grant", grants: []Grant{{Tier: "press", StartsAt: now.Add(-day)}}, wantActive: true, wantSource: SourceComplimentary},
		{name: "grant until a date", grants: []Grant{{StartsAt: now.Add(-day), EndsAt: at(2 * day)}},
			wantActive: true, wantSource: SourceComplimentary, wantUntil: at(2 * day), wantCheck: at(2 * day)},
		{name: "ended grant", grants: []Grant{{StartsAt: now.Add(-9 * day), EndsAt: at(-day)}}},
		{name: "revoked grant", grants: []Grant{{StartsAt: now.Add(-9 * day), RevokedAt: at(-time.Hour)}}},
		{name: "future grant: no access yet, recheck at its start", grants: []Grant{{StartsAt: now.Add(day)}}, wantCheck: at(day)},
		{name: "a subscription wins over a grant", subs: []SubscriptionFacts{sub("active")}, grants: []Grant{{StartsAt: now.Add(-day)}},
			wantActive: true, wantSource: SourceSubscription, wantUntil: at(20 * day)},
		{name: "first payment refunded or disputed: as if never paid", subs: []SubscriptionFacts{sub("active", func(f *SubscriptionFacts) { f.FirstPaymentReversed = true })}},
		{name: "a canceled subscription leaves the grant", subs: []SubscriptionFacts{sub("canceled")}, grants: []Grant{{StartsAt: now.Add(-day)}},
			wantActive: true, wantSource: SourceComplimentary},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, recheck := DecideAccess(tc.subs, tc.grants, now, grace)
			if got.Active != tc.wantActive || got.Source != tc.wantSource {
				t.Fatalf("access = %+v, want active=%v source=%q", got, tc.wantActive, tc.wantSource)
			}
			if !sameTime(got.Until, tc.wantUntil) {
				t.Errorf("until = %v, want %v", got.Until, tc.wantUntil)
			}
			if !sameTime(recheck, tc.wantCheck) {
				t.Errorf("recheck = %v, want %v", recheck, tc.wantCheck)
			}
		})
	}
}

// Within one second the later lifecycle state wins, and nothing revives an
// ended subscription, whichever arrives first.
func TestStateVersionOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := func(at time.Time, status string) stateVersion {
		return stateVersion{At: at, Status: status, EventID: "evt_" + status}
	}
	cases := []struct {
		a, b stateVersion
		want bool
	}{
		{v(t0.Add(time.Second), "active"), v(t0, "trialing"), true},
		{v(t0, "active"), v(t0.Add(time.Second), "trialing"), false},
		{v(t0, "active"), v(t0, "trialing"), true},
		{v(t0, "trialing"), v(t0, "active"), false},
		{v(t0, "canceled"), v(t0, "past_due"), true},
		{v(t0.Add(time.Hour), "active"), v(t0, "canceled"), false},
		{v(t0.Add(time.Hour), "active"), v(t0, "incomplete_expired"), false},
		{v(t0, "active"), v(t0, "incomplete"), true},
	}
	for _, tc := range cases {
		if got := tc.a.supersedes(tc.b); got != tc.want {
			t.Errorf("%s@%s supersedes %s@%s = %v, want %v", tc.a.Status, tc.a.At, tc.b.Status, tc.b.At, got, tc.want)
		}
	}
}

func TestDiscountedRoundsAsStripeDoes(t *testing.T) {
	bps := func(v int64) *int64 { return &v }
	cases := []struct {
		amount   int64
		pct, off *int64
		want     int64
	}{
		{500, bps(2000), nil, 400},  // 20 %
		{999, bps(1250), nil, 874},  // 12.5 % of 999 = 124.875 → 125 off
		{500, bps(10000), nil, 0},   // 100 %
		{500, nil, bps(700), 0},     // never below zero
		{500, nil, bps(150), 350},   // an amount off
		{1000, bps(3333), nil, 667}, // 33.33 % = 333.3 → 333 off
	}
	for _, tc := range cases {
		if got := discounted(tc.amount, tc.pct, tc.off); got != tc.want {
			t.Errorf("discounted(%d, %v, %v) = %d, want %d", tc.amount, tc.pct, tc.off, got, tc.want)
		}
	}
}
