// Package members owns Patronage's accounts: who a reader is, their role,
// how they sign in (magic links and sessions in Redis), staff API tokens and
// the audit log of staff writes. It never decides paid access (billing does)
// and imports neither billing nor voting.
package members

import (
	"cmp"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/patronage/patronage/internal/errs"
)

// Role says what an account may do. Every account starts as a patron (a
// reader account); paid access is decided separately, by billing.
type Role string

const (
	RolePatron Role = "patron"
	RoleStaff  Role = "staff"
	RoleAdmin  Role = "admin"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RolePatron || r == RoleStaff || r == RoleAdmin }

// IsStaff reports whether the role may use staff tools.
func (r Role) IsStaff() bool { return r == RoleStaff || r == RoleAdmin }

// Member is one account.
type Member struct {
	ID               string
	Email            string // normalised: trimmed, lower-case
	Name             string // may be empty
	Role             Role
	StripeCustomerID string // empty until the first checkout
	Language         string // chosen for pages and mail; "" for none (the browser, then DEFAULT_LANGUAGE, decide)
	JoinedLanguage   string // the language of the page they joined from; "" when not joined from a page
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// MailLanguage is the language of mail to the member: the one they chose,
// else the one of the page they joined from; "" leaves it to
// DEFAULT_LANGUAGE.
func (m Member) MailLanguage() string { return cmp.Or(m.Language, m.JoinedLanguage) }

// Access is whether a member currently has paid (or granted) access. It is
// computed by billing; members only carries the shape.
type Access struct {
	Active bool
	Source string     // "subscription", "complimentary" or ""
	Tier   string     // tier slug, or ""
	Until  *time.Time // end of the paid period or grant, if known
}

const (
	maxEmailLength = 254
	maxNameLength  = 100
)

// NormalizeEmail validates an address and returns it in the stored form.
// It accepts a bare address only (no display name), with a dotted domain.
func NormalizeEmail(raw string) (string, error) {
	email := strings.TrimSpace(raw)
	if email == "" {
		return "", errs.InvalidFields(map[string]string{"email": "is required"})
	}
	invalid := errs.InvalidFields(map[string]string{"email": "must be a valid email address"})
	if len(email) > maxEmailLength {
		return "", invalid
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "", invalid
	}
	at := strings.LastIndexByte(email, '@')
	domain := email[at+1:]
	if at < 1 || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", invalid
	}
	return strings.ToLower(email), nil
}

// NormalizeName trims a display name and refuses control characters and
// overlong names. An empty name is allowed.
func NormalizeName(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameLength {
		return "", errs.InvalidFields(map[string]string{"name": "must be at most 100 characters"})
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", errs.InvalidFields(map[string]string{"name": "must not contain control characters"})
		}
	}
	return name, nil
}
