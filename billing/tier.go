// Package billing owns what patrons pay: tiers and their prices (mirrored
// to Stripe), Stripe customers, Checkout for subscriptions and gifts, and the
// billing portal. It never imports webhooks or voting; members is below it.
package billing

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/money"
)

// Interval is how often a subscription renews.
type Interval string

const (
	Month Interval = "month"
	Year  Interval = "year"
)

// Price is one amount a tier costs, per currency and interval.
type Price struct {
	Currency      string // upper-case ISO 4217
	Interval      Interval
	Amount        int64 // minor units
	StripePriceID string
}

// Tier is a level of patronage.
type Tier struct {
	Slug            string
	Name            string
	Description     string
	Benefits        []string
	VoteWeight      int
	Active          bool
	SortOrder       int
	Prices          []Price
	StripeProductID string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// PriceFor returns the tier's price in a currency and interval.
func (t Tier) PriceFor(currency string, interval Interval) (Price, bool) {
	for _, p := range t.Prices {
		if p.Currency == currency && p.Interval == interval {
			return p, true
		}
	}
	return Price{}, false
}

// PriceInput is a price as staff send it.
type PriceInput struct {
	Currency string `json:"currency"`
	Interval string `json:"interval"`
	Amount   int64  `json:"amount"`
}

// TierInput creates a tier.
type TierInput struct {
	Slug        string       `json:"slug"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Benefits    []string     `json:"benefits"`
	VoteWeight  *int         `json:"vote_weight"`
	Active      *bool        `json:"active"`
	SortOrder   *int         `json:"sort_order"`
	Prices      []PriceInput `json:"prices"`
}

// TierPatch changes a tier; absent fields stay as they are. Prices, when
// given, replace the tier's whole set.
type TierPatch struct {
	Name        *string       `json:"name"`
	Description *string       `json:"description"`
	Benefits    *[]string     `json:"benefits"`
	VoteWeight  *int          `json:"vote_weight"`
	Active      *bool         `json:"active"`
	SortOrder   *int          `json:"sort_order"`
	Prices      *[]PriceInput `json:"prices"`
}

var slugPattern = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)

const (
	maxTierName        = 80
	maxTierDescription = 2000
	maxBenefits        = 20
	maxBenefitLength   = 200
	maxVoteWeight      = 100
)

// validator collects every problem with an input before answering.
type validator map[string]string

func (v validator) check(ok bool, field, problem string) {
	if !ok {
		if _, seen := v[field]; !seen {
			v[field] = problem
		}
	}
}

func (v validator) err() error {
	if len(v) == 0 {
		return nil
	}
	return errs.InvalidFields(v)
}

func validText(s string, max int) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= max && !strings.ContainsAny(s, "\x00")
}

func (v validator) name(name string) {
	v.check(strings.TrimSpace(name) != "", "name", "is required")
	v.check(validText(name, maxTierName), "name", fmt.Sprintf("must be at most %d characters", maxTierName))
}

func (v validator) description(d string) {
	v.check(validText(d, maxTierDescription), "description", fmt.Sprintf("must be at most %d characters", maxTierDescription))
}

func (v validator) benefits(list []string) []string {
	v.check(len(list) <= maxBenefits, "benefits", fmt.Sprintf("must list at most %d benefits", maxBenefits))
	out := make([]string, 0, len(list))
	for i, b := range list {
		b = strings.TrimSpace(b)
		field := fmt.Sprintf("benefits[%d]", i)
		v.check(b != "", field, "must not be empty")
		v.check(validText(b, maxBenefitLength), field, fmt.Sprintf("must be at most %d characters", maxBenefitLength))
		out = append(out, b)
	}
	return out
}

func (v validator) voteWeight(w int) {
	v.check(w >= 1 && w <= maxVoteWeight, "vote_weight", fmt.Sprintf("must be a whole number from 1 to %d", maxVoteWeight))
}

// prices validates a set of prices: real currencies, month or year,
// chargeable amounts, no (currency, interval) twice.
func (v validator) prices(in []PriceInput) []Price {
	v.check(len(in) > 0, "prices", "must have at least one price")
	seen := map[string]int{}
	out := make([]Price, 0, len(in))
	for i, p := range in {
		field := fmt.Sprintf("prices[%d]", i)
		currency, err := money.Normalize(p.Currency)
		if err != nil {
			v.check(false, field+".currency", err.Error())
		}
		interval := Interval(strings.ToLower(strings.TrimSpace(p.Interval)))
		v.check(interval == Month || interval == Year, field+".interval", "must be month or year")
		if err == nil {
			if err := money.CheckAmount(p.Amount, currency); err != nil {
				v.check(false, field+".amount", err.Error())
			}
		}
		key := currency + "/" + string(interval)
		if j, dup := seen[key]; dup && currency != "" {
			v.check(false, field, fmt.Sprintf("repeats the %s %s price of prices[%d]", currency, interval, j))
		}
		seen[key] = i
		out = append(out, Price{Currency: currency, Interval: interval, Amount: p.Amount})
	}
	return out
}

// LookupKey names a tier's price in Stripe, so it can be found again
// without remembering its id: patronage_<slug>_<interval>_<currency>.
func LookupKey(slug string, interval Interval, currency string) string {
	return "patronage_" + slug + "_" + string(interval) + "_" + strings.ToLower(currency)
}

// ProductID is the Stripe Product id Patronage gives a tier's product.
func ProductID(slug string) string { return "patronage_" + slug }
