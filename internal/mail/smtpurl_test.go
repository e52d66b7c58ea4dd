package mail_test

import (
	"strings"
	"testing"

	"github.com/patronage/patronage/internal/mail"
)

func TestParseSMTPURLAccepts(t *testing.T) {
	for _, raw := range []string{
		"smtp://mail.example.org",
		"smtp://mail.example.org:25",
		"smtps://mail.example.org",
		"SMTPS://user:secret@mail.example.org:465",
		"smtp://user:p%40ss%2Fword@mail.example.org:587/",
		"smtp://user@mail.example.org",
		"smtp://user:p@ss@mail.example.org",
		"smtp://127.0.0.1:2525?tls_skip_verify=true",
		"smtps://[::1]:465?tls_skip_verify=false",
		"  smtp://mail.example.org  ",
	} {
		if err := mail.ParseSMTPURL(raw); err != nil {
			t.Errorf("ParseSMTPURL(%q) = %v, want nil", raw, err)
		}
	}
}

func TestParseSMTPURLRejects(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"", "missing scheme (want smtp:// or smtps://)"},
		{"mail.example.org:587", "missing scheme (want smtp:// or smtps://)"},
		{"http://mail.example.org", `unsupported scheme "http" (want smtp:// or smtps://)`},
		{"smtp://", "missing host"},
		{"smtp://user:secret@:587", "missing host"},
		{"smtp://mail.example.org:0", `port "0" is not a number from 1 to 65535`},
		{"smtp://mail.example.org:70000", `port "70000" is not a number from 1 to 65535`},
		{"smtp://user:secret@mail.example.org:port", "not a valid URL"},
		{"smtp://mail.example.org/inbox", "must not have a path"},
		{"smtp://:secret@mail.example.org", "password without a user"},
		{"smtp://mail.example.org?tls=true", `unknown parameter "tls"`},
		{"smtp://mail.example.org?tls_skip_verify=yes please", `tls_skip_verify="yes please" is not a boolean`},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			err := mail.ParseSMTPURL(tt.raw)
			if err == nil {
				t.Fatalf("ParseSMTPURL(%q) accepted it", tt.raw)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error = %q repeats the password", err)
			}
		})
	}
}
