package mail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/mail/mailtest"
)

const from = "The Daily Example <patrons@example.org>"

func signInMessage(t *testing.T) (mail.Message, string) {
	t.Helper()
	tpl, err := mail.NewTemplates("The Daily Example", i18ntest.Catalog(t))
	if err != nil {
		t.Fatalf("NewTemplates: %v", err)
	}
	link := "https://news.example.org/sign-in?token=abc123"
	m, err := tpl.SignInLink("reader@example.net", link, 15*time.Minute)
	if err != nil {
		t.Fatalf("SignInLink: %v", err)
	}
	return m, link
}

func TestSMTPSenderDelivers(t *testing.T) {
	tests := []struct {
		name    string
		mode    mailtest.Mode
		url     func(port string) string
		wantTLS bool
		auth    bool
	}{
		{"STARTTLS with AUTH PLAIN", mailtest.StartTLS, func(p string) string {
			return "smtp://user:p%40ss%2Fword@127.0.0.1:" + p + "?tls_skip_verify=true"
		}, true, true},
		{"implicit TLS with AUTH PLAIN", mailtest.ImplicitTLS, func(p string) string {
			return "smtps://user:p%40ss%2Fword@127.0.0.1:" + p + "?tls_skip_verify=true"
		}, true, true},
		{"no STARTTLS offered, no credentials", mailtest.PlainOnly, func(p string) string {
			return "smtp://127.0.0.1:" + p
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.Start(t, tt.mode)
			sender, err := mail.New(tt.url(srv.Port()), from, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			m, link := signInMessage(t)
			if err := sender.Send(context.Background(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}

			msgs, auth := srv.Received()
			if len(msgs) != 1 {
				t.Fatalf("server received %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if got.TLS != tt.wantTLS {
				t.Errorf("message went over TLS = %v, want %v", got.TLS, tt.wantTLS)
			}
			if tt.auth {
				if len(auth) != 1 || auth[0] != "user:p@ss/word" || got.User != "user" {
					t.Errorf("server saw AUTH %q (session user %q), want one AUTH as user:p@ss/word", auth, got.User)
				}
			} else if len(auth) != 0 {
				t.Errorf("server saw AUTH %q, want none", auth)
			}
			if got.From != "patrons@example.org" {
				t.Errorf("envelope from = %q, want patrons@example.org", got.From)
			}
			if len(got.To) != 1 || got.To[0] != "reader@example.net" {
				t.Errorf("envelope recipients = %q, want [reader@example.net]", got.To)
			}

			p := mailtest.Parse(t, got.Data)
			if addrs, err := p.Header.AddressList("From"); err != nil || len(addrs) != 1 ||
				addrs[0].Name != "The Daily Example" || addrs[0].Address != "patrons@example.org" {
				t.Errorf("From = %q (%v), want %q", p.Header.Get("From"), err, from)
			}
			if to := p.Header.Get("To"); !strings.Contains(to, "reader@example.net") {
				t.Errorf("To = %q, want reader@example.net", to)
			}
			if p.Subject != m.Subject {
				t.Errorf("Subject = %q, want %q", p.Subject, m.Subject)
			}
			if p.Header.Get("Date") == "" || p.Header.Get("Message-Id") == "" {
				t.Errorf("Date %q and Message-Id %q should both be set", p.Header.Get("Date"), p.Header.Get("Message-Id"))
			}
			if !strings.Contains(p.Text, link) {
				t.Errorf("text part lacks the link %q:\n%s", link, p.Text)
			}
			if !strings.Contains(p.HTML, `href="`+link+`"`) {
				t.Errorf("HTML part lacks the link %q:\n%s", link, p.HTML)
			}
		})
	}
}

func TestSMTPSenderKeepsPasswordOffPlaintext(t *testing.T) {
	srv := mailtest.Start(t, mailtest.PlainOnly)
	sender, err := mail.New("smtp://user:p%40ss%2Fword@127.0.0.1:"+srv.Port(), from, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m, _ := signInMessage(t)
	err = sender.Send(context.Background(), m)
	if err == nil {
		t.Fatal("Send with credentials to a server without TLS succeeded, want an error")
	}
	if !strings.HasPrefix(err.Error(), "send mail: ") || strings.Contains(err.Error(), "p@ss") {
		t.Errorf("error = %q, want it to start with %q and not hold the password", err, "send mail: ")
	}
	if msgs, auth := srv.Received(); len(msgs) != 0 || len(auth) != 0 {
		t.Errorf("server received %d messages and AUTH %q, want nothing", len(msgs), auth)
	}
}

func TestSMTPSenderRefusesUnverifiedCertificate(t *testing.T) {
	srv := mailtest.Start(t, mailtest.StartTLS)
	sender, err := mail.New("smtp://user:p%40ss%2Fword@127.0.0.1:"+srv.Port(), from, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m, _ := signInMessage(t)
	if err := sender.Send(context.Background(), m); err == nil {
		t.Fatal("Send to a self-signed server without tls_skip_verify succeeded, want an error")
	}
	if msgs, auth := srv.Received(); len(msgs) != 0 || len(auth) != 0 {
		t.Errorf("server received %d messages and AUTH %q, want nothing", len(msgs), auth)
	}
}

func TestSMTPSenderStopsOnCancelledContext(t *testing.T) {
	srv := mailtest.Start(t, mailtest.PlainOnly)
	sender, err := mail.New("smtp://127.0.0.1:"+srv.Port(), from, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, _ := signInMessage(t)
	if err := sender.Send(ctx, m); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context = %v, want context.Canceled", err)
	}
	if msgs, _ := srv.Received(); len(msgs) != 0 {
		t.Errorf("server received %d messages, want none", len(msgs))
	}
}

func TestLogSenderLogsTheLink(t *testing.T) {
	var buf bytes.Buffer
	sender, err := mail.New("", from, slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m, link := signInMessage(t)
	if err := sender.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var entry struct {
		Level, Msg, To, Subject, Text string
	}
	if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
		t.Fatalf("log is not one JSON line: %v\n%s", err, buf.String())
	}
	want := "mail not sent: SMTP_URL is not set; here it is"
	if entry.Level != "INFO" || entry.Msg != want {
		t.Errorf("logged %s %q, want INFO %q", entry.Level, entry.Msg, want)
	}
	if entry.To != m.To || entry.Subject != m.Subject {
		t.Errorf("logged to %q subject %q, want %q and %q", entry.To, entry.Subject, m.To, m.Subject)
	}
	if !strings.Contains(entry.Text, link) {
		t.Errorf("logged text lacks the link %q:\n%s", link, entry.Text)
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	tests := []struct {
		smtpURL, from, want string
	}{
		{"", "not an address", `parse from address "not an address"`},
		{"smtp://mail.example.org", "", `parse from address ""`},
		{"http://mail.example.org", from, `parse SMTP_URL: unsupported scheme "http"`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q %q", tt.smtpURL, tt.from), func(t *testing.T) {
			_, err := mail.New(tt.smtpURL, tt.from, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// A mail server's refusal is told apart: for good (the address does not
// exist) or for now. Either way the error can be kept without the address
// the server's reply names.
func TestARefusalIsToldApartAndCanBeKeptWithoutTheAddress(t *testing.T) {
	srv := mailtest.Start(t, mailtest.PlainOnly)
	sender, err := mail.New("smtp://127.0.0.1:"+srv.Port(), from, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	msg := mail.Message{Subject: "Hello", Text: "Hello."}
	for _, tt := range []struct {
		to      string
		forGood bool
	}{{mailtest.RefusedForGood, true}, {mailtest.RefusedForNow, false}} {
		msg.To = tt.to
		err := sender.Send(context.Background(), msg)
		if err == nil {
			t.Fatalf("%s: the server's refusal was not reported", tt.to)
		}
		if got := mail.RefusedForGood(err); got != tt.forGood {
			t.Errorf("%s: RefusedForGood = %v, want %v (%v)", tt.to, got, tt.forGood, err)
		}
		if !strings.Contains(strings.ToLower(err.Error()), tt.to) {
			t.Fatalf("%s: the reply does not name the address, so nothing here is tested: %v", tt.to, err)
		}
		kept := mail.WithoutAddress(err, strings.ToUpper(tt.to))
		if strings.Contains(strings.ToLower(kept.Error()), tt.to) || !strings.Contains(kept.Error(), "<recipient>") {
			t.Errorf("%s: the error kept is %q", tt.to, kept)
		}
	}
	if mail.RefusedForGood(context.DeadlineExceeded) {
		t.Error("a timeout counts as a refusal for good")
	}
}
