package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/config"
	"github.com/patronage/patronage/internal/i18n"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/mail"
	"github.com/patronage/patronage/internal/ratelimit"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/statustoken"
	"github.com/patronage/patronage/internal/stripeapi"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/metrics"
	"github.com/patronage/patronage/outgoing"
	"github.com/patronage/patronage/voting"
	"github.com/patronage/patronage/web"
	"github.com/patronage/patronage/webhooks"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := parseFlags("serve", "Run the HTTP server until SIGINT or SIGTERM, then finish in-flight requests and exit.", args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	ctx, stop := notifyShutdown(ctx)
	defer stop()
	logger := newLogger(stderr, cfg.LogLevel)
	if cfg.SMTPURL == "" {
		logger.Warn("SMTP_URL is not set: mail is written to this log instead of sent, sign-in links included; set SMTP_URL in production")
	}

	db, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()

	rdb, err := redisx.Open(ctx, cfg.RedisURL, cfg.RedisKeyPrefix, logger)
	if err != nil {
		return err
	}
	defer rdb.Close()
	unshare, err := rdb.ShareWith(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unshare()

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db.DB, "patronage"),
		rdb.Collector(),
	)

	catalog, templates, err := newWording(cfg)
	if err != nil {
		return err
	}

	// Outgoing webhooks: events are stored with the changes that make
	// them; the queue, once started, delivers them. An endpoint disabled
	// after days of failures is mailed to the admins.
	var memberService *members.Service
	hooks := outgoing.NewService(outgoing.Deps{DB: db, Logger: logger, AllowPrivateTargets: cfg.AllowPrivateWebhookTarget,
		OnDisabled: func(ctx context.Context, e outgoing.Endpoint) {
			mailEndpointDisabled(ctx, memberService, e, logger)
		}})
	memberService, err = newMembers(cfg, db, rdb, logger, hooks, catalog, templates)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		memberService.Close(ctx)
	}()

	billingService, err := newBilling(cfg, db, memberService, logger, hooks, templates)
	if err != nil {
		return err
	}
	cssPath := filepath.Join(cfg.DataDir, "custom.css")
	if _, err := os.Stat(cssPath); err != nil || cfg.CustomCSSURL != "" {
		cssPath = ""
	}

	votingService := voting.NewService(voting.Deps{DB: db, Redis: rdb, Eligibility: voters{billing: billingService}, Logger: logger,
		OnCovered: mailCoveredTopic(memberService), Events: hooks})
	withdrawOnLostAccess(billingService, votingService, logger)
	// Redis may have lost tallies while no server ran (a restart of the
	// embedded one always does): rebuild open rounds' from the ballots.
	go func() {
		if n, err := votingService.EnsureTallies(ctx); err != nil {
			logger.Error("rebuild tallies at start", "err", err)
		} else if n > 0 {
			logger.Info("rebuilt tallies from the ballots", "rounds", n)
		}
	}()

	// The staff figures: computed once on a database that had billing data
	// before they were kept, then folded into day sums every few seconds.
	figures := metrics.NewService(db)
	if err := figures.EnsureBuilt(ctx); err != nil {
		return fmt.Errorf("staff figures: %w", err)
	}
	go figures.FoldEvery(ctx, 2*time.Second, func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) })
	// Folded on the primary; read, with a read replica configured, from it.
	readFigures, readDB := figures, (*sqldb.DB)(nil)
	if cfg.DatabaseReadURL != "" {
		if readDB, err = sqldb.Open(ctx, sqldb.Options{URL: cfg.DatabaseReadURL, MaxOpenConns: cfg.DBMaxOpenConns}); err != nil {
			return fmt.Errorf("open DATABASE_READ_URL: %w", err)
		}
		defer readDB.Close()
		readFigures = metrics.NewService(readDB)
	}

	// The queue: Stripe events and billing's scheduled jobs, worked here.
	intake, queue, err := startQueue(ctx, cfg, db, memberService, billingService, votingService, hooks, logger)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := queue.Stop(ctx); err != nil {
			logger.Warn("job queue stopped before its jobs finished; they run again at next start", "err", err)
		}
	}()

	// Readers' status tokens for the newsroom's site, signed with a key
	// kept in the database (made at the first start).
	statusTokens := statustoken.New(db, cfg.BaseURL.String(), nil)
	if err := statusTokens.Ensure(ctx); err != nil {
		return err
	}

	srv, err := web.New(web.Deps{
		Logger:                logger,
		DB:                    db,
		Redis:                 rdb,
		Registry:              registry,
		Members:               memberService,
		Billing:               billingService,
		Voting:                votingService,
		Metrics:               figures,
		MetricsReads:          readFigures,
		ReadDB:                readDB,
		ReportingCurrency:     cfg.ReportingCurrency,
		Intake:                intake,
		Outgoing:              hooks,
		StatusTokens:          statusTokens,
		CORSAllowedOrigins:    cfg.CORSAllowedOrigins,
		EmbedAllowedOrigins:   cfg.EmbedAllowedOrigins,
		StripePagesOrigin:     originOf(cfg.StripeAPIBase),
		Access:                billingService,
		WebhookSecrets:        cfg.StripeWebhookSecrets,
		CustomCSSURL:          cfg.CustomCSSURL,
		CustomCSSPath:         cssPath,
		Limiter:               ratelimit.New(rdb),
		BaseURL:               cfg.BaseURL,
		Newsroom:              cfg.NewsroomName,
		Catalog:               catalog,
		MaxBodyBytes:          cfg.MaxBodyBytes,
		MetricsToken:          cfg.MetricsToken,
		TrustedProxies:        cfg.TrustedProxies,
		SignInPerEmailPerHour: cfg.SignInPerEmailPerHour,
		SignInPerIPPerHour:    cfg.SignInPerIPPerHour,
		CheckoutPerIPPerHour:  cfg.CheckoutPerIPPerHour,
		VotesPerMemberPerSec:  cfg.VotesPerMemberPerSecond,
	})
	if err != nil {
		return fmt.Errorf("build HTTP server: %w", err)
	}
	// Open client connections, each held by a goroutine of its own: what
	// go_goroutines counts beside the work (the soak subtracts it).
	conns := prometheus.NewGauge(prometheus.GaugeOpts{Name: "patronage_http_connections", Help: "Open HTTP client connections."})
	registry.MustRegister(conns)
	return serveHTTP(ctx, cfg, logger, srv.Handler(), connGauge(conns), srv.StopStreams)
}

// startQueue starts the job queue's workers: Stripe event processing,
// billing's scheduled jobs and patron mail, voting's round closing, other
// queued mail, and deliveries to the newsroom's endpoints.
func startQueue(ctx context.Context, cfg config.Config, db *sqldb.DB, m *members.Service, b *billing.Service, v *voting.Service, o *outgoing.Service,
	logger *slog.Logger) (*webhooks.Intake, *jobs.Client, error) {
	workers := river.NewWorkers()
	m.AddJobs(workers)
	river.AddWorker(workers, webhooks.NewWorker(db, webhooks.BillingHandlers(b), logger, nil))
	periodic := append(b.AddJobs(workers, cfg.StripeSyncInterval, cfg.JobRescueAfter), v.AddJobs(workers)...)
	periodic = append(periodic, o.AddWorker(workers)...)
	queue, err := jobs.New(db, workers, logger, jobs.Options{MaxAttempts: cfg.WebhookMaxAttempts, Workers: cfg.WebhookWorkers, RescueAfter: cfg.JobRescueAfter,
		Periodic: periodic, Queues: map[string]int{outgoing.Queue: outgoingWorkers, jobs.MailQueue: mailWorkers}})
	if err != nil {
		return nil, nil, err
	}
	if err := queue.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, nil, fmt.Errorf("start job queue: %w", err)
	}
	o.Attach(queue)
	if err := o.QueuePending(ctx); err != nil {
		return nil, nil, err
	}
	intake := webhooks.NewIntake(db, queue, nil)
	b.SetEventSink(intake.BillingSink())
	return intake, queue, nil
}

// connGauge counts connections as they open and close (a connection taken
// over by its handler counts as closed).
func connGauge(g prometheus.Gauge) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			g.Inc()
		case http.StateClosed, http.StateHijacked:
			g.Dec()
		}
	}
}

// originOf is scheme://host of a URL ("" for "" or a bad one).
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// mailWorkers is how many queued mails are handed to the mail server at
// once in a process.
const mailWorkers = 4

// outgoingWorkers is how many deliveries to the newsroom's endpoints run
// at once in a process (at most outgoing's per-endpoint share each).
const outgoingWorkers = 20

// newOutgoing is the outgoing webhooks for a command: events it causes
// are stored and queued, for the server's queue to deliver.
func newOutgoing(cfg config.Config, db *sqldb.DB, logger *slog.Logger) (*outgoing.Service, error) {
	o := outgoing.NewService(outgoing.Deps{DB: db, Logger: logger, AllowPrivateTargets: cfg.AllowPrivateWebhookTarget})
	q, err := jobs.New(db, nil, logger, jobs.Options{})
	if err != nil {
		return nil, err
	}
	o.Attach(q)
	return o, nil
}

// mailEndpointDisabled tells every admin, each in their own language,
// that an endpoint was disabled.
func mailEndpointDisabled(ctx context.Context, m *members.Service, e outgoing.Endpoint, logger *slog.Logger) {
	logger.WarnContext(ctx, "webhook endpoint disabled", "endpoint", e.ID, "reason", e.DisabledReason)
	if err := m.MailEndpointDisabled(ctx, e.ID, e.URL, e.DisabledReason); err != nil {
		logger.ErrorContext(ctx, "mail admins about a disabled webhook endpoint", "err", err)
	}
}

// newMembers builds the members service with its mailer.
func newMembers(cfg config.Config, db *sqldb.DB, rdb *redisx.Redis, logger *slog.Logger, events members.EventSink, catalog *i18n.Catalog, templates *mail.Templates) (*members.Service, error) {
	mailer, err := mail.New(cfg.SMTPURL, cfg.MailFrom, logger)
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	m := members.NewService(members.Deps{DB: db, Redis: rdb, Mailer: mailer, Templates: templates, BaseURL: cfg.BaseURL, Logger: logger, Events: events,
		Languages: catalog.Languages()})
	// Mail that waits in the queue is sent by a server's queue, whichever
	// process queued it.
	q, err := jobs.New(db, nil, logger, jobs.Options{})
	if err != nil {
		return nil, err
	}
	m.AttachQueue(q)
	return m, nil
}

// newWording reads the message catalogues, DEFAULT_LANGUAGE the default,
// and parses the mail templates in every language of them: once for a
// process, shared by the services that speak.
func newWording(cfg config.Config) (*i18n.Catalog, *mail.Templates, error) {
	catalog, err := i18n.New(cfg.DefaultLanguage)
	if err != nil {
		return nil, nil, fmt.Errorf("message catalogues: %w", err)
	}
	templates, err := mail.NewTemplates(cfg.NewsroomName, catalog)
	if err != nil {
		return nil, nil, fmt.Errorf("mail templates: %w", err)
	}
	return catalog, templates, nil
}

// newBilling builds the billing service; without STRIPE_SECRET_KEY it runs
// with payments not configured.
func newBilling(cfg config.Config, db *sqldb.DB, m *members.Service, logger *slog.Logger, events members.EventSink, templates *mail.Templates) (*billing.Service, error) {
	var sc *client.API
	if cfg.StripeSecretKey != "" {
		var err error
		sc, err = stripeapi.New(stripeapi.Options{SecretKey: cfg.StripeSecretKey, APIBase: cfg.StripeAPIBase, Logger: logger})
		if err != nil {
			return nil, err
		}
	} else {
		logger.Warn("STRIPE_SECRET_KEY is not set: payments are not configured, checkout answers 503")
	}
	bounds := map[string]billing.Bounds{}
	for cur, b := range cfg.DonationBounds {
		bounds[cur] = billing.Bounds{Min: b.Min, Max: b.Max}
	}
	if cfg.StripeWebhookMode == string(billing.ModeFetch) && sc == nil && len(cfg.StripeWebhookSecrets) > 0 {
		logger.Warn("STRIPE_WEBHOOK_MODE=fetch without STRIPE_SECRET_KEY: events are stored but fail until the key is set")
	}
	b := billing.NewService(billing.Deps{DB: db, Stripe: sc, Members: m, BaseURL: cfg.BaseURL, Logger: logger, Templates: templates,
		WebhookMode: billing.WebhookMode(cfg.StripeWebhookMode), PastDueGrace: cfg.PastDueGrace, Events: events,
		Options: billing.Options{AllowPromotionCodes: cfg.StripeAllowPromotionCodes, DonationBounds: bounds,
			PortalConfiguration: cfg.StripePortalConfiguration}})
	// Patron mail is queued with the change that calls for it; a server's
	// queue sends it, whichever process decided it.
	q, err := jobs.New(db, nil, logger, jobs.Options{})
	if err != nil {
		return nil, err
	}
	b.AttachQueue(q)
	return b, nil
}

// openDatabase opens the database and brings its schema to this binary's
// version, or checks it is there when MIGRATE_ON_START=false.
func openDatabase(ctx context.Context, cfg config.Config, logger *slog.Logger) (*sqldb.DB, error) {
	db, err := sqldb.Open(ctx, sqldb.Options{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, MaxOpenConns: cfg.DBMaxOpenConns})
	if err != nil {
		return nil, err
	}
	if cfg.MigrateOnStart {
		n, err := db.Migrate(ctx, sqldb.Migrations())
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("migrate %s: %w", db.Where, err)
		}
		if n > 0 {
			logger.Info("applied database migrations", "count", n, "database", db.Where)
		}
		if _, err := jobs.Migrate(ctx, db); err != nil {
			db.Close()
			return nil, err
		}
	} else if err := db.CheckSchema(ctx, sqldb.Migrations()); err != nil {
		db.Close()
		return nil, err
	}
	logger.Info("database ready", "database", db.Where)
	return db, nil
}

// serveHTTP serves until ctx ends, then stops accepting connections and
// lets in-flight requests finish within SHUTDOWN_TIMEOUT.
func serveHTTP(ctx context.Context, cfg config.Config, logger *slog.Logger, h http.Handler, connState func(net.Conn, http.ConnState),
	onShutdown ...func()) error {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	server := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnState:         connState,
	}
	for _, f := range onShutdown {
		server.RegisterOnShutdown(f) // live streams end instead of holding the shutdown
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL.String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	if err := server.Shutdown(shutdownCtx); err != nil {
		server.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: requests still running after SHUTDOWN_TIMEOUT (%s) were cut off", cfg.ShutdownTimeout)
		}
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped", "drained_in", time.Since(start).String())
	return nil
}
