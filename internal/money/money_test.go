package money_test

import (
	"math"
	"testing"

	"github.com/patronage/patronage/internal/money"
)

func TestNormalize(t *testing.T) {
	for _, tt := range []struct{ in, want string }{{"eur", "EUR"}, {" jpy ", "JPY"}, {"XXX", ""}, {"euro", ""}, {"", ""}} {
		got, err := money.Normalize(tt.in)
		if (tt.want == "") != (err != nil) || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestCheckAmount(t *testing.T) {
	tests := []struct {
		minor int64
		code  string
		ok    bool
	}{
		{500, "EUR", true}, {500, "JPY", true}, {0, "EUR", false}, {-1, "USD", false},
		{100_000_000, "EUR", false}, {1505, "BHD", false}, {1500, "BHD", true}, {150, "ISK", false}, {15000, "ISK", true},
	}
	for _, tt := range tests {
		if err := money.CheckAmount(tt.minor, tt.code); (err == nil) != tt.ok {
			t.Errorf("CheckAmount(%d, %s) = %v, want ok=%v", tt.minor, tt.code, err, tt.ok)
		}
	}
}

func TestFormatKeepsZeroDecimalCurrenciesWhole(t *testing.T) {
	tests := []struct {
		minor int64
		code  string
		want  string
	}{
		{500, "EUR", "EUR 5.00"}, {500, "JPY", "JPY 500"}, {1000000, "KRW", "KRW 1,000,000"},
		{1500, "BHD", "BHD 1.500"}, {123456, "usd", "USD 1,234.56"}, {5, "GBP", "GBP 0.05"},
	}
	for _, tt := range tests {
		if got := money.Format(tt.minor, tt.code); got != tt.want {
			t.Errorf("Format(%d, %s) = %q, want %q", tt.minor, tt.code, got, tt.want)
		}
	}
}

func TestParseIsExact(t *testing.T) {
	tests := []struct {
		in, code string
		want     int64
		ok       bool
	}{
		{"5", "EUR", 500, true}, {"5.5", "EUR", 550, true}, {"0.29", "EUR", 29, true}, {"1,000", "JPY", 1000, true},
		{"500", "JPY", 500, true}, {"5.5", "JPY", 0, false}, {"1.5", "BHD", 1500, true}, {"5.555", "EUR", 0, false},
		{"-5", "EUR", 0, false}, {"abc", "EUR", 0, false}, {"", "EUR", 0, false}, {".5", "EUR", 0, false},
	}
	for _, tt := range tests {
		got, err := money.English.Parse(tt.in, tt.code)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("English.Parse(%q, %s) = %d, %v; want %d ok=%v", tt.in, tt.code, got, err, tt.want, tt.ok)
		}
	}
}

// A notation other than English writes and reads amounts its own way, and
// a reader used to either decimal mark may type either.
func TestNotationWritesAndReadsItsOwnMarks(t *testing.T) {
	uk := money.Notation{Decimal: ",", Group: "\u00a0"}
	if got := uk.Amount(123456, "EUR"); got != "1\u00a0234,56" {
		t.Errorf("Amount(123456, EUR) = %q, want 1 234,56 with a no-break space", got)
	}
	if got := uk.Amount(1000000, "JPY"); got != "1\u00a0000\u00a0000" {
		t.Errorf("Amount(1000000, JPY) = %q", got)
	}
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"5,50", 550, true}, {"5.50", 550, true}, {"1 000,50", 100050, true}, {"1\u00a0000", 100000, true},
		{"5,555", 0, false}, {"", 0, false},
	}
	for _, tt := range tests {
		got, err := uk.Parse(tt.in, "EUR")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Parse(%q, EUR) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	// Where a point groups thousands (as German writes 1.000,50), it is
	// taken only before three digits: "5.50" is refused, not read as 550.
	de := money.Notation{Decimal: ",", Group: "."}
	for in, want := range map[string]int64{"1.000,50": 100050, "5,50": 550, "1.000": 100000, "12.345.678": 1234567800, "5.50": -1, ".500": -1, "1.00,5": -1} {
		got, err := de.Parse(in, "EUR")
		if (want < 0) != (err != nil) || (want >= 0 && got != want) {
			t.Errorf("point-grouped Parse(%q, EUR) = %d, %v; want %d (-1: refused)", in, got, err, want)
		}
	}
	// English keeps reading a comma as a thousands mark, as it always has.
	if got, err := money.English.Parse("1,000", "EUR"); err != nil || got != 100000 {
		t.Errorf("English.Parse(1,000, EUR) = %d, %v; want 100000", got, err)
	}
}

func TestFormatEdges(t *testing.T) {
	tests := []struct {
		minor    int64
		currency string
		want     string
	}{
		{5, "eur", "EUR 0.05"}, {0, "USD", "USD 0.00"}, {5, "KWD", "KWD 0.005"}, {1234567, "TND", "TND 1,234.567"},
		{-250, "EUR", "EUR -2.50"}, {math.MaxInt64, "EUR", "EUR 92,233,720,368,547,758.07"},
		{math.MinInt64, "JPY", "JPY -9,223,372,036,854,775,808"}, {500, " chf ", "CHF 5.00"}, {500, "", "5.00"},
	}
	for _, tt := range tests {
		if got := money.Format(tt.minor, tt.currency); got != tt.want {
			t.Errorf("Format(%d, %q) = %q, want %q", tt.minor, tt.currency, got, tt.want)
		}
	}
}
