// Package mailtest is a real SMTP server on 127.0.0.1 for tests: it keeps
// every message it receives, so a test can read what Patronage sent over
// the wire, and it accepts one set of credentials, User and Password. It is
// imported only by tests.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The only credentials the server accepts, percent-encoded in an SMTP_URL
// as user:p%40ss%2Fword.
const (
	User     = "user"
	Password = "p@ss/word"
)

// Mode is how the server offers TLS.
type Mode int

const (
	PlainOnly   Mode = iota // no TLS at all; AUTH offered in the clear
	StartTLS                // STARTTLS offered, AUTH only after it
	ImplicitTLS             // TLS from the first byte
)

// Message is what the server saw of one delivered message.
type Message struct {
	From, User, Password string
	To                   []string
	TLS                  bool
	Data                 []byte
}

// Server is a running test SMTP server.
type Server struct {
	Addr string
	mu   sync.Mutex
	msgs []Message
	auth []string // "user:password" for every successful AUTH
}

// Start runs a server until the test ends. Its certificate is self-signed:
// clients need tls_skip_verify=true.
func Start(t testing.TB, mode Mode) *Server {
	t.Helper()
	srv := &Server{}
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
	case PlainOnly:
		// A server that offers AUTH PLAIN without TLS tempts the client to
		// send the password in the clear; it must not.
		s.AllowInsecureAuth = true
	case StartTLS:
		s.TLSConfig = selfSignedTLS(t)
	case ImplicitTLS:
		l = tls.NewListener(l, selfSignedTLS(t))
	}
	srv.Addr = l.Addr().String()
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

// Port is the port the server listens on.
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.Addr)
	return port
}

// Received is every message delivered so far, and every successful AUTH.
func (s *Server) Received() ([]Message, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs), slices.Clone(s.auth)
}

// Await waits up to ten seconds for the next message to `to` after the
// first skip of them, and returns it parsed.
func (s *Server) Await(t testing.TB, to string, skip int) Parsed {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		msgs, _ := s.Received()
		seen := 0
		for _, m := range msgs {
			if !slices.Contains(m.To, to) {
				continue
			}
			if seen == skip {
				return Parse(t, m.Data)
			}
			seen++
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("mail number %d to %s did not arrive within 10s", skip+1, to)
		}
	}
}

type session struct {
	srv            *Server
	conn           *smtp.Conn
	user, password string
	msg            Message
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != User || password != Password {
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
	s.msg = Message{From: from, User: s.user, Password: s.password}
	return nil
}

// Recipients the server refuses: for good (550, "no such user") and for
// now (451, "try again later"), each reply naming the address, as real
// servers' replies do.
const (
	RefusedForGood = "nobody@example.org"
	RefusedForNow  = "busy@example.org"
)

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch to {
	case RefusedForGood:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: no such user"}
	case RefusedForNow:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "<" + to + ">: try again later"}
	}
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.Data = b
	_, s.msg.TLS = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.msg)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.msg = Message{} }
func (s *session) Logout() error { return nil }

func selfSignedTLS(t testing.TB) *tls.Config {
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

// Parsed is a delivered message taken apart as a mail client would.
type Parsed struct {
	Header     netmail.Header
	Subject    string
	Text, HTML string
}

// Parse reads a multipart/alternative message as Patronage sends it.
func Parse(t testing.TB, data []byte) Parsed {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	p := Parsed{Header: m.Header, Subject: subject}
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
			p.Text = string(b)
		case "text/html":
			p.HTML = string(b)
		default:
			t.Errorf("unexpected part %q", partType)
		}
	}
	return p
}
