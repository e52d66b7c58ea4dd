package members

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/sqldb"
)

// querier is what the store helpers need: a *sql.Tx or the *sqldb.DB.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const memberColumns = `id, email, name, role, stripe_customer_id, language, joined_language, created_at, updated_at`

func scanMember(row interface{ Scan(...any) error }) (Member, error) {
	var m Member
	var name, customer, language, joined sql.NullString
	var role string
	if err := row.Scan(&m.ID, &m.Email, &name, &role, &customer, &language, &joined, &m.CreatedAt, &m.UpdatedAt); err != nil {
		return Member{}, err
	}
	m.Name, m.StripeCustomerID, m.Language, m.JoinedLanguage, m.Role = name.String, customer.String, language.String, joined.String, Role(role)
	return m, nil
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func insertMember(ctx context.Context, q querier, m Member) error {
	_, err := q.ExecContext(ctx, `INSERT INTO members (`+memberColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		m.ID, m.Email, nullable(m.Name), string(m.Role), nullable(m.StripeCustomerID), nullable(m.Language), nullable(m.JoinedLanguage), m.CreatedAt, m.UpdatedAt)
	if sqldb.IsUniqueViolation(err) {
		// No lookup here: on PostgreSQL the failed insert has aborted the
		// transaction. withExistingID adds the id after it ends.
		return errs.WithCode(errs.Conflict, "email_taken", "A member with this email already exists.")
	}
	if err != nil {
		return fmt.Errorf("insert member: %w", err)
	}
	return nil
}

// withExistingID names the existing member in an email_taken error. It runs
// outside the failed transaction.
func withExistingID(ctx context.Context, q querier, email string, err error) error {
	e := errs.From(err)
	if e.Code != "email_taken" {
		return err
	}
	if existing, ferr := findMemberByEmail(ctx, q, email); ferr == nil {
		e.Details = map[string]string{"existing_id": existing.ID}
	}
	return e
}

func findMemberByEmail(ctx context.Context, q querier, email string) (Member, error) {
	m, err := scanMember(q.QueryRowContext(ctx, `SELECT `+memberColumns+` FROM members WHERE email = $1`, email))
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, errMemberNotFound
	}
	if err != nil {
		return Member{}, fmt.Errorf("find member by email: %w", err)
	}
	return m, nil
}

func findMemberByID(ctx context.Context, q querier, id string) (Member, error) {
	m, err := scanMember(q.QueryRowContext(ctx, `SELECT `+memberColumns+` FROM members WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, errMemberNotFound
	}
	if err != nil {
		return Member{}, fmt.Errorf("find member: %w", err)
	}
	return m, nil
}

func updateMemberRole(ctx context.Context, q querier, id string, role Role, now time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE members SET role = $1, updated_at = $2 WHERE id = $3`, string(role), now, id)
	if err != nil {
		return fmt.Errorf("update member role: %w", err)
	}
	return nil
}

var errMemberNotFound = errs.WithCode(errs.NotFound, "member_not_found", "No member has this id or email.")

// APIToken describes a staff API token without its secret.
type APIToken struct {
	ID         string
	MemberID   string
	Name       string
	Hint       string // the first characters, to recognise it in a list
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

func insertAPIToken(ctx context.Context, q querier, t APIToken, hash string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO api_tokens (id, member_id, name, token_hash, hint, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, t.MemberID, t.Name, hash, t.Hint, t.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert API token: %w", err)
	}
	return nil
}

// AuditEntry is one staff write.
type AuditEntry struct {
	ID          string
	ActorID     string // empty for the command line
	ActorLabel  string // who, for people: an email, or "command line"
	Action      string // e.g. "member.create"
	SubjectType string
	SubjectID   string
	Before      string // JSON, or empty
	After       string // JSON, or empty
	CreatedAt   time.Time
}

// RecordAudit writes an audit entry inside the caller's transaction, so the
// entry exists exactly when the change does.
func RecordAudit(ctx context.Context, tx *sql.Tx, e AuditEntry) error {
	if e.ID == "" {
		e.ID = ids.New("aud")
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (id, actor_id, actor_label, action, subject_type, subject_id, before_json, after_json, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.ID, nullable(e.ActorID), e.ActorLabel, e.Action, e.SubjectType, e.SubjectID, nullable(e.Before), nullable(e.After), e.CreatedAt)
	if err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	return nil
}

// AuditQuery selects audit entries, newest first.
type AuditQuery struct {
	SubjectType string // "" for any
	SubjectID   string // "" for any
	ActorID     string // "" for any
	// After continues a listing: entries older than this one (its time and
	// id), as the previous page's last entry.
	After *AuditEntry
	Limit int
}

// AuditLog lists audit entries, newest first (by time, then id).
func (s *Service) AuditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	where, args := []string{"TRUE"}, []any{}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if q.SubjectType != "" {
		add("subject_type = ?", q.SubjectType)
	}
	if q.SubjectID != "" {
		add("subject_id = ?", q.SubjectID)
	}
	if q.ActorID != "" {
		add("actor_id = ?", q.ActorID)
	}
	if q.After != nil {
		args = append(args, q.After.CreatedAt, q.After.ID)
		n := len(args)
		where = append(where, fmt.Sprintf("(created_at < $%d OR (created_at = $%d AND id < $%d))", n-1, n-1, n))
	}
	args = append(args, q.Limit)
	rows, err := s.db.QueryContext(ctx, `SELECT id, COALESCE(actor_id, ''), actor_label, action, subject_type, subject_id,
		COALESCE(before_json, ''), COALESCE(after_json, ''), created_at FROM audit_log WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, &e.ActorID, &e.ActorLabel, &e.Action, &e.SubjectType, &e.SubjectID, &e.Before, &e.After, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.CreatedAt = e.CreatedAt.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
