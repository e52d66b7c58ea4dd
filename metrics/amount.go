// Package metrics computes the staff's revenue figures from billing's
// history, exactly as docs/metrics.md defines them: per currency, in minor
// units, with one rounding (half to even) per subscription at the end.
// It reads nothing itself: callers hand it history rows.
package metrics

import (
	"math/big"
	"time"
)

// Plan is what a subscription charges while a history row holds.
type Plan struct {
	Status        string // Stripe's: active, past_due, trialing, canceled, …
	Currency      string // lower case, as Stripe sends it
	UnitAmount    int64  // minor units
	Quantity      int64
	Interval      string // day, week, month, year
	IntervalCount int
	// The subscription's coupon, if any: percent off in basis points, or
	// an amount off in minor units; Duration is forever, once or repeating.
	PercentOffBps *int64
	AmountOff     *int64
	Duration      string
}

// Counts reports whether the plan's status counts towards MRR: active and
// past_due do; trialing, incomplete, incomplete_expired, paused, unpaid and
// canceled do not.
func (p Plan) Counts() bool { return p.Status == "active" || p.Status == "past_due" }

// MonthlyAmount is the plan's monthly amount in minor units, whatever its
// status: unit_amount × quantity, less a forever coupon (amount off before
// the interval factor, never below 0; percent off as × (1 − p/100)), times
// the interval factor (1/n a month, 1/(12n) a year, 52/(12n) a week,
// 365/(12n) a day, for an interval count n), rounded half to even once.
// An unknown interval or a count below 1 is 0.
func (p Plan) MonthlyAmount() int64 {
	num, den := factor(p.Interval, p.IntervalCount)
	if den == 0 {
		return 0
	}
	base := new(big.Int).Mul(big.NewInt(p.UnitAmount), big.NewInt(p.Quantity))
	if p.Duration == "forever" {
		if p.AmountOff != nil {
			base.Sub(base, big.NewInt(*p.AmountOff))
			if base.Sign() < 0 {
				base.SetInt64(0)
			}
		}
		if p.PercentOffBps != nil {
			base.Mul(base, big.NewInt(10000-*p.PercentOffBps))
			den *= 10000
		}
	}
	base.Mul(base, big.NewInt(num))
	return roundHalfEven(base, big.NewInt(den))
}

// MRR is the plan's contribution to MRR: its monthly amount when its
// status counts, else 0.
func (p Plan) MRR() int64 {
	if !p.Counts() {
		return 0
	}
	return p.MonthlyAmount()
}

// factor is the interval's monthly factor as a fraction; den 0 when the
// interval is unknown.
func factor(interval string, count int) (num, den int64) {
	if count < 1 {
		return 0, 0
	}
	n := int64(count)
	switch interval {
	case "month":
		return 1, n
	case "year":
		return 1, 12 * n
	case "week":
		return 52, 12 * n
	case "day":
		return 365, 12 * n
	}
	return 0, 0
}

// roundHalfEven divides num by den (> 0) and rounds to the nearest integer,
// ties to even.
func roundHalfEven(num, den *big.Int) int64 {
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() < 0 { // num < 0: round the magnitude the same way
		r.Neg(r)
	}
	twice := r.Lsh(r, 1)
	switch c := twice.Cmp(den); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q.Int64()
}

// Change is one row of a subscription's history: from At on, the
// subscription is on Plan (until its next row).
type Change struct {
	SubscriptionID string
	// Patron is who the subscription's money counts for: the member, or
	// for a subscription whose member was erased, a stand-in that stays
	// the same for that subscription.
	Patron string
	Seq    int // order of rows at the same instant
	At     time.Time
	Tier   string // the tier the price belongs to, if known
	Plan
}
