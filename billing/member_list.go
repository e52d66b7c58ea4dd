package billing

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/members"
)

// MemberFilter selects members for staff: by access, tier, and text in the
// email or name; After continues a listing after that member id.
type MemberFilter struct {
	Status string // "", active, inactive or past_due
	Tier   string // a tier slug, or ""
	Query  string // part of the email or name, any case; "" for all
	After  string
	Limit  int
}

// MemberRow is a member with their access, as staff list them.
type MemberRow struct {
	Member members.Member
	Access members.Access
}

// ListMembers lists members matching the filter, by id, a page at a time
// (keyset: After is the last id of the page before).
func (s *Service) ListMembers(ctx context.Context, f MemberFilter) ([]MemberRow, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	switch f.Status {
	case "":
	case "active":
		where = append(where, "a.active")
	case "inactive":
		where = append(where, "(a.active IS NULL OR NOT a.active)")
	case "past_due":
		where = append(where, "EXISTS (SELECT 1 FROM subscriptions s WHERE s.member_id = m.id AND s.status = 'past_due')")
	default:
		return nil, errs.InvalidFields(map[string]string{"status": "must be active, inactive or past_due"})
	}
	if f.Tier != "" {
		where = append(where, "a.active AND a.tier_slug = "+arg(f.Tier))
	}
	if q := strings.ToLower(strings.TrimSpace(f.Query)); q != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q) + "%"
		p := arg(like)
		where = append(where, "(LOWER(m.email) LIKE "+p+" ESCAPE '\\' OR LOWER(COALESCE(m.name, '')) LIKE "+p+" ESCAPE '\\')")
	}
	join := "a.member_id = m.id"
	if f.After != "" {
		p := arg(f.After)
		where = append(where, "m.id > "+p)
		// Said of both sides, so a merge join starts both at the page
		// instead of walking member_access from its first row.
		join += " AND a.member_id > " + p
	}
	query := `SELECT m.id, m.email, COALESCE(m.name, ''), m.role, COALESCE(m.stripe_customer_id, ''), m.created_at,
		COALESCE(a.active, FALSE), COALESCE(a.source, ''), COALESCE(a.tier_slug, ''), a.until_at
		FROM members m LEFT JOIN member_access a ON ` + join
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY m.id LIMIT " + arg(f.Limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	out := []MemberRow{}
	for rows.Next() {
		var r MemberRow
		var role string
		var until sql.NullTime
		if err := rows.Scan(&r.Member.ID, &r.Member.Email, &r.Member.Name, &role, &r.Member.StripeCustomerID, &r.Member.CreatedAt,
			&r.Access.Active, &r.Access.Source, &r.Access.Tier, &until); err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		r.Member.Role = members.Role(role)
		r.Member.CreatedAt = r.Member.CreatedAt.UTC()
		r.Access.Until = timePtr(until)
		out = append(out, r)
	}
	return out, rows.Err()
}
