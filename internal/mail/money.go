package mail

import (
	"strconv"
	"strings"
)

// FormatAmount writes minor units as an ISO code and an English-style amount:
// FormatAmount(500, "eur") is "EUR 5.00", (500, "JPY") is "JPY 500",
// (1500, "BHD") is "BHD 1.500". Thousands are grouped with commas
// ("EUR 1,234.56") because the mails are in English and large yen or won
// amounts are unreadable without them. Integer arithmetic only: a float
// would misprint some amounts.
func FormatAmount(minor int64, currency string) string {
	currency = strings.ToUpper(strings.TrimSpace(currency))
	sign, units := "", uint64(minor)
	if minor < 0 {
		// Negation overflows for math.MinInt64, but its uint64 is still right.
		sign, units = "-", uint64(-minor)
	}
	digits := minorDigits(currency)
	scale := uint64(1)
	for range digits {
		scale *= 10
	}
	amount := sign + groupThousands(strconv.FormatUint(units/scale, 10))
	if digits > 0 {
		frac := strconv.FormatUint(units%scale, 10)
		amount += "." + strings.Repeat("0", digits-len(frac)) + frac
	}
	if currency == "" {
		return amount
	}
	return currency + " " + amount
}

// minorDigits is how many decimal places a currency's minor unit has, as
// Stripe counts them.
func minorDigits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG",
		"RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "JOD", "KWD", "OMR", "TND":
		return 3
	default:
		return 2
	}
}

func groupThousands(digits string) string {
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
