package mail

import "github.com/patronage/patronage/internal/money"

// FormatAmount writes minor units as an ISO code and an English-style
// amount, e.g. "EUR 5.00", "JPY 500"; see money.Format.
func FormatAmount(minor int64, currency string) string { return money.Format(minor, currency) }
