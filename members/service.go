package members

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/i18n"
	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/ttlcache"
)

// Service is the members domain: accounts, sign-in, sessions, tokens.
type Service struct {
	db        *sqldb.DB
	redis     *redisx.Redis
	mailer    mail.Sender
	templates *mail.Templates
	baseURL   *url.URL
	logger    *slog.Logger
	now       func() time.Time
	sending   sync.WaitGroup
	cache     *ttlcache.Cache[string, Member]
	sessions  *ttlcache.Cache[string, readSession] // by session id hash
	events    EventSink
	languages []string
	queue     atomic.Pointer[jobs.Client] // queued mail's; see AttachQueue
}

// Deps is what the Service needs.
type Deps struct {
	DB        *sqldb.DB
	Redis     *redisx.Redis
	Mailer    mail.Sender
	Templates *mail.Templates
	BaseURL   *url.URL
	Logger    *slog.Logger
	Now       func() time.Time // defaults to the real clock
	// Events hears member.created and member.deleted; nil hears nothing.
	Events EventSink
	// Languages are the languages a member may choose for pages and mail:
	// those there are message catalogues for.
	Languages []string
}

// NewService builds the members service.
func NewService(d Deps) *Service {
	now := d.Now
	if now == nil {
		now = sqldb.Now
	}
	return &Service{db: d.DB, redis: d.Redis, mailer: d.Mailer, templates: d.Templates, baseURL: d.BaseURL, logger: d.Logger, now: now, events: d.Events,
		languages: d.Languages, cache: newMemberCache(), sessions: newSessionCache()}
}

// Close waits for mail still being sent, until ctx ends.
func (s *Service) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.sending.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.logger.Warn("stopped before every mail was sent")
	}
}

// Actor is who performs a staff action, for the audit log.
type Actor struct {
	MemberID string // empty for the command line
	Label    string // an email, or "command line"
}

// CommandLine is the actor for admin subcommands.
var CommandLine = Actor{Label: "command line"}

// SignUp creates an account for email unless one exists, then mails a
// sign-in link either way, so the answer never reveals whether the address
// was known.
func (s *Service) SignUp(ctx context.Context, email, name, next string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if name, err = NormalizeName(name); err != nil {
		return err
	}
	m, err := findMemberByEmail(ctx, s.db, email)
	known := err == nil
	if err != nil && !errs.Is(err, errs.NotFound) {
		return err
	}
	// Whether the address was new decides what happens next, off the
	// request: the answer takes one lookup either way.
	s.inBackground(ctx, "sign up", func(ctx context.Context) error {
		if !known {
			now := s.now()
			m = Member{ID: ids.New("mem"), Email: email, Name: name, Role: RolePatron, JoinedLanguage: i18n.LanguageOf(ctx), CreatedAt: now, UpdatedAt: now}
			err := s.db.InTx(ctx, func(tx *sql.Tx) error { return s.insertNew(ctx, tx, m) })
			if errs.Is(err, errs.Conflict) { // a concurrent sign-up won the race
				m, err = findMemberByEmail(ctx, s.db, email)
			}
			if err != nil {
				return err
			}
		}
		return s.mailSignInLink(ctx, m, next)
	})
	return nil
}

// RequestSignInLink mails a sign-in link to an existing member. For an
// unknown address it does nothing and says nothing different, and takes as
// long: the link is made off the request.
func (s *Service) RequestSignInLink(ctx context.Context, email, next string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	m, err := findMemberByEmail(ctx, s.db, email)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	s.inBackground(ctx, "sign-in link", func(ctx context.Context) error { return s.mailSignInLink(ctx, m, next) })
	return nil
}

// inBackground runs work after the answer has gone, with the request's
// values but not its cancellation; Close waits for it. A failure is logged:
// the reader, who was told to check their mail, can ask again.
func (s *Service) inBackground(ctx context.Context, what string, work func(ctx context.Context) error) {
	s.sending.Add(1)
	go func() {
		defer s.sending.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := work(ctx); err != nil {
			s.logger.ErrorContext(ctx, what, "err", err)
		}
	}()
}

func (s *Service) mailSignInLink(ctx context.Context, m Member, next string) error {
	link, err := s.SignInLink(ctx, m.ID, next)
	if err != nil {
		return err
	}
	// In the member's own language, else the one the request asking for
	// the link was answered in, else the newsroom's default.
	lang := cmp.Or(m.Language, i18n.LanguageOf(ctx), m.JoinedLanguage)
	msg, err := s.templates.In(lang).SignInLink(m.Email, link, SignInTokenTTL)
	if err != nil {
		return fmt.Errorf("render sign-in mail: %w", err)
	}
	s.sendInBackground(msg)
	return nil
}

// sendInBackground delivers mail off the request path: a slow mail server
// must not slow the answer, and the answer's timing must not reveal whether
// an address is known.
func (s *Service) sendInBackground(msg mail.Message) {
	s.sending.Add(1)
	go func() {
		defer s.sending.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.mailer.Send(ctx, msg); err != nil {
			s.logger.Error("send mail", "subject", msg.Subject, "err", err)
		}
	}()
}

// SignInLink issues a single-use sign-in link for a member.
func (s *Service) SignInLink(ctx context.Context, memberID, next string) (string, error) {
	token, err := s.issueSignInToken(ctx, memberID)
	if err != nil {
		return "", err
	}
	q := url.Values{"token": {token}}
	if next = SafeNext(next); next != DefaultNext {
		q.Set("next", next)
	}
	return s.baseURL.JoinPath("/auth/verify").String() + "?" + q.Encode(), nil
}

// DefaultNext is where a reader lands after signing in.
const DefaultNext = "/account"

// SafeNext returns next when it is a path on this site, else DefaultNext,
// so a sign-in link can never send a reader to another origin.
func SafeNext(next string) string {
	if next == "" || len(next) > 512 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return DefaultNext
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return DefaultNext
	}
	return next
}

// FindMemberByID returns a member or a not_found error.
func (s *Service) FindMemberByID(ctx context.Context, id string) (Member, error) {
	return findMemberByID(ctx, s.db, id)
}

// FindMemberByEmail looks a member up by exact (normalised) email.
func (s *Service) FindMemberByEmail(ctx context.Context, email string) (Member, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Member{}, err
	}
	return findMemberByEmail(ctx, s.db, email)
}

// CreateMember creates an account on a staff member's behalf; an existing
// email is a conflict that names the existing account.
func (s *Service) CreateMember(ctx context.Context, actor Actor, email, name string) (Member, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Member{}, err
	}
	if name, err = NormalizeName(name); err != nil {
		return Member{}, err
	}
	now := s.now()
	m := Member{ID: ids.New("mem"), Email: email, Name: name, Role: RolePatron, CreatedAt: now, UpdatedAt: now}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.insertNew(ctx, tx, m); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "member.create",
			SubjectType: "member", SubjectID: m.ID, After: auditJSON(m), CreatedAt: now})
	})
	if err != nil {
		return Member{}, withExistingID(ctx, s.db, email, err)
	}
	return m, nil
}

// EnsureStaff creates the account for email with role, or raises an existing
// account to role. It never lowers a role: an admin stays an admin.
func (s *Service) EnsureStaff(ctx context.Context, actor Actor, email, name string, role Role) (Member, bool, error) {
	if !role.IsStaff() {
		return Member{}, false, errs.InvalidFields(map[string]string{"role": "must be staff or admin"})
	}
	email, err := NormalizeEmail(email)
	if err != nil {
		return Member{}, false, err
	}
	if name, err = NormalizeName(name); err != nil {
		return Member{}, false, err
	}
	var m Member
	created := false
	now := s.now()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		existing, err := findMemberByEmail(ctx, tx, email)
		switch {
		case errs.Is(err, errs.NotFound):
			m = Member{ID: ids.New("mem"), Email: email, Name: name, Role: role, CreatedAt: now, UpdatedAt: now}
			created = true
			if err := s.insertNew(ctx, tx, m); err != nil {
				return err
			}
			return RecordAudit(ctx, tx, AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "member.create",
				SubjectType: "member", SubjectID: m.ID, After: auditJSON(m), CreatedAt: now})
		case err != nil:
			return err
		}
		m = existing
		if existing.Role == RoleAdmin || existing.Role == role {
			return nil
		}
		m.Role, m.UpdatedAt = role, now
		if err := updateMemberRole(ctx, tx, m.ID, role, now); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "member.role",
			SubjectType: "member", SubjectID: m.ID, Before: auditJSON(existing), After: auditJSON(m), CreatedAt: now})
	})
	s.cache.Forget(m.ID) // after the commit, so no read can cache the old role again
	return m, created, err
}

// StaffSignInLink makes a sign-in link for a member on an admin's behalf,
// for a reader who cannot receive mail. It is recorded in the audit log.
func (s *Service) StaffSignInLink(ctx context.Context, actor Actor, memberID string) (string, error) {
	m, err := findMemberByID(ctx, s.db, memberID)
	if err != nil {
		return "", err
	}
	if m.Role.IsStaff() {
		// The tool is for readers who cannot get mail; a link into a staff
		// account would let one admin become another.
		return "", errs.WithCode(errs.Forbidden, "forbidden", "Sign-in links are only made for patron accounts; staff sign in by mail or with `patronage admin create`.")
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		return RecordAudit(ctx, tx, AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "member.sign_in_link",
			SubjectType: "member", SubjectID: m.ID, CreatedAt: s.now()})
	})
	if err != nil {
		return "", err
	}
	return s.SignInLink(ctx, m.ID, "")
}

// APITokenPrefix starts every API token, so a leaked one is recognisable
// (and secret scanners can find it).
const APITokenPrefix = "pat_"

// CreateAPIToken makes a new API token for a staff member. The token is
// returned once; only its hash is stored.
func (s *Service) CreateAPIToken(ctx context.Context, actor Actor, memberID, name string) (string, APIToken, error) {
	m, err := findMemberByID(ctx, s.db, memberID)
	if err != nil {
		return "", APIToken{}, err
	}
	if !m.Role.IsStaff() {
		return "", APIToken{}, errs.WithCode(errs.Forbidden, "forbidden", "API tokens are for staff accounts only.")
	}
	secret := APITokenPrefix + ids.Secret()
	t := APIToken{ID: ids.New("tok"), MemberID: m.ID, Name: strings.TrimSpace(name), Hint: secret[:len(APITokenPrefix)+4], CreatedAt: s.now()}
	if t.Name == "" {
		t.Name = "API token"
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := insertAPIToken(ctx, tx, t, ids.Hash(secret)); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "api_token.create",
			SubjectType: "api_token", SubjectID: t.ID, After: auditJSON(t), CreatedAt: t.CreatedAt})
	})
	if err != nil {
		return "", APIToken{}, err
	}
	return secret, t, nil
}

var errBadToken = errs.E(errs.Unauthenticated, "The API token is unknown or has been revoked.")

// MemberForAPIToken returns the staff member an API token acts for.
func (s *Service) MemberForAPIToken(ctx context.Context, token string) (Member, error) {
	if !strings.HasPrefix(token, APITokenPrefix) || len(token) > 200 {
		return Member{}, errBadToken
	}
	var tokenID string
	var lastUsed, revoked sql.NullTime
	var m Member
	var name, customer, language sql.NullString
	var role string
	err := s.db.QueryRowContext(ctx, `SELECT t.id, t.last_used_at, t.revoked_at,
		m.id, m.email, m.name, m.role, m.stripe_customer_id, m.language, m.created_at, m.updated_at
		FROM api_tokens t JOIN members m ON m.id = t.member_id WHERE t.token_hash = $1`, ids.Hash(token)).
		Scan(&tokenID, &lastUsed, &revoked, &m.ID, &m.Email, &name, &role, &customer, &language, &m.CreatedAt, &m.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) || err == nil && revoked.Valid {
		return Member{}, errBadToken
	}
	if err != nil {
		return Member{}, fmt.Errorf("find API token: %w", err)
	}
	m.Name, m.StripeCustomerID, m.Language, m.Role = name.String, customer.String, language.String, Role(role)
	now := s.now()
	if !lastUsed.Valid || now.Sub(lastUsed.Time) > time.Minute {
		// At most one write a minute per token, however busy it is.
		if _, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE id = $2`, now, tokenID); err != nil {
			s.logger.Warn("record API token use", "token_id", tokenID, "err", err)
		}
	}
	return m, nil
}

// RevokeAPIToken revokes a token given the token itself or its id.
func (s *Service) RevokeAPIToken(ctx context.Context, actor Actor, tokenOrID string) (APIToken, error) {
	col, value := "id", tokenOrID
	if strings.HasPrefix(tokenOrID, APITokenPrefix) {
		col, value = "token_hash", ids.Hash(tokenOrID)
	}
	var t APIToken
	now := s.now()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullTime
		err := tx.QueryRowContext(ctx, `SELECT id, member_id, name, hint, created_at, revoked_at FROM api_tokens WHERE `+col+` = $1`, value).
			Scan(&t.ID, &t.MemberID, &t.Name, &t.Hint, &t.CreatedAt, &revoked)
		if err == sql.ErrNoRows {
			return errs.WithCode(errs.NotFound, "token_not_found", "No API token matches.")
		}
		if err != nil {
			return fmt.Errorf("find API token: %w", err)
		}
		if revoked.Valid {
			t.RevokedAt = &revoked.Time
			return nil
		}
		t.RevokedAt = &now
		if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE id = $2`, now, t.ID); err != nil {
			return fmt.Errorf("revoke API token: %w", err)
		}
		return RecordAudit(ctx, tx, AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "api_token.revoke",
			SubjectType: "api_token", SubjectID: t.ID, After: auditJSON(t), CreatedAt: now})
	})
	return t, err
}

// AuditJSON is v as an audit entry's before or after ("" if it cannot be
// written as JSON).
func AuditJSON(v any) string { return auditJSON(v) }

func auditJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// LinkStripeCustomer records a member's Stripe customer id, once: if the
// member already has one (a concurrent checkout got there first), that one
// is returned and kept, so a member never has two.
func (s *Service) LinkStripeCustomer(ctx context.Context, memberID, customerID string) (string, error) {
	defer s.cache.Forget(memberID)
	// One statement: keep an existing id, else take this one, and say which won.
	var linked string
	err := s.db.QueryRowContext(ctx, `UPDATE members
		SET stripe_customer_id = COALESCE(stripe_customer_id, $1),
		    updated_at = CASE WHEN stripe_customer_id IS NULL THEN $2 ELSE updated_at END
		WHERE id = $3 RETURNING stripe_customer_id`, customerID, s.now(), memberID).Scan(&linked)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errMemberNotFound
	}
	if err != nil {
		return "", fmt.Errorf("link Stripe customer: %w", err)
	}
	return linked, nil
}

// FindOrCreateMember returns the member with email, creating a patron
// account when there is none (a reader who pays before signing in).
func (s *Service) FindOrCreateMember(ctx context.Context, email string) (Member, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Member{}, err
	}
	m, err := findMemberByEmail(ctx, s.db, email)
	if !errs.Is(err, errs.NotFound) {
		return m, err
	}
	now := s.now()
	m = Member{ID: ids.New("mem"), Email: email, Role: RolePatron, JoinedLanguage: i18n.LanguageOf(ctx), CreatedAt: now, UpdatedAt: now}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error { return s.insertNew(ctx, tx, m) })
	if errs.Is(err, errs.Conflict) {
		return findMemberByEmail(ctx, s.db, email)
	}
	return m, err
}

// insertNew stores a new member and tells the event sink, in the caller's
// transaction.
func (s *Service) insertNew(ctx context.Context, tx *sql.Tx, m Member) error {
	if err := insertMember(ctx, tx, m); err != nil {
		return err
	}
	return s.emit(ctx, tx, "member.created", m.ID, map[string]any{"member": MemberJSON{ID: m.ID, Email: m.Email, Name: m.Name}})
}

func (s *Service) emit(ctx context.Context, tx *sql.Tx, typ, memberID string, data any) error {
	if s.events == nil {
		return nil
	}
	return s.events.Emit(ctx, tx, typ, memberID, data)
}

// SetLanguage records the language a member reads pages and mail in; ""
// clears it (their browser, then the newsroom's default, decide). A
// language without a catalogue is refused.
func (s *Service) SetLanguage(ctx context.Context, memberID, language string) (Member, error) {
	language = strings.TrimSpace(language)
	if language != "" {
		i := slices.IndexFunc(s.languages, func(l string) bool { return strings.EqualFold(l, language) })
		if i < 0 {
			return Member{}, errs.InvalidFields(map[string]string{"language": "must be one of " + strings.Join(s.languages, ", ")})
		}
		language = s.languages[i]
	}
	var m Member
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE members SET language = $1, updated_at = $2 WHERE id = $3`, nullable(language), s.now(), memberID); err != nil {
			return fmt.Errorf("set member language: %w", err)
		}
		var err error
		m, err = findMemberByID(ctx, tx, memberID)
		return err
	})
	s.cache.Forget(memberID) // after the commit, so no read can cache the old language again
	return m, err
}
