package web

import (
	"context"
	"encoding/csv"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/i18n"
	"github.com/patronage/patronage/internal/money"
	"github.com/patronage/patronage/metrics"
)

// The staff dashboard: the revenue figures of docs/metrics.md as charts,
// each beside a table of its numbers and a CSV of them. It reads the same
// functions as the metrics API, so the page and the API cannot disagree;
// docs/dashboard.md says what each chart shows.

const (
	dashboardMonths    = 12 // months shown unless ?months= says otherwise
	dashboardMaxMonths = 36
	atRiskOnPage       = 50 // past-due members listed on the page; the CSV has all
)

// dashboardQuery is what the page and its CSVs are asked for.
type dashboardQuery struct {
	Currency string // lower case; "" until defaulted
	Months   int
}

// readDashboardQuery reads currency (optional) and months (1 to 36).
func readDashboardQuery(c *gin.Context) (dashboardQuery, error) {
	q := dashboardQuery{Currency: strings.ToLower(strings.TrimSpace(c.Query("currency"))), Months: dashboardMonths}
	fields := map[string]string{}
	if q.Currency != "" {
		if _, err := money.Normalize(q.Currency); err != nil {
			fields["currency"] = err.Error()
		}
	}
	if raw, ok := c.GetQuery("months"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || n < 1 || n > dashboardMaxMonths {
			fields["months"] = "must be a whole number from 1 to 36"
		}
		q.Months = n
	}
	if len(fields) > 0 {
		return q, errs.InvalidFields(fields)
	}
	return q, nil
}

// defaultCurrency is the currency with the most MRR (the first, in code
// order, of equals); the reporting currency when nothing is billed yet.
func defaultCurrency(sum summaryJSON, reporting string) string {
	best := ""
	var most int64 = -1
	for _, cur := range sum.Currencies {
		if cur.MRR > most {
			best, most = cur.Currency, cur.MRR
		}
	}
	if best == "" {
		return reporting
	}
	return best
}

// span is the months the dashboard covers: the last q.Months, this one
// included.
func (q dashboardQuery) span(now time.Time) (from, to time.Time) {
	to = metrics.MonthOf(now)
	return to.AddDate(0, 1-q.Months, 0), to
}

func (q dashboardQuery) values() url.Values {
	v := url.Values{"currency": {q.Currency}}
	if q.Months != dashboardMonths {
		v.Set("months", strconv.Itoa(q.Months))
	}
	return v
}

// pageURL is the dashboard for q.
func (q dashboardQuery) pageURL() string { return "/staff?" + q.values().Encode() }

// csvURL is the CSV of one chart for q.
func (q dashboardQuery) csvURL(chart string) string {
	v := q.values()
	v.Set("chart", chart)
	return "/staff/dashboard.csv?" + v.Encode()
}

// amount is a sum of money in a table headed with its currency: exact
// minor units, and how the page shows them ("1,234.50"; yen whole), in
// the page's language.
type amount struct {
	Minor int64
	Text  string
}

func amountOf(loc *i18n.Localizer, minor int64, currency string) amount {
	return amount{Minor: minor, Text: loc.Amount(minor, currency)}
}

// ratio is a rate as exactly as the API has it (Value, "" for null) and
// as a percentage for people.
type ratio struct {
	Value string
	Text  string
}

func ratioOf(loc *i18n.Localizer, r *float64) ratio {
	if r == nil {
		return ratio{Text: "—"}
	}
	return ratio{Value: strconv.FormatFloat(*r, 'g', -1, 64), Text: loc.Percent(*r, 1)}
}

// headline is one figure at the top of the page.
type headline struct {
	Key    string // the summary's JSON name
	Label  string
	Text   string
	Minor  *int64 // set for money
	Value  string // set for counts and rates; "" for null
	Detail string
}

type currencyLink struct {
	Code    string
	URL     string
	Current bool
}

type chartBlock struct {
	SVG template.HTML
	CSV string
}

type mrrRow struct {
	Month                                            string
	Start, New, Reactivation, Expansion, Contraction amount
	Churn, End                                       amount
	PayingStart, PayingEnd, NewPatrons, Reactivated  int
	ChurnedPatrons                                   int
	PatronChurn, RevenueChurn                        ratio
}

type revenueRow struct {
	Month                               string
	Gross, Tax, Refunds, Net, Donations amount
}

type tierRow struct {
	Label   string
	Tier    string
	Period  string
	MRR     amount
	Patrons int
}

type cohortCell struct {
	Month    string
	Retained int
	Share    string // exact, as the API has it
	Text     string
	Heat     string // heat-0 … heat-10, or heat-none for an empty cohort
	MRR      amount
}

type cohortRow struct {
	Month   string
	Patrons int
	Cells   []cohortCell
}

type atRiskRow struct {
	ID, Email, Name, Tier string
	URL, BillingURL       string
}

// dashboardView is what the dashboard template shows.
type dashboardView struct {
	Currency   string // upper case, as people read it
	From, To   string // YYYY-MM
	Months     int
	Currencies []currencyLink
	Spans      []currencyLink // 6, 12, 24, 36 months
	Empty      bool           // nothing billed yet in any currency
	At         string
	Headlines  []headline
	Reporting  *reportingJSON
	ReportMRR  string
	// ReportMissing lists the currencies without an exchange rate ("" for
	// none), as the page writes a list.
	ReportMissing string

	MRR       chartBlock
	MRRRows   []mrrRow
	Paying    chartBlock
	Churn     chartBlock
	Revenue   chartBlock
	RevRows   []revenueRow
	Tiers     chartBlock
	TierRows  []tierRow
	Cohorts   []cohortRow
	CohortCSV string
	MaxAge    []int // column heads of the cohort table: months since joining
	AtRisk    []atRiskRow
	AtRiskAll bool // the list shows every past-due member
	AtRiskCSV string
}

// staffDashboard is the dashboard page.
func (s *Server) staffDashboard(c *gin.Context) {
	if _, ok := s.staffPageMember(c, "/staff"); !ok {
		return
	}
	q, err := readDashboardQuery(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	ctx := c.Request.Context()
	loc := s.loc(c)
	now := time.Now().UTC()
	sum, err := s.summaryFigures(ctx, now)
	if err != nil {
		s.failPage(c, err)
		return
	}
	if q.Currency == "" {
		q.Currency = defaultCurrency(sum, s.reporting)
	}
	v := &dashboardView{Months: q.Months, At: loc.DateTime(now), Reporting: sum.Reporting}
	if v.Reporting != nil {
		v.ReportMRR = loc.Money(v.Reporting.MRR, v.Reporting.Currency)
		v.ReportMissing = strings.Join(v.Reporting.MissingRates, loc.T("format.list_separator"))
	}
	if q.Currency == "" {
		v.Empty = true
		s.renderPage(c, http.StatusOK, "staff_dashboard.html", pageData{Title: loc.T("staff.dashboard"), Wide: true, Dashboard: v})
		return
	}
	if err := s.fillDashboard(ctx, loc, v, q, sum, now); err != nil {
		s.failPage(c, err)
		return
	}
	s.renderPage(c, http.StatusOK, "staff_dashboard.html", pageData{Title: loc.T("dashboard.title_in", "Currency", v.Currency), Wide: true, Dashboard: v})
}

func (s *Server) fillDashboard(ctx context.Context, loc *i18n.Localizer, v *dashboardView, q dashboardQuery, sum summaryJSON, now time.Time) error {
	cur := q.Currency
	v.Currency = strings.ToUpper(cur)
	from, to := q.span(now)
	v.From, v.To = from.Format("2006-01"), to.Format("2006-01")

	codes := []string{}
	for _, c := range sum.Currencies {
		codes = append(codes, c.Currency)
	}
	if !slices.Contains(codes, cur) {
		codes = append(codes, cur)
	}
	for _, code := range codes {
		v.Currencies = append(v.Currencies, currencyLink{Code: strings.ToUpper(code), URL: dashboardQuery{Currency: code, Months: q.Months}.pageURL(), Current: code == cur})
	}
	for _, n := range []int{6, 12, 24, 36} {
		v.Spans = append(v.Spans, currencyLink{Code: strconv.Itoa(n), URL: dashboardQuery{Currency: cur, Months: n}.pageURL(), Current: n == q.Months})
	}

	figures := currencySummaryJSON{Currency: cur}
	for _, c := range sum.Currencies {
		if c.Currency == cur {
			figures = c
		}
	}
	v.Headlines = headlines(loc, figures)

	months, err := s.mrrMonths(ctx, from, to, cur)
	if err != nil {
		return err
	}
	v.MRR, v.Paying, v.Churn, v.MRRRows = mrrCharts(loc, months, cur, q)

	revenue, err := s.revenueMonths(ctx, from, to, cur)
	if err != nil {
		return err
	}
	v.Revenue, v.RevRows = revenueChart(loc, revenue, cur, q)

	tiers, err := s.tierFigures(ctx, now)
	if err != nil {
		return err
	}
	v.Tiers, v.TierRows = tierChart(loc, tiers, cur, q)

	cohorts, err := s.cohortFigures(ctx, from, to, cur)
	if err != nil {
		return err
	}
	v.Cohorts, v.MaxAge = cohortTable(loc, cohorts, cur)
	v.CohortCSV = q.csvURL("cohorts")

	rows, err := s.billing.ListMembers(ctx, billing.MemberFilter{Status: "past_due", Limit: atRiskOnPage + 1})
	if err != nil {
		return err
	}
	v.AtRiskAll = len(rows) <= atRiskOnPage
	for _, r := range rows[:min(len(rows), atRiskOnPage)] {
		v.AtRisk = append(v.AtRisk, atRiskOf(r))
	}
	v.AtRiskCSV = q.csvURL("at_risk")
	return nil
}

func headlines(loc *i18n.Localizer, f currencySummaryJSON) []headline {
	cur := f.Currency
	cash := func(key, label string, minor int64, detail string) headline {
		return headline{Key: key, Label: label, Text: loc.Money(minor, cur), Minor: &minor, Detail: detail}
	}
	count := func(key, label string, n int, detail string) headline {
		return headline{Key: key, Label: label, Text: strconv.Itoa(n), Value: strconv.Itoa(n), Detail: detail}
	}
	churn := ratioOf(loc, f.ChurnRate30d)
	ltv := headline{Key: "ltv", Label: loc.T("dashboard.kpi.ltv"), Text: "—", Detail: loc.T("dashboard.kpi.ltv_detail")}
	if f.LTV != nil {
		ltv = cash("ltv", ltv.Label, *f.LTV, ltv.Detail)
	}
	return []headline{
		cash("mrr", loc.T("dashboard.kpi.mrr"), f.MRR, loc.T("dashboard.kpi.mrr_detail", "ARR", loc.Money(f.ARR, cur))),
		count("paying_patrons", loc.T("dashboard.kpi.paying"), f.PayingPatrons, loc.T("dashboard.kpi.trialing", f.Trialing)),
		cash("arpu", loc.T("dashboard.kpi.arpu"), f.ARPU, loc.T("dashboard.kpi.arpu_detail")),
		{Key: "churn_rate_30d", Label: loc.T("dashboard.kpi.churn"), Text: churn.Text, Value: churn.Value, Detail: loc.T("dashboard.kpi.churn_detail", f.ChurnedPatrons)},
		cash("at_risk_mrr", loc.T("dashboard.kpi.at_risk"), f.AtRiskMRR, loc.T("dashboard.kpi.at_risk_detail", f.PastDue)),
		cash("net_revenue_30d", loc.T("dashboard.kpi.net"), f.NetRevenue30d, loc.T("dashboard.kpi.net_detail")),
		cash("donations_30d", loc.T("dashboard.kpi.donations"), f.Donations30d, loc.T("dashboard.kpi.donations_detail")),
		ltv,
	}
}

// monthLabel is a month (YYYY-MM) short, for a chart's axis: "Jan 26".
func monthLabel(loc *i18n.Localizer, month string) string {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return month
	}
	return loc.MonthLabel(t)
}

// mrrCharts draws MRR with its movements, paying patrons and churn rates,
// all from the MRR months, and the rows of their table.
func mrrCharts(loc *i18n.Localizer, months []movementJSON, cur string, q dashboardQuery) (mrr, paying, churn chartBlock, rows []mrrRow) {
	code := strings.ToUpper(cur)
	labels := make([]string, len(months))
	end, payingEnd := chartSeries{Name: loc.T("dashboard.kpi.mrr"), Class: "mrr"}, chartSeries{Name: loc.T("dashboard.kpi.paying"), Class: "paying"}
	moves := []chartSeries{{Name: loc.T("dashboard.col.new"), Class: "new"}, {Name: loc.T("dashboard.col.reactivation"), Class: "reactivation"},
		{Name: loc.T("dashboard.col.expansion"), Class: "expansion"}, {Name: loc.T("dashboard.col.contraction"), Class: "contraction"},
		{Name: loc.T("dashboard.col.churn"), Class: "churn"}}
	patronRate, revenueRate := chartSeries{Name: loc.T("dashboard.col.patron_churn"), Class: "rate"}, chartSeries{Name: loc.T("dashboard.col.revenue_churn"), Class: "contraction"}
	bps := func(r *float64) (int64, bool) {
		if r == nil {
			return 0, true
		}
		return int64(*r*10000 + 0.5), false
	}
	for i, m := range months {
		labels[i] = monthLabel(loc, m.Month)
		end.Values = append(end.Values, m.MRREnd)
		payingEnd.Values = append(payingEnd.Values, int64(m.PayingEnd))
		for k, v := range []int64{m.New, m.Reactivation, m.Expansion, -m.Contraction, -m.Churn} {
			moves[k].Values = append(moves[k].Values, v)
		}
		for _, pair := range []struct {
			s *chartSeries
			r *float64
		}{{&patronRate, m.PatronChurnRate}, {&revenueRate, m.RevenueChurnRate}} {
			v, missing := bps(pair.r)
			pair.s.Values, pair.s.Missing = append(pair.s.Values, v), append(pair.s.Missing, missing)
		}
		a := func(v int64) amount { return amountOf(loc, v, cur) }
		rows = append(rows, mrrRow{Month: m.Month, Start: a(m.MRRStart), New: a(m.New), Reactivation: a(m.Reactivation), Expansion: a(m.Expansion),
			Contraction: a(m.Contraction), Churn: a(m.Churn), End: a(m.MRREnd), PayingStart: m.PayingStart, PayingEnd: m.PayingEnd,
			NewPatrons: m.NewPatrons, Reactivated: m.ReactivatedPatrons, ChurnedPatrons: m.ChurnedPatrons,
			PatronChurn: ratioOf(loc, m.PatronChurnRate), RevenueChurn: ratioOf(loc, m.RevenueChurnRate)})
	}
	span := ""
	if len(months) > 0 {
		span = loc.T("dashboard.chart.span", "From", months[0].Month, "To", months[len(months)-1].Month)
	}
	tick := func(v int64) string { return loc.Amount(v, cur) }
	last := func(s chartSeries) int64 {
		if len(s.Values) == 0 {
			return 0
		}
		return s.Values[len(s.Values)-1]
	}
	mrr = chartBlock{CSV: q.csvURL("mrr"), SVG: lineOverColumnsChart(chartSpec{ID: "chart-mrr", Labels: labels, Tick: tick,
		Title: loc.T("dashboard.chart.mrr_title", "Currency", code),
		Desc:  loc.T("dashboard.chart.mrr_desc", "Currency", code, "Span", span, "Last", loc.Money(last(end), cur))},
		end, moves)}
	paying = chartBlock{CSV: q.csvURL("mrr"), SVG: columnChart(chartSpec{ID: "chart-paying", Labels: labels, Tick: func(v int64) string { return strconv.FormatInt(v, 10) },
		Title: loc.T("dashboard.chart.paying_title", "Currency", code),
		Desc:  loc.T("dashboard.chart.paying_desc", "Currency", code, "Span", span, "Last", strconv.FormatInt(last(payingEnd), 10))},
		[]chartSeries{payingEnd}, false)}
	churn = chartBlock{CSV: q.csvURL("mrr"), SVG: lineChart(chartSpec{ID: "chart-churn", Labels: labels,
		Tick:  func(v int64) string { return loc.T("format.percent", "Number", loc.Decimal(float64(v)/100, -1)) },
		Title: loc.T("dashboard.chart.churn_title", "Currency", code),
		Desc:  loc.T("dashboard.chart.churn_desc", "Span", span)},
		[]chartSeries{patronRate, revenueRate})}
	return mrr, paying, churn, rows
}

func revenueChart(loc *i18n.Localizer, months []revenueMonthJSON, cur string, q dashboardQuery) (chartBlock, []revenueRow) {
	labels := make([]string, len(months))
	gross, net, gifts := chartSeries{Name: loc.T("dashboard.col.gross"), Class: "gross"}, chartSeries{Name: loc.T("dashboard.col.net"), Class: "net"},
		chartSeries{Name: loc.T("dashboard.col.donations"), Class: "donations"}
	var rows []revenueRow
	for i, m := range months {
		labels[i] = monthLabel(loc, m.Month)
		gross.Values = append(gross.Values, m.Gross)
		net.Values = append(net.Values, m.Net)
		gifts.Values = append(gifts.Values, m.Donations)
		a := func(v int64) amount { return amountOf(loc, v, cur) }
		rows = append(rows, revenueRow{Month: m.Month, Gross: a(m.Gross), Tax: a(m.Tax), Refunds: a(m.Refunds), Net: a(m.Net), Donations: a(m.Donations)})
	}
	code := strings.ToUpper(cur)
	svg := columnChart(chartSpec{ID: "chart-revenue", Labels: labels, Tick: func(v int64) string { return loc.Amount(v, cur) },
		Title: loc.T("dashboard.chart.revenue_title", "Currency", code),
		Desc:  loc.T("dashboard.chart.revenue_desc", "Currency", code)},
		[]chartSeries{gross, net, gifts}, false)
	return chartBlock{SVG: svg, CSV: q.csvURL("revenue")}, rows
}

// period says how often a price is billed: "monthly", "every 3 months".
func period(loc *i18n.Localizer, interval string, count int) string {
	switch interval {
	case "day", "week", "month", "year":
		if count <= 1 {
			return loc.T("dashboard.period." + interval)
		}
		return loc.T("dashboard.period.every_"+interval, count)
	}
	return interval
}

func tierChart(loc *i18n.Localizer, tiers []tierFigureJSON, cur string, q dashboardQuery) (chartBlock, []tierRow) {
	var labels []string
	var values []int64
	var rows []tierRow
	for _, t := range tiers {
		if t.Currency != cur {
			continue
		}
		name := t.Tier
		if name == "" {
			name = loc.T("dashboard.no_tier")
		}
		label := name + " · " + period(loc, t.Interval, t.IntervalCount)
		labels, values = append(labels, label), append(values, t.MRR)
		rows = append(rows, tierRow{Label: label, Tier: t.Tier, Period: period(loc, t.Interval, t.IntervalCount), MRR: amountOf(loc, t.MRR, cur), Patrons: t.Patrons})
	}
	code := strings.ToUpper(cur)
	svg := barListChart(chartSpec{ID: "chart-tiers", Labels: labels, Tick: func(v int64) string { return loc.Amount(v, cur) },
		Title: loc.T("dashboard.chart.tiers_title", "Currency", code),
		Desc:  loc.T("dashboard.chart.tiers_desc", len(labels), "Currency", code)}, "tier", values)
	return chartBlock{SVG: svg, CSV: q.csvURL("tiers")}, rows
}

// cohortTable lays the cohorts out by months since joining, each cell
// shaded by its share in tenths (heat-0 … heat-10).
func cohortTable(loc *i18n.Localizer, cohorts []cohortJSON, cur string) ([]cohortRow, []int) {
	var rows []cohortRow
	most := 0
	for _, co := range cohorts {
		row := cohortRow{Month: co.Month, Patrons: co.Patrons}
		for _, m := range co.Months {
			cell := cohortCell{Month: m.Month, Retained: m.Retained, Share: strconv.FormatFloat(m.Share, 'g', -1, 64), MRR: amountOf(loc, m.MRR, cur),
				Text: "—", Heat: "heat-none"}
			if co.Patrons > 0 {
				cell.Text = loc.Percent(m.Share, 0)
				cell.Heat = "heat-" + strconv.Itoa(int(m.Share*10+0.5))
			}
			row.Cells = append(row.Cells, cell)
		}
		most = max(most, len(row.Cells))
		rows = append(rows, row)
	}
	ages := make([]int, most)
	for i := range ages {
		ages[i] = i
	}
	return rows, ages
}

func atRiskOf(r billing.MemberRow) atRiskRow {
	id := url.PathEscape(r.Member.ID)
	return atRiskRow{ID: r.Member.ID, Email: r.Member.Email, Name: r.Member.Name, Tier: r.Access.Tier,
		URL: "/api/v1/staff/members/" + id, BillingURL: "/api/v1/staff/members/" + id + "/billing"}
}

// staffDashboardCSV is one chart's numbers as CSV: money in minor units
// with its currency, rates as exact decimals, cells escaped as in the
// members export.
func (s *Server) staffDashboardCSV(c *gin.Context) {
	if _, ok := s.staffPageMember(c, "/staff"); !ok {
		return
	}
	q, err := readDashboardQuery(c)
	chart := c.Query("chart")
	if !slices.Contains([]string{"mrr", "revenue", "cohorts", "tiers", "at_risk"}, chart) {
		fields := map[string]string{"chart": "must be mrr, revenue, cohorts, tiers or at_risk"}
		if e := errs.From(err); err != nil {
			for k, v := range e.Fields {
				fields[k] = v
			}
		}
		err = errs.InvalidFields(fields)
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	ctx := c.Request.Context()
	now := time.Now().UTC()
	if q.Currency == "" && chart != "at_risk" {
		sum, err := s.summaryFigures(ctx, now)
		if err != nil {
			s.failPage(c, err)
			return
		}
		if q.Currency = defaultCurrency(sum, s.reporting); q.Currency == "" {
			s.failPage(c, errs.InvalidFields(map[string]string{"currency": "is required while nothing is billed yet"}))
			return
		}
	}
	from, to := q.span(now)
	var records [][]string
	switch chart {
	case "mrr":
		months, err := s.mrrMonths(ctx, from, to, q.Currency)
		if err != nil {
			s.failPage(c, err)
			return
		}
		records = mrrCSV(months, q.Currency)
	case "revenue":
		months, err := s.revenueMonths(ctx, from, to, q.Currency)
		if err != nil {
			s.failPage(c, err)
			return
		}
		records = revenueCSV(months, q.Currency)
	case "cohorts":
		cohorts, err := s.cohortFigures(ctx, from, to, q.Currency)
		if err != nil {
			s.failPage(c, err)
			return
		}
		records = cohortsCSV(cohorts, q.Currency)
	case "tiers":
		tiers, err := s.tierFigures(ctx, now)
		if err != nil {
			s.failPage(c, err)
			return
		}
		records = tiersCSV(tiers, q.Currency)
	case "at_risk":
		if records, err = s.atRiskCSV(ctx); err != nil {
			s.failPage(c, err)
			return
		}
	}
	name := chart + ".csv"
	if chart != "at_risk" {
		name = fmt.Sprintf("%s-%s-%s-to-%s.csv", chart, q.Currency, from.Format("2006-01"), to.Format("2006-01"))
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	for _, r := range records {
		_ = w.Write(safeCells(r...))
	}
	w.Flush()
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func rateCell(r *float64) string {
	if r == nil {
		return ""
	}
	return strconv.FormatFloat(*r, 'g', -1, 64)
}

func mrrCSV(months []movementJSON, cur string) [][]string {
	out := [][]string{{"month", "currency", "mrr_start", "new", "reactivation", "expansion", "contraction", "churn", "mrr_end",
		"paying_patrons_start", "paying_patrons_end", "new_patrons", "reactivated_patrons", "churned_patrons", "patron_churn_rate", "revenue_churn_rate"}}
	for _, m := range months {
		out = append(out, []string{m.Month, cur, itoa(m.MRRStart), itoa(m.New), itoa(m.Reactivation), itoa(m.Expansion), itoa(m.Contraction), itoa(m.Churn), itoa(m.MRREnd),
			strconv.Itoa(m.PayingStart), strconv.Itoa(m.PayingEnd), strconv.Itoa(m.NewPatrons), strconv.Itoa(m.ReactivatedPatrons), strconv.Itoa(m.ChurnedPatrons),
			rateCell(m.PatronChurnRate), rateCell(m.RevenueChurnRate)})
	}
	return out
}

func revenueCSV(months []revenueMonthJSON, cur string) [][]string {
	out := [][]string{{"month", "currency", "gross", "tax", "refunds", "net", "donations"}}
	for _, m := range months {
		out = append(out, []string{m.Month, cur, itoa(m.Gross), itoa(m.Tax), itoa(m.Refunds), itoa(m.Net), itoa(m.Donations)})
	}
	return out
}

func cohortsCSV(cohorts []cohortJSON, cur string) [][]string {
	out := [][]string{{"cohort", "currency", "cohort_patrons", "month", "months_since_joining", "retained_patrons", "share", "mrr"}}
	for _, co := range cohorts {
		for i, m := range co.Months {
			out = append(out, []string{co.Month, cur, strconv.Itoa(co.Patrons), m.Month, strconv.Itoa(i), strconv.Itoa(m.Retained),
				strconv.FormatFloat(m.Share, 'g', -1, 64), itoa(m.MRR)})
		}
	}
	return out
}

func tiersCSV(tiers []tierFigureJSON, cur string) [][]string {
	out := [][]string{{"currency", "tier", "interval", "interval_count", "mrr", "paying_patrons"}}
	for _, t := range tiers {
		if t.Currency == cur {
			out = append(out, []string{t.Currency, t.Tier, t.Interval, strconv.Itoa(t.IntervalCount), itoa(t.MRR), strconv.Itoa(t.Patrons)})
		}
	}
	return out
}

// atRiskCSV is every member with a past_due subscription, a page of the
// database at a time.
func (s *Server) atRiskCSV(ctx context.Context) ([][]string, error) {
	out := [][]string{{"id", "email", "name", "tier", "detail_path"}}
	f := billing.MemberFilter{Status: "past_due", Limit: 1000}
	for {
		rows, err := s.billing.ListMembers(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			a := atRiskOf(r)
			out = append(out, []string{a.ID, a.Email, a.Name, a.Tier, a.URL})
		}
		if len(rows) < f.Limit {
			return out, nil
		}
		f.After = rows[len(rows)-1].Member.ID
	}
}
