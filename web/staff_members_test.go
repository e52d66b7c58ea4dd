package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
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
	for _, bad := range []string{"?status=lapsed", "?q=%00", "?q=%ff", "?cursor=%ff"} {
		if rec := do(h, "GET", "/api/v1/staff/members"+bad, "", nil, staff...); rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("members%s = %d, want 422", bad, rec.Code)
		}
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
	// A gift given under their email before they had an account is theirs too.
	if _, err := ts.db.Exec(`INSERT INTO donations (id, email, amount, currency, status, stripe_created_at, state_at)
		VALUES ('cs_early', 'Guest@example.org', 700, 'eur', 'paid', $1, $1)`, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	rec := do(h, "GET", "/api/v1/staff/members/"+id+"/export", "", nil, admin...)
	var export struct {
		Member  struct{ Email string }
		Billing struct {
			Access    struct{ Active bool }
			Donations []struct{ ID string }
		}
		Audit []struct{ Action string }
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &export) != nil || export.Member.Email != "guest@example.org" ||
		len(export.Audit) < 2 || len(export.Billing.Donations) != 1 || !strings.Contains(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Errorf("export = %d %s", rec.Code, rec.Body)
	}
}

// Erasing a member removes their personal data and ends their sessions;
// the money stays, without them. One with a live subscription, or oneself,
// cannot be erased.
func TestEraseMember(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	adminToken, admin := staffSetup(t, ts, members.RoleAdmin)
	as := []string{"Authorization", "Bearer " + adminToken}
	// Created by staff, so the audit log holds the email.
	var created struct{ Member struct{ ID string } }
	json.Unmarshal(postJSON(h, "/api/v1/staff/members", `{"email":"leaving@example.org","name":"Lea Ving"}`, as...).Body.Bytes(), &created)
	id := created.Member.ID
	session, err := ts.members.StartSession(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	reader := &http.Cookie{Name: SessionCookie, Value: session}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(reader)); rec.Code != http.StatusOK {
		t.Fatalf("the member's session before erasure = %d", rec.Code)
	}
	var before int
	ts.db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE after_json LIKE '%leaving@%'`).Scan(&before)
	if before == 0 {
		t.Fatal("the audit log does not hold the email to begin with: the check below would prove nothing")
	}
	now := time.Now().UTC()
	if _, err := ts.db.Exec(`INSERT INTO donations (id, member_id, email, amount, currency, message, status, stripe_created_at, state_at)
		VALUES ('cs_gift', $1, 'leaving@example.org', 2500, 'eur', 'For the flood story', 'paid', $2, $2)`, id, now); err != nil {
		t.Fatal(err)
	}
	staffToken, _ := staffSetup(t, ts, members.RoleStaff)

	if rec := do(h, "DELETE", "/api/v1/staff/members/"+id, "", nil, "Authorization", "Bearer "+staffToken); rec.Code != http.StatusForbidden {
		t.Errorf("staff (not admin) erasing = %d, want 403", rec.Code)
	}
	if rec := do(h, "DELETE", "/api/v1/staff/members/"+admin.ID, "", nil, as...); rec.Code != http.StatusConflict {
		t.Errorf("an admin erasing themselves = %d, want 409", rec.Code)
	}
	setSubscription(t, ts, id, "active", now.Add(720*time.Hour))
	if rec := do(h, "DELETE", "/api/v1/staff/members/"+id, "", nil, as...); rec.Code != http.StatusConflict || decodeError(t, rec).Code != "subscription_active" {
		t.Errorf("erasing a member with a live subscription = %d %s, want 409 subscription_active", rec.Code, rec.Body)
	}
	setSubscription(t, ts, id, "canceled", now)
	if rec := do(h, "DELETE", "/api/v1/staff/members/"+id, "", nil, as...); rec.Code != http.StatusNoContent {
		t.Fatalf("erase = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(reader)); rec.Code != http.StatusUnauthorized {
		t.Errorf("the erased member's session = %d, want 401", rec.Code)
	}
	if rec := do(h, "GET", "/api/v1/staff/members/"+id, "", nil, as...); rec.Code != http.StatusNotFound {
		t.Errorf("the erased member's detail = %d, want 404", rec.Code)
	}
	var email, message string
	var amount int64
	if err := ts.db.QueryRow(`SELECT email, message, amount FROM donations WHERE id = 'cs_gift'`).Scan(&email, &message, &amount); err != nil {
		t.Fatal(err)
	}
	if email != "" || message != "" || amount != 2500 {
		t.Errorf("the gift after erasure: email %q, message %q, amount %d; want the amount only", email, message, amount)
	}
	var leaks int
	if err := ts.db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE COALESCE(before_json, '') LIKE '%leaving@%' OR COALESCE(after_json, '') LIKE '%leaving@%' OR actor_label LIKE '%leaving@%'`).Scan(&leaks); err != nil {
		t.Fatal(err)
	}
	if leaks != 0 {
		t.Errorf("%d audit entries still hold the erased email", leaks)
	}
	if body := do(h, "GET", "/api/v1/staff/audit?subject_id="+id, "", nil, as...).Body.String(); !strings.Contains(body, "member.erase") {
		t.Errorf("the erasure is not in the audit log: %s", body)
	}
}

// A negative amount stays a number in a spreadsheet; anything else that
// starts like a formula is defused.
func TestSafeCellsKeepNegativeAmounts(t *testing.T) {
	got := safeCells("-1500", "-12.50", "-1+1", "-cmd|' /C calc'!A0", "=SUM(A1)", "+1", "@x", "\tx", "1500", "Ada")
	want := []string{"-1500", "-12.50", "'-1+1", "'-cmd|' /C calc'!A0", "'=SUM(A1)", "'+1", "'@x", "'\tx", "1500", "Ada"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("safeCells = %q, want %q", got, want)
	}
}
