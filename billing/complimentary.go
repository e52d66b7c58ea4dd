package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/members"
)

// GrantInput is access staff give rather than a patron pays for.
type GrantInput struct {
	Tier   string     // the tier it stands for
	Until  *time.Time // nil: until revoked
	Reason string
}

// GrantComplimentary gives a member access from now, recomputes their
// access and records it in the audit log, all in one transaction.
func (s *Service) GrantComplimentary(ctx context.Context, actor members.Actor, memberID string, in GrantInput) (members.Access, error) {
	now := s.now()
	in.Tier, in.Reason = strings.TrimSpace(in.Tier), strings.TrimSpace(in.Reason)
	fields := map[string]string{}
	if in.Tier == "" {
		fields["tier"] = "is required: the slug of the tier this access stands for"
	}
	if in.Until != nil && !in.Until.After(now) {
		fields["until"] = "must be in the future (leave it out for access until revoked)"
	}
	if utf8.RuneCountInString(in.Reason) > 500 || !utf8.ValidString(in.Reason) || strings.ContainsRune(in.Reason, 0) {
		fields["reason"] = "must be text of at most 500 characters"
	}
	if len(fields) > 0 {
		return members.Access{}, errs.InvalidFields(fields)
	}
	var fx effects
	var after Access
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.memberExists(ctx, tx, memberID); err != nil {
			return err
		}
		if _, err := findTier(ctx, tx, in.Tier); errors.Is(err, errTierNotFound) {
			return errs.InvalidFields(map[string]string{"tier": "no tier has this slug"})
		} else if err != nil {
			return err
		}
		id := ids.New("cmp")
		var until sql.NullTime
		if in.Until != nil {
			until = sql.NullTime{Time: in.Until.UTC(), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO complimentary_grants (id, member_id, tier_slug, starts_at, ends_at, reason, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $4)`, id, memberID, in.Tier, now, until, in.Reason, nullable(actor.MemberID)); err != nil {
			return fmt.Errorf("store grant: %w", err)
		}
		var err error
		if fx, err = s.recomputeAccess(ctx, tx, memberID); err != nil {
			return err
		}
		if after, _, err = storedAccess(ctx, tx, memberID); err != nil {
			return err
		}
		return members.RecordAudit(ctx, tx, members.AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "complimentary.grant",
			SubjectType: "member", SubjectID: memberID, After: members.AuditJSON(map[string]any{"grant": id, "tier": in.Tier, "until": in.Until, "reason": in.Reason}),
			CreatedAt: now})
	})
	if err != nil {
		return members.Access{}, err
	}
	s.afterCommit(ctx, fx)
	return members.Access{Active: after.Active, Source: after.Source, Tier: after.Tier, Until: after.Until}, nil
}

// RevokeComplimentary ends every complimentary grant a member holds now,
// recomputes their access and records it; errs.NotFound when they hold
// none.
func (s *Service) RevokeComplimentary(ctx context.Context, actor members.Actor, memberID string) (members.Access, error) {
	now := s.now()
	var fx effects
	var after Access
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.memberExists(ctx, tx, memberID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE complimentary_grants SET revoked_at = $2 WHERE member_id = $1 AND revoked_at IS NULL
			AND (ends_at IS NULL OR ends_at > $2)`, memberID, now)
		if err != nil {
			return fmt.Errorf("revoke grants: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.WithCode(errs.NotFound, "grant_not_found", "This member holds no complimentary access.")
		}
		if fx, err = s.recomputeAccess(ctx, tx, memberID); err != nil {
			return err
		}
		if after, _, err = storedAccess(ctx, tx, memberID); err != nil {
			return err
		}
		return members.RecordAudit(ctx, tx, members.AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "complimentary.revoke",
			SubjectType: "member", SubjectID: memberID, After: members.AuditJSON(map[string]any{"revoked_at": now}), CreatedAt: now})
	})
	if err != nil {
		return members.Access{}, err
	}
	s.afterCommit(ctx, fx)
	return members.Access{Active: after.Active, Source: after.Source, Tier: after.Tier, Until: after.Until}, nil
}

func (s *Service) memberExists(ctx context.Context, tx *sql.Tx, memberID string) error {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM members WHERE id = $1`, memberID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return errs.WithCode(errs.NotFound, "member_not_found", "No member has this id.")
	}
	if err != nil {
		return fmt.Errorf("find member: %w", err)
	}
	return nil
}
