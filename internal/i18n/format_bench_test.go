package i18n

import (
	"testing"
	"time"
)

// The dashboard writes hundreds of amounts and dates a page:
// go test -run '^$' -bench . ./internal/i18n
func BenchmarkMoneyAndDate(b *testing.B) {
	c, err := New("en")
	if err != nil {
		b.Fatal(err)
	}
	l := c.In("uk")
	at := time.Date(2026, 3, 2, 15, 4, 0, 0, time.UTC)
	for b.Loop() {
		_ = l.Money(123456, "EUR")
		_ = l.Date(at)
	}
}
