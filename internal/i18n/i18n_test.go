package i18n_test

import (
	"context"
	"html/template"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"

	"github.com/patronage/patronage/internal/i18n"
)

func catalog(t *testing.T, def string) *i18n.Catalog {
	t.Helper()
	c, err := i18n.New(def)
	if err != nil {
		t.Fatalf("New(%q): %v", def, err)
	}
	return c
}

// The languages are the catalogue files there are, and each has every
// message the others have: a reader never meets a page half in another
// language.
func TestEveryCatalogueHasTheSameMessages(t *testing.T) {
	c := catalog(t, "en")
	if got := c.Languages(); !slices.Equal(got, []string{"en", "uk"}) || !slices.Equal(i18n.Languages(), got) {
		t.Fatalf("languages = %v (files: %v), want en and uk", got, i18n.Languages())
	}
	want := c.Keys("en")
	if len(want) < 100 {
		t.Fatalf("the English catalogue has %d messages; want the whole of the pages and mail", len(want))
	}
	for _, lang := range c.Languages() {
		got := c.Keys(lang)
		for _, k := range want {
			if !slices.Contains(got, k) {
				t.Errorf("catalogue %s lacks %s", lang, k)
			}
		}
		for _, k := range got {
			if !slices.Contains(want, k) {
				t.Errorf("catalogue %s has %s, which English has not", lang, k)
			}
		}
	}
}

// Every message with plural forms spells out each form its language's
// CLDR rules pick for some whole number: Ukrainian one (1, 21), few (2–4,
// 22), many (0, 5–20, 25) and other; English one and other.
func TestPluralMessagesHaveEveryFormTheirLanguageNeeds(t *testing.T) {
	c := catalog(t, "en")
	formName := map[plural.Form]string{plural.Zero: "zero", plural.One: "one", plural.Two: "two", plural.Few: "few", plural.Many: "many", plural.Other: "other"}
	plurals := 0
	for _, key := range c.Keys("en") {
		if len(c.Forms("en", key)) < 2 {
			continue
		}
		plurals++
		for _, lang := range c.Languages() {
			forms := c.Forms(lang, key)
			tag := language.MustParse(lang)
			for n := 0; n < 200; n++ {
				need := formName[plural.Cardinal.MatchPlural(tag, n, 0, 0, 0, 0)]
				if !slices.Contains(forms, need) {
					t.Errorf("%s %s: no %q form, which %d takes", lang, key, need, n)
					break
				}
			}
			if !slices.Contains(forms, "other") {
				t.Errorf("%s %s: no \"other\" form", lang, key)
			}
		}
	}
	if plurals < 10 {
		t.Errorf("only %d plural messages: the counts of votes, patrons and minutes should be among them", plurals)
	}
}

func TestUkrainianCountsTakeTheirForm(t *testing.T) {
	uk := catalog(t, "en").In("uk")
	for n, want := range map[int]string{
		0: "0 голосів", 1: "1 голос", 2: "2 голоси", 3: "3 голоси", 4: "4 голоси", 5: "5 голосів", 11: "11 голосів",
		12: "12 голосів", 21: "21 голос", 22: "22 голоси", 25: "25 голосів", 101: "101 голос", 111: "111 голосів",
	} {
		if got := uk.T("vote.count", n); got != want {
			t.Errorf("vote.count %d = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{1: "1 хвилину", 3: "3 хвилини", 15: "15 хвилин", 21: "21 хвилину"} {
		if got := uk.T("duration.minutes", n); got != want {
			t.Errorf("duration.minutes %d = %q, want %q", n, got, want)
		}
	}
}

// A key no catalogue has, or a value a message needs but was not given,
// is an error: never the key, "<no value>" or another language's text.
func TestAMissingMessageOrValueIsAnError(t *testing.T) {
	c := catalog(t, "en")
	for _, lang := range c.Languages() {
		l := c.In(lang)
		if got, err := l.Text("no.such.message"); err == nil {
			t.Errorf("%s: a missing key gave %q, want an error", lang, got)
		}
		if got, err := l.Text("layout.footer"); err == nil {
			t.Errorf("%s: a message without its Newsroom gave %q, want an error", lang, got)
		}
		if got, err := l.Text("vote.count", "Count"); err == nil {
			t.Errorf("%s: a name without a value gave %q, want an error", lang, got)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: T of a missing key did not panic", lang)
				}
			}()
			l.T("no.such.message")
		}()
	}
}

func TestNewWantsADefaultWithACatalogue(t *testing.T) {
	if _, err := i18n.New("de"); err == nil || !strings.Contains(err.Error(), `"de" has no catalogue`) {
		t.Errorf("New(de) = %v, want an error naming the missing catalogue", err)
	}
	if c := catalog(t, "UK"); c.Default() != "uk" {
		t.Errorf("New(UK).Default() = %q, want uk", c.Default())
	}
}

// The member's own setting comes first, then the browser's
// Accept-Language matched against the catalogues, then the default.
func TestChoosingALanguage(t *testing.T) {
	en, uk := catalog(t, "en"), catalog(t, "uk")
	tests := []struct {
		c               *i18n.Catalog
		setting, accept string
		want            string
	}{
		{en, "", "uk", "uk"},
		{en, "", "uk-UA,uk;q=0.9,en-US;q=0.8,en;q=0.7", "uk"},
		{en, "", "en-GB,en;q=0.9", "en"},
		{en, "", "de-DE,fr;q=0.8", "en"},
		{uk, "", "de-DE,fr;q=0.8", "uk"},
		{uk, "", "", "uk"},
		{en, "", "de;q=0.9,uk;q=0.5", "uk"},
		{en, "en", "uk", "en"},
		{en, "uk", "en", "uk"},
		{en, "fr", "uk", "uk"}, // a setting without a catalogue (since removed) counts for nothing
		{en, "", "not a header;;", "en"},
	}
	for _, tt := range tests {
		if got := tt.c.Choose(tt.setting, tt.accept); got != tt.want {
			t.Errorf("default %s, setting %q, Accept-Language %q: got %s, want %s", tt.c.Default(), tt.setting, tt.accept, got, tt.want)
		}
	}
	if got := en.In("de").Language(); got != "en" {
		t.Errorf("In(de) speaks %s, want the default", got)
	}
}

func TestNumbersMoneyAndDatesInEachLanguage(t *testing.T) {
	c := catalog(t, "en")
	en, uk := c.In("en"), c.In("uk")
	monday := time.Date(2026, time.March, 2, 15, 4, 0, 0, time.UTC)
	checks := []struct{ what, got, want string }{
		{"en money", en.Money(123456, "eur"), "EUR 1,234.56"},
		{"en yen", en.Money(500, "JPY"), "JPY 500"},
		{"uk money", uk.Money(123456, "eur"), "1\u00a0234,56\u00a0EUR"},
		{"en date", en.Date(monday), "2 March 2026"},
		{"uk date", uk.Date(monday), "2 березня 2026 р."},
		{"en weekday", en.WeekDate(monday), "Monday 2 March 2026"},
		{"uk weekday", uk.WeekDate(monday), "2 березня 2026 р. (понеділок)"},
		{"en date and time", en.DateTime(monday), "2 March 2026, 15:04 UTC"},
		{"uk date and time", uk.DateTime(monday), "2 березня 2026 р., 15:04 UTC"},
		{"en month label", en.MonthLabel(monday), "Mar 26"},
		{"uk month label", uk.MonthLabel(monday), "бер. 26"},
		{"en percent", en.Percent(0.125, 1), "12.5%"},
		{"uk percent", uk.Percent(0.125, 1), "12,5%"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
	for lang, typed := range map[string]string{"en": "5.50", "uk": "5,50"} {
		if got, err := c.In(lang).ParseAmount(typed, "EUR"); err != nil || got != 550 {
			t.Errorf("%s ParseAmount(%q) = %d, %v; want 550", lang, typed, got, err)
		}
	}
}

// An HTML message keeps its own markup and escapes the values put in it;
// a URL value must be http(s).
func TestHTMLMessagesEscapeTheirValues(t *testing.T) {
	uk := catalog(t, "en").In("uk")
	got, err := uk.HTML("check_email.sent", "Email", `<script>alert(1)</script>`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "<strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>") {
		t.Errorf("HTML = %s, want the markup kept and the value escaped", got)
	}
	if _, err := uk.HTML("mail.welcome.account_html", "AccountURL", "javascript:alert(1)"); err == nil {
		t.Error("a javascript: URL went into an href")
	}
	ok, err := uk.HTML("mail.welcome.account_html", "AccountURL", "https://patrons.test/account?a=1&b=2")
	if err != nil || !strings.Contains(string(ok), `href="https://patrons.test/account?a=1&amp;b=2"`) {
		t.Errorf("HTML = %s, %v; want the URL escaped in the href", ok, err)
	}
	if _, isHTML := any(ok).(template.HTML); !isHTML {
		t.Error("HTML does not return template.HTML")
	}
}

func TestARequestsLanguageTravelsInItsContext(t *testing.T) {
	ctx := i18n.WithLanguage(context.Background(), "uk")
	if got := i18n.LanguageOf(ctx); got != "uk" {
		t.Errorf("LanguageOf = %q, want uk", got)
	}
	if got := i18n.LanguageOf(context.Background()); got != "" {
		t.Errorf("LanguageOf an empty context = %q, want none", got)
	}
}
