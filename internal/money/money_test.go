package money_test

import (
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

func TestParseMajorIsExact(t *testing.T) {
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
		got, err := money.ParseMajor(tt.in, tt.code)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseMajor(%q, %s) = %d, %v; want %d ok=%v", tt.in, tt.code, got, err, tt.want, tt.ok)
		}
	}
}
