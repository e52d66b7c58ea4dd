package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/money"
	"github.com/patronage/patronage/metrics"
)

// The staff's revenue figures, as docs/metrics.md defines them.

type currencySummaryJSON struct {
	Currency       string   `json:"currency"`
	MRR            int64    `json:"mrr"`
	ARR            int64    `json:"arr"`
	PayingPatrons  int      `json:"paying_patrons"`
	ARPU           int64    `json:"arpu"`
	Trialing       int      `json:"trialing_patrons"`
	PastDue        int      `json:"past_due_patrons"`
	AtRiskMRR      int64    `json:"at_risk_mrr"`
	NetRevenue30d  int64    `json:"net_revenue_30d"`
	Donations30d   int64    `json:"donations_30d"`
	ChurnRate30d   *float64 `json:"churn_rate_30d"`
	ChurnedPatrons int      `json:"churned_patrons_30d"`
	LTV            *int64   `json:"ltv"`
}

type summaryJSON struct {
	At         string                `json:"at"`
	Currencies []currencySummaryJSON `json:"currencies"`
	Reporting  *reportingJSON        `json:"reporting"` // null without a reporting currency
}

// staffMetricsSummary is every currency's figures at an instant (default
// now): MRR and what follows from it, and the 30 days up to it.
func (s *Server) staffMetricsSummary(c *gin.Context) {
	at, ok := s.instant(c)
	if !ok {
		return
	}
	out, err := s.summaryFigures(c.Request.Context(), at)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// summaryFigures is the summary at an instant, for the API and the
// dashboard alike.
func (s *Server) summaryFigures(ctx context.Context, at time.Time) (sum summaryJSON, err error) {
	err = s.revenue.Consistent(ctx, func(figures *metrics.Service) error {
		sum, err = s.summaryFrom(ctx, figures, at)
		return err
	})
	return sum, err
}

// summaryFrom reads the summary from one consistent view of the figures.
func (s *Server) summaryFrom(ctx context.Context, figures *metrics.Service, at time.Time) (summaryJSON, error) {
	from := at.Add(-30 * 24 * time.Hour)
	revenue, err := figures.RevenueBetween(ctx, from, at)
	if err != nil {
		return summaryJSON{}, err
	}
	snapshots, payingAny, err := figures.Snapshot(ctx, at)
	if err != nil {
		return summaryJSON{}, err
	}
	currencies, err := figures.Currencies(ctx)
	if err != nil {
		return summaryJSON{}, err
	}
	out := []currencySummaryJSON{}
	for _, cur := range currencies {
		j := currencySummaryJSON{Currency: cur}
		if sn := snapshots[cur]; sn != nil {
			j.MRR, j.ARR, j.PayingPatrons, j.ARPU = sn.MRR, 12*sn.MRR, sn.PayingPatrons, sn.ARPU
			j.Trialing, j.PastDue, j.AtRiskMRR = sn.TrialingPatron, sn.PastDue, sn.AtRiskMRR
		}
		if r := revenue[cur]; r != nil {
			j.NetRevenue30d, j.Donations30d = r.Net, r.Donations
		}
		ltv, ok, err := figures.LTV(ctx, at, cur, j.ARPU)
		if err != nil {
			return summaryJSON{}, err
		}
		if ok {
			j.LTV = &ltv
		}
		churned, paying, err := figures.ChurnBetween(ctx, from, at, cur)
		if err != nil {
			return summaryJSON{}, err
		}
		j.ChurnedPatrons = churned
		if paying > 0 {
			rate := float64(churned) / float64(paying)
			j.ChurnRate30d = &rate
		}
		out = append(out, j)
	}
	sum := summaryJSON{At: rfc3339(at), Currencies: out}
	if s.reporting != "" {
		rates, err := figures.Rates(ctx, s.reporting)
		if err != nil {
			return summaryJSON{}, err
		}
		r := reportingSummary(s.reporting, out, rates, at, payingAny)
		sum.Reporting = &r
	}
	return sum, nil
}

type movementJSON struct {
	Month              string `json:"month"`
	MRRStart           int64  `json:"mrr_start"`
	MRREnd             int64  `json:"mrr_end"`
	New                int64  `json:"new"`
	Reactivation       int64  `json:"reactivation"`
	Expansion          int64  `json:"expansion"`
	Contraction        int64  `json:"contraction"`
	Churn              int64  `json:"churn"`
	PayingStart        int    `json:"paying_patrons_start"`
	PayingEnd          int    `json:"paying_patrons_end"`
	NewPatrons         int    `json:"new_patrons"`
	ReactivatedPatrons int    `json:"reactivated_patrons"`
	ChurnedPatrons     int    `json:"churned_patrons"`
	// Rates, null when the month started with no paying patrons or MRR.
	PatronChurnRate  *float64 `json:"patron_churn_rate"`
	RevenueChurnRate *float64 `json:"revenue_churn_rate"`
}

// maxMonths bounds one request for monthly figures.
const maxMonths = 120

// staffMetricsMRR is a currency's MRR movements month by month: from and
// to are months (YYYY-MM, default the last 12 months up to this one).
func (s *Server) staffMetricsMRR(c *gin.Context) {
	from, to, currency, ok := s.monthRange(c)
	if !ok {
		return
	}
	months, err := s.mrrMonths(c.Request.Context(), from, to, currency)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"currency": currency, "months": months})
}

// mrrMonths is a currency's MRR movements for the months from to to.
func (s *Server) mrrMonths(ctx context.Context, from, to time.Time, currency string) ([]movementJSON, error) {
	var moves []metrics.Movement
	err := s.revenue.Consistent(ctx, func(figures *metrics.Service) (err error) {
		moves, err = figures.Movements(ctx, from, to, currency)
		return err
	})
	if err != nil {
		return nil, err
	}
	months := []movementJSON{}
	for _, mv := range moves {
		j := movementJSON{Month: mv.Month.Format("2006-01"), MRRStart: mv.MRRStart, MRREnd: mv.MRREnd,
			New: mv.New, Reactivation: mv.Reactivation, Expansion: mv.Expansion, Contraction: mv.Contraction, Churn: mv.Churn,
			PayingStart: mv.PayingStart, PayingEnd: mv.PayingEnd, NewPatrons: mv.NewPatrons, ReactivatedPatrons: mv.ReactivatedPatrons,
			ChurnedPatrons: mv.ChurnedPatrons}
		if mv.PayingStart > 0 {
			r := float64(mv.ChurnedPatrons) / float64(mv.PayingStart)
			j.PatronChurnRate = &r
		}
		if mv.MRRStart > 0 {
			r := float64(mv.Churn+mv.Contraction) / float64(mv.MRRStart)
			j.RevenueChurnRate = &r
		}
		months = append(months, j)
	}
	return months, nil
}

// monthRange reads from, to (YYYY-MM; default the 12 months up to this one)
// and currency (required); on false the 422 has been written.
func (s *Server) monthRange(c *gin.Context) (from, to time.Time, currency string, ok bool) {
	fields := map[string]string{}
	parseMonth := func(name string, def time.Time) time.Time {
		raw := c.Query(name)
		if raw == "" {
			return def
		}
		t, err := time.Parse("2006-01", raw)
		if err != nil {
			fields[name] = "must be a month, YYYY-MM"
		}
		return t
	}
	to = parseMonth("to", metrics.MonthOf(time.Now()))
	from = parseMonth("from", to.AddDate(0, -11, 0))
	if len(fields) == 0 && from.After(to) {
		fields["from"] = "must not be after to"
	}
	if len(fields) == 0 && monthsBetween(from, to) >= maxMonths {
		fields["from"] = "must be within 120 months of to"
	}
	currency = strings.ToLower(strings.TrimSpace(c.Query("currency")))
	if currency == "" {
		fields["currency"] = "is required, e.g. eur"
	} else if _, err := money.Normalize(currency); err != nil {
		fields["currency"] = err.Error()
	}
	if len(fields) > 0 {
		s.fail(c, errs.InvalidFields(fields))
		return from, to, currency, false
	}
	return from, to, currency, true
}

type revenueMonthJSON struct {
	Month     string `json:"month"`
	Gross     int64  `json:"gross"`
	Tax       int64  `json:"tax"`
	Refunds   int64  `json:"refunds"`
	Net       int64  `json:"net"`
	Donations int64  `json:"donations"`
}

// staffMetricsRevenue is a currency's revenue month by month.
func (s *Server) staffMetricsRevenue(c *gin.Context) {
	from, to, currency, ok := s.monthRange(c)
	if !ok {
		return
	}
	months, err := s.revenueMonths(c.Request.Context(), from, to, currency)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"currency": currency, "months": months})
}

// revenueMonths is a currency's revenue for the months from to to.
func (s *Server) revenueMonths(ctx context.Context, from, to time.Time, currency string) ([]revenueMonthJSON, error) {
	all, err := s.revenue.RevenueMonths(ctx, from, to)
	if err != nil {
		return nil, err
	}
	months := []revenueMonthJSON{}
	for m := from; !m.After(to); m = m.AddDate(0, 1, 0) {
		j := revenueMonthJSON{Month: m.Format("2006-01")}
		if r := all[m][currency]; r != nil {
			j.Gross, j.Tax, j.Refunds, j.Net, j.Donations = r.Gross, r.Tax, r.Refunds, r.Net, r.Donations
		}
		months = append(months, j)
	}
	return months, nil
}

type cohortMonthJSON struct {
	Month    string  `json:"month"`
	Retained int     `json:"retained_patrons"`
	Share    float64 `json:"share"`
	MRR      int64   `json:"mrr"`
}

type cohortJSON struct {
	Month   string            `json:"month"`
	Patrons int               `json:"patrons"`
	Months  []cohortMonthJSON `json:"months"`
}

// staffMetricsCohorts follows each month's new patrons in a currency.
func (s *Server) staffMetricsCohorts(c *gin.Context) {
	from, to, currency, ok := s.monthRange(c)
	if !ok {
		return
	}
	out, err := s.cohortFigures(c.Request.Context(), from, to, currency)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"currency": currency, "cohorts": out})
}

// cohortFigures is a currency's cohorts of the months from to to, each
// followed to the month of to.
func (s *Server) cohortFigures(ctx context.Context, from, to time.Time, currency string) ([]cohortJSON, error) {
	cohorts, err := s.revenue.Cohorts(ctx, currency, from, to)
	if err != nil {
		return nil, err
	}
	out := []cohortJSON{}
	for _, co := range cohorts {
		j := cohortJSON{Month: co.Month.Format("2006-01"), Patrons: co.Patrons, Months: []cohortMonthJSON{}}
		for _, m := range co.Months {
			j.Months = append(j.Months, cohortMonthJSON{Month: m.Month.Format("2006-01"), Retained: m.Retained, Share: m.Share, MRR: m.MRR})
		}
		out = append(out, j)
	}
	return out, nil
}

type tierFigureJSON struct {
	Currency      string `json:"currency"`
	Tier          string `json:"tier"`
	Interval      string `json:"interval"`
	IntervalCount int    `json:"interval_count"`
	MRR           int64  `json:"mrr"`
	Patrons       int    `json:"paying_patrons"`
}

// staffMetricsTiers splits the MRR at an instant (default now) by
// currency, tier and billing interval.
func (s *Server) staffMetricsTiers(c *gin.Context) {
	at, ok := s.instant(c)
	if !ok {
		return
	}
	out, err := s.tierFigures(c.Request.Context(), at)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"at": rfc3339(at), "tiers": out})
}

// tierFigures is the MRR at an instant by currency, tier and interval.
func (s *Server) tierFigures(ctx context.Context, at time.Time) ([]tierFigureJSON, error) {
	var tiers []metrics.TierFigure
	err := s.revenue.Consistent(ctx, func(figures *metrics.Service) (err error) {
		tiers, err = figures.ByTier(ctx, at)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := []tierFigureJSON{}
	for _, f := range tiers {
		out = append(out, tierFigureJSON{Currency: f.Currency, Tier: f.Tier, Interval: f.Interval, IntervalCount: f.IntervalCount, MRR: f.MRR, Patrons: f.Patrons})
	}
	return out, nil
}

// instant reads the at parameter (RFC 3339, default now); on false the
// 422 has been written.
func (s *Server) instant(c *gin.Context) (time.Time, bool) {
	raw := c.Query("at")
	if raw == "" {
		return time.Now().UTC(), true
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		s.fail(c, errs.InvalidFields(map[string]string{"at": "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z"}))
		return time.Time{}, false
	}
	return t.UTC(), true
}

func monthsBetween(from, to time.Time) int {
	return (to.Year()-from.Year())*12 + int(to.Month()) - int(from.Month())
}

type reportingJSON struct {
	Currency      string   `json:"currency"`
	MRR           int64    `json:"mrr"`
	ARR           int64    `json:"arr"`
	PayingPatrons int      `json:"paying_patrons"`
	ARPU          int64    `json:"arpu"`
	AtRiskMRR     int64    `json:"at_risk_mrr"`
	NetRevenue30d int64    `json:"net_revenue_30d"`
	Donations30d  int64    `json:"donations_30d"`
	MissingRates  []string `json:"missing_rates"`
}

// reportingSummary converts each currency's figures into the reporting
// currency at the rate in force at the instant measured, and adds them up;
// currencies without a rate then are left out and listed. Paying patrons
// are counted once however many currencies they pay in.
func reportingSummary(reporting string, perCurrency []currencySummaryJSON, rates []metrics.Rate, at time.Time, paying int) reportingJSON {
	out := reportingJSON{Currency: reporting, PayingPatrons: paying, MissingRates: []string{}}
	for _, cur := range perCurrency {
		rate := "1"
		if cur.Currency != reporting {
			r, ok := metrics.RateAt(rates, cur.Currency, at)
			if !ok {
				out.MissingRates = append(out.MissingRates, cur.Currency)
				continue
			}
			rate = r.Rate
		}
		conv := func(v int64) int64 { return metrics.Convert(v, cur.Currency, reporting, rate) }
		out.MRR += conv(cur.MRR)
		out.ARR += conv(cur.ARR)
		out.AtRiskMRR += conv(cur.AtRiskMRR)
		out.NetRevenue30d += conv(cur.NetRevenue30d)
		out.Donations30d += conv(cur.Donations30d)
	}
	if paying > 0 && len(out.MissingRates) == 0 {
		out.ARPU = metrics.DivHalfEven(out.MRR, int64(paying))
	}
	return out
}

type rateJSON struct {
	Currency  string `json:"currency"`
	Rate      string `json:"rate"`
	ValidFrom string `json:"valid_from"`
}

// staffSetRate records an exchange rate into the reporting currency.
func (s *Server) staffSetRate(c *gin.Context) {
	if s.reporting == "" {
		s.fail(c, errs.WithCode(errs.Conflict, "no_reporting_currency", "Set REPORTING_CURRENCY before entering exchange rates."))
		return
	}
	var req struct {
		Currency  string      `json:"currency"`
		Rate      json.Number `json:"rate"`
		ValidFrom time.Time   `json:"valid_from"`
	}
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	r, err := s.rates.SetRate(c.Request.Context(), s.staffActor(c), metrics.Rate{Currency: req.Currency, Reporting: s.reporting, ValidFrom: req.ValidFrom, Rate: req.Rate.String()})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"reporting_currency": s.reporting, "rate": rateJSON{Currency: r.Currency, Rate: r.Rate, ValidFrom: rfc3339(r.ValidFrom)}})
}

// staffListRates lists the exchange rates into the reporting currency.
func (s *Server) staffListRates(c *gin.Context) {
	rates := []rateJSON{}
	if s.reporting != "" {
		list, err := s.rates.Rates(c.Request.Context(), s.reporting)
		if err != nil {
			s.fail(c, err)
			return
		}
		for _, r := range list {
			rates = append(rates, rateJSON{Currency: r.Currency, Rate: r.Rate, ValidFrom: rfc3339(r.ValidFrom)})
		}
	}
	var reporting *string
	if s.reporting != "" {
		reporting = &s.reporting
	}
	c.JSON(http.StatusOK, gin.H{"reporting_currency": reporting, "rates": rates})
}
