// Package mail owns how Patronage's email leaves the building: each message's
// embedded templates (their wording is in the catalogues of internal/i18n, in
// every language), and its delivery over SMTP, or into the log when no SMTP
// server is configured. It never decides who gets mail, when, or in which
// language; callers do. It never logs or returns the SMTP password.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"regexp"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one email, already rendered.
type Message struct {
	To      string
	Subject string
	Text    string // plain-text body
	HTML    string // HTML body
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// RefusedForGood reports whether err is the mail server refusing a
// message with a permanent reply (5xx): sending it again would be refused
// again. A server that cannot be reached, or answers 4xx, may take it
// later.
func RefusedForGood(err error) bool {
	var se *gomail.SendError
	return errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600
}

// WithoutAddress is err's text with the address to taken out, for an
// error kept where addresses must not stay (a job's error history, which
// an erasure does not reach): servers' replies name the recipient.
func WithoutAddress(err error, to string) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	if to != "" {
		text = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(to)).ReplaceAllString(text, "<recipient>")
	}
	return errors.New(text)
}

// sendTimeout bounds one delivery (connect, TLS, auth, data), so a stuck
// server cannot hold a request or a worker for long.
const sendTimeout = 10 * time.Second

// New returns an SMTP sender when smtpURL is set (see ParseSMTPURL), else a
// LogSender. from is the From address, e.g. "Patronage <patrons@example.org>";
// it is checked in both cases so a setting that works in development works in
// production.
func New(smtpURL, from string, logger *slog.Logger) (Sender, error) {
	sender, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("parse from address %q: %w", from, err)
	}
	if smtpURL == "" {
		if logger == nil {
			return nil, errors.New("new log sender: nil logger")
		}
		return &LogSender{Logger: logger, From: sender.String()}, nil
	}
	s, err := parseSMTPURL(smtpURL)
	if err != nil {
		return nil, fmt.Errorf("parse SMTP_URL: %w", err)
	}
	return &smtpSender{server: s, from: sender.String()}, nil
}

// LogSender sends nothing: it writes each message, text body included, to
// Logger at Info level. It exists so a developer on the embedded defaults can
// click a sign-in link; the body holds that link's secret, so production must
// set SMTP_URL.
type LogSender struct {
	Logger *slog.Logger
	From   string
}

// Send logs m.
func (s *LogSender) Send(ctx context.Context, m Message) error {
	s.Logger.LogAttrs(ctx, slog.LevelInfo, "mail not sent: SMTP_URL is not set; here it is",
		slog.String("from", s.From),
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("text", m.Text),
	)
	return nil
}

type smtpSender struct {
	server smtpServer
	from   string
}

// Send delivers m over one fresh connection. A client per message keeps
// concurrent sends independent; mail volume here is a few messages a minute,
// not a bulk stream.
func (s *smtpSender) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	msg, err := s.build(m)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	client, err := gomail.NewClient(s.server.dialHost(), s.options(ctx)...)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}

func (s *smtpSender) build(m Message) (*gomail.Msg, error) {
	if m.Text == "" && m.HTML == "" {
		return nil, errors.New("message has no body")
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return nil, fmt.Errorf("from address: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	switch {
	case m.HTML == "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	case m.Text == "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

func (s *smtpSender) options(ctx context.Context) []gomail.Option {
	// go-mail honours ctx only while dialling; after that its own timeout
	// governs, so that timeout must not outlast the caller's deadline.
	timeout := sendTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(deadline), time.Millisecond))
	}
	opts := []gomail.Option{
		gomail.WithPort(s.server.port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(&tls.Config{
			ServerName:         s.server.host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: s.server.skipVerify, // tls_skip_verify, for tests only
		}),
	}
	if s.server.implicitTLS {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.server.user != "" {
		// Auto-discovery offers PLAIN and LOGIN only over TLS, so a server
		// without STARTTLS gets an error, never the password in clear.
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.server.user),
			gomail.WithPassword(s.server.password),
		)
	}
	return opts
}

// dialHost is the host as go-mail joins it with the port: IPv6 literals need
// their brackets back.
func (s smtpServer) dialHost() string {
	if strings.Contains(s.host, ":") {
		return "[" + s.host + "]"
	}
	return s.host
}
