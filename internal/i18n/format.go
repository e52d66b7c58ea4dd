package i18n

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/money"
)

// How a language writes numbers, money and dates is in its catalogue too
// (format.*, date.*), so a new language brings its own. New renders each
// of these once per language, so they cannot fail afterwards: the methods
// below return text, not errors.

// formatted is a format message, which New has checked renders.
func (l *Localizer) formatted(key string, args ...any) string {
	text, _ := l.Text(key, args...)
	return text
}

// Decimal writes v with places decimals in the language's notation.
func (l *Localizer) Decimal(v float64, places int) string {
	s := strconv.FormatFloat(v, 'f', places, 64)
	return strings.Replace(s, ".", l.f.notation.Decimal, 1)
}

// Percent writes a share (0.125) as a percentage with places decimals:
// "12.5%".
func (l *Localizer) Percent(share float64, places int) string {
	return l.formatted("format.percent", "Number", l.Decimal(share*100, places))
}

// Amount writes minor units of currency in major ones, without the
// currency: "1,234.50" in English.
func (l *Localizer) Amount(minor int64, currency string) string {
	return l.f.notation.Amount(minor, currency)
}

// Money writes minor units of currency with its ISO code, as the language
// places it: "EUR 5.00" in English.
func (l *Localizer) Money(minor int64, currency string) string {
	return l.formatted("format.money", "Amount", l.Amount(minor, currency), "Currency", strings.ToUpper(strings.TrimSpace(currency)))
}

// ParseAmount reads an amount a reader typed in major units, in the
// language's notation, as minor units of currency.
func (l *Localizer) ParseAmount(s, currency string) (int64, error) {
	return l.f.notation.Parse(s, currency)
}

// Date writes a day: "2 January 2006".
func (l *Localizer) Date(t time.Time) string {
	return l.formatted("date.day", "Day", t.Day(), "Month", l.f.months[t.Month()-1], "Year", t.Year())
}

// WeekDate writes a day with its weekday: "Monday 2 January 2006".
func (l *Localizer) WeekDate(t time.Time) string {
	return l.formatted("date.weekday_day", "Weekday", l.f.weekdays[t.Weekday()], "Date", l.Date(t))
}

// DateTime writes a day and a time of day with its zone: "2 January 2006,
// 15:04 UTC".
func (l *Localizer) DateTime(t time.Time) string {
	return l.formatted("date.day_time", "Date", l.Date(t), "Time", t.Format("15:04 MST"))
}

// MonthLabel writes a month short, for a chart's axis: "Jan 06".
func (l *Localizer) MonthLabel(t time.Time) string {
	return l.formatted("date.month_label", "Month", l.f.monthsShort[t.Month()-1], "Year", t.Format("06"))
}

// formats are the words and marks of a language's numbers and dates,
// read from its catalogue once, as they are on every amount and date.
type formats struct {
	notation            money.Notation
	months, monthsShort [12]string
	weekdays            [7]string // Sunday first, as time.Weekday
}

// loadFormats reads l's formats and renders every other format message,
// so a catalogue lacking one fails at start, not on a page.
func (l *Localizer) loadFormats() error {
	var problems []error
	try := func(key string, args ...any) string {
		text, err := l.Text(key, args...)
		if err != nil {
			problems = append(problems, err)
		}
		return text
	}
	l.f.notation = money.Notation{Decimal: try("format.decimal"), Group: try("format.group")}
	try("format.money", "Amount", "1", "Currency", "EUR")
	try("format.percent", "Number", "1")
	for m := range 12 {
		l.f.months[m] = try("date.month." + strconv.Itoa(m+1))
		l.f.monthsShort[m] = try("date.month_short." + strconv.Itoa(m+1))
	}
	for d := range 7 {
		l.f.weekdays[d] = try("date.weekday." + strconv.Itoa(d))
	}
	try("date.day", "Day", 1, "Month", "m", "Year", 2000)
	try("date.weekday_day", "Weekday", "w", "Date", "d")
	try("date.day_time", "Date", "d", "Time", "t")
	try("date.month_label", "Month", "m", "Year", "00")
	return errors.Join(problems...)
}
