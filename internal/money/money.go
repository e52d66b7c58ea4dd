// Package money knows currencies as Stripe does: which ISO 4217 codes it
// accepts and how many decimal places each minor unit has. Amounts are
// always int64 minor units; nothing here uses floating point. It decides
// no prices.
package money

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// supported is every currency Stripe accepts for charges (its presentment
// currencies), as ISO 4217 codes.
var supported = setOf(`AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL
BSD BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP
GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR KMF KRW KWD KYD KZT LAK LBP
LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN
PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SEK SGD SHP SLE SOS SRD STD SZL THB TJS TND TOP
TRY TTD TWD TZS UAH UGX USD UYU UZS VND VUV WST XAF XCD XOF XPF YER ZAR ZMW`)

// zeroDecimal currencies are charged in whole units: JPY 500 is ¥500, not
// ¥5. Multiplying these by 100 is the classic 100× overcharge.
var zeroDecimal = setOf(`BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF`)

// threeDecimal currencies have a thousandth minor unit; Stripe wants their
// amounts to end in 0.
var threeDecimal = setOf(`BHD JOD KWD OMR TND`)

func setOf(codes string) map[string]bool {
	out := map[string]bool{}
	for _, c := range strings.Fields(codes) {
		out[c] = true
	}
	return out
}

// Normalize returns the upper-case code of a currency Stripe accepts, or an
// error saying why not.
func Normalize(code string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(code))
	if len(c) != 3 {
		return "", fmt.Errorf("must be a three-letter ISO 4217 code")
	}
	if !supported[c] {
		return "", fmt.Errorf("%s is not a currency Stripe accepts", c)
	}
	return c, nil
}

// Exponent is the number of decimal places of a currency's minor unit.
func Exponent(code string) int {
	c := strings.ToUpper(code)
	switch {
	case zeroDecimal[c]:
		return 0
	case threeDecimal[c]:
		return 3
	default:
		return 2
	}
}

// CheckAmount says whether Stripe can charge minor units of code: positive,
// within Stripe's eight-digit limit, and a multiple of 10 for three-decimal
// currencies and of 100 for ISK (two-decimal on the wire, whole krónur in
// practice).
func CheckAmount(minor int64, code string) error {
	c := strings.ToUpper(code)
	switch {
	case minor <= 0:
		return fmt.Errorf("must be greater than 0")
	case minor > 99_999_999:
		return fmt.Errorf("must be at most 99999999 minor units")
	case threeDecimal[c] && minor%10 != 0:
		return fmt.Errorf("must be a multiple of 10 for %s", c)
	case c == "ISK" && minor%100 != 0:
		return fmt.Errorf("must be a multiple of 100 for ISK")
	}
	return nil
}

// Format writes minor units as an ISO code and an English-style amount:
// Format(500, "eur") is "EUR 5.00", (500, "JPY") is "JPY 500", (1500,
// "BHD") is "BHD 1.500", thousands grouped with commas.
func Format(minor int64, currency string) string {
	currency = strings.ToUpper(strings.TrimSpace(currency))
	amount := English.Amount(minor, currency)
	if currency == "" {
		return amount
	}
	return currency + " " + amount
}

// Notation is how a language writes an amount: the mark before the
// decimals and the one between groups of thousands.
type Notation struct {
	Decimal string
	Group   string
}

// English writes 1,234.50.
var English = Notation{Decimal: ".", Group: ","}

// Amount writes minor units of currency as major ones in the notation,
// without the currency: English.Amount(123456, "EUR") is "1,234.56",
// (500, "JPY") is "500".
func (n Notation) Amount(minor int64, currency string) string {
	sign, units := "", uint64(minor)
	if minor < 0 {
		// Negation overflows for math.MinInt64, but its uint64 is still right.
		sign, units = "-", uint64(-minor)
	}
	digits := Exponent(currency)
	scale := uint64(1)
	for range digits {
		scale *= 10
	}
	amount := sign + groupThousands(strconv.FormatUint(units/scale, 10), n.Group)
	if digits > 0 {
		frac := strconv.FormatUint(units%scale, 10)
		amount += n.Decimal + strings.Repeat("0", digits-len(frac)) + frac
	}
	return amount
}

func groupThousands(digits, sep string) string {
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Parse reads an amount a person typed in major units in the notation as
// minor units of currency, exactly: no floating point, and no more decimals
// than the currency has. Group marks are dropped, and every space where
// the group mark is one (people type a plain space for a no-break one).
// Where the decimal mark is not a point, a point is read as one too (a
// reader used to either may type either), unless the point is the group
// mark: then it must stand before three digits, as "1.000,50" does, so
// that "5.50" is refused rather than read as 550.
func (n Notation) Parse(s, currency string) (int64, error) {
	s = strings.TrimSpace(s)
	if n.Group == "." {
		whole, _, _ := strings.Cut(s, n.Decimal)
		groups := strings.Split(whole, ".")
		for _, g := range groups[1:] {
			if len(groups[0]) == 0 || len(g) != 3 {
				return 0, fmt.Errorf("must be an amount such as 5 or 5.50")
			}
		}
	}
	s = strings.ReplaceAll(s, n.Group, "")
	if g := []rune(n.Group); len(g) == 1 && unicode.IsSpace(g[0]) {
		s = strings.Join(strings.FieldsFunc(s, unicode.IsSpace), "")
	}
	if n.Decimal != "." {
		s = strings.ReplaceAll(s, n.Decimal, ".")
	}
	if s == "" {
		return 0, fmt.Errorf("is required")
	}
	whole, frac, _ := strings.Cut(s, ".")
	exp := Exponent(currency)
	if len(frac) > exp {
		if exp == 0 {
			return 0, fmt.Errorf("must be a whole number in %s", strings.ToUpper(currency))
		}
		return 0, fmt.Errorf("must have at most %d decimal places", exp)
	}
	digits := whole + frac + strings.Repeat("0", exp-len(frac))
	if whole == "" || len(digits) > 15 || strings.Trim(digits, "0123456789") != "" {
		return 0, fmt.Errorf("must be an amount such as 5 or 5.50")
	}
	n64, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be an amount such as 5 or 5.50")
	}
	return n64, nil
}
