package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/sqldb"
)

// querier is a *sql.Tx or the *sqldb.DB.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

var errTierNotFound = errs.WithCode(errs.NotFound, "tier_not_found", "No tier has this slug.")

const tierColumns = `slug, name, description, benefits_json, vote_weight, active, sort_order, stripe_product_id, created_at, updated_at`

func scanTier(row interface{ Scan(...any) error }) (Tier, error) {
	var t Tier
	var benefits string
	var product sql.NullString
	if err := row.Scan(&t.Slug, &t.Name, &t.Description, &benefits, &t.VoteWeight, &t.Active, &t.SortOrder, &product, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return Tier{}, err
	}
	t.StripeProductID = product.String
	if err := json.Unmarshal([]byte(benefits), &t.Benefits); err != nil {
		return Tier{}, fmt.Errorf("tier %s benefits: %w", t.Slug, err)
	}
	return t, nil
}

func insertTier(ctx context.Context, q querier, t Tier) error {
	benefits, _ := json.Marshal(t.Benefits)
	_, err := q.ExecContext(ctx, `INSERT INTO tiers (`+tierColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.Slug, t.Name, t.Description, string(benefits), t.VoteWeight, t.Active, t.SortOrder, nullable(t.StripeProductID), t.CreatedAt, t.UpdatedAt)
	if sqldb.IsUniqueViolation(err) {
		return &errs.Error{Kind: errs.Conflict, Code: "tier_exists", Message: "A tier with this slug already exists.", Fields: map[string]string{"slug": "is taken"}}
	}
	if err != nil {
		return fmt.Errorf("insert tier: %w", err)
	}
	return insertPrices(ctx, q, t.Slug, t.Prices)
}

func updateTier(ctx context.Context, q querier, t Tier) error {
	benefits, _ := json.Marshal(t.Benefits)
	_, err := q.ExecContext(ctx, `UPDATE tiers SET name = $1, description = $2, benefits_json = $3, vote_weight = $4, active = $5, sort_order = $6, updated_at = $7 WHERE slug = $8`,
		t.Name, t.Description, string(benefits), t.VoteWeight, t.Active, t.SortOrder, t.UpdatedAt, t.Slug)
	if err != nil {
		return fmt.Errorf("update tier: %w", err)
	}
	return nil
}

// replacePrices swaps a tier's prices for a new set. A price whose amount
// is unchanged keeps its Stripe price id.
func replacePrices(ctx context.Context, q querier, slug string, old, prices []Price) error {
	for i, p := range prices {
		if prev, ok := (Tier{Prices: old}).PriceFor(p.Currency, p.Interval); ok && prev.Amount == p.Amount {
			prices[i].StripePriceID = prev.StripePriceID
		}
	}
	if _, err := q.ExecContext(ctx, `DELETE FROM tier_prices WHERE tier_slug = $1`, slug); err != nil {
		return fmt.Errorf("replace tier prices: %w", err)
	}
	return insertPrices(ctx, q, slug, prices)
}

func insertPrices(ctx context.Context, q querier, slug string, prices []Price) error {
	for _, p := range prices {
		_, err := q.ExecContext(ctx, `INSERT INTO tier_prices (tier_slug, currency, billing_interval, amount, stripe_price_id) VALUES ($1, $2, $3, $4, $5)`,
			slug, p.Currency, string(p.Interval), p.Amount, nullable(p.StripePriceID))
		if err != nil {
			return fmt.Errorf("insert tier price: %w", err)
		}
	}
	return nil
}

func findTier(ctx context.Context, q querier, slug string) (Tier, error) {
	t, err := scanTier(q.QueryRowContext(ctx, `SELECT `+tierColumns+` FROM tiers WHERE slug = $1`, slug))
	if errors.Is(err, sql.ErrNoRows) {
		return Tier{}, errTierNotFound
	}
	if err != nil {
		return Tier{}, fmt.Errorf("find tier: %w", err)
	}
	prices, err := loadPrices(ctx, q, []string{slug})
	t.Prices = prices[slug]
	return t, err
}

// listTiers returns tiers in display order, with their prices.
func listTiers(ctx context.Context, q querier, activeOnly bool) ([]Tier, error) {
	query := `SELECT ` + tierColumns + ` FROM tiers`
	if activeOnly {
		query += ` WHERE active = TRUE`
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY sort_order, slug`)
	if err != nil {
		return nil, fmt.Errorf("list tiers: %w", err)
	}
	defer rows.Close()
	var tiers []Tier
	var slugs []string
	for rows.Next() {
		t, err := scanTier(rows)
		if err != nil {
			return nil, err
		}
		tiers = append(tiers, t)
		slugs = append(slugs, t.Slug)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	prices, err := loadPrices(ctx, q, slugs)
	if err != nil {
		return nil, err
	}
	for i := range tiers {
		tiers[i].Prices = prices[tiers[i].Slug]
	}
	return tiers, nil
}

func loadPrices(ctx context.Context, q querier, slugs []string) (map[string][]Price, error) {
	out := map[string][]Price{}
	if len(slugs) == 0 {
		return out, nil
	}
	// One tier reads its own prices; a list reads them all in one query.
	query, args := `SELECT tier_slug, currency, billing_interval, amount, stripe_price_id FROM tier_prices`, []any{}
	if len(slugs) == 1 {
		query, args = query+` WHERE tier_slug = $1`, []any{slugs[0]}
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY tier_slug, currency, billing_interval`, args...)
	if err != nil {
		return nil, fmt.Errorf("load tier prices: %w", err)
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, s := range slugs {
		want[s] = true
	}
	for rows.Next() {
		var slug, interval string
		var p Price
		var stripeID sql.NullString
		if err := rows.Scan(&slug, &p.Currency, &interval, &p.Amount, &stripeID); err != nil {
			return nil, err
		}
		if want[slug] {
			p.Interval, p.StripePriceID = Interval(interval), stripeID.String
			out[slug] = append(out[slug], p)
		}
	}
	return out, rows.Err()
}

func setProductID(ctx context.Context, q querier, slug, productID string) error {
	_, err := q.ExecContext(ctx, `UPDATE tiers SET stripe_product_id = $1 WHERE slug = $2`, productID, slug)
	if err != nil {
		return fmt.Errorf("record Stripe product: %w", err)
	}
	return nil
}

func setPriceID(ctx context.Context, q querier, slug string, p Price, priceID string) error {
	_, err := q.ExecContext(ctx, `UPDATE tier_prices SET stripe_price_id = $1 WHERE tier_slug = $2 AND currency = $3 AND billing_interval = $4 AND amount = $5`,
		priceID, slug, p.Currency, string(p.Interval), p.Amount)
	if err != nil {
		return fmt.Errorf("record Stripe price: %w", err)
	}
	return nil
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
