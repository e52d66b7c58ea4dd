package members

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/patronage/patronage/internal/errs"
)

// EraseMember removes a member's personal data for good: their account
// row goes (access, grants and API tokens with it; money records keep
// their amounts without the member), audit entries about them lose their
// before and after, entries they made lose their name, and scrub — the
// billing side — blanks what it holds about them, all in one transaction.
// Their sessions end with the account. An erasure is audited without
// personal data. Staff cannot erase themselves.
func (s *Service) EraseMember(ctx context.Context, actor Actor, memberID string, scrub func(ctx context.Context, tx *sql.Tx, m Member) error) error {
	if actor.MemberID == memberID {
		return errs.WithCode(errs.Conflict, "cannot_erase_self", "You cannot erase your own account; ask another admin.")
	}
	now := s.now()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		m, err := findMemberByID(ctx, tx, memberID)
		if err != nil {
			return err
		}
		if scrub != nil {
			if err := scrub(ctx, tx, m); err != nil {
				return err
			}
		}
		steps := []struct{ what, query string }{
			{"scrub audit entries about them", `UPDATE audit_log SET before_json = NULL, after_json = '{"erased":true}' WHERE subject_type = 'member' AND subject_id = $1`},
			{"scrub audit entries by them", `UPDATE audit_log SET actor_label = 'erased member' WHERE actor_id = $1`},
			{"delete the account", `DELETE FROM members WHERE id = $1`},
		}
		for _, st := range steps {
			if _, err := tx.ExecContext(ctx, st.query, memberID); err != nil {
				return fmt.Errorf("%s: %w", st.what, err)
			}
		}
		if s.events != nil {
			if err := s.events.ScrubMember(ctx, tx, memberID, m.Email); err != nil {
				return err
			}
		}
		if err := s.emit(ctx, tx, "member.deleted", "", map[string]any{"member": map[string]string{"id": memberID}}); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "member.erase",
			SubjectType: "member", SubjectID: memberID, After: `{"erased":true}`, CreatedAt: now})
	})
	s.cache.Forget(memberID)
	return err
}
