package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

// A small history with figures worked out by hand from docs/metrics.md:
// euros and yen, a yearly plan, a quantity change, a trial, past_due,
// churn at midnight on the 1st and a return; the summary's 30-day revenue
// nets tax and an invoice refund and reports donations on their own.
func TestStaffMetricsFromHistory(t *testing.T) {
	ts := newFullTestServer(t, func(d *Deps) { d.ReportingCurrency = "EUR" })
	h := ts.Handler()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	type row struct {
		sub, member, tier, status, currency string
		amount, qty                         int64
		interval                            string
		when                                string
	}
	seq := map[string]int{}
	for _, r := range []row{
		{"sub_a", "mem_a", "coffee", "active", "eur", 500, 1, "month", "2026-01-10T09:00:00Z"},
		{"sub_a", "mem_a", "coffee", "active", "eur", 500, 2, "month", "2026-03-05T09:00:00Z"},
		{"sub_a", "mem_a", "coffee", "canceled", "eur", 500, 2, "month", "2026-04-20T09:00:00Z"},
		{"sub_b", "mem_b", "lunch", "trialing", "eur", 6000, 1, "year", "2026-02-01T09:00:00Z"},
		{"sub_b", "mem_b", "lunch", "active", "eur", 6000, 1, "year", "2026-02-15T09:00:00Z"},
		{"sub_b", "mem_b", "lunch", "past_due", "eur", 6000, 1, "year", "2026-05-03T09:00:00Z"},
		{"sub_c", "mem_c", "coffee", "active", "jpy", 1000, 1, "month", "2026-01-01T00:00:00Z"},
		{"sub_c", "mem_c", "coffee", "canceled", "jpy", 1000, 1, "month", "2026-02-01T00:00:00Z"},
		{"sub_d", "mem_c", "coffee", "active", "jpy", 1000, 1, "month", "2026-04-01T00:00:00Z"},
	} {
		seq[r.sub]++
		if _, err := ts.db.Exec(`INSERT INTO subscription_history (subscription_id, seq, at, member_id, tier_slug, status, price_id, currency, unit_amount, quantity,
			billing_interval, interval_count, event_id) VALUES ($1, $2, $3, $4, $5, $6, 'price_x', $7, $8, $9, $10, 1, $11)`,
			r.sub, seq[r.sub], at(r.when), r.member, r.tier, r.status, r.currency, r.amount, r.qty, r.interval, r.sub+r.when); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := ts.db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	paid := at("2026-05-01T10:00:00Z")
	exec(`INSERT INTO invoices (id, customer_id, status, currency, amount_due, amount_paid, tax, paid_at, stripe_created_at, state_at, updated_at)
		VALUES ('in_1', 'cus_b', 'paid', 'eur', 6000, 6000, 1000, $1, $1, $1, $1)`, paid)
	exec(`INSERT INTO charges (id, invoice_id, amount, currency, stripe_created_at, updated_at) VALUES ('ch_1', 'in_1', 6000, 'eur', $1, $1)`, paid)
	exec(`INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ('re_1', 'ch_1', 500, 'eur', $1)`, at("2026-05-02T10:00:00Z"))
	exec(`INSERT INTO donations (id, amount, currency, status, stripe_created_at, state_at) VALUES ('cs_1', 2500, 'eur', 'paid', $1, $1)`, at("2026-04-25T10:00:00Z"))
	exec(`INSERT INTO donations (id, amount, currency, status, stripe_created_at, state_at) VALUES ('cs_2', 9900, 'eur', 'paid', $1, $1)`, at("2026-03-01T10:00:00Z"))

	if _, err := ts.revenue.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	token, _ := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + token}

	// Yen into euros: 0.0061 from January, 0.0062 from 5 May.
	for _, r := range []string{`{"currency":"jpy","rate":"0.0061","valid_from":"2026-01-01T00:00:00Z"}`, `{"currency":"JPY","rate":0.0062,"valid_from":"2026-05-05T00:00:00Z"}`} {
		if rec := postJSON(h, "/api/v1/staff/fx-rates", r, staff...); rec.Code != http.StatusCreated {
			t.Fatalf("set rate %s = %d %s", r, rec.Code, rec.Body)
		}
	}
	for _, bad := range []struct{ body, field string }{
		{`{"currency":"jpy","rate":"-1","valid_from":"2026-01-01T00:00:00Z"}`, "rate"},
		{`{"currency":"jpy","rate":"1e3","valid_from":"2026-01-01T00:00:00Z"}`, "rate"},
		{`{"currency":"eur","rate":"1","valid_from":"2026-01-01T00:00:00Z"}`, "currency"},
		{`{"currency":"zzz","rate":"1","valid_from":"2026-01-01T00:00:00Z"}`, "currency"},
		{`{"currency":"jpy","rate":"1"}`, "valid_from"},
	} {
		rec := postJSON(h, "/api/v1/staff/fx-rates", bad.body, staff...)
		if e := decodeError(t, rec); rec.Code != http.StatusUnprocessableEntity || e.Fields[bad.field] == "" {
			t.Errorf("rate %s = %d %+v, want 422 naming %s", bad.body, rec.Code, e, bad.field)
		}
	}

	rec := do(h, "GET", "/api/v1/staff/metrics/summary?at=2026-05-10T00:00:00Z", "", nil, staff...)
	var summary struct {
		At         string
		Currencies []currencySummaryJSON
		Reporting  *reportingJSON
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &summary) != nil || len(summary.Currencies) != 2 {
		t.Fatalf("summary = %d %s", rec.Code, rec.Body)
	}
	eur, jpy := summary.Currencies[0], summary.Currencies[1]
	half, zero := 0.5, 0.0
	// LTV: ARPU over the mean patron churn rate of the six months before
	// May that began with paying patrons — euros: Feb 0/1, Mar 0/2, Apr
	// 1/2, mean 1/6, so 500 × 6; yen: Feb 1/1, so 1000 × 1.
	ltvEUR, ltvJPY := int64(3000), int64(1000)
	wantEUR := currencySummaryJSON{Currency: "eur", MRR: 500, ARR: 6000, PayingPatrons: 1, ARPU: 500, PastDue: 1, AtRiskMRR: 500,
		NetRevenue30d: 4500, Donations30d: 2500, ChurnRate30d: &half, ChurnedPatrons: 1, LTV: &ltvEUR}
	wantJPY := currencySummaryJSON{Currency: "jpy", MRR: 1000, ARR: 12000, PayingPatrons: 1, ARPU: 1000, ChurnRate30d: &zero, LTV: &ltvJPY}
	for _, pair := range []struct{ got, want currencySummaryJSON }{{eur, wantEUR}, {jpy, wantJPY}} {
		g, w := pair.got, pair.want
		if g.ChurnRate30d == nil || *g.ChurnRate30d != *w.ChurnRate30d {
			t.Errorf("%s churn rate = %v, want %v", w.Currency, g.ChurnRate30d, *w.ChurnRate30d)
		}
		if g.LTV == nil || *g.LTV != *w.LTV {
			t.Errorf("%s LTV = %v, want %d", w.Currency, g.LTV, *w.LTV)
		}
		g.ChurnRate30d, w.ChurnRate30d, g.LTV, w.LTV = nil, nil, nil, nil
		if g != w {
			t.Errorf("%s summary:\n got %+v\nwant %+v", w.Currency, g, w)
		}
	}

	// ¥1,000 at 0.0062 is €6.20: 500 + 620 cents of MRR from two patrons.
	wantReporting := reportingJSON{Currency: "eur", MRR: 1120, ARR: 13440, PayingPatrons: 2, ARPU: 560, AtRiskMRR: 500,
		NetRevenue30d: 4500, Donations30d: 2500, MissingRates: []string{}}
	if r := summary.Reporting; r == nil || fmt.Sprint(*r) != fmt.Sprint(wantReporting) {
		t.Errorf("reporting:\n got %+v\nwant %+v", r, wantReporting)
	}
	json.Unmarshal(do(h, "GET", "/api/v1/staff/metrics/summary?at=2025-12-31T00:00:00Z", "", nil, staff...).Body.Bytes(), &summary)
	if r := summary.Reporting; r == nil || fmt.Sprint(r.MissingRates) != "[jpy]" {
		t.Errorf("before any yen rate, reporting = %+v; want jpy listed as missing", r)
	}

	type month struct {
		Month                                            string
		MRRStart                                         int64 `json:"mrr_start"`
		MRREnd                                           int64 `json:"mrr_end"`
		New, Reactivation, Expansion, Contraction, Churn int64
	}
	movements := func(currency string) []month {
		t.Helper()
		rec := do(h, "GET", "/api/v1/staff/metrics/mrr?from=2026-01&to=2026-05&currency="+currency, "", nil, staff...)
		var out struct{ Months []month }
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("mrr %s = %d %s", currency, rec.Code, rec.Body)
		}
		return out.Months
	}
	wantEURMonths := []month{
		{Month: "2026-01", MRRStart: 0, MRREnd: 500, New: 500},
		{Month: "2026-02", MRRStart: 500, MRREnd: 1000, New: 500},
		{Month: "2026-03", MRRStart: 1000, MRREnd: 1500, Expansion: 500},
		{Month: "2026-04", MRRStart: 1500, MRREnd: 500, Churn: 1000},
		{Month: "2026-05", MRRStart: 500, MRREnd: 500},
	}
	wantJPYMonths := []month{
		{Month: "2026-01", MRRStart: 0, MRREnd: 1000, New: 1000}, // from midnight on the 1st: January's
		{Month: "2026-02", MRRStart: 1000, MRREnd: 0, Churn: 1000},
		{Month: "2026-03"},
		{Month: "2026-04", MRRStart: 0, MRREnd: 1000, Reactivation: 1000},
		{Month: "2026-05", MRRStart: 1000, MRREnd: 1000},
	}
	for currency, want := range map[string][]month{"eur": wantEURMonths, "jpy": wantJPYMonths} {
		got := movements(currency)
		if len(got) != len(want) {
			t.Fatalf("%s months = %+v", currency, got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s %s:\n got %+v\nwant %+v", currency, want[i].Month, got[i], want[i])
			}
		}
	}

	var rates struct {
		Months []struct {
			Month            string
			PatronChurnRate  *float64 `json:"patron_churn_rate"`
			RevenueChurnRate *float64 `json:"revenue_churn_rate"`
		}
	}
	json.Unmarshal(do(h, "GET", "/api/v1/staff/metrics/mrr?from=2026-01&to=2026-04&currency=eur", "", nil, staff...).Body.Bytes(), &rates)
	if m := rates.Months; len(m) != 4 || m[0].PatronChurnRate != nil || m[3].PatronChurnRate == nil || *m[3].PatronChurnRate != 0.5 ||
		m[3].RevenueChurnRate == nil || *m[3].RevenueChurnRate != 1000.0/1500 {
		t.Errorf("churn rates by month = %+v; want none in January (no one paying at its start), April 1/2 of patrons and 1000/1500 of MRR", m)
	}
	get := func(path string) string {
		t.Helper()
		rec := do(h, "GET", path, "", nil, staff...)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s = %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	wantRevenue := `{"currency":"eur","months":[` +
		`{"month":"2026-03","gross":0,"tax":0,"refunds":0,"net":0,"donations":9900},` +
		`{"month":"2026-04","gross":0,"tax":0,"refunds":0,"net":0,"donations":2500},` +
		`{"month":"2026-05","gross":6000,"tax":1000,"refunds":500,"net":4500,"donations":0}]}`
	if got := get("/api/v1/staff/metrics/revenue?from=2026-03&to=2026-05&currency=eur"); got != wantRevenue {
		t.Errorf("revenue:\n got %s\nwant %s", got, wantRevenue)
	}
	wantTiers := `{"at":"2026-05-10T00:00:00Z","tiers":[` +
		`{"currency":"eur","tier":"lunch","interval":"year","interval_count":1,"mrr":500,"paying_patrons":1},` +
		`{"currency":"jpy","tier":"coffee","interval":"month","interval_count":1,"mrr":1000,"paying_patrons":1}]}`
	if got := get("/api/v1/staff/metrics/tiers?at=2026-05-10T00:00:00Z"); got != wantTiers {
		t.Errorf("tiers:\n got %s\nwant %s", got, wantTiers)
	}
	cohortMonths := func(months ...string) string { return strings.Join(months, ",") }
	wantCohorts := `{"cohorts":[` +
		`{"month":"2026-01","patrons":1,"months":[` + cohortMonths(
		`{"month":"2026-01","retained_patrons":1,"share":1,"mrr":1000}`,
		`{"month":"2026-02","retained_patrons":0,"share":0,"mrr":0}`,
		`{"month":"2026-03","retained_patrons":0,"share":0,"mrr":0}`,
		`{"month":"2026-04","retained_patrons":1,"share":1,"mrr":1000}`) + `]},` +
		`{"month":"2026-02","patrons":0,"months":[` + cohortMonths(
		`{"month":"2026-02","retained_patrons":0,"share":0,"mrr":0}`,
		`{"month":"2026-03","retained_patrons":0,"share":0,"mrr":0}`,
		`{"month":"2026-04","retained_patrons":0,"share":0,"mrr":0}`) + `]},` +
		`{"month":"2026-03","patrons":0,"months":[` + cohortMonths(
		`{"month":"2026-03","retained_patrons":0,"share":0,"mrr":0}`,
		`{"month":"2026-04","retained_patrons":0,"share":0,"mrr":0}`) + `]},` +
		`{"month":"2026-04","patrons":0,"months":[` + cohortMonths(
		`{"month":"2026-04","retained_patrons":0,"share":0,"mrr":0}`) + `]}],"currency":"jpy"}`
	if got := get("/api/v1/staff/metrics/cohorts?from=2026-01&to=2026-04&currency=jpy"); got != wantCohorts {
		t.Errorf("cohorts:\n got %s\nwant %s", got, wantCohorts)
	}

	for _, bad := range []struct{ query, field string }{
		{"?from=2026-05&to=2026-01&currency=eur", "from"},
		{"?from=2026-13&currency=eur", "from"},
		{"?from=2026-01&to=2026-02", "currency"},
		{"?from=2026-01&to=2026-02&currency=zzz", "currency"},
	} {
		rec := do(h, "GET", "/api/v1/staff/metrics/mrr"+bad.query, "", nil, staff...)
		if e := decodeError(t, rec); rec.Code != http.StatusUnprocessableEntity || e.Fields[bad.field] == "" {
			t.Errorf("mrr%s = %d %+v, want 422 naming %s", bad.query, rec.Code, e, bad.field)
		}
	}
	if rec := do(h, "GET", "/api/v1/staff/metrics/summary?at=yesterday", "", nil, staff...); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("summary at a malformed time = %d, want 422", rec.Code)
	}
	reader := signUpAndSignIn(t, ts, "reader@example.org")
	if rec := do(h, "GET", "/api/v1/staff/metrics/summary", "", nil, "Cookie", withCookie(reader)); rec.Code != http.StatusForbidden {
		t.Errorf("a reader asking for the figures = %d, want 403", rec.Code)
	}
}

// Without a reporting currency there is nothing to convert into: rates
// are refused and the summary's reporting is null.
func TestNoReportingCurrency(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	token, _ := staffSetup(t, ts, members.RoleStaff)
	staff := []string{"Authorization", "Bearer " + token}
	rec := postJSON(h, "/api/v1/staff/fx-rates", `{"currency":"jpy","rate":"0.0061","valid_from":"2026-01-01T00:00:00Z"}`, staff...)
	if e := decodeError(t, rec); rec.Code != http.StatusConflict || e.Code != "no_reporting_currency" {
		t.Errorf("a rate without a reporting currency = %d %+v, want 409 no_reporting_currency", rec.Code, e)
	}
	if body := do(h, "GET", "/api/v1/staff/metrics/summary", "", nil, staff...).Body.String(); !strings.Contains(body, `"reporting":null`) {
		t.Errorf("summary without a reporting currency: %s", body)
	}
}
