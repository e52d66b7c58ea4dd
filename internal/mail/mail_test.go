package mail_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/patronage/patronage/internal/mail"
)

const from = "The Daily Example <patrons@example.org>"

// received is what the test server saw of one delivered message.
type received struct {
	from, user, password string
	to                   []string
	tls                  bool
	data                 []byte
}

// smtpServer is a real SMTP server on 127.0.0.1 that keeps what it receives.
type smtpServer struct {
	addr string
	mu   sync.Mutex
	msgs []received
	auth []string // "user:password" for every successful AUTH
}

type serverMode int

const (
	plainOnly   serverMode = iota // no TLS at all; AUTH offered in the clear
	startTLS                      // STARTTLS offered, AUTH only after it
	implicitTLS                   // TLS from the first byte
)

func startServer(t *testing.T, mode serverMode) *smtpServer {
	t.Helper()
	srv := &smtpServer{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: srv, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	switch mode {
	case plainOnly:
		// A server that offers AUTH PLAIN without TLS tempts the client to
		// send the password in the clear; it must not.
		s.AllowInsecureAuth = true
	case startTLS:
		s.TLSConfig = selfSignedTLS(t)
	case implicitTLS:
		l = tls.NewListener(l, selfSignedTLS(t))
	}
	srv.addr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		// Close misses a listener that Serve has not registered yet, which
		// would leave Serve blocked in Accept; closing it here cannot miss.
		l.Close()
		if err := <-done; err != nil {
			t.Errorf("serve SMTP: %v", err)
		}
	})
	return srv
}

func (s *smtpServer) port() string {
	_, port, _ := net.SplitHostPort(s.addr)
	return port
}

func (s *smtpServer) received() ([]received, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...), append([]string(nil), s.auth...)
}

type session struct {
	srv            *smtpServer
	conn           *smtp.Conn
	user, password string
	msg            received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != "user" || password != "p@ss/word" {
			return errors.New("invalid username or password")
		}
		s.user, s.password = user, password
		s.srv.mu.Lock()
		s.srv.auth = append(s.srv.auth, user+":"+password)
		s.srv.mu.Unlock()
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.msg = received{from: from, user: s.user, password: s.password}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	_, s.msg.tls = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.msg)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.msg = received{} }
func (s *session) Logout() error { return nil }

func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// parsed is a delivered message taken apart as a mail client would.
type parsed struct {
	header     netmail.Header
	subject    string
	text, html string
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	p := parsed{header: m.Header, subject: subject}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("parse Content-Type: %v", err)
	}
	if mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, want multipart/alternative\n%s", mediaType, data)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		// NextPart has already undone quoted-printable, the encoding go-mail uses.
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatalf("read part body: %v", err)
		}
		partType, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch partType {
		case "text/plain":
			p.text = string(b)
		case "text/html":
			p.html = string(b)
		default:
			t.Errorf("unexpected part %q", partType)
		}
	}
	return p
}

func signInMessage(t *testing.T) (mail.Message, string) {
	t.Helper()
	tpl, err := mail.NewTemplates("The Daily Example")
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
		mode    serverMode
		url     func(port string) string
		wantTLS bool
		auth    bool
	}{
		{"STARTTLS with AUTH PLAIN", startTLS, func(p string) string {
			return "smtp://user:p%40ss%2Fword@127.0.0.1:" + p + "?tls_skip_verify=true"
		}, true, true},
		{"implicit TLS with AUTH PLAIN", implicitTLS, func(p string) string {
			return "smtps://user:p%40ss%2Fword@127.0.0.1:" + p + "?tls_skip_verify=true"
		}, true, true},
		{"no STARTTLS offered, no credentials", plainOnly, func(p string) string {
			return "smtp://127.0.0.1:" + p
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tt.mode)
			sender, err := mail.New(tt.url(srv.port()), from, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			m, link := signInMessage(t)
			if err := sender.Send(context.Background(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}

			msgs, auth := srv.received()
			if len(msgs) != 1 {
				t.Fatalf("server received %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if got.tls != tt.wantTLS {
				t.Errorf("message went over TLS = %v, want %v", got.tls, tt.wantTLS)
			}
			if tt.auth {
				if len(auth) != 1 || auth[0] != "user:p@ss/word" || got.user != "user" {
					t.Errorf("server saw AUTH %q (session user %q), want one AUTH as user:p@ss/word", auth, got.user)
				}
			} else if len(auth) != 0 {
				t.Errorf("server saw AUTH %q, want none", auth)
			}
			if got.from != "patrons@example.org" {
				t.Errorf("envelope from = %q, want patrons@example.org", got.from)
			}
			if len(got.to) != 1 || got.to[0] != "reader@example.net" {
				t.Errorf("envelope recipients = %q, want [reader@example.net]", got.to)
			}

			p := parse(t, got.data)
			if addrs, err := p.header.AddressList("From"); err != nil || len(addrs) != 1 ||
				addrs[0].Name != "The Daily Example" || addrs[0].Address != "patrons@example.org" {
				t.Errorf("From = %q (%v), want %q", p.header.Get("From"), err, from)
			}
			if to := p.header.Get("To"); !strings.Contains(to, "reader@example.net") {
				t.Errorf("To = %q, want reader@example.net", to)
			}
			if p.subject != m.Subject {
				t.Errorf("Subject = %q, want %q", p.subject, m.Subject)
			}
			if p.header.Get("Date") == "" || p.header.Get("Message-Id") == "" {
				t.Errorf("Date %q and Message-Id %q should both be set", p.header.Get("Date"), p.header.Get("Message-Id"))
			}
			if !strings.Contains(p.text, link) {
				t.Errorf("text part lacks the link %q:\n%s", link, p.text)
			}
			if !strings.Contains(p.html, `href="`+link+`"`) {
				t.Errorf("HTML part lacks the link %q:\n%s", link, p.html)
			}
		})
	}
}

func TestSMTPSenderKeepsPasswordOffPlaintext(t *testing.T) {
	srv := startServer(t, plainOnly)
	sender, err := mail.New("smtp://user:p%40ss%2Fword@127.0.0.1:"+srv.port(), from, slog.New(slog.DiscardHandler))
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
	if msgs, auth := srv.received(); len(msgs) != 0 || len(auth) != 0 {
		t.Errorf("server received %d messages and AUTH %q, want nothing", len(msgs), auth)
	}
}

func TestSMTPSenderRefusesUnverifiedCertificate(t *testing.T) {
	srv := startServer(t, startTLS)
	sender, err := mail.New("smtp://user:p%40ss%2Fword@127.0.0.1:"+srv.port(), from, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m, _ := signInMessage(t)
	if err := sender.Send(context.Background(), m); err == nil {
		t.Fatal("Send to a self-signed server without tls_skip_verify succeeded, want an error")
	}
	if msgs, auth := srv.received(); len(msgs) != 0 || len(auth) != 0 {
		t.Errorf("server received %d messages and AUTH %q, want nothing", len(msgs), auth)
	}
}

func TestSMTPSenderStopsOnCancelledContext(t *testing.T) {
	srv := startServer(t, plainOnly)
	sender, err := mail.New("smtp://127.0.0.1:"+srv.port(), from, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, _ := signInMessage(t)
	if err := sender.Send(ctx, m); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context = %v, want context.Canceled", err)
	}
	if msgs, _ := srv.received(); len(msgs) != 0 {
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
