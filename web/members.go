package web

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/members"
)

type accessJSON struct {
	Active bool    `json:"active"`
	Source *string `json:"source"`
	Tier   *string `json:"tier"`
	Until  *string `json:"until"`
}

type meJSON struct {
	ID       string     `json:"id"`
	Email    string     `json:"email"`
	Name     *string    `json:"name"`
	Role     string     `json:"role"`
	Language *string    `json:"language"` // null: not chosen
	Access   accessJSON `json:"access"`
}

type staffMemberJSON struct {
	ID               string  `json:"id"`
	Email            string  `json:"email"`
	Name             *string `json:"name"`
	Role             string  `json:"role"`
	StripeCustomerID *string `json:"stripe_customer_id"`
	CreatedAt        string  `json:"created_at"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func toAccessJSON(a members.Access) accessJSON {
	out := accessJSON{Active: a.Active, Source: optional(a.Source), Tier: optional(a.Tier)}
	if a.Until != nil {
		until := rfc3339(*a.Until)
		out.Until = &until
	}
	return out
}

func toStaffMemberJSON(m members.Member) staffMemberJSON {
	return staffMemberJSON{ID: m.ID, Email: m.Email, Name: optional(m.Name), Role: string(m.Role),
		StripeCustomerID: optional(m.StripeCustomerID), CreatedAt: rfc3339(m.CreatedAt)}
}

func (s *Server) accessOf(c *gin.Context, memberID string) (members.Access, error) {
	if s.access == nil {
		return members.Access{}, nil
	}
	return s.access.AccessOf(c.Request.Context(), memberID)
}

// me answers who the signed-in reader is and whether they have access.
func (s *Server) me(c *gin.Context) {
	m, err := s.currentMember(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeMe(c, m)
}

// writeMe answers with the member and their access.
func (s *Server) writeMe(c *gin.Context, m members.Member) {
	access, err := s.accessOf(c, m.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"member": toMeJSON(m, access)})
}

func toMeJSON(m members.Member, access members.Access) meJSON {
	return meJSON{ID: m.ID, Email: m.Email, Name: optional(m.Name), Role: string(m.Role), Language: optional(m.Language), Access: toAccessJSON(access)}
}

// updateMeRequest changes what a member may change of their own account;
// a field left out stays as it is.
type updateMeRequest struct {
	// Language is a language code, or null to leave the choice to the
	// browser.
	Language json.RawMessage `json:"language"`
}

// updateMe lets the signed-in member change their own settings: for now,
// the language of their pages and mail.
func (s *Server) updateMe(c *gin.Context) {
	m, err := s.currentMember(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req updateMeRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Language) > 0 {
		var language *string
		if err := json.Unmarshal(req.Language, &language); err != nil {
			s.fail(c, errs.InvalidFields(map[string]string{"language": "must be a language code or null"}))
			return
		}
		code := ""
		if language != nil {
			code = *language
		}
		if m, err = s.members.SetLanguage(c.Request.Context(), m.ID, code); err != nil {
			s.fail(c, err)
			return
		}
	}
	s.writeMe(c, m)
}

type createMemberRequest struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

func (s *Server) staffCreateMember(c *gin.Context) {
	var req createMemberRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	m, err := s.members.CreateMember(c.Request.Context(), s.staffActor(c), req.Email, req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"member": toStaffMemberJSON(m)})
}

func (s *Server) staffGetMember(c *gin.Context) {
	ctx := c.Request.Context()
	m, err := s.members.FindMemberByID(ctx, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	// How many votes they have standing, never which.
	var votes *int
	if s.voting != nil {
		n, err := s.voting.VotesCast(ctx, m.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		votes = &n
	}
	entries, err := s.members.AuditLog(ctx, members.AuditQuery{SubjectType: "member", SubjectID: m.ID, Limit: 20})
	if err != nil {
		s.fail(c, err)
		return
	}
	audit := make([]auditEntryJSON, 0, len(entries))
	for _, e := range entries {
		audit = append(audit, toAuditEntryJSON(e))
	}
	c.JSON(http.StatusOK, gin.H{"member": toStaffMemberJSON(m), "votes_cast": votes, "audit": audit})
}

// staffFindMembers looks a member up by exact email (a list of zero or
// one), or lists members by access, tier and text, a page at a time.
func (s *Server) staffFindMembers(c *gin.Context) {
	if email, ok := c.GetQuery("email"); ok {
		list := []staffMemberJSON{}
		m, err := s.members.FindMemberByEmail(c.Request.Context(), email)
		switch {
		case err == nil:
			list = append(list, toStaffMemberJSON(m))
		case !errs.Is(err, errs.NotFound):
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"members": list})
		return
	}
	f, ok := s.memberFilter(c, 50)
	if !ok {
		return
	}
	rows, err := s.billing.ListMembers(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	type rowJSON struct {
		staffMemberJSON
		Access accessJSON `json:"access"`
	}
	list := make([]rowJSON, 0, len(rows))
	for _, r := range rows {
		list = append(list, rowJSON{staffMemberJSON: toStaffMemberJSON(r.Member), Access: toAccessJSON(r.Access)})
	}
	var next *string
	if len(rows) == f.Limit {
		next = &rows[len(rows)-1].Member.ID
	}
	c.JSON(http.StatusOK, gin.H{"members": list, "next_cursor": next})
}

// memberFilter reads the staff member filters (status, tier, q, cursor,
// limit up to 200); on false the 422 has been written.
func (s *Server) memberFilter(c *gin.Context, limit int) (billing.MemberFilter, bool) {
	f := billing.MemberFilter{Status: c.Query("status"), Tier: c.Query("tier"), Query: c.Query("q"), After: c.Query("cursor"), Limit: limit}
	fields := map[string]string{}
	for name, v := range map[string]string{"tier": f.Tier, "q": f.Query, "cursor": f.After} {
		if !validText(v) {
			fields[name] = "must be text (UTF-8, no NUL)"
		}
	}
	switch f.Status {
	case "", "active", "inactive", "past_due":
	default:
		fields["status"] = "must be active, inactive or past_due"
	}
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 200 {
			fields["limit"] = "must be a whole number from 1 to 200"
		}
		f.Limit = n
	}
	if len(fields) > 0 {
		s.fail(c, errs.InvalidFields(fields))
		return f, false
	}
	return f, true
}

// staffMembersCSV streams every member matching the filters as CSV, a page
// of the database at a time, so memory stays flat however many there are.
// A cell a spreadsheet would take for a formula (=, +, -, @, tab, CR first)
// is prefixed with an apostrophe.
func (s *Server) staffMembersCSV(c *gin.Context) {
	f, ok := s.memberFilter(c, 1000)
	if !ok {
		return
	}
	f.Limit = 1000
	ctx := c.Request.Context()
	rows, err := s.billing.ListMembers(ctx, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="members.csv"`)
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	rc := http.NewResponseController(c.Writer)
	_ = w.Write([]string{"id", "email", "name", "role", "created_at", "access", "access_source", "tier", "access_until"})
	for {
		// However long the whole file takes, each page has its own time to
		// reach the client (a reader that stops reading is cut off).
		_ = rc.SetWriteDeadline(time.Now().Add(exportPageTimeout))
		for _, r := range rows {
			access, until := "inactive", ""
			if r.Access.Active {
				access = "active"
			}
			if r.Access.Until != nil {
				until = rfc3339(*r.Access.Until)
			}
			_ = w.Write(safeCells(r.Member.ID, r.Member.Email, r.Member.Name, string(r.Member.Role), rfc3339(r.Member.CreatedAt),
				access, r.Access.Source, r.Access.Tier, until))
		}
		w.Flush()
		if w.Error() != nil || len(rows) < f.Limit {
			return
		}
		f.After = rows[len(rows)-1].Member.ID
		if rows, err = s.billing.ListMembers(ctx, f); err != nil {
			// Headers are gone: say so in the log and drop the connection,
			// so the client sees a broken transfer, not a short file that
			// looks whole.
			s.logger.ErrorContext(ctx, "members export cut short", "request_id", requestID(c), "err", err)
			panic(http.ErrAbortHandler)
		}
	}
}

// exportPageTimeout is how long a page of an export may take to reach the
// client; the whole export may take longer than the server's write timeout.
const exportPageTimeout = 30 * time.Second

// plainNumber is a cell a spreadsheet reads as a number and nothing else,
// such as a negative amount: left as it is.
var plainNumber = regexp.MustCompile(`^-[0-9]+(\.[0-9]+)?$`)

// safeCells escapes cells a spreadsheet would run as formulas.
func safeCells(cells ...string) []string {
	for i, v := range cells {
		if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) && !plainNumber.MatchString(v) {
			cells[i] = "'" + v
		}
	}
	return cells
}

// staffSignInLink gives an admin a sign-in link for a reader who cannot
// receive mail; the members service records it in the audit log.
func (s *Server) staffSignInLink(c *gin.Context) {
	url, err := s.members.StaffSignInLink(c.Request.Context(), s.staffActor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{"url": url})
}

// staffEraseMember erases a member's personal data for good (admins).
func (s *Server) staffEraseMember(c *gin.Context) {
	if err := s.members.EraseMember(c.Request.Context(), s.staffActor(c), c.Param("id"), s.billing.ScrubMember); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// validText reports whether a parameter is text a database will take:
// valid UTF-8 without NUL (PostgreSQL refuses both).
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
