package mail

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// smtpServer is a parsed SMTP_URL.
type smtpServer struct {
	host        string
	port        int
	implicitTLS bool // smtps://: TLS from the first byte; otherwise STARTTLS when offered
	user        string
	password    string
	skipVerify  bool
}

const smtpURLHint = "(want smtp://user:password@host:587 or smtps://user:password@host:465)"

// ParseSMTPURL checks an SMTP_URL:
//
//	smtp://user:password@host:port   STARTTLS when the server offers it; port defaults to 587
//	smtps://user:password@host:port  implicit TLS; port defaults to 465
//
// User and password are optional (no authentication when absent) and must be
// percent-encoded if they hold reserved characters such as '/', '?' or '#'.
// Credentials are sent only over TLS. The one query parameter,
// tls_skip_verify=true, accepts any server certificate: it exists for tests
// against a self-signed server and must not be used in production.
//
// Errors describe the problem without repeating the password.
func ParseSMTPURL(raw string) error {
	_, err := parseSMTPURL(raw)
	return err
}

func parseSMTPURL(raw string) (smtpServer, error) {
	raw = strings.TrimSpace(raw)
	scheme, _, found := strings.Cut(raw, "://")
	if !found {
		return smtpServer{}, errors.New("missing scheme (want smtp:// or smtps://)")
	}
	var s smtpServer
	switch strings.ToLower(scheme) {
	case "smtp":
		s.port = 587
	case "smtps":
		s.implicitTLS = true
		s.port = 465
	default:
		return smtpServer{}, fmt.Errorf("unsupported scheme %q (want smtp:// or smtps://)", scheme)
	}
	// url.Parse's error quotes the whole URL, password included.
	u, err := url.Parse(raw)
	if err != nil {
		return smtpServer{}, errors.New("not a valid URL " + smtpURLHint)
	}
	if s.host = u.Hostname(); s.host == "" {
		return smtpServer{}, errors.New("missing host " + smtpURLHint)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return smtpServer{}, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		s.port = n
	}
	if (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return smtpServer{}, errors.New("must not have a path or fragment " + smtpURLHint)
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
		if s.user == "" && s.password != "" {
			return smtpServer{}, errors.New("password without a user " + smtpURLHint)
		}
	}
	for name, values := range u.Query() {
		if name != "tls_skip_verify" {
			return smtpServer{}, fmt.Errorf("unknown parameter %q (the only one is tls_skip_verify, for tests)", name)
		}
		v := values[len(values)-1]
		b, err := strconv.ParseBool(v)
		if err != nil {
			return smtpServer{}, fmt.Errorf("tls_skip_verify=%q is not a boolean (want true or false)", v)
		}
		s.skipVerify = b
	}
	return s, nil
}
