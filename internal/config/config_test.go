package config_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/config"
)

func env(vars map[string]string) config.Lookup {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok && v != ""
	}
}

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatalf("Load with no environment: %v", err)
	}
	if !c.UsesEmbeddedDB() || !c.UsesEmbeddedRedis() {
		t.Errorf("with no DATABASE_URL or REDIS_URL the embedded services should be used")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DATA_DIR", c.DataDir, "./data"},
		{"HTTP_ADDR", c.HTTPAddr, ":8080"},
		{"BASE_URL", c.BaseURL.String(), "http://localhost:8080"},
		{"MIGRATE_ON_START", c.MigrateOnStart, true},
		{"MAX_BODY_BYTES", c.MaxBodyBytes, int64(1 << 20)},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 20 * time.Second},
		{"LOG_LEVEL", c.LogLevel, slog.LevelInfo},
		{"REDIS_KEY_PREFIX", c.RedisKeyPrefix, "patronage:"},
		{"DEFAULT_LANGUAGE", c.DefaultLanguage, "en"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s default = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"REDIS_URL", "nonsense", "REDIS_URL: missing scheme (want redis:// or rediss://)"},
		{"REDIS_URL", "http://localhost:6379", `REDIS_URL: unsupported scheme "http"`},
		{"DATABASE_URL", "mysql://x", `DATABASE_URL: unsupported scheme "mysql"`},
		{"DATABASE_URL", "localhost:5432", "DATABASE_URL: missing scheme"},
		{"MIGRATE_ON_START", "sometimes", `MIGRATE_ON_START: "sometimes" is not a boolean`},
		{"MAX_BODY_BYTES", "lots", `MAX_BODY_BYTES: "lots" is not a whole number`},
		{"MAX_BODY_BYTES", "10", `MAX_BODY_BYTES: "10" is not a whole number from 1024`},
		{"SHUTDOWN_TIMEOUT", "soon", `SHUTDOWN_TIMEOUT: "soon" is not a positive duration`},
		{"HTTP_ADDR", "8080", `HTTP_ADDR: "8080" is not a listen address`},
		{"BASE_URL", "example.org", `BASE_URL: "example.org" is not an absolute http:// or https:// URL`},
		{"BASE_URL", "https://example.org/patrons", "BASE_URL: \"https://example.org/patrons\" must be an origin only"},
		{"LOG_LEVEL", "loud", `LOG_LEVEL: "loud" is not a log level`},
		{"TRUSTED_PROXIES", "10.0.0.0/8,proxy", `TRUSTED_PROXIES: "proxy" is not an IP address or CIDR range`},
		{"CORS_ALLOWED_ORIGINS", "https://*.example.org", `CORS_ALLOWED_ORIGINS: "https://*.example.org" is not an origin`},
		{"CORS_ALLOWED_ORIGINS", "https://www.example.org/news", `is not an origin`},
		{"CORS_ALLOWED_ORIGINS", "http://www.example.org", `CORS_ALLOWED_ORIGINS: "http://www.example.org" is not https`},
		{"EMBED_ALLOWED_ORIGINS", "www.example.org", `EMBED_ALLOWED_ORIGINS: "www.example.org" is not an origin`},
		{"DEFAULT_LANGUAGE", "de", `DEFAULT_LANGUAGE: "de" has no message catalogue (there are: en, uk)`},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := config.Load(env(map[string]string{tt.name: tt.value}))
			if err == nil {
				t.Fatalf("Load accepted %s=%q", tt.name, tt.value)
			}
			if !config.IsError(err) {
				t.Errorf("error %v is not a configuration error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadReportsEveryBadVariable(t *testing.T) {
	_, err := config.Load(env(map[string]string{"REDIS_URL": "nonsense", "DATABASE_URL": "mysql://x"}))
	if err == nil {
		t.Fatal("Load accepted two bad variables")
	}
	for _, name := range []string{"REDIS_URL", "DATABASE_URL"} {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestLoadAcceptsRealisticProductionValues(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"DATABASE_URL":    "postgres://patronage:secret@db.internal:5432/patronage?sslmode=require",
		"REDIS_URL":       "rediss://:secret@cache.internal:6380/2",
		"BASE_URL":        "https://patrons.example.org",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
		"LOG_LEVEL":       "debug",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.UsesEmbeddedDB() || c.UsesEmbeddedRedis() {
		t.Error("configured services should replace the embedded ones")
	}
	if got := len(c.TrustedProxies); got != 2 {
		t.Errorf("TRUSTED_PROXIES parsed into %d entries, want 2", got)
	}
	if c.LogLevel != slog.LevelDebug {
		t.Errorf("LOG_LEVEL = %v, want debug", c.LogLevel)
	}
}

// Origins are kept as browsers send them in Origin, so they match: lower
// case, without a default port; http only for a loopback host.
func TestOriginsAreKeptAsBrowsersSendThem(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"CORS_ALLOWED_ORIGINS":  "https://WWW.Example.org:443, https://blog.example.org:8443/, http://localhost:3000, http://127.0.0.1",
		"EMBED_ALLOWED_ORIGINS": "https://www.example.org",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := "https://www.example.org https://blog.example.org:8443 http://localhost:3000 http://127.0.0.1"
	if got := strings.Join(c.CORSAllowedOrigins, " "); got != want {
		t.Errorf("CORS_ALLOWED_ORIGINS = %q, want %q", got, want)
	}
	if got := strings.Join(c.EmbedAllowedOrigins, " "); got != "https://www.example.org" {
		t.Errorf("EMBED_ALLOWED_ORIGINS = %q", got)
	}
}

func TestEnvFileSitsBeneathTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "patronage.env")
	if err := os.WriteFile(path, []byte("HTTP_ADDR=:9999\nDATA_DIR=/from/file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup, err := config.WithEnvFile(env(map[string]string{"ENV_FILE": path, "DATA_DIR": "/from/env"}))
	if err != nil {
		t.Fatalf("WithEnvFile: %v", err)
	}
	c, err := config.Load(lookup)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.HTTPAddr != ":9999" {
		t.Errorf("HTTP_ADDR = %q, want the file's :9999", c.HTTPAddr)
	}
	if c.DataDir != "/from/env" {
		t.Errorf("DATA_DIR = %q, want the environment's value to win", c.DataDir)
	}
}

func TestEnvFileNamedButMissingIsAnError(t *testing.T) {
	_, err := config.WithEnvFile(env(map[string]string{"ENV_FILE": filepath.Join(t.TempDir(), "absent.env")}))
	if err == nil || !strings.HasPrefix(err.Error(), "ENV_FILE: ") {
		t.Fatalf("err = %v, want an ENV_FILE configuration error", err)
	}
}

func TestLoadReadsEveryVariableOfEnvExample(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"STRIPE_SECRET_KEY":            "sk_test_123",
		"STRIPE_API_BASE":              "http://127.0.0.1:12111/",
		"STRIPE_ALLOW_PROMOTION_CODES": "true",
		"STRIPE_WEBHOOK_SECRET":        "whsec_new, whsec_old",
		"DONATION_BOUNDS":              "jpy:500-1000000,EUR:300-50000",
		"CUSTOM_CSS_URL":               "https://cdn.example.org/site.css",
		"SMTP_URL":                     "smtps://user:pass@mail.example.org",
		"NEWSROOM_NAME":                "The Daily Example",
		"DEFAULT_LANGUAGE":             "UK",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"STRIPE_SECRET_KEY", c.StripeSecretKey, "sk_test_123"},
		{"STRIPE_API_BASE", c.StripeAPIBase, "http://127.0.0.1:12111"},
		{"STRIPE_ALLOW_PROMOTION_CODES", c.StripeAllowPromotionCodes, true},
		{"STRIPE_WEBHOOK_SECRET", strings.Join(c.StripeWebhookSecrets, "|"), "whsec_new|whsec_old"},
		{"DONATION_BOUNDS JPY", c.DonationBounds["JPY"], config.MinMax{Min: 500, Max: 1000000}},
		{"DONATION_BOUNDS EUR", c.DonationBounds["EUR"], config.MinMax{Min: 300, Max: 50000}},
		{"CUSTOM_CSS_URL", c.CustomCSSURL, "https://cdn.example.org/site.css"},
		{"SMTP_URL", c.SMTPURL, "smtps://user:pass@mail.example.org"},
		{"NEWSROOM_NAME", c.NewsroomName, "The Daily Example"},
		{"DEFAULT_LANGUAGE", c.DefaultLanguage, "uk"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestEnvExampleListsExactlyTheVariablesLoadReads keeps .env.example true.
func TestEnvExampleListsExactlyTheVariablesLoadReads(t *testing.T) {
	raw, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if name, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			documented[strings.TrimSpace(name)] = true
		}
	}
	read := map[string]bool{}
	config.Load(func(name string) (string, bool) { read[name] = true; return "", false })
	for name := range read {
		if !documented[name] {
			t.Errorf("%s is read but not in .env.example", name)
		}
	}
	for name := range documented {
		if !read[name] {
			t.Errorf(".env.example lists %s, which Load never reads", name)
		}
	}
}

func TestLoadRejectsBadStripeValues(t *testing.T) {
	for name, value := range map[string]string{
		"STRIPE_SECRET_KEY":     "pk_live_publishable",
		"STRIPE_API_BASE":       "localhost:12111",
		"STRIPE_WEBHOOK_SECRET": "secret",
		"DONATION_BOUNDS":       "EUR:500",
		"CUSTOM_CSS_URL":        "http://insecure.example/site.css",
	} {
		if _, err := config.Load(env(map[string]string{name: value})); err == nil || !strings.Contains(err.Error(), name+":") {
			t.Errorf("%s=%q: err = %v, want a problem naming it", name, value, err)
		}
	}
}
