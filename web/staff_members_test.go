package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

// Staff list members by access, tier and text, a page at a time; admins
// export them as CSV with formula-looking cells defused.
func TestStaffListAndExportMembers(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	ctx := context.Background()
	ids := map[string]string{}
	for _, p := range []struct{ email, name string }{
		{"ada@example.org", "=HYPERLINK(\"http://evil.example\")"},
		{"bob@example.org", "+1 Bob"},
		{"cy@example.org", "@cy"},
		{"dee@example.org", "Dee 100%"},
	} {
		m, err := ts.members.CreateMember(ctx, members.CommandLine, p.email, p.name)
		if err != nil {
			t.Fatal(err)
		}
		ids[p.email] = m.ID
	}
	setSubscription(t, ts, ids["ada@example.org"], "active", time.Now().Add(720*time.Hour))
	setSubscription(t, ts, ids["bob@example.org"], "active", time.Now().Add(720*time.Hour))

	staffToken, _ := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + staffToken}
	type listed struct {
		Members []struct {
			ID, Email string
			Access    struct{ Active bool }
		}
		NextCursor *string `json:"next_cursor"`
	}
	list := func(query string) listed {
		t.Helper()
		rec := do(h, "GET", "/api/v1/staff/members"+query, "", nil, staff...)
		var out listed
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("members%s = %d %s", query, rec.Code, rec.Body)
		}
		return out
	}
	if got := list("?status=active"); len(got.Members) != 2 || !got.Members[0].Access.Active {
		t.Errorf("active members = %+v, want ada and bob", got.Members)
	}
	if got := list("?status=inactive&q=DEE%2010"); len(got.Members) != 1 || got.Members[0].Email != "dee@example.org" {
		t.Errorf("inactive members matching 'DEE 10' = %+v", got.Members)
	}
	if got := list("?q=%25"); len(got.Members) != 1 || got.Members[0].Email != "dee@example.org" {
		t.Errorf("members matching a literal %% = %+v, want only Dee", got.Members)
	}
	// Pages of two cover everyone once (the staff account too).
	var seen []string
	cursor := ""
	for {
		page := list("?limit=2" + cursor)
		for _, m := range page.Members {
			seen = append(seen, m.ID)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = "&cursor=" + *page.NextCursor
	}
	if len(seen) != 5 || strings.Join(seen, ",") != strings.Join(idsOfList(list("?limit=200")), ",") {
		t.Errorf("paging by 2 saw %v", seen)
	}
	if rec := do(h, "GET", "/api/v1/staff/members?status=lapsed", "", nil, staff...); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("an unknown status = %d, want 422", rec.Code)
	}
	if rec := do(h, "GET", "/api/v1/staff/members.csv", "", nil, staff...); rec.Code != http.StatusForbidden {
		t.Errorf("a staff (not admin) export = %d, want 403", rec.Code)
	}

	adminToken, _ := staffSetup(t, ts, members.RoleAdmin)
	rec := do(h, "GET", "/api/v1/staff/members.csv?status=active", "", nil, "Authorization", "Bearer "+adminToken)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("export = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	records, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	if err != nil || len(records) != 3 {
		t.Fatalf("export rows = %v, %v; want a header and ada and bob", records, err)
	}
	names := map[string]string{}
	for _, r := range records[1:] {
		names[r[1]] = r[2]
	}
	if names["ada@example.org"] != `'=HYPERLINK("http://evil.example")` || names["bob@example.org"] != "'+1 Bob" {
		t.Errorf("exported names = %q; want formulas defused with an apostrophe", names)
	}
}

func idsOfList(l struct {
	Members []struct {
		ID, Email string
		Access    struct{ Active bool }
	}
	NextCursor *string `json:"next_cursor"`
}) []string {
	var out []string
	for _, m := range l.Members {
		out = append(out, m.ID)
	}
	return out
}

// Admins give a reader complimentary access and take it back; both count
// at once, are audited, and refuse what is not right.
func TestComplimentaryAccess(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	reader := signUpAndSignIn(t, ts, "guest@example.org")
	var me struct {
		Member struct {
			ID     string
			Access struct {
				Active bool
				Source *string
			}
		}
	}
	json.Unmarshal(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(reader)).Body.Bytes(), &me)
	id := me.Member.ID
	if _, err := ts.db.Exec(`INSERT INTO tiers (slug, name, created_at, updated_at) VALUES ('coffee', 'Coffee', $1, $1)`, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	adminToken, _ := staffSetup(t, ts, members.RoleAdmin)
	admin := []string{"Authorization", "Bearer " + adminToken}
	staffToken, _ := staffSetup(t, ts, members.RoleStaff)
	path := "/api/v1/staff/members/" + id + "/complimentary"

	if rec := postJSON(h, path, `{"tier":"coffee"}`, "Authorization", "Bearer "+staffToken); rec.Code != http.StatusForbidden {
		t.Errorf("staff (not admin) granting = %d, want 403", rec.Code)
	}
	for _, bad := range []struct{ body, field string }{
		{`{}`, "tier"},
		{`{"tier":"caviar"}`, "tier"},
		{`{"tier":"coffee","until":"2020-01-01T00:00:00Z"}`, "until"},
	} {
		rec := postJSON(h, path, bad.body, admin...)
		if e := decodeError(t, rec); rec.Code != http.StatusUnprocessableEntity || e.Fields[bad.field] == "" {
			t.Errorf("grant %s = %d %+v, want 422 naming %s", bad.body, rec.Code, e, bad.field)
		}
	}
	if rec := postJSON(h, "/api/v1/staff/members/mem_nobody/complimentary", `{"tier":"coffee"}`, admin...); rec.Code != http.StatusNotFound {
		t.Errorf("grant to no one = %d, want 404", rec.Code)
	}
	until := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if rec := postJSON(h, path, `{"tier":"coffee","until":"`+until+`","reason":"Source for the flood story"}`, admin...); rec.Code != http.StatusCreated ||
		!strings.Contains(rec.Body.String(), `"active":true`) || !strings.Contains(rec.Body.String(), `"source":"complimentary"`) {
		t.Fatalf("grant = %d %s", rec.Code, rec.Body)
	}
	json.Unmarshal(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(reader)).Body.Bytes(), &me)
	if !me.Member.Access.Active {
		t.Errorf("the reader's access after the grant: %+v", me.Member.Access)
	}
	if rec := do(h, "DELETE", path, "", nil, admin...); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"active":false`) {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "DELETE", path, "", nil, admin...); rec.Code != http.StatusNotFound {
		t.Errorf("revoking again = %d, want 404", rec.Code)
	}
	audit := do(h, "GET", "/api/v1/staff/audit?subject_type=member&subject_id="+id, "", nil, admin...).Body.String()
	if !strings.Contains(audit, "complimentary.grant") || !strings.Contains(audit, "complimentary.revoke") {
		t.Errorf("audit of the member: %s", audit)
	}

	// The export holds the account, its billing and the audit entries.
	if rec := do(h, "GET", "/api/v1/staff/members/"+id+"/export", "", nil, "Authorization", "Bearer "+staffToken); rec.Code != http.StatusForbidden {
		t.Errorf("staff (not admin) exporting = %d, want 403", rec.Code)
	}
	rec := do(h, "GET", "/api/v1/staff/members/"+id+"/export", "", nil, admin...)
	var export struct {
		Member  struct{ Email string }
		Billing struct{ Access struct{ Active bool } }
		Audit   []struct{ Action string }
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &export) != nil || export.Member.Email != "guest@example.org" ||
		len(export.Audit) < 2 || !strings.Contains(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Errorf("export = %d %s", rec.Code, rec.Body)
	}
}
