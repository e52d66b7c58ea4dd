package mail_test

import (
	"math"
	"testing"

	"github.com/patronage/patronage/internal/mail"
)

func TestFormatAmount(t *testing.T) {
	tests := []struct {
		minor    int64
		currency string
		want     string
	}{
		{500, "EUR", "EUR 5.00"},
		{5, "eur", "EUR 0.05"},
		{0, "USD", "USD 0.00"},
		{123456, "GBP", "GBP 1,234.56"},
		{500, "JPY", "JPY 500"},
		{1000, "krw", "KRW 1,000"},
		{1234567, "VND", "VND 1,234,567"},
		{1500, "BHD", "BHD 1.500"},
		{5, "KWD", "KWD 0.005"},
		{1234567, "TND", "TND 1,234.567"},
		{-250, "EUR", "EUR -2.50"},
		{math.MaxInt64, "EUR", "EUR 92,233,720,368,547,758.07"},
		{math.MinInt64, "JPY", "JPY -9,223,372,036,854,775,808"},
		{500, " chf ", "CHF 5.00"},
		{500, "", "5.00"},
	}
	for _, tt := range tests {
		if got := mail.FormatAmount(tt.minor, tt.currency); got != tt.want {
			t.Errorf("FormatAmount(%d, %q) = %q, want %q", tt.minor, tt.currency, got, tt.want)
		}
	}
}
