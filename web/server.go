// Package web is Patronage's HTTP face: routes, middleware, the JSON error
// shape, and handlers that decode a request, call a domain service and
// encode the answer. No business rule lives here.
package web

import (
	"cmp"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/i18n"
	"github.com/patronage/patronage/internal/ratelimit"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/statustoken"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/metrics"
	"github.com/patronage/patronage/outgoing"
	"github.com/patronage/patronage/voting"
	"github.com/patronage/patronage/webhooks"
)

// Deps is everything the HTTP layer needs, built by cmd and passed in.
type Deps struct {
	Logger *slog.Logger
	DB     *sqldb.DB
	// ReadDB is the read replica the staff figures come from (nil: none);
	// readiness checks it too.
	ReadDB   *sqldb.DB
	Redis    *redisx.Redis
	Registry *prometheus.Registry
	Members  *members.Service
	Billing  *billing.Service
	Voting   *voting.Service // nil: the voting routes answer 503
	Metrics  *metrics.Service
	// MetricsReads reads the staff figures (from a read replica); nil:
	// Metrics. Exchange rates are always read and written through Metrics.
	MetricsReads *metrics.Service
	// ReportingCurrency is the currency staff totals are also converted
	// into ("" for none).
	ReportingCurrency string
	Intake            *webhooks.Intake  // nil: webhooks not configured
	Outgoing          *outgoing.Service // nil: the webhook-endpoint routes answer 503
	// StatusTokens signs readers' status tokens and publishes their keys
	// (nil: those routes answer 503).
	StatusTokens *statustoken.Keys
	// CORSAllowedOrigins are the newsroom's own sites, which may read a
	// signed-in reader's status with their cookie.
	CORSAllowedOrigins []string
	// EmbedAllowedOrigins may frame the embeddable boxes (/embed/…); none
	// when empty.
	EmbedAllowedOrigins []string
	// StripePagesOrigin is where Checkout and the billing portal are served
	// when not by Stripe (STRIPE_API_BASE: stripe-mock, tests); "" for Stripe's.
	StripePagesOrigin string
	WebhookSecrets    []string
	Access            AccessSource // nil until billing is wired: nobody has access
	Limiter           *ratelimit.Limiter
	BaseURL           *url.URL
	Newsroom          string
	// Catalog words pages in every language it has; its default language
	// is DEFAULT_LANGUAGE.
	Catalog        *i18n.Catalog
	CustomCSSURL   string
	CustomCSSPath  string // a stylesheet file served at /custom.css when CustomCSSURL is empty
	MaxBodyBytes   int64
	MetricsToken   string
	TrustedProxies []string

	SignInPerEmailPerHour int
	SignInPerIPPerHour    int
	CheckoutPerIPPerHour  int
	VotesPerMemberPerSec  int
}

type limits struct {
	signInPerEmail ratelimit.Rule
	signInPerIP    ratelimit.Rule
	checkoutPerIP  ratelimit.Rule
	votesPerMember ratelimit.Rule
}

// Server holds the routes and what handlers need.
//
// Handlers pass c.Request.Context(), never the *gin.Context itself, to
// services: Gin recycles its Context after the handler returns, while
// database/sql may still watch the context it was given.
type Server struct {
	logger       *slog.Logger
	db           *sqldb.DB
	readDB       *sqldb.DB
	redis        *redisx.Redis
	registry     *prometheus.Registry
	metrics      *httpMetrics
	maxBody      int64
	metricsToken string
	engine       *gin.Engine

	members        *members.Service
	billing        *billing.Service
	voting         *voting.Service
	revenue        *metrics.Service // the figures' reads
	rates          *metrics.Service // exchange rates, on the primary
	reporting      string           // lower case; "" for none
	intake         *webhooks.Intake
	outgoing       *outgoing.Service
	statusTokens   *statustoken.Keys
	corsOrigins    map[string]bool
	webhookSecrets []string
	access         AccessSource
	limiter        *ratelimit.Limiter
	limits         limits
	origin         string
	secureCookies  bool
	newsroom       string
	customCSS      string
	customCSSPath  string
	catalog        *i18n.Catalog
	languages      []languageOption                         // the account page's language menu
	pages          map[string]map[string]*template.Template // by language, then file
	embeds         map[string]map[string]*template.Template
	embedOrigins   []string
	stripePages    []string

	stopStreams sync.Once
	streamsDone chan struct{}
}

// New builds the server and its routes.
func New(d Deps) (*Server, error) {
	// Gin keeps its mode in a package variable; release mode only stops it
	// printing its debug banner.
	gin.SetMode(gin.ReleaseMode)
	s := &Server{
		logger:         d.Logger,
		db:             d.DB,
		readDB:         d.ReadDB,
		redis:          d.Redis,
		registry:       d.Registry,
		metrics:        newHTTPMetrics(d.Registry),
		maxBody:        d.MaxBodyBytes,
		metricsToken:   d.MetricsToken,
		members:        d.Members,
		billing:        d.Billing,
		voting:         d.Voting,
		revenue:        cmp.Or(d.MetricsReads, d.Metrics),
		rates:          d.Metrics,
		reporting:      strings.ToLower(d.ReportingCurrency),
		streamsDone:    make(chan struct{}),
		intake:         d.Intake,
		outgoing:       d.Outgoing,
		statusTokens:   d.StatusTokens,
		corsOrigins:    map[string]bool{},
		webhookSecrets: d.WebhookSecrets,
		access:         d.Access,
		limiter:        d.Limiter,
		limits: limits{
			signInPerEmail: ratelimit.PerHour("signin-email", d.SignInPerEmailPerHour),
			signInPerIP:    ratelimit.PerHour("signin-ip", d.SignInPerIPPerHour),
			checkoutPerIP:  ratelimit.PerHour("checkout-ip", d.CheckoutPerIPPerHour),
			votesPerMember: ratelimit.PerSecond("votes-member", max(d.VotesPerMemberPerSec, 1)),
		},
		origin:        d.BaseURL.Scheme + "://" + d.BaseURL.Host,
		secureCookies: d.BaseURL.Scheme == "https",
		newsroom:      d.Newsroom,
		customCSS:     d.CustomCSSURL,
		customCSSPath: d.CustomCSSPath,
		catalog:       d.Catalog,
	}
	if s.catalog == nil {
		return nil, fmt.Errorf("build server: no message catalogue")
	}
	pages, err := parsePages(s.catalog)
	if err != nil {
		return nil, fmt.Errorf("parse page templates: %w", err)
	}
	s.pages = pages
	for _, code := range s.catalog.Languages() {
		s.languages = append(s.languages, languageOption{Code: code, Name: s.catalog.In(code).T("language.name")})
	}
	if s.embeds, err = parseEmbeds(s.catalog); err != nil {
		return nil, fmt.Errorf("parse embed templates: %w", err)
	}
	if d.StripePagesOrigin != "" {
		s.stripePages = []string{d.StripePagesOrigin}
	}
	for _, o := range d.EmbedAllowedOrigins {
		s.embedOrigins = append(s.embedOrigins, strings.ToLower(o))
	}
	if s.customCSS == "" && s.customCSSPath != "" {
		s.customCSS = "/custom.css"
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(d.TrustedProxies); err != nil {
		return nil, err
	}
	e.Use(withRequestID, s.account, s.recoverPanics, s.securityHeaders, s.checkOrigin)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, http.StatusNotFound, "not_found", "There is nothing at this address.", nil)
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, http.StatusMethodNotAllowed, "method_not_allowed", "This address does not accept the "+c.Request.Method+" method.", nil)
	})
	s.engine = e
	for _, o := range d.CORSAllowedOrigins {
		s.corsOrigins[strings.ToLower(o)] = true
	}
	s.routes()
	return s, nil
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Routes lists every registered method and path, for checks against the
// API description.
func (s *Server) Routes() gin.RoutesInfo { return s.engine.Routes() }
