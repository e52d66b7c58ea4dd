package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/metrics"
)

// tableOf is the markup of the table with id on page ("" if none).
func tableOf(page, id string) string {
	_, rest, ok := strings.Cut(page, `id="`+id+`"`)
	if !ok {
		return ""
	}
	table, _, _ := strings.Cut(rest, "</table>")
	return table
}

var (
	rowPattern  = regexp.MustCompile(`(?s)<tr data-(?:month|cohort|tier)="([^"]*)">(.*?)</tr>`)
	cellPattern = regexp.MustCompile(`data-field="([a-z_]+)" data-(?:minor|value)="([^"]*)"`)
)

// tableCells reads a dashboard table back as row key → field → the exact
// number in its data attribute.
func tableCells(t *testing.T, page, id string) map[string]map[string]string {
	t.Helper()
	table := tableOf(page, id)
	if table == "" {
		t.Fatalf("the page has no table %s", id)
	}
	out := map[string]map[string]string{}
	for _, row := range rowPattern.FindAllStringSubmatch(table, -1) {
		cells := map[string]string{}
		for _, c := range cellPattern.FindAllStringSubmatch(row[2], -1) {
			cells[c[1]] = c[2]
		}
		out[row[1]] = cells
	}
	return out
}

// jsonNumber is how the page writes a JSON number from the API: integers
// as they are, rates exactly, null as "".
func jsonNumber(v any) string {
	switch n := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(n, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// Staff see on /staff the very figures the metrics API answers, in
// tables beside server-drawn charts, and download them as CSV; readers
// cannot, and a bad parameter is a 422 page.
func TestStaffDashboardShowsTheAPIsFigures(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	ctx := context.Background()
	this := metrics.MonthOf(time.Now())
	month := func(ago int, day int, hour int) time.Time {
		return this.AddDate(0, -ago, day-1).Add(time.Duration(hour) * time.Hour)
	}

	ann, err := ts.members.CreateMember(ctx, members.CommandLine, "ann@example.org", "Ann")
	if err != nil {
		t.Fatal(err)
	}
	// A name a spreadsheet would run as a formula, for the CSV.
	bob, err := ts.members.CreateMember(ctx, members.CommandLine, "bob@example.org", "=HYPERLINK(\"x\")")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		sub, member, tier, status, currency string
		amount, qty                         int64
		interval                            string
		at                                  time.Time
	}
	seq := map[string]int{}
	for _, r := range []row{
		{"sub_ann", ann.ID, "coffee", "active", "eur", 500, 1, "month", month(3, 2, 10)},
		{"sub_ann", ann.ID, "coffee", "active", "eur", 500, 2, "month", month(1, 3, 10)},
		{"sub_bob", bob.ID, "lunch", "active", "eur", 1000, 1, "month", month(2, 5, 9)},
		{"sub_bob", bob.ID, "lunch", "past_due", "eur", 1000, 1, "month", this},
		{"sub_cat", "mem_cat", "coffee", "active", "eur", 700, 1, "month", month(3, 4, 8)},
		{"sub_cat", "mem_cat", "coffee", "canceled", "eur", 700, 1, "month", month(1, 6, 8)},
		{"sub_yen", "mem_yen", "lunch", "active", "jpy", 1200, 1, "year", month(2, 7, 12)},
	} {
		seq[r.sub]++
		if _, err := ts.db.Exec(`INSERT INTO subscription_history (subscription_id, seq, at, member_id, tier_slug, status, price_id, currency, unit_amount, quantity,
			billing_interval, interval_count, event_id) VALUES ($1, $2, $3, $4, $5, $6, 'price_x', $7, $8, $9, $10, 1, $11)`,
			r.sub, seq[r.sub], r.at, r.member, r.tier, r.status, r.currency, r.amount, r.qty, r.interval, r.sub+strconv.Itoa(seq[r.sub])); err != nil {
			t.Fatal(err)
		}
	}
	// Bob's subscription as billing holds it now: past due, so at risk.
	setSubscription(t, ts, bob.ID, "past_due", time.Now().Add(240*time.Hour))
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := ts.db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	paid := month(1, 10, 10)
	exec(`INSERT INTO invoices (id, customer_id, status, currency, amount_due, amount_paid, tax, paid_at, stripe_created_at, state_at, updated_at)
		VALUES ('in_1', 'cus_b', 'paid', 'eur', 2000, 2000, 300, $1, $1, $1, $1)`, paid)
	exec(`INSERT INTO donations (id, amount, currency, status, stripe_created_at, state_at) VALUES ('cs_1', 2500, 'eur', 'paid', $1, $1)`, month(2, 12, 10))
	// Rows written behind billing's back: the staff figures are computed
	// from them as a first start would (billing keeps them as it writes).
	if _, err := ts.revenue.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}

	if rec := do(h, "GET", "/staff", "", nil); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/signin?next=/staff" {
		t.Errorf("signed out, /staff = %d to %q, want 303 to sign in and back", rec.Code, rec.Header().Get("Location"))
	}
	reader := signUpAndSignIn(t, ts, "reader@example.org")
	for _, path := range []string{"/staff", "/staff/dashboard.csv?chart=mrr"} {
		if rec := do(h, "GET", path, "", nil, "Cookie", withCookie(reader)); rec.Code != http.StatusForbidden {
			t.Errorf("a reader on %s = %d, want 403", path, rec.Code)
		}
	}

	token, staffMember := staffSetup(t, ts, members.RoleStaff)
	sess, err := ts.members.StartSession(ctx, staffMember.ID)
	if err != nil {
		t.Fatal(err)
	}
	staff := []string{"Cookie", SessionCookie + "=" + sess}
	api := func(path string, v any) {
		t.Helper()
		rec := do(h, "GET", path, "", nil, "Authorization", "Bearer "+token)
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), v) != nil {
			t.Fatalf("%s = %d %s", path, rec.Code, rec.Body)
		}
	}
	open := func(path string) string {
		t.Helper()
		rec := do(h, "GET", path, "", nil, staff...)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s = %d\n%s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}

	page := open("/staff?months=4")
	from, to := this.AddDate(0, -3, 0).Format("2006-01"), this.Format("2006-01")
	if !strings.Contains(page, `<span id="dashboard-currency">EUR</span>`) {
		t.Errorf("the dashboard does not default to EUR, the currency with the most MRR")
	}
	for _, bad := range []string{"<script", " style=", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %q: it must work without scripts, inline styles or other sites", bad)
		}
	}
	for _, id := range []string{"chart-mrr", "chart-paying", "chart-churn", "chart-revenue", "chart-tiers"} {
		if !regexp.MustCompile(`<svg [^>]*id="`+id+`"[^>]*role="img"[^>]*aria-labelledby="`+id+`-title `+id+`-desc"`).MatchString(page) ||
			!strings.Contains(page, `<title id="`+id+`-title">`) {
			t.Errorf("the page has no labelled chart %s", id)
		}
	}

	// The figures now, against the summary.
	var sum struct{ Currencies []map[string]any }
	api("/api/v1/staff/metrics/summary", &sum)
	var eur map[string]any
	for _, c := range sum.Currencies {
		if c["currency"] == "eur" {
			eur = c
		}
	}
	if eur == nil || eur["mrr"] != 2000.0 || eur["paying_patrons"] != 2.0 || eur["at_risk_mrr"] != 1000.0 {
		t.Fatalf("the seeded history's summary is %v; want EUR 20.00 of MRR from 2 patrons, 10.00 at risk", eur)
	}
	for _, key := range []string{"mrr", "paying_patrons", "arpu", "at_risk_mrr", "net_revenue_30d", "donations_30d", "churn_rate_30d", "ltv"} {
		attr := "data-value"
		if key != "paying_patrons" && key != "churn_rate_30d" {
			attr = "data-minor"
		}
		want := fmt.Sprintf(`data-figure="%s" %s="%s"`, key, attr, jsonNumber(eur[key]))
		if key == "ltv" && eur[key] == nil {
			want = `data-figure="ltv" data-value=""`
		}
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show the summary's %s: no %s", key, want)
		}
	}
	if !strings.Contains(page, "EUR 20.00") {
		t.Error("the page does not show the MRR as EUR 20.00")
	}

	// Month by month, against the MRR, revenue and cohort endpoints.
	var mrr struct{ Months []map[string]any }
	api("/api/v1/staff/metrics/mrr?currency=eur&from="+from+"&to="+to, &mrr)
	cells := map[string]map[string]string{}
	for _, id := range []string{"table-mrr", "table-paying", "table-churn"} {
		for m, fields := range tableCells(t, page, id) {
			if cells[m] == nil {
				cells[m] = map[string]string{}
			}
			for k, v := range fields {
				cells[m][k] = v
			}
		}
	}
	if len(cells) != 4 || len(mrr.Months) != 4 {
		t.Fatalf("the page shows months %v and the API %d months; want the 4 asked for", cells, len(mrr.Months))
	}
	for _, m := range mrr.Months {
		month := m["month"].(string)
		for _, field := range []string{"mrr_start", "new", "reactivation", "expansion", "contraction", "churn", "mrr_end",
			"paying_patrons_start", "paying_patrons_end", "new_patrons", "reactivated_patrons", "churned_patrons", "patron_churn_rate", "revenue_churn_rate"} {
			got, ok := cells[month][field]
			if want := jsonNumber(m[field]); !ok || got != want {
				t.Errorf("%s %s: the page shows %q, the API %q", month, field, got, want)
			}
		}
	}
	var revenue struct{ Months []map[string]any }
	api("/api/v1/staff/metrics/revenue?currency=eur&from="+from+"&to="+to, &revenue)
	rev := tableCells(t, page, "table-revenue")
	for _, m := range revenue.Months {
		for _, field := range []string{"gross", "tax", "refunds", "net", "donations"} {
			if got, want := rev[m["month"].(string)][field], jsonNumber(m[field]); got != want {
				t.Errorf("revenue %s %s: the page shows %q, the API %q", m["month"], field, got, want)
			}
		}
	}
	if rev[this.AddDate(0, -1, 0).Format("2006-01")]["net"] != "1700" {
		t.Errorf("last month's net revenue on the page = %q, want 1700 (2000 paid less 300 tax)", rev[this.AddDate(0, -1, 0).Format("2006-01")]["net"])
	}
	var cohorts struct {
		Cohorts []struct {
			Month   string
			Patrons int
			Months  []struct {
				Month    string
				Retained int `json:"retained_patrons"`
				Share    float64
				MRR      int64
			}
		}
	}
	api("/api/v1/staff/metrics/cohorts?currency=eur&from="+from+"&to="+to, &cohorts)
	table := tableOf(page, "table-cohorts")
	for _, co := range cohorts.Cohorts {
		for _, m := range co.Months {
			want := fmt.Sprintf(`data-month="%s" data-share="%s" data-value="%d" data-minor="%d"`, m.Month, strconv.FormatFloat(m.Share, 'g', -1, 64), m.Retained, m.MRR)
			_, row, _ := strings.Cut(table, `data-cohort="`+co.Month+`"`)
			row, _, _ = strings.Cut(row, "</tr>")
			if !strings.Contains(row, want) {
				t.Errorf("cohort %s in %s: the page lacks %s", co.Month, m.Month, want)
			}
		}
	}
	// Two patrons joined three months ago; one is still paying: half, and
	// shaded halfway.
	if !strings.Contains(table, `class="heat-5" data-month="`+to+`" data-share="0.5"`) {
		t.Errorf("the cohort of %s is not shown at half this month, shaded heat-5:\n%s", from, table)
	}
	var tiers struct{ Tiers []map[string]any }
	api("/api/v1/staff/metrics/tiers", &tiers)
	tierCells := tableCells(t, page, "table-tiers")
	n := 0
	for _, tier := range tiers.Tiers {
		if tier["currency"] != "eur" {
			continue
		}
		n++
		if got := tierCells[tier["tier"].(string)]; got["mrr"] != jsonNumber(tier["mrr"]) || got["paying_patrons"] != jsonNumber(tier["paying_patrons"]) {
			t.Errorf("tier %s: the page shows %v, the API %v", tier["tier"], got, tier)
		}
	}
	if n != 2 || len(tierCells) != 2 {
		t.Errorf("the page shows tiers %v for the API's %d in EUR; want both", tierCells, n)
	}

	// At risk: Bob, linked to his record.
	risk := tableOf(page, "table-at-risk")
	if !strings.Contains(risk, `<a href="/api/v1/staff/members/`+bob.ID+`">bob@example.org</a>`) || strings.Contains(risk, "ann@example.org") {
		t.Errorf("the at-risk list should link Bob, and only him:\n%s", risk)
	}

	// The currency switch is a plain link; yen have no decimals.
	if !strings.Contains(page, `<a href="/staff?currency=jpy&amp;months=4">JPY</a>`) {
		t.Errorf("the page has no link to the dashboard in JPY")
	}
	yen := open("/staff?currency=jpy&months=4")
	if !strings.Contains(yen, `data-figure="mrr" data-minor="100"`) || !strings.Contains(yen, "JPY 100<") || strings.Contains(yen, "JPY 100.00") {
		t.Errorf("in yen, the MRR of ¥1,200 a year should show as JPY 100, without decimals")
	}

	// In Ukrainian: the same figures, in its words and its way of writing
	// amounts, months and rates.
	rec := do(h, "GET", "/staff?months=4", "", nil, append(staff, "Accept-Language", "uk")...)
	uk := rec.Body.String()
	for _, want := range []string{`<html lang="uk">`, "Показники в <span id=\"dashboard-currency\">EUR</span>", ">20,00\u00a0EUR<",
		`<title id="chart-mrr-title">MRR та його зміни (EUR)</title>`, ">" + ts.catalog.In("uk").MonthLabel(this) + "<", "Відтік меценатів",
		`data-figure="mrr" data-minor="2000"`} {
		if !strings.Contains(uk, want) {
			t.Errorf("the dashboard in Ukrainian lacks %q", want)
		}
	}
	for _, english := range []string{"Paying patrons", "Download the", "MRR and its movements", "EUR 20.00"} {
		if strings.Contains(uk, english) {
			t.Errorf("the dashboard in Ukrainian holds English %q", english)
		}
	}

	for _, bad := range []struct{ query, word string }{
		{"?currency=zzz", "currency"},
		{"?currency=euros", "currency"},
		{"?months=0", "months"},
		{"?months=37", "months"},
		{"?months=twelve", "months"},
	} {
		rec := do(h, "GET", "/staff"+bad.query, "", nil, staff...)
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "The "+bad.word) {
			t.Errorf("/staff%s = %d, want the 422 page naming the %s", bad.query, rec.Code, bad.word)
		}
	}

	// The CSVs: the same numbers, in minor units with the currency.
	download := func(query string) [][]string {
		t.Helper()
		rec := do(h, "GET", "/staff/dashboard.csv"+query, "", nil, staff...)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") ||
			!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment;") {
			t.Fatalf("CSV %s = %d %q %q\n%s", query, rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Content-Disposition"), rec.Body)
		}
		records, err := csv.NewReader(rec.Body).ReadAll()
		if err != nil {
			t.Fatalf("CSV %s: %v", query, err)
		}
		return records
	}
	mrrCSV := download("?chart=mrr&currency=eur&months=4")
	if len(mrrCSV) != 5 || mrrCSV[0][0] != "month" || mrrCSV[0][1] != "currency" {
		t.Fatalf("the MRR CSV has %d rows, head %v; want a head and 4 months", len(mrrCSV), mrrCSV[0])
	}
	for i, m := range mrr.Months {
		rec := map[string]string{}
		for k, name := range mrrCSV[0] {
			rec[name] = mrrCSV[i+1][k]
		}
		if rec["month"] != m["month"] || rec["currency"] != "eur" || rec["mrr_end"] != jsonNumber(m["mrr_end"]) || rec["churn"] != jsonNumber(m["churn"]) ||
			rec["patron_churn_rate"] != jsonNumber(m["patron_churn_rate"]) {
			t.Errorf("MRR CSV row %v, API %v", rec, m)
		}
	}
	if got := download("?chart=revenue&months=4"); len(got) != 5 || strings.Join(got[3], ",") != this.AddDate(0, -1, 0).Format("2006-01")+",eur,2000,300,0,1700,0" {
		t.Errorf("the revenue CSV (default currency) = %v; want last month as 2000 gross, 300 tax, 1700 net", got)
	}
	if got := download("?chart=tiers&currency=jpy"); len(got) != 2 || strings.Join(got[1], ",") != "jpy,lunch,year,1,100,1" {
		t.Errorf("the yen tiers CSV = %v", got)
	}
	if got := download("?chart=cohorts&currency=eur&months=4"); len(got) != 1+4+3+2+1 || got[0][0] != "cohort" {
		t.Errorf("the cohorts CSV has %d rows, want a head and one per cohort and month (4+3+2+1)", len(got))
	}
	atRisk := download("?chart=at_risk")
	if len(atRisk) != 2 || atRisk[1][0] != bob.ID || atRisk[1][2] != `'=HYPERLINK("x")` || atRisk[1][4] != "/api/v1/staff/members/"+bob.ID {
		t.Errorf("the at-risk CSV = %v; want Bob alone, his name escaped against formulas", atRisk)
	}
	if rec := do(h, "GET", "/staff/dashboard.csv?chart=everything", "", nil, staff...); rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "The chart") {
		t.Errorf("an unknown chart = %d, want the 422 page naming the chart", rec.Code)
	}
}

// With nothing billed yet the page says so instead of drawing empty
// charts.
func TestStaffDashboardBeforeAnyRevenue(t *testing.T) {
	ts := newFullTestServer(t)
	_, admin := staffSetup(t, ts, members.RoleAdmin)
	sess, err := ts.members.StartSession(context.Background(), admin.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec := do(ts.Handler(), "GET", "/staff", "", nil, "Cookie", SessionCookie+"="+sess)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Nothing has been billed yet") || strings.Contains(rec.Body.String(), "<svg") {
		t.Errorf("an empty dashboard = %d, want 200 saying nothing is billed yet\n%s", rec.Code, rec.Body)
	}
}
