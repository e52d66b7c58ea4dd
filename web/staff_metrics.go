package web

import (
	"maps"
	"net/http"
	"slices"
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
}

// staffMetricsSummary is every currency's figures at an instant (default
// now): MRR and what follows from it, and the 30 days up to it.
func (s *Server) staffMetricsSummary(c *gin.Context) {
	at, ok := s.instant(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	h, err := s.revenue.History(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	from := at.Add(-30 * 24 * time.Hour)
	revenue, err := s.revenue.RevenueBetween(ctx, from, at)
	if err != nil {
		s.fail(c, err)
		return
	}
	snapshots := h.At(at)
	currencies := map[string]bool{}
	for _, cur := range h.Currencies() {
		currencies[cur] = true
	}
	for cur := range revenue {
		currencies[cur] = true
	}
	out := []currencySummaryJSON{}
	for _, cur := range slices.Sorted(maps.Keys(currencies)) {
		j := currencySummaryJSON{Currency: cur}
		if sn := snapshots[cur]; sn != nil {
			j.MRR, j.ARR, j.PayingPatrons, j.ARPU = sn.MRR, 12*sn.MRR, sn.PayingPatrons, sn.ARPU
			j.Trialing, j.PastDue, j.AtRiskMRR = sn.TrialingPatron, sn.PastDue, sn.AtRiskMRR
		}
		if r := revenue[cur]; r != nil {
			j.NetRevenue30d, j.Donations30d = r.Net, r.Donations
		}
		churned, paying := h.ChurnBetween(from, at, cur)
		j.ChurnedPatrons = churned
		if paying > 0 {
			rate := float64(churned) / float64(paying)
			j.ChurnRate30d = &rate
		}
		out = append(out, j)
	}
	c.JSON(http.StatusOK, gin.H{"at": rfc3339(at), "currencies": out, "reporting": nil})
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
	h, err := s.revenue.History(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	months := []movementJSON{}
	for m := from; !m.After(to); m = m.AddDate(0, 1, 0) {
		mv := h.Movements(m, currency)
		months = append(months, movementJSON{Month: m.Format("2006-01"), MRRStart: mv.MRRStart, MRREnd: mv.MRREnd,
			New: mv.New, Reactivation: mv.Reactivation, Expansion: mv.Expansion, Contraction: mv.Contraction, Churn: mv.Churn,
			PayingStart: mv.PayingStart, PayingEnd: mv.PayingEnd, NewPatrons: mv.NewPatrons, ReactivatedPatrons: mv.ReactivatedPatrons,
			ChurnedPatrons: mv.ChurnedPatrons})
	}
	c.JSON(http.StatusOK, gin.H{"currency": currency, "months": months})
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
	months := []revenueMonthJSON{}
	for m := from; !m.After(to); m = m.AddDate(0, 1, 0) {
		rev, err := s.revenue.RevenueInMonth(c.Request.Context(), m)
		if err != nil {
			s.fail(c, err)
			return
		}
		j := revenueMonthJSON{Month: m.Format("2006-01")}
		if r := rev[currency]; r != nil {
			j.Gross, j.Tax, j.Refunds, j.Net, j.Donations = r.Gross, r.Tax, r.Refunds, r.Net, r.Donations
		}
		months = append(months, j)
	}
	c.JSON(http.StatusOK, gin.H{"currency": currency, "months": months})
}

type cohortMonthJSON struct {
	Month    string  `json:"month"`
	Retained int     `json:"retained_patrons"`
	Share    float64 `json:"share"`
	MRR      int64   `json:"mrr"`
}

// staffMetricsCohorts follows each month's new patrons in a currency.
func (s *Server) staffMetricsCohorts(c *gin.Context) {
	from, to, currency, ok := s.monthRange(c)
	if !ok {
		return
	}
	h, err := s.revenue.History(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	type cohortJSON struct {
		Month   string            `json:"month"`
		Patrons int               `json:"patrons"`
		Months  []cohortMonthJSON `json:"months"`
	}
	out := []cohortJSON{}
	for _, co := range h.Cohorts(currency, from, to) {
		j := cohortJSON{Month: co.Month.Format("2006-01"), Patrons: co.Patrons, Months: []cohortMonthJSON{}}
		for _, m := range co.Months {
			j.Months = append(j.Months, cohortMonthJSON{Month: m.Month.Format("2006-01"), Retained: m.Retained, Share: m.Share, MRR: m.MRR})
		}
		out = append(out, j)
	}
	c.JSON(http.StatusOK, gin.H{"currency": currency, "cohorts": out})
}

// staffMetricsTiers splits the MRR at an instant (default now) by
// currency, tier and billing interval.
func (s *Server) staffMetricsTiers(c *gin.Context) {
	at, ok := s.instant(c)
	if !ok {
		return
	}
	h, err := s.revenue.History(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	type tierJSON struct {
		Currency      string `json:"currency"`
		Tier          string `json:"tier"`
		Interval      string `json:"interval"`
		IntervalCount int    `json:"interval_count"`
		MRR           int64  `json:"mrr"`
		Patrons       int    `json:"paying_patrons"`
	}
	out := []tierJSON{}
	for _, f := range h.ByTier(at) {
		out = append(out, tierJSON{Currency: f.Currency, Tier: f.Tier, Interval: f.Interval, IntervalCount: f.IntervalCount, MRR: f.MRR, Patrons: f.Patrons})
	}
	c.JSON(http.StatusOK, gin.H{"at": rfc3339(at), "tiers": out})
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
