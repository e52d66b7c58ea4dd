package billing

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/members"
)

// PushReport counts what a push changed in Stripe.
type PushReport struct {
	ProductsCreated, ProductsUpdated int
	PricesCreated, PricesArchived    int
	PricesAdopted                    int // existing prices given our lookup key
}

func (r *PushReport) add(o PushReport) {
	r.ProductsCreated += o.ProductsCreated
	r.ProductsUpdated += o.ProductsUpdated
	r.PricesCreated += o.PricesCreated
	r.PricesArchived += o.PricesArchived
	r.PricesAdopted += o.PricesAdopted
}

// Created is how many Stripe objects the push created.
func (r PushReport) Created() int { return r.ProductsCreated + r.PricesCreated }

// PushTiers mirrors every tier to Stripe: a Product per tier, a Price per
// tier price found by its lookup key. It is idempotent: run twice, the
// second run creates nothing.
func (s *Service) PushTiers(ctx context.Context) (PushReport, error) {
	var total PushReport
	if _, err := s.stripeClient(); err != nil {
		return total, err
	}
	tiers, err := listTiers(ctx, s.db, false)
	if err != nil {
		return total, err
	}
	for _, t := range tiers {
		r, err := s.pushTier(ctx, t.Slug)
		total.add(r)
		if err != nil {
			return total, fmt.Errorf("push tier %s: %w", t.Slug, err)
		}
	}
	return total, nil
}

func (s *Service) pushTier(ctx context.Context, slug string) (PushReport, error) {
	var r PushReport
	sc, err := s.stripeClient()
	if err != nil {
		return r, err
	}
	t, err := findTier(ctx, s.db, slug)
	if err != nil {
		return r, err
	}
	productID, pr, err := s.pushProduct(ctx, sc, t)
	r.add(pr)
	if err != nil {
		return r, err
	}
	if t.StripeProductID != productID {
		if err := setProductID(ctx, s.db, t.Slug, productID); err != nil {
			return r, err
		}
	}
	keep := map[string]bool{}
	for _, p := range t.Prices {
		priceID, pr, err := s.pushPrice(ctx, sc, t, productID, p)
		r.add(pr)
		if err != nil {
			return r, err
		}
		keep[priceID] = true
		if p.StripePriceID != priceID {
			if err := setPriceID(ctx, s.db, t.Slug, p, priceID); err != nil {
				return r, err
			}
		}
	}
	archived, err := archiveStalePrices(ctx, sc, t.Slug, productID, keep)
	r.PricesArchived += archived
	return r, err
}

func productParams(ctx context.Context, t Tier) *stripe.ProductParams {
	p := &stripe.ProductParams{
		Name:        stripe.String(t.Name),
		Active:      stripe.Bool(t.Active),
		Metadata:    map[string]string{"patronage_tier": t.Slug},
		Description: stripe.String(t.Description),
	}
	if t.Description == "" {
		p.Description = nil // Stripe refuses an empty description
	}
	p.Context = ctx
	return p
}

// pushProduct creates or updates the tier's Product, touching Stripe only
// when something differs.
func (s *Service) pushProduct(ctx context.Context, sc *client.API, t Tier) (string, PushReport, error) {
	var r PushReport
	id := t.StripeProductID
	if id == "" {
		id = ProductID(t.Slug)
	}
	existing, err := sc.Products.Get(id, &stripe.ProductParams{Params: stripe.Params{Context: ctx}})
	if isMissing(err) {
		params := productParams(ctx, t)
		params.ID = stripe.String(id)
		params.SetIdempotencyKey(stripeapi.IdempotencyKey("product-create", id))
		created, err := sc.Products.New(params)
		if err != nil {
			return "", r, stripeapi.MapError(err)
		}
		r.ProductsCreated++
		return created.ID, r, nil
	}
	if err != nil {
		return "", r, stripeapi.MapError(err)
	}
	if productMatches(existing, t) {
		return existing.ID, r, nil
	}
	params := productParams(ctx, t)
	if t.Description == "" && existing.Description != "" {
		params.AddExtra("description", "") // clear it
	}
	// Keyed by the tier's change time: a rename undone later is a new update.
	params.SetIdempotencyKey(stripeapi.IdempotencyKey("product-update", existing.ID, t.UpdatedAt.Format(time.RFC3339Nano)))
	if _, err := sc.Products.Update(existing.ID, params); err != nil {
		return "", r, stripeapi.MapError(err)
	}
	r.ProductsUpdated++
	return existing.ID, r, nil
}

func productMatches(p *stripe.Product, t Tier) bool {
	if p.Name != t.Name || p.Description != t.Description || p.Active != t.Active || p.Metadata["patronage_tier"] != t.Slug {
		return false
	}
	// Benefits are not mirrored: Checkout shows the name and description,
	// and the 2022-11-15 API that stripe-mock checks has no product features.
	return true
}

// pushPrice finds the Stripe price for a tier price by lookup key. A
// matching one is kept; otherwise a new one takes the lookup key and the
// old one is archived (Stripe prices cannot change amount).
func (s *Service) pushPrice(ctx context.Context, sc *client.API, t Tier, productID string, p Price) (string, PushReport, error) {
	var r PushReport
	key := LookupKey(t.Slug, p.Interval, p.Currency)
	current, found, err := priceByLookupKey(ctx, sc, key)
	if err != nil {
		return "", r, err
	}
	if found && priceMatches(current, productID, p) {
		return current.ID, r, nil
	}
	// An adopted price (import-tiers) may match without our lookup key yet.
	if p.StripePriceID != "" && (!found || current.ID != p.StripePriceID) {
		adopted, err := sc.Prices.Get(p.StripePriceID, &stripe.PriceParams{Params: stripe.Params{Context: ctx}})
		if err != nil && !isMissing(err) {
			return "", r, stripeapi.MapError(err)
		}
		if err == nil && priceMatches(adopted, productID, p) {
			params := &stripe.PriceParams{LookupKey: stripe.String(key), TransferLookupKey: stripe.Bool(true),
				Metadata: map[string]string{"patronage_tier": t.Slug}}
			params.Context = ctx
			params.SetIdempotencyKey(stripeapi.IdempotencyKey("price-adopt", adopted.ID, key))
			if _, err := sc.Prices.Update(adopted.ID, params); err != nil {
				return "", r, stripeapi.MapError(err)
			}
			r.PricesAdopted++
			return adopted.ID, r, nil
		}
	}
	params := &stripe.PriceParams{
		Product:           stripe.String(productID),
		Currency:          stripe.String(strings.ToLower(p.Currency)),
		UnitAmount:        stripe.Int64(p.Amount),
		Recurring:         &stripe.PriceRecurringParams{Interval: stripe.String(string(p.Interval)), IntervalCount: stripe.Int64(1)},
		LookupKey:         stripe.String(key),
		TransferLookupKey: stripe.Bool(true),
		Metadata:          map[string]string{"patronage_tier": t.Slug},
	}
	params.Context = ctx
	// Keyed by the tier's change time and the price it replaces too: an
	// amount changed and changed back, or a price archived in the Dashboard,
	// needs a new price, not Stripe's replay of the one made before.
	replaces := ""
	if found {
		replaces = current.ID
	}
	params.SetIdempotencyKey(stripeapi.IdempotencyKey("price-create", productID, key, strconv.FormatInt(p.Amount, 10), t.UpdatedAt.Format(time.RFC3339Nano), replaces))
	created, err := sc.Prices.New(params)
	if err != nil {
		return "", r, stripeapi.MapError(err)
	}
	r.PricesCreated++
	return created.ID, r, nil
}

func priceMatches(sp *stripe.Price, productID string, p Price) bool {
	return sp.Active && sp.UnitAmount == p.Amount && strings.EqualFold(string(sp.Currency), p.Currency) &&
		sp.Recurring != nil && string(sp.Recurring.Interval) == string(p.Interval) && sp.Recurring.IntervalCount == 1 &&
		sp.Product != nil && sp.Product.ID == productID
}

// priceByLookupKey finds the price holding a lookup key; found is false
// when no price holds it.
func priceByLookupKey(ctx context.Context, sc *client.API, key string) (price *stripe.Price, found bool, err error) {
	params := &stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{key})}
	params.Context = ctx
	iter := sc.Prices.List(params)
	for iter.Next() {
		return iter.Price(), true, nil
	}
	if err := iter.Err(); err != nil {
		return nil, false, stripeapi.MapError(err)
	}
	return nil, false, nil
}

// archiveStalePrices deactivates our active prices on the product that the
// tier no longer offers. Subscribers on them keep paying what they pay.
func archiveStalePrices(ctx context.Context, sc *client.API, slug, productID string, keep map[string]bool) (int, error) {
	params := &stripe.PriceListParams{Product: stripe.String(productID), Active: stripe.Bool(true)}
	params.Context = ctx
	iter := sc.Prices.List(params)
	var stale []string
	for iter.Next() {
		p := iter.Price()
		if !keep[p.ID] && p.Metadata["patronage_tier"] == slug {
			stale = append(stale, p.ID)
		}
	}
	if err := iter.Err(); err != nil {
		return 0, stripeapi.MapError(err)
	}
	for _, id := range stale {
		params := &stripe.PriceParams{Active: stripe.Bool(false)}
		params.Context = ctx
		params.SetIdempotencyKey(stripeapi.IdempotencyKey("price-archive", id))
		if _, err := sc.Prices.Update(id, params); err != nil {
			return 0, stripeapi.MapError(err)
		}
	}
	return len(stale), nil
}

// ImportReport says what import-tiers adopted.
type ImportReport struct {
	TiersCreated []string
	Skipped      []string // products that already have a tier, or no usable price
}

var nonSlug = regexp.MustCompile(`[^a-z0-9-]+`)

// ImportTiers adopts the newsroom's existing Stripe Products and their
// monthly and yearly prices as tiers. A product already mirrored, or one
// whose slug is taken, is left alone. The next push gives the adopted
// prices our lookup keys without creating new ones.
func (s *Service) ImportTiers(ctx context.Context, actor members.Actor) (ImportReport, error) {
	var rep ImportReport
	sc, err := s.stripeClient()
	if err != nil {
		return rep, err
	}
	existing, err := listTiers(ctx, s.db, false)
	if err != nil {
		return rep, err
	}
	taken := map[string]bool{}
	mirrored := map[string]bool{}
	for _, t := range existing {
		taken[t.Slug] = true
		mirrored[t.StripeProductID] = true
	}
	params := &stripe.ProductListParams{Active: stripe.Bool(true)}
	params.Context = ctx
	iter := sc.Products.List(params)
	var products []*stripe.Product
	for iter.Next() {
		products = append(products, iter.Product())
	}
	if err := iter.Err(); err != nil {
		return rep, stripeapi.MapError(err)
	}
	for i, p := range products {
		slug := p.Metadata["patronage_tier"]
		if slug == "" {
			slug = strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(p.Name), "-"), "-")
			slug = truncate(slug, 40)
		}
		if mirrored[p.ID] || taken[slug] || !slugPattern.MatchString(slug) {
			rep.Skipped = append(rep.Skipped, p.ID)
			continue
		}
		prices, err := importablePrices(ctx, sc, p.ID)
		if err != nil {
			return rep, err
		}
		if len(prices) == 0 {
			rep.Skipped = append(rep.Skipped, p.ID)
			continue
		}
		in := TierInput{Slug: slug, Name: p.Name, Description: p.Description, SortOrder: &i}
		for _, pr := range prices {
			in.Prices = append(in.Prices, PriceInput{Currency: pr.Currency, Interval: string(pr.Interval), Amount: pr.Amount})
		}
		if _, err := s.createImported(ctx, actor, in, p.ID, prices); err != nil {
			return rep, fmt.Errorf("import product %s: %w", p.ID, err)
		}
		taken[slug] = true
		rep.TiersCreated = append(rep.TiersCreated, slug)
	}
	return rep, nil
}

func (s *Service) createImported(ctx context.Context, actor members.Actor, in TierInput, productID string, prices []Price) (Tier, error) {
	// Stored without a push: the next push adopts these prices rather than
	// creating new ones.
	t, err := s.createTier(ctx, actor, in)
	if err != nil {
		return Tier{}, err
	}
	if err := setProductID(ctx, s.db, t.Slug, productID); err != nil {
		return Tier{}, err
	}
	for _, p := range prices {
		if err := setPriceID(ctx, s.db, t.Slug, p, p.StripePriceID); err != nil {
			return Tier{}, err
		}
	}
	return t, nil
}

// importablePrices picks, per currency and interval, one active recurring
// price of a product: the one with our lookup key, else the newest.
func importablePrices(ctx context.Context, sc *client.API, productID string) ([]Price, error) {
	params := &stripe.PriceListParams{Product: stripe.String(productID), Active: stripe.Bool(true)}
	params.Context = ctx
	iter := sc.Prices.List(params)
	best := map[string]*stripe.Price{}
	for iter.Next() {
		p := iter.Price()
		if p.Recurring == nil || p.Recurring.IntervalCount != 1 || (p.Recurring.Interval != "month" && p.Recurring.Interval != "year") || p.UnitAmount <= 0 {
			continue
		}
		k := strings.ToUpper(string(p.Currency)) + "/" + string(p.Recurring.Interval)
		if cur, ok := best[k]; !ok || (p.LookupKey != "" && cur.LookupKey == "") || (p.Created > cur.Created && (cur.LookupKey == "") == (p.LookupKey == "")) {
			best[k] = p
		}
	}
	if err := iter.Err(); err != nil {
		return nil, stripeapi.MapError(err)
	}
	keys := make([]string, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []Price
	for _, k := range keys {
		p := best[k]
		out = append(out, Price{Currency: strings.ToUpper(string(p.Currency)), Interval: Interval(p.Recurring.Interval), Amount: p.UnitAmount, StripePriceID: p.ID})
	}
	return out, nil
}

func isMissing(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && (se.HTTPStatusCode == 404 || se.Code == stripe.ErrorCodeResourceMissing)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
