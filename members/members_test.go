package members_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
)

type discardMail struct{}

func (discardMail) Send(context.Context, mail.Message) error { return nil }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// eachBackend runs fn with a service on every database and Redis available.
func eachBackend(t *testing.T, fn func(t *testing.T, s *members.Service, c *clock)) {
	testenv.EachRedis(t, func(t *testing.T, r *redisx.Redis) {
		testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
			c := &clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			templates, err := mail.NewTemplates("The Test Times", i18ntest.Catalog(t))
			if err != nil {
				t.Fatal(err)
			}
			base, _ := url.Parse("https://patrons.test")
			s := members.NewService(members.Deps{DB: db, Redis: r, Mailer: discardMail{}, Templates: templates, BaseURL: base,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: c.Now, Languages: []string{"en", "uk"}})
			t.Cleanup(func() { s.Close(context.Background()) })
			fn(t, s, c)
		})
	})
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Reader@Example.org", "reader@example.org"},
		{"  a.b+tag@sub.example.co.uk ", "a.b+tag@sub.example.co.uk"},
		{"no-at-sign", ""},
		{"two@@example.org", ""},
		{"Name <a@example.org>", ""},
		{"a@localhost", ""},
		{"a@example.", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := members.NormalizeEmail(tt.in)
		if tt.want == "" {
			if err == nil || !errs.Is(err, errs.Invalid) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want an invalid error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSessionsSlideUntilTheAbsoluteLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		m, err := s.CreateMember(ctx, members.CommandLine, "reader@example.org", "")
		if err != nil {
			t.Fatal(err)
		}
		id, err := s.StartSession(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Used every 20 days, the session lives on — until 90 days from its start.
		for day := 20; day < 90; day += 20 {
			c.Advance(20 * 24 * time.Hour)
			got, err := s.MemberForSession(ctx, id)
			if err != nil || got.ID != m.ID {
				t.Fatalf("day %d: session = %v, %v; want it alive", day, got.ID, err)
			}
		}
		c.Advance(11 * 24 * time.Hour) // day 91
		if _, err := s.MemberForSession(ctx, id); !errs.Is(err, errs.Unauthenticated) {
			t.Errorf("after 90 days the session answered %v, want unauthenticated", err)
		}
	})
}

func TestSessionsExpireWhenIdle(t *testing.T) {
	c := &clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	r := testenv.EmbeddedRedis(t)
	db := testenv.SQLite(t)
	if _, err := db.Migrate(context.Background(), sqldb.Migrations()); err != nil {
		t.Fatal(err)
	}
	templates, _ := mail.NewTemplates("T", i18ntest.Catalog(t))
	base, _ := url.Parse("https://patrons.test")
	s := members.NewService(members.Deps{DB: db, Redis: r, Mailer: discardMail{}, Templates: templates, BaseURL: base, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: c.Now})
	ctx := context.Background()
	m, _ := s.CreateMember(ctx, members.CommandLine, "reader@example.org", "")
	id, _ := s.StartSession(ctx, m.ID)

	keys := r.Client.Keys(ctx, r.Prefix+"session:*").Val()
	if len(keys) != 1 {
		t.Fatalf("session keys = %v", keys)
	}
	if got := r.Client.PTTL(ctx, keys[0]).Val(); got <= 29*24*time.Hour || got > members.SessionIdleTimeout {
		t.Errorf("a new session expires in %v, want the 30-day idle timeout", got)
	}
	// The embedded Redis can move its own clock: 31 idle days pass.
	fastForward(t, r, 31*24*time.Hour)
	if _, err := s.MemberForSession(ctx, id); !errs.Is(err, errs.Unauthenticated) {
		t.Errorf("after 31 idle days the session answered %v, want unauthenticated", err)
	}
}

func TestASignInTokenWorksOnceEvenUnderRace(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		m, err := s.CreateMember(ctx, members.CommandLine, "reader@example.org", "")
		if err != nil {
			t.Fatal(err)
		}
		link, err := s.SignInLink(ctx, m.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(link)
		token := u.Query().Get("token")
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got, err := s.ConsumeSignInToken(ctx, token); err == nil && got.ID == m.ID {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("10 concurrent redemptions succeeded %d times, want 1", wins)
		}
	})
}

func TestConcurrentSignUpsMakeOneAccount(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				email := "Reader@example.org"
				if i%2 == 0 {
					email = "reader@EXAMPLE.org"
				}
				if err := s.SignUp(ctx, email, "", ""); err != nil {
					t.Errorf("SignUp: %v", err)
				}
			}()
		}
		wg.Wait()
		s.Close(ctx) // accounts are made off the request: wait for that work
		if _, err := s.FindMemberByEmail(ctx, "READER@example.org"); err != nil {
			t.Errorf("no member after concurrent sign-ups: %v", err)
		}
	})
}

func TestEnsureStaffPromotesButNeverDemotes(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		reader, err := s.CreateMember(ctx, members.CommandLine, "editor@example.org", "")
		if err != nil {
			t.Fatal(err)
		}
		m, created, err := s.EnsureStaff(ctx, members.CommandLine, "Editor@example.org", "", members.RoleAdmin)
		if err != nil || created || m.ID != reader.ID || m.Role != members.RoleAdmin {
			t.Fatalf("promote = %+v created=%v err=%v", m, created, err)
		}
		m, _, err = s.EnsureStaff(ctx, members.CommandLine, "editor@example.org", "", members.RoleStaff)
		if err != nil || m.Role != members.RoleAdmin {
			t.Errorf("asking for staff demoted an admin: %+v %v", m, err)
		}
		if _, _, err := s.EnsureStaff(ctx, members.CommandLine, "x@example.org", "", members.RolePatron); !errs.Is(err, errs.Invalid) {
			t.Errorf("EnsureStaff with role patron = %v, want invalid", err)
		}
	})
}

func TestAPITokensAreStoredHashedAndCanBeRevoked(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		staff, _, _ := s.EnsureStaff(ctx, members.CommandLine, "desk@example.org", "", members.RoleStaff)
		token, info, err := s.CreateAPIToken(ctx, members.CommandLine, staff.ID, "newsletter sync")
		if err != nil {
			t.Fatal(err)
		}
		if len(token) < len(members.APITokenPrefix)+40 || token[:4] != "pat_" {
			t.Errorf("token %q lacks the prefix or 256 bits", token)
		}
		if got, err := s.MemberForAPIToken(ctx, token); err != nil || got.ID != staff.ID {
			t.Errorf("token resolves to %v, %v", got.ID, err)
		}
		if _, err := s.RevokeAPIToken(ctx, members.CommandLine, info.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MemberForAPIToken(ctx, token); !errs.Is(err, errs.Unauthenticated) {
			t.Errorf("revoked token = %v, want unauthenticated", err)
		}
		reader, err := s.CreateMember(ctx, members.CommandLine, "reader@example.org", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CreateAPIToken(ctx, members.CommandLine, reader.ID, ""); !errs.Is(err, errs.Forbidden) {
			t.Errorf("a token for a reader = %v, want forbidden", err)
		}
	})
}

func TestARoleChangeShowsAtOnceInTheSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		m, err := s.CreateMember(ctx, members.CommandLine, "editor@example.org", "")
		if err != nil {
			t.Fatal(err)
		}
		id, _ := s.StartSession(ctx, m.ID)
		if got, _ := s.MemberForSession(ctx, id); got.Role != members.RolePatron {
			t.Fatalf("role = %s", got.Role)
		}
		if _, _, err := s.EnsureStaff(ctx, members.CommandLine, "editor@example.org", "", members.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.MemberForSession(ctx, id); got.Role != members.RoleAdmin {
			t.Errorf("right after promotion the session reads role %s, want admin", got.Role)
		}
	})
}

func TestADuplicateEmailNamesTheExistingMember(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		first, err := s.CreateMember(ctx, members.CommandLine, "walkin@example.org", "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateMember(ctx, members.CommandLine, "WALKIN@example.org", "")
		e := errs.From(err)
		if e.Code != "email_taken" || e.Details["existing_id"] != first.ID {
			t.Errorf("duplicate = %+v, want email_taken naming %s", e, first.ID)
		}
	})
}

// The audit log pages newest first on both databases, filtered by subject.
func TestAuditLogPages(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		var created []string
		for i := range 3 {
			m, err := s.CreateMember(ctx, members.CommandLine, fmt.Sprintf("reader%d@example.org", i), "")
			if err != nil {
				t.Fatal(err)
			}
			created = append(created, m.ID)
			c.Advance(time.Second)
		}
		var seen []string
		q := members.AuditQuery{SubjectType: "member", Limit: 2}
		for {
			page, err := s.AuditLog(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				seen = append(seen, e.SubjectID)
			}
			if len(page) < q.Limit {
				break
			}
			q.After = &page[len(page)-1]
		}
		want := []string{created[2], created[1], created[0]}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Errorf("audit subjects by pages of 2 = %v, want %v (newest first)", seen, want)
		}
		only, err := s.AuditLog(ctx, members.AuditQuery{SubjectID: created[1], Limit: 10})
		if err != nil || len(only) != 1 || only[0].Action != "member.create" {
			t.Errorf("one subject's entries = %+v, %v", only, err)
		}
	})
}

// Erasing a member deletes the account, ends its sessions and scrubs the
// audit entries about it, on both databases.
func TestEraseMember(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		m, err := s.CreateMember(ctx, members.CommandLine, "gone@example.org", "Gone")
		if err != nil {
			t.Fatal(err)
		}
		session, err := s.StartSession(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EraseMember(ctx, members.Actor{MemberID: m.ID, Label: "self"}, m.ID, nil); !errs.Is(err, errs.Conflict) {
			t.Errorf("erasing oneself = %v, want a conflict", err)
		}
		if err := s.EraseMember(ctx, members.CommandLine, m.ID, nil); err != nil {
			t.Fatal(err)
		}
		c.Advance(2 * time.Second) // past the session cache
		if _, err := s.MemberForSession(ctx, session); !errs.Is(err, errs.Unauthenticated) {
			t.Errorf("the erased member's session = %v, want unauthenticated", err)
		}
		entries, err := s.AuditLog(ctx, members.AuditQuery{SubjectID: m.ID, Limit: 10})
		if err != nil || len(entries) != 2 || !strings.Contains(fmt.Sprint(entries), "member.erase") || strings.Contains(fmt.Sprint(entries), "gone@") {
			t.Errorf("audit after erasure = %+v, %v", entries, err)
		}
	})
}

// A member's language is one there is a catalogue for, kept on both
// engines, and read back with the member wherever it is found.
func TestAMembersLanguage(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *members.Service, c *clock) {
		ctx := context.Background()
		m, err := s.CreateMember(ctx, members.CommandLine, "olena@example.org", "Олена")
		if err != nil {
			t.Fatal(err)
		}
		if m.Language != "" {
			t.Errorf("a new member's language = %q, want none", m.Language)
		}
		got, err := s.SetLanguage(ctx, m.ID, " UK ")
		if err != nil || got.Language != "uk" {
			t.Fatalf("SetLanguage(UK) = %q, %v; want uk", got.Language, err)
		}
		for _, read := range []func() (members.Member, error){
			func() (members.Member, error) { return s.FindMemberByID(ctx, m.ID) },
			func() (members.Member, error) { return s.FindMemberByEmail(ctx, "olena@example.org") },
			func() (members.Member, error) {
				id, err := s.StartSession(ctx, m.ID)
				if err != nil {
					return members.Member{}, err
				}
				return s.MemberForSession(ctx, id)
			},
		} {
			if found, err := read(); err != nil || found.Language != "uk" {
				t.Errorf("read back: language %q, %v; want uk", found.Language, err)
			}
		}
		_, err = s.SetLanguage(ctx, m.ID, "de")
		if e := errs.From(err); e.Kind != errs.Invalid || e.Fields["language"] != "must be one of en, uk" {
			t.Errorf("SetLanguage(de) = %v, want a 422 naming the language", err)
		}
		if found, _ := s.FindMemberByID(ctx, m.ID); found.Language != "uk" {
			t.Errorf("a refused language changed the member's: %q", found.Language)
		}
		if got, err := s.SetLanguage(ctx, m.ID, ""); err != nil || got.Language != "" {
			t.Errorf("clearing the language = %q, %v", got.Language, err)
		}
		if _, err := s.SetLanguage(ctx, "mem_nobody", "en"); !errs.Is(err, errs.NotFound) {
			t.Errorf("SetLanguage of nobody = %v, want not found", err)
		}
	})
}
