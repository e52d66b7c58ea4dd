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
