// Package config turns the environment into Patronage's typed configuration,
// once, at start-up. It reads nothing else and holds no global state: run
// builds a Config and passes it down.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/patronage/patronage/internal/i18n"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/money"
)

// Config is every setting Patronage reads. .env.example lists each variable
// with its default and meaning; keep the two in step.
type Config struct {
	EnvFile string // ENV_FILE: optional dotenv file read under the real environment

	BaseURL        *url.URL // BASE_URL: the public origin of this installation
	HTTPAddr       string   // HTTP_ADDR: listen address
	TrustedProxies []string // TRUSTED_PROXIES: proxies whose X-Forwarded-For is believed
	// CORSAllowedOrigins (CORS_ALLOWED_ORIGINS) are the newsroom's own
	// sites, whose pages may read a signed-in reader's status with their
	// cookie (GET /api/v1/me, /api/v1/me/token).
	CORSAllowedOrigins []string
	// EmbedAllowedOrigins (EMBED_ALLOWED_ORIGINS) are the sites whose pages
	// may show the embeddable boxes (/embed/join, /embed/vote) in a frame.
	EmbedAllowedOrigins []string

	DatabaseURL string // DATABASE_URL: postgres://…; empty means embedded SQLite
	// DatabaseReadURL (DATABASE_READ_URL) is a PostgreSQL read replica the
	// staff figures are read from; empty reads them from DATABASE_URL.
	DatabaseReadURL string
	DataDir         string // DATA_DIR: where the embedded SQLite file lives
	DBMaxOpenConns  int    // DB_MAX_OPEN_CONNS
	MigrateOnStart  bool   // MIGRATE_ON_START

	RedisURL       string // REDIS_URL: redis:// or rediss://; empty means in-process Redis
	RedisKeyPrefix string // REDIS_KEY_PREFIX: prepended to every key Patronage writes

	MaxBodyBytes      int64         // MAX_BODY_BYTES
	ReadHeaderTimeout time.Duration // HTTP_READ_HEADER_TIMEOUT
	ReadTimeout       time.Duration // HTTP_READ_TIMEOUT
	WriteTimeout      time.Duration // HTTP_WRITE_TIMEOUT
	IdleTimeout       time.Duration // HTTP_IDLE_TIMEOUT
	ShutdownTimeout   time.Duration // SHUTDOWN_TIMEOUT

	NewsroomName string // NEWSROOM_NAME: shown in pages and mail
	SMTPURL      string // SMTP_URL: smtp:// (STARTTLS when offered) or smtps://; empty logs mail instead
	MailFrom     string // MAIL_FROM

	DefaultLanguage string // DEFAULT_LANGUAGE: pages' language when the browser asks for none we have, and mail's for a member who chose none

	SignInPerEmailPerHour   int    // RATE_LIMIT_SIGNIN_PER_EMAIL
	SignInPerIPPerHour      int    // RATE_LIMIT_SIGNIN_PER_IP
	VotesPerMemberPerSecond int    // RATE_LIMIT_VOTES_PER_SECOND: casts and withdrawals a member may make a second
	ReportingCurrency       string // REPORTING_CURRENCY: staff totals converted into it (upper case); "" = none
	CheckoutPerIPPerHour    int    // RATE_LIMIT_CHECKOUT_PER_IP

	StripeSecretKey           string            // STRIPE_SECRET_KEY: empty = payments not configured
	StripeAPIBase             string            // STRIPE_API_BASE: overrides https://api.stripe.com (stripe-mock, tests)
	StripeAllowPromotionCodes bool              // STRIPE_ALLOW_PROMOTION_CODES
	StripePortalConfiguration string            // STRIPE_PORTAL_CONFIGURATION: the billing portal configuration (bpc_…) patrons get; "" = the account's default
	StripeWebhookSecrets      []string          // STRIPE_WEBHOOK_SECRET: comma-separated, for rotation
	StripeWebhookMode         string            // STRIPE_WEBHOOK_MODE: fetch (re-fetch objects) or payload (trust the event)
	WebhookMaxAttempts        int               // WEBHOOK_MAX_ATTEMPTS: tries before an event is dead-lettered
	WebhookWorkers            int               // WEBHOOK_WORKERS: events processed at once
	JobRescueAfter            time.Duration     // JOB_RESCUE_AFTER: a job running this long is taken for lost and rerun
	PastDueGrace              time.Duration     // PAST_DUE_GRACE: access kept after a failed payment
	StripeSyncInterval        time.Duration     // STRIPE_SYNC_INTERVAL: how often reconciliation runs; 0 = never
	AllowPrivateWebhookTarget bool              // ALLOW_PRIVATE_WEBHOOK_TARGETS: outgoing webhooks may reach loopback and private networks
	DonationBounds            map[string]MinMax // DONATION_BOUNDS: per-currency gift limits in minor units
	CustomCSSURL              string            // CUSTOM_CSS_URL: the newsroom's stylesheet

	LogLevel     slog.Level // LOG_LEVEL
	MetricsToken string     // METRICS_TOKEN: when set, /metrics wants "Authorization: Bearer <token>"
}

// UsesEmbeddedDB reports whether the embedded SQLite database is in use.
func (c Config) UsesEmbeddedDB() bool { return c.DatabaseURL == "" }

// UsesEmbeddedRedis reports whether the in-process Redis is in use.
func (c Config) UsesEmbeddedRedis() bool { return c.RedisURL == "" }

// Problem is one variable with a bad value.
type Problem struct {
	Var  string
	What string
}

// Error lists every bad variable found, so an operator fixes them in one go.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Var + ": " + p.What
	}
	return strings.Join(lines, "\n")
}

// IsError reports whether err is a configuration error (exit code 2).
func IsError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Lookup returns the value of a variable and whether it is set.
type Lookup func(name string) (string, bool)

// FromGetenv adapts a getenv function; an empty value counts as unset.
func FromGetenv(getenv func(string) string) Lookup {
	return func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	}
}

// WithEnvFile layers the dotenv file named by ENV_FILE (default ".env")
// beneath env: a variable set in the real environment wins. A missing
// default file is fine; a missing file that ENV_FILE names is an error.
func WithEnvFile(env Lookup) (Lookup, error) {
	path, named := env("ENV_FILE")
	if !named {
		path = ".env"
	}
	values, err := godotenv.Read(path)
	if err != nil {
		if !named && errors.Is(err, os.ErrNotExist) {
			return env, nil
		}
		return nil, &Error{Problems: []Problem{{"ENV_FILE", fmt.Sprintf("cannot read %q: %v", path, unwrapPathError(err))}}}
	}
	return func(name string) (string, bool) {
		if v, ok := env(name); ok {
			return v, true
		}
		v, ok := values[name]
		return v, ok && v != ""
	}, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Load parses every variable and reports all bad values together.
func Load(env Lookup) (Config, error) {
	p := parser{env: env}
	c := Config{
		EnvFile:                   p.str("ENV_FILE", ".env"),
		BaseURL:                   p.baseURL("BASE_URL", "http://localhost:8080"),
		HTTPAddr:                  p.addr("HTTP_ADDR", ":8080"),
		TrustedProxies:            p.list("TRUSTED_PROXIES"),
		CORSAllowedOrigins:        p.origins("CORS_ALLOWED_ORIGINS"),
		EmbedAllowedOrigins:       p.origins("EMBED_ALLOWED_ORIGINS"),
		DatabaseURL:               p.databaseURL("DATABASE_URL"),
		DatabaseReadURL:           p.databaseURL("DATABASE_READ_URL"),
		DataDir:                   p.str("DATA_DIR", "./data"),
		DBMaxOpenConns:            p.integer("DB_MAX_OPEN_CONNS", 20, 1, 1000),
		MigrateOnStart:            p.boolean("MIGRATE_ON_START", true),
		RedisURL:                  p.redisURL("REDIS_URL"),
		RedisKeyPrefix:            p.str("REDIS_KEY_PREFIX", "patronage:"),
		MaxBodyBytes:              int64(p.integer("MAX_BODY_BYTES", 1<<20, 1024, 1<<30)),
		ReadHeaderTimeout:         p.duration("HTTP_READ_HEADER_TIMEOUT", 5*time.Second),
		ReadTimeout:               p.duration("HTTP_READ_TIMEOUT", 30*time.Second),
		WriteTimeout:              p.duration("HTTP_WRITE_TIMEOUT", 30*time.Second),
		IdleTimeout:               p.duration("HTTP_IDLE_TIMEOUT", 120*time.Second),
		ShutdownTimeout:           p.duration("SHUTDOWN_TIMEOUT", 20*time.Second),
		NewsroomName:              p.str("NEWSROOM_NAME", "Patronage"),
		DefaultLanguage:           p.language("DEFAULT_LANGUAGE", "en"),
		SMTPURL:                   p.smtpURL("SMTP_URL"),
		MailFrom:                  p.mailFrom("MAIL_FROM", "Patronage <patronage@localhost>"),
		SignInPerEmailPerHour:     p.integer("RATE_LIMIT_SIGNIN_PER_EMAIL", 5, 1, 10000),
		SignInPerIPPerHour:        p.integer("RATE_LIMIT_SIGNIN_PER_IP", 30, 1, 100000),
		CheckoutPerIPPerHour:      p.integer("RATE_LIMIT_CHECKOUT_PER_IP", 60, 1, 100000),
		VotesPerMemberPerSecond:   p.integer("RATE_LIMIT_VOTES_PER_SECOND", 10, 1, 10000),
		StripeSecretKey:           p.stripeKey("STRIPE_SECRET_KEY"),
		StripeAPIBase:             p.httpURL("STRIPE_API_BASE"),
		StripeAllowPromotionCodes: p.boolean("STRIPE_ALLOW_PROMOTION_CODES", false),
		StripePortalConfiguration: p.prefixed("STRIPE_PORTAL_CONFIGURATION", "bpc_", "a billing portal configuration id (bpc_…, printed by `patronage stripe setup-portal`)"),
		StripeWebhookSecrets:      p.webhookSecrets("STRIPE_WEBHOOK_SECRET"),
		StripeWebhookMode:         p.oneOf("STRIPE_WEBHOOK_MODE", "fetch", "fetch", "payload"),
		WebhookMaxAttempts:        p.integer("WEBHOOK_MAX_ATTEMPTS", 10, 1, 100),
		WebhookWorkers:            p.integer("WEBHOOK_WORKERS", 10, 1, 1000),
		JobRescueAfter:            p.duration("JOB_RESCUE_AFTER", 10*time.Minute),
		PastDueGrace:              p.days("PAST_DUE_GRACE", 7*24*time.Hour, false),
		StripeSyncInterval:        p.days("STRIPE_SYNC_INTERVAL", 24*time.Hour, true),
		AllowPrivateWebhookTarget: p.boolean("ALLOW_PRIVATE_WEBHOOK_TARGETS", false),
		DonationBounds:            p.bounds("DONATION_BOUNDS"),
		CustomCSSURL:              p.cssURL("CUSTOM_CSS_URL"),
		LogLevel:                  p.logLevel("LOG_LEVEL", slog.LevelInfo),
		MetricsToken:              p.str("METRICS_TOKEN", ""),
		ReportingCurrency:         p.currency("REPORTING_CURRENCY"),
	}
	if c.DatabaseReadURL != "" && c.DatabaseURL == "" {
		p.fail("DATABASE_READ_URL", "needs DATABASE_URL: a read replica is of PostgreSQL, not of the embedded database")
	}
	for _, proxy := range c.TrustedProxies {
		if net.ParseIP(proxy) == nil {
			if _, _, err := net.ParseCIDR(proxy); err != nil {
				p.fail("TRUSTED_PROXIES", "%q is not an IP address or CIDR range", proxy)
			}
		}
	}
	if len(p.problems) > 0 {
		return Config{}, &Error{Problems: p.problems}
	}
	return c, nil
}

type parser struct {
	env      Lookup
	problems []Problem
}

// currency is an optional ISO 4217 code Stripe accepts, upper case.
func (p *parser) currency(name string) string {
	v := p.str(name, "")
	if v == "" {
		return ""
	}
	c, err := money.Normalize(v)
	if err != nil {
		p.fail(name, "%s", err)
		return ""
	}
	return c
}

// language is a language code with a message catalogue.
func (p *parser) language(name, def string) string {
	v := p.str(name, def)
	for _, code := range i18n.Languages() {
		if strings.EqualFold(v, code) {
			return code
		}
	}
	p.fail(name, "%q has no message catalogue (there are: %s)", v, strings.Join(i18n.Languages(), ", "))
	return def
}

func (p *parser) fail(name, format string, args ...any) {
	p.problems = append(p.problems, Problem{Var: name, What: fmt.Sprintf(format, args...)})
}

func (p *parser) str(name, def string) string {
	if v, ok := p.env(name); ok {
		return strings.TrimSpace(v)
	}
	return def
}

func (p *parser) list(name string) []string {
	v, ok := p.env(name)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// origins is a comma-separated list of web origins (scheme://host[:port]),
// each as a browser sends it in Origin: lower case, without a default
// port. Only https, but for loopback hosts (a newsroom's development
// site); no wildcards.
func (p *parser) origins(name string) []string {
	var out []string
	for _, o := range p.list(name) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" ||
			u.User != nil || strings.Contains(u.Host, "*") {
			p.fail(name, "%q is not an origin: want scheme://host[:port], such as https://www.example.org (no wildcards, no path)", o)
			continue
		}
		host := strings.ToLower(u.Hostname())
		if u.Scheme == "http" && host != "localhost" && host != "127.0.0.1" && host != "::1" {
			p.fail(name, "%q is not https: a page anyone on the way could change must not read readers' status", o)
			continue
		}
		port := u.Port()
		if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
			port = ""
		}
		origin := u.Scheme + "://" + host
		if strings.Contains(host, ":") {
			origin = u.Scheme + "://[" + host + "]"
		}
		if port != "" {
			origin += ":" + port
		}
		out = append(out, origin)
	}
	return out
}

func (p *parser) integer(name string, def, min, max int) int {
	v, ok := p.env(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min || n > max {
		p.fail(name, "%q is not a whole number from %d to %d", v, min, max)
		return def
	}
	return n
}

func (p *parser) boolean(name string, def bool) bool {
	v, ok := p.env(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		p.fail(name, "%q is not a boolean (want true or false)", v)
		return def
	}
	return b
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v, ok := p.env(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		p.fail(name, "%q is not a positive duration (want e.g. 30s or 2m)", v)
		return def
	}
	return d
}

// days is a duration that may also be written in whole days ("7d"); with
// zeroOK, "0" or "off" turn the thing off.
func (p *parser) days(name string, def time.Duration, zeroOK bool) time.Duration {
	v, ok := p.env(name)
	if !ok {
		return def
	}
	t := strings.ToLower(strings.TrimSpace(v))
	if zeroOK && (t == "0" || t == "off") {
		return 0
	}
	if n, found := strings.CutSuffix(t, "d"); found {
		if days, err := strconv.Atoi(n); err == nil && days > 0 && days <= 3650 {
			return time.Duration(days) * 24 * time.Hour
		}
	} else if d, err := time.ParseDuration(t); err == nil && d > 0 {
		return d
	}
	want := "a positive duration (e.g. 7d, 36h or 90m)"
	if zeroOK {
		want += ", or off"
	}
	p.fail(name, "%q is not %s", v, want)
	return def
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v, ok := p.env(name)
	if !ok {
		return def
	}
	t := strings.ToLower(strings.TrimSpace(v))
	for _, a := range allowed {
		if t == a {
			return t
		}
	}
	p.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

func (p *parser) logLevel(name string, def slog.Level) slog.Level {
	v, ok := p.env(name)
	if !ok {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
		p.fail(name, "%q is not a log level (want debug, info, warn or error)", v)
		return def
	}
	return l
}

func (p *parser) addr(name, def string) string {
	v := p.str(name, def)
	if _, port, err := net.SplitHostPort(v); err != nil {
		p.fail(name, "%q is not a listen address (want host:port or :port)", v)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.fail(name, "%q has no valid port (want host:port or :port)", v)
	}
	return v
}

func (p *parser) baseURL(name, def string) *url.URL {
	v := p.str(name, def)
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, "%q is not an absolute http:// or https:// URL", v)
		u, _ = url.Parse(def)
		return u
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		p.fail(name, "%q must be an origin only, without a path, query or fragment", v)
	}
	u.Path = ""
	return u
}

func (p *parser) databaseURL(name string) string {
	return p.serviceURL(name, "postgres", "postgresql", "postgres://user:password@host:5432/dbname", ", or leave unset for embedded SQLite")
}

// MinMax is an inclusive range of amounts in minor units.
type MinMax struct{ Min, Max int64 }

func (p *parser) stripeKey(name string) string {
	v := p.str(name, "")
	if v != "" && !strings.HasPrefix(v, "sk_") && !strings.HasPrefix(v, "rk_") {
		p.fail(name, "is not a Stripe secret or restricted key (want sk_… or rk_…)")
	}
	return v
}

// prefixed reads an optional Stripe object id, which must start with prefix.
func (p *parser) prefixed(name, prefix, want string) string {
	v := p.str(name, "")
	if v != "" && !strings.HasPrefix(v, prefix) {
		p.fail(name, "%q is not %s", v, want)
	}
	return v
}

func (p *parser) webhookSecrets(name string) []string {
	secrets := p.list(name)
	for _, s := range secrets {
		if !strings.HasPrefix(s, "whsec_") {
			p.fail(name, "holds a value that is not a webhook signing secret (want whsec_…, comma-separated)")
			break
		}
	}
	return secrets
}

func (p *parser) httpURL(name string) string {
	v := p.str(name, "")
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, "%q is not an absolute http:// or https:// URL", v)
	}
	return strings.TrimRight(v, "/")
}

func (p *parser) cssURL(name string) string {
	v := p.str(name, "")
	if v == "" || strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") {
		return v
	}
	if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Host == "" {
		p.fail(name, "%q is not an https:// URL or a path on this site", v)
	}
	return v
}

// bounds parses "JPY:100-1000000,EUR:300-500000".
func (p *parser) bounds(name string) map[string]MinMax {
	out := map[string]MinMax{}
	for _, item := range p.list(name) {
		code, rng, ok := strings.Cut(item, ":")
		lo, hi, ok2 := strings.Cut(rng, "-")
		min, err1 := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
		max, err2 := strconv.ParseInt(strings.TrimSpace(hi), 10, 64)
		currency, err3 := money.Normalize(code)
		if !ok || !ok2 || err1 != nil || err2 != nil || err3 != nil || min <= 0 || max < min {
			p.fail(name, "%q is not CURRENCY:MIN-MAX in minor units (e.g. EUR:100-1000000)", item)
			continue
		}
		out[currency] = MinMax{Min: min, Max: max}
	}
	return out
}

func (p *parser) smtpURL(name string) string {
	v, ok := p.env(name)
	if !ok {
		return ""
	}
	v = strings.TrimSpace(v)
	if err := mail.ParseSMTPURL(v); err != nil {
		p.fail(name, "%s", strings.TrimPrefix(err.Error(), "parse SMTP_URL: "))
	}
	return v
}

func (p *parser) mailFrom(name, def string) string {
	v := p.str(name, def)
	if _, err := netmail.ParseAddress(v); err != nil {
		p.fail(name, "%q is not an email address (want e.g. Newsroom <patrons@example.org>)", v)
	}
	return v
}

func (p *parser) redisURL(name string) string {
	return p.serviceURL(name, "redis", "rediss", "redis://host:6379/0", "")
}

// serviceURL checks a connection URL: one of two schemes, then a host.
// An unset variable is "" (the embedded service).
func (p *parser) serviceURL(name, scheme1, scheme2, example, orElse string) string {
	v, ok := p.env(name)
	if !ok {
		return ""
	}
	v = strings.TrimSpace(v)
	want := fmt.Sprintf("want %s:// or %s://%s", scheme1, scheme2, orElse)
	scheme, _, found := strings.Cut(v, "://")
	switch {
	case !found:
		p.fail(name, "missing scheme (%s)", want)
	case scheme != scheme1 && scheme != scheme2:
		p.fail(name, "unsupported scheme %q (%s)", scheme, want)
	default:
		if u, err := url.Parse(v); err != nil || u.Host == "" {
			p.fail(name, "not a valid URL (want %s)", example)
		}
	}
	return v
}
