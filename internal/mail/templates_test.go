package mail_test

import (
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/i18n"
	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/mail"
)

const hostile = `<script>alert(1)</script>`

func TestTemplatesRender(t *testing.T) {
	tpl, err := mail.NewTemplates("The Daily Example", i18ntest.Catalog(t))
	if err != nil {
		t.Fatalf("NewTemplates: %v", err)
	}
	endsAt := time.Date(2026, time.March, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		render func(name string) (mail.Message, error)
		named  bool // whether the mail greets the patron by name
		// wantBoth is text both parts must hold; wantLink is the link as the HTML writes it.
		wantSubject string
		wantBoth    []string
		wantLink    string
	}{
		{
			"sign-in link",
			func(string) (mail.Message, error) {
				return tpl.SignInLink("reader@example.net", "https://news.example.org/sign-in?token=abc&x=1", 15*time.Minute)
			},
			false,
			"Your sign-in link for The Daily Example",
			[]string{"works once", "15 minutes", "The Daily Example"},
			"https://news.example.org/sign-in?token=abc&amp;x=1",
		},
		{
			"welcome patron",
			func(name string) (mail.Message, error) {
				return tpl.WelcomePatron("reader@example.net", name, "Supporter", "https://news.example.org/account")
			},
			true,
			"Welcome, and thank you for supporting The Daily Example",
			[]string{"Supporter patron of The Daily Example"},
			"https://news.example.org/account",
		},
		{
			"payment failed",
			func(name string) (mail.Message, error) {
				return tpl.PaymentFailed("reader@example.net", name, 1500, "bhd", "https://news.example.org/account/payment")
			},
			true,
			"Your payment to The Daily Example did not go through",
			[]string{"BHD 1.500", "The Daily Example"},
			"https://news.example.org/account/payment",
		},
		{
			"trial ending",
			func(name string) (mail.Message, error) {
				return tpl.TrialEnding("reader@example.net", name, "Supporter", endsAt, "https://news.example.org/account")
			},
			true,
			"Your trial with The Daily Example ends on Monday 2 March 2026",
			[]string{"Supporter", "Monday 2 March 2026", "The Daily Example"},
			"https://news.example.org/account",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.render("Ada")
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if m.To != "reader@example.net" {
				t.Errorf("To = %q, want reader@example.net", m.To)
			}
			if m.Subject != tt.wantSubject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.wantSubject)
			}
			for _, want := range tt.wantBoth {
				if !strings.Contains(m.Text, want) {
					t.Errorf("text lacks %q:\n%s", want, m.Text)
				}
				if !strings.Contains(m.HTML, want) {
					t.Errorf("HTML lacks %q:\n%s", want, m.HTML)
				}
			}
			if !strings.Contains(m.HTML, `<a href="`+tt.wantLink+`"`) {
				t.Errorf("HTML lacks a link to %q:\n%s", tt.wantLink, m.HTML)
			}
			if textLink := strings.ReplaceAll(tt.wantLink, "&amp;", "&"); !strings.Contains(m.Text, textLink) {
				t.Errorf("text lacks %q:\n%s", textLink, m.Text)
			}
			if tt.named && (!strings.Contains(m.Text, "Hello Ada,") || !strings.Contains(m.HTML, "Hello Ada,")) {
				t.Errorf("mail does not greet Ada by name:\n%s\n%s", m.Text, m.HTML)
			}
		})
		if !tt.named {
			continue
		}
		t.Run(tt.name+" escapes a hostile name", func(t *testing.T) {
			m, err := tt.render(hostile)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if strings.Contains(m.HTML, "<script>") {
				t.Errorf("HTML holds the name unescaped:\n%s", m.HTML)
			}
			if !strings.Contains(m.HTML, "Hello &lt;script&gt;alert(1)&lt;/script&gt;,") {
				t.Errorf("HTML lacks the escaped name:\n%s", m.HTML)
			}
			if !strings.Contains(m.Text, "Hello "+hostile+",") {
				t.Errorf("text should show the name as written:\n%s", m.Text)
			}
		})
		t.Run(tt.name+" without a name", func(t *testing.T) {
			m, err := tt.render("  ")
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if !strings.HasPrefix(m.Text, "Hello,\n") || !strings.Contains(m.HTML, "<p>Hello,</p>") {
				t.Errorf("mail should greet a nameless patron with a plain Hello:\n%s\n%s", m.Text, m.HTML)
			}
		})
	}
}

func TestTemplatesEscapeNewsroomAndLinks(t *testing.T) {
	tpl, err := mail.NewTemplates(hostile, i18ntest.Catalog(t))
	if err != nil {
		t.Fatalf("NewTemplates: %v", err)
	}
	m, err := tpl.SignInLink("reader@example.net", "javascript:alert(1)", time.Hour)
	if err != nil {
		t.Fatalf("SignInLink: %v", err)
	}
	if strings.Contains(m.HTML, "<script>") {
		t.Errorf("HTML holds the newsroom name unescaped:\n%s", m.HTML)
	}
	if strings.Contains(m.HTML, `href="javascript:`) {
		t.Errorf("HTML links to a javascript: URL:\n%s", m.HTML)
	}
}

func TestSignInLinkSaysHowLongItLasts(t *testing.T) {
	tpl, err := mail.NewTemplates("The Daily Example", i18ntest.Catalog(t))
	if err != nil {
		t.Fatalf("NewTemplates: %v", err)
	}
	tests := []struct {
		expiresIn time.Duration
		want      string
	}{
		{15 * time.Minute, "for the next 15 minutes."},
		{time.Minute, "for the next 1 minute."},
		{90 * time.Second, "for the next 1 minute."}, // rounds down, never promising more
		{time.Hour, "for the next 1 hour."},
		{2 * time.Hour, "for the next 2 hours."},
		{90 * time.Minute, "for the next 90 minutes."},
		{30 * time.Second, "for the next 30 seconds."},
	}
	for _, tt := range tests {
		t.Run(tt.expiresIn.String(), func(t *testing.T) {
			m, err := tpl.SignInLink("reader@example.net", "https://news.example.org/s/abc", tt.expiresIn)
			if err != nil {
				t.Fatalf("SignInLink: %v", err)
			}
			if !strings.Contains(m.Text, tt.want) || !strings.Contains(m.HTML, tt.want) {
				t.Errorf("mail does not say %q:\n%s", tt.want, m.Text)
			}
		})
	}
}

func TestTemplatesRejectMissingInput(t *testing.T) {
	if _, err := mail.NewTemplates(" ", i18ntest.Catalog(t)); err == nil {
		t.Error("NewTemplates accepted an empty newsroom name")
	}
	tpl, err := mail.NewTemplates("The Daily Example", i18ntest.Catalog(t))
	if err != nil {
		t.Fatalf("NewTemplates: %v", err)
	}
	checks := []struct {
		name string
		err  error
	}{
		{"sign-in without link", second(tpl.SignInLink("a@example.net", "", time.Minute))},
		{"sign-in with zero expiry", second(tpl.SignInLink("a@example.net", "https://x.example/s", 0))},
		{"welcome without account URL", second(tpl.WelcomePatron("a@example.net", "Ada", "Supporter", ""))},
		{"payment failed without update URL", second(tpl.PaymentFailed("a@example.net", "Ada", 500, "EUR", ""))},
		{"trial ending without account URL", second(tpl.TrialEnding("a@example.net", "Ada", "Supporter", time.Now(), ""))},
	}
	for _, c := range checks {
		if c.err == nil {
			t.Errorf("%s: rendered, want an error", c.name)
		}
	}
}

func second(_ mail.Message, err error) error { return err }

// A mail to a member who reads Ukrainian is Ukrainian throughout: subject,
// text and HTML, dates and amounts as Ukrainian writes them.
func TestMailInTheMembersLanguage(t *testing.T) {
	tpl, err := mail.NewTemplates("Щоденний приклад", i18ntest.Catalog(t))
	if err != nil {
		t.Fatalf("NewTemplates: %v", err)
	}
	uk := tpl.In("uk")
	endsAt := time.Date(2026, time.March, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		render      func() (mail.Message, error)
		wantSubject string
		wantBoth    []string
	}{
		{"sign-in link", func() (mail.Message, error) {
			return uk.SignInLink("reader@example.net", "https://news.example.org/s/abc", 15*time.Minute)
		}, "Ваше посилання для входу — «Щоденний приклад»", []string{"Вітаємо!", "діятиме тільки 15 хвилин", "один раз"}},
		{"welcome patron", func() (mail.Message, error) {
			return uk.WelcomePatron("reader@example.net", "Олена", "Кава", "https://news.example.org/account")
		}, "Вітаємо й дякуємо за підтримку редакції «Щоденний приклад»", []string{"Вітаємо, Олена!", "рівень «Кава»"}},
		{"payment failed", func() (mail.Message, error) {
			return uk.PaymentFailed("reader@example.net", "Олена", 150000, "eur", "https://news.example.org/account")
		}, "Ваш платіж редакції «Щоденний приклад» не пройшов", []string{"1\u00a0500,00\u00a0EUR", "оновіть платіжні дані"}},
		{"trial ending", func() (mail.Message, error) {
			return uk.TrialEnding("reader@example.net", "", "Кава", endsAt, "https://news.example.org/account")
		}, "Ваш пробний період у редакції «Щоденний приклад» закінчується 2 березня 2026 р. (понеділок)", []string{"Вітаємо!", "2 березня 2026 р. (понеділок)"}},
		{"topic covered", func() (mail.Message, error) {
			return uk.TopicCovered("reader@example.net", "Олена", "Мости", "https://news.example.org/mosty")
		}, "Ви просили редакцію «Щоденний приклад» написати про «Мости» — ось матеріал", []string{"Матеріал уже вийшов"}},
		{"endpoint disabled", func() (mail.Message, error) {
			return uk.EndpointDisabled("admin@example.net", "whe_1", "https://hooks.example.org/in", "every attempt failed for 3 days")
		}, "Редакція «Щоденний приклад»: ендпоінт вебхуків вимкнено", []string{"Patronage вимкнув ендпоінт вебхуків", "whe_1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.render()
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if m.Subject != tt.wantSubject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.wantSubject)
			}
			for _, want := range tt.wantBoth {
				if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
					t.Errorf("text or HTML lacks %q:\n%s\n%s", want, m.Text, m.HTML)
				}
			}
			if !strings.Contains(m.HTML, `<html lang="uk">`) {
				t.Errorf("HTML is not marked Ukrainian:\n%s", m.HTML)
			}
			for _, english := range []string{"Hello", "Your ", "Thank you", "the link", "membership"} {
				if strings.Contains(m.Subject+m.Text+m.HTML, english) {
					t.Errorf("the Ukrainian mail holds English %q:\n%s\n%s", english, m.Text, m.HTML)
				}
			}
		})
	}
}

// A language without a catalogue, or none, mails in the newsroom's
// default language.
func TestMailWithoutALanguageIsInTheDefault(t *testing.T) {
	for _, tt := range []struct{ def, lang, want string }{
		{"en", "", "Your sign-in link for The Daily Example"},
		{"en", "de", "Your sign-in link for The Daily Example"},
		{"uk", "", "Ваше посилання для входу — «The Daily Example»"},
		{"uk", "de", "Ваше посилання для входу — «The Daily Example»"},
		{"uk", "en", "Your sign-in link for The Daily Example"},
	} {
		catalog, err := i18n.New(tt.def)
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := mail.NewTemplates("The Daily Example", catalog)
		if err != nil {
			t.Fatal(err)
		}
		m, err := tpl.In(tt.lang).SignInLink("reader@example.net", "https://news.example.org/s/abc", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != tt.want {
			t.Errorf("default %s, member's %q: subject %q, want %q", tt.def, tt.lang, m.Subject, tt.want)
		}
	}
}

func TestUkrainianSignInLinkSaysHowLongItLasts(t *testing.T) {
	tpl, err := mail.NewTemplates("The Daily Example", i18ntest.Catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[time.Duration]string{
		time.Minute: "тільки 1 хвилину.", 3 * time.Minute: "тільки 3 хвилини.", 15 * time.Minute: "тільки 15 хвилин.",
		21 * time.Minute: "тільки 21 хвилину.", 2 * time.Hour: "тільки 2 години.", 5 * time.Hour: "тільки 5 годин.", 30 * time.Second: "тільки 30 секунд.",
	} {
		m, err := tpl.In("uk").SignInLink("reader@example.net", "https://news.example.org/s/abc", d)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
			t.Errorf("%s: mail does not say %q:\n%s", d, want, m.Text)
		}
	}
}

// Every word of every mail is in the catalogues: the templates name
// message keys the catalogues have, and hold no wording of their own.
func TestMailTemplatesTakeEveryWordFromTheCatalogue(t *testing.T) {
	catalog := i18ntest.Catalog(t)
	tpl, err := mail.NewTemplates("The Daily Example", catalog)
	if err != nil {
		t.Fatal(err)
	}
	text, html := tpl.Trees()
	if len(text) < 12 || len(html) < 12 {
		t.Fatalf("%d text and %d HTML templates: want every message's", len(text), len(html))
	}
	i18ntest.NoWording(t, false, text...)
	i18ntest.NoWording(t, true, html...)
	keys := i18ntest.TemplateKeys(t, catalog, append(text, html...)...)
	for key := range i18ntest.SourceKeys(t, catalog, ".") {
		keys[key] = true
	}
	for _, key := range []string{"mail.sign_in.subject", "mail.welcome.account_html", "duration.minutes"} {
		if !keys[key] {
			t.Errorf("the mail never names %s: the walk over its templates and code missed it", key)
		}
	}
}
