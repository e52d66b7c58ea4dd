package mail_test

import (
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/mail"
)

const hostile = `<script>alert(1)</script>`

func TestTemplatesRender(t *testing.T) {
	tpl, err := mail.NewTemplates("The Daily Example")
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
	tpl, err := mail.NewTemplates(hostile)
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
	tpl, err := mail.NewTemplates("The Daily Example")
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
	if _, err := mail.NewTemplates(" "); err == nil {
		t.Error("NewTemplates accepted an empty newsroom name")
	}
	tpl, err := mail.NewTemplates("The Daily Example")
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
