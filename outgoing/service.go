// Package outgoing tells the newsroom's own systems — its CMS, its
// newsletter tool — what happens in Patronage: a member joins, a patron's
// payment fails, a round closes. Staff register endpoints; each event is
// stored in the transaction that makes it happen, then delivered from the
// durable job queue to every endpoint that asked for it, signed the way
// Stripe signs, at least once, retried with backoff for three days. An
// endpoint that fails for three days is disabled and the admins are told.
// Every attempt is kept and can be read, and any delivery redelivered.
package outgoing

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/members"
)

// The events an endpoint may ask for (docs/outgoing-webhooks.md).
const (
	MemberCreated        = "member.created"
	MemberDeleted        = "member.deleted"
	MembershipActivated  = "membership.activated"
	MembershipChanged    = "membership.changed"
	MembershipPastDue    = "membership.past_due"
	MembershipEnded      = "membership.ended"
	DonationReceived     = "donation.received"
	RoundOpened          = "round.opened"
	RoundClosed          = "round.closed"
	TopicCovered         = "topic.covered"
	allEvents            = "*"
	maxDescription       = 500
	previousSecretLasts  = 24 * time.Hour
	defaultRetryFor      = 72 * time.Hour
	defaultRetryBase     = time.Minute
	defaultRetryCap      = 6 * time.Hour
	defaultTimeout       = 10 * time.Second
	defaultPerEndpoint   = 2
	excerptBytes         = 1024
	maxDeliveriesListed  = 100
	defaultDeliveriesCap = 20
)

// EventTypes is every event type, in the order the docs list them.
var EventTypes = []string{MemberCreated, MemberDeleted, MembershipActivated, MembershipChanged, MembershipPastDue, MembershipEnded,
	DonationReceived, RoundOpened, RoundClosed, TopicCovered}

// Endpoint is a URL of the newsroom's that hears events.
type Endpoint struct {
	ID             string
	URL            string
	Description    string
	Events         []string // event types, or ["*"] for all
	DisabledAt     *time.Time
	DisabledReason string
	FailingSince   *time.Time // the first failed attempt since the last success
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Deps is what the service needs.
type Deps struct {
	DB     *sqldb.DB
	Logger *slog.Logger
	// AllowPrivateTargets lets endpoints be on loopback, link-local and
	// private networks (ALLOW_PRIVATE_WEBHOOK_TARGETS): for a receiver on
	// the same machine or network, and for tests.
	AllowPrivateTargets bool
	// OnDisabled hears of an endpoint disabled after failing for RetryFor;
	// the server mails the admins. It runs after the change is committed.
	OnDisabled func(ctx context.Context, e Endpoint)
	Now        func() time.Time // defaults to the real clock
	// Retries: the first after RetryBase, doubling up to RetryCap between
	// attempts, for RetryFor after the first attempt (defaults 1 minute,
	// 6 hours, 72 hours). Timeout bounds one attempt (default 10 s).
	RetryBase, RetryCap, RetryFor, Timeout time.Duration
	// PerEndpoint is how many deliveries to one endpoint run at once in
	// this process (default 2): a slow endpoint holds no more workers than
	// that, so the others' deliveries go on.
	PerEndpoint int
}

// Service keeps the endpoints and delivers the events.
type Service struct {
	db           *sqldb.DB
	logger       *slog.Logger
	allowPrivate bool
	onDisabled   func(ctx context.Context, e Endpoint)
	now          func() time.Time
	retryBase    time.Duration
	retryCap     time.Duration
	retryFor     time.Duration
	client       *http.Client
	queue        atomic.Pointer[jobs.Client]

	perEndpoint int
	mu          sync.Mutex
	inFlight    map[string]int
}

// NewService builds the service. Deliveries wait in the database until
// Attach gives it the queue.
func NewService(d Deps) *Service {
	s := &Service{db: d.DB, logger: d.Logger, allowPrivate: d.AllowPrivateTargets, onDisabled: d.OnDisabled, now: d.Now,
		retryBase: cmp.Or(d.RetryBase, defaultRetryBase), retryCap: cmp.Or(d.RetryCap, defaultRetryCap), retryFor: cmp.Or(d.RetryFor, defaultRetryFor),
		perEndpoint: d.PerEndpoint, inFlight: map[string]int{}}
	if s.now == nil {
		s.now = sqldb.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.perEndpoint <= 0 {
		s.perEndpoint = defaultPerEndpoint
	}
	s.client = newHTTPClient(cmp.Or(d.Timeout, defaultTimeout), d.AllowPrivateTargets)
	return s
}

// EndpointInput is what staff give to register or change an endpoint.
type EndpointInput struct {
	URL         *string
	Events      *[]string
	Description *string
	Disabled    *bool
}

// validate checks the fields given, normalising events.
func (s *Service) validate(ctx context.Context, in *EndpointInput, creating bool) error {
	bad := map[string]string{}
	if in.URL == nil {
		if creating {
			bad["url"] = "is required"
		}
	} else if why := checkURL(ctx, strings.TrimSpace(*in.URL), s.allowPrivate); why != "" {
		bad["url"] = why
	} else {
		u := strings.TrimSpace(*in.URL)
		in.URL = &u
	}
	if in.Events == nil {
		if creating {
			bad["events"] = "is required: a list of event types, or [\"*\"] for all"
		}
	} else if events, why := normalizeEvents(*in.Events); why != "" {
		bad["events"] = why
	} else {
		in.Events = &events
	}
	if in.Description != nil {
		d := strings.TrimSpace(*in.Description)
		if len(d) > maxDescription {
			bad["description"] = fmt.Sprintf("must be at most %d characters", maxDescription)
		}
		in.Description = &d
	}
	if len(bad) > 0 {
		return errs.InvalidFields(bad)
	}
	return nil
}

func normalizeEvents(list []string) ([]string, string) {
	if len(list) == 0 {
		return nil, "must name at least one event type, or \"*\" for all"
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range list {
		e = strings.TrimSpace(e)
		if e == allEvents {
			if len(list) > 1 {
				return nil, "\"*\" stands alone: it already means every event type"
			}
			return []string{allEvents}, ""
		}
		if !slices.Contains(EventTypes, e) {
			return nil, fmt.Sprintf("%q is not an event type; the types are %s", e, strings.Join(EventTypes, ", "))
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out, ""
}

// newSecret is a signing secret, prefixed like Stripe's so it is
// recognised in a config file.
func newSecret() string { return "whsec_" + ids.Secret() }

// CreateEndpoint registers an endpoint and returns it with its signing
// secret, which is shown this once.
func (s *Service) CreateEndpoint(ctx context.Context, actor members.Actor, in EndpointInput) (Endpoint, string, error) {
	if err := s.validate(ctx, &in, true); err != nil {
		return Endpoint{}, "", err
	}
	now := s.now()
	e := Endpoint{ID: ids.New("we"), URL: *in.URL, Events: *in.Events, CreatedAt: now, UpdatedAt: now}
	if in.Description != nil {
		e.Description = *in.Description
	}
	if in.Disabled != nil && *in.Disabled {
		e.DisabledAt, e.DisabledReason = &now, "disabled by staff"
	}
	secret := newSecret()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (id, url, description, events, secret, disabled_at, disabled_reason, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`, e.ID, e.URL, e.Description, strings.Join(e.Events, " "), secret, nullTime(e.DisabledAt),
			nullString(e.DisabledReason), now)
		if err != nil {
			return fmt.Errorf("store webhook endpoint: %w", err)
		}
		return audit(ctx, tx, actor, "webhook_endpoint.create", e.ID, nil, e, now)
	})
	if err != nil {
		return Endpoint{}, "", err
	}
	return e, secret, nil
}

// UpdateEndpoint changes what is given. Enabling a disabled endpoint
// forgets its failures.
func (s *Service) UpdateEndpoint(ctx context.Context, actor members.Actor, id string, in EndpointInput) (Endpoint, error) {
	if err := s.validate(ctx, &in, false); err != nil {
		return Endpoint{}, err
	}
	var out Endpoint
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		before, err := s.endpoint(ctx, tx, id, true)
		if err != nil {
			return err
		}
		e, now := before, s.now()
		if in.URL != nil {
			e.URL = *in.URL
		}
		if in.Events != nil {
			e.Events = *in.Events
		}
		if in.Description != nil {
			e.Description = *in.Description
		}
		if in.Disabled != nil {
			switch {
			case *in.Disabled && e.DisabledAt == nil:
				e.DisabledAt, e.DisabledReason = &now, "disabled by staff"
			case !*in.Disabled:
				e.DisabledAt, e.DisabledReason, e.FailingSince = nil, "", nil
			}
		}
		e.UpdatedAt = now
		_, err = tx.ExecContext(ctx, `UPDATE webhook_endpoints SET url = $2, description = $3, events = $4, disabled_at = $5, disabled_reason = $6,
			failing_since = $7, updated_at = $8 WHERE id = $1`, id, e.URL, e.Description, strings.Join(e.Events, " "), nullTime(e.DisabledAt),
			nullString(e.DisabledReason), nullTime(e.FailingSince), now)
		if err != nil {
			return fmt.Errorf("update webhook endpoint: %w", err)
		}
		out = e
		return audit(ctx, tx, actor, "webhook_endpoint.update", id, before, e, now)
	})
	return out, err
}

// DeleteEndpoint removes an endpoint with its deliveries; deliveries on
// their way are dropped.
func (s *Service) DeleteEndpoint(ctx context.Context, actor members.Actor, id string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		before, err := s.endpoint(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)`, id); err != nil {
			return fmt.Errorf("delete webhook attempts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE endpoint_id = $1`, id); err != nil {
			return fmt.Errorf("delete webhook deliveries: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete webhook endpoint: %w", err)
		}
		return audit(ctx, tx, actor, "webhook_endpoint.delete", id, before, nil, s.now())
	})
}

// RotateSecret gives an endpoint a new signing secret, returned this once.
// The old one goes on signing beside it for a day, so the receiver can
// switch without refusing a delivery.
func (s *Service) RotateSecret(ctx context.Context, actor members.Actor, id string) (string, time.Time, error) {
	secret := newSecret()
	now := s.now()
	expires := now.Add(previousSecretLasts)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.endpoint(ctx, tx, id, true); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET previous_secret = secret, previous_expires_at = $2, secret = $3, updated_at = $4
			WHERE id = $1`, id, expires, secret, now); err != nil {
			return fmt.Errorf("rotate webhook secret: %w", err)
		}
		return audit(ctx, tx, actor, "webhook_endpoint.rotate_secret", id, nil, map[string]string{"previous_expires_at": expires.Format(time.RFC3339)}, now)
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return secret, expires, nil
}

const endpointColumns = `id, url, description, events, disabled_at, disabled_reason, failing_since, created_at, updated_at`

func scanEndpoint(row interface{ Scan(...any) error }) (Endpoint, error) {
	var e Endpoint
	var events string
	var disabled, failing sql.NullTime
	var reason sql.NullString
	if err := row.Scan(&e.ID, &e.URL, &e.Description, &events, &disabled, &reason, &failing, &e.CreatedAt, &e.UpdatedAt); err != nil {
		return Endpoint{}, err
	}
	e.Events = strings.Fields(events)
	e.DisabledAt, e.DisabledReason, e.FailingSince = timePtr(disabled), reason.String, timePtr(failing)
	return e, nil
}

func (s *Service) endpoint(ctx context.Context, q sqldb.Queryer, id string, lock bool) (Endpoint, error) {
	query := `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE id = $1`
	if lock {
		query += s.db.Dialect.ForUpdate()
	}
	e, err := scanEndpoint(q.QueryRowContext(ctx, query, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Endpoint{}, errs.WithCode(errs.NotFound, "webhook_endpoint_not_found", "No webhook endpoint has id %q.", id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("read webhook endpoint: %w", err)
	}
	return e, nil
}

// Endpoint is one endpoint.
func (s *Service) Endpoint(ctx context.Context, id string) (Endpoint, error) {
	return s.endpoint(ctx, s.db, id, false)
}

// Endpoints lists every endpoint, oldest first.
func (s *Service) Endpoints(ctx context.Context) ([]Endpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	defer rows.Close()
	out := []Endpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhook endpoints: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// audit records a change of an endpoint. All staff read the audit log,
// and an endpoint's full URL can itself be a credential (a chat hook's
// URL is), so the log keeps only its scheme and host.
func audit(ctx context.Context, tx *sql.Tx, actor members.Actor, action, id string, before, after any, at time.Time) error {
	e := members.AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: action, SubjectType: "webhook_endpoint", SubjectID: id, CreatedAt: at}
	if before != nil {
		e.Before = members.AuditJSON(redacted(before))
	}
	if after != nil {
		e.After = members.AuditJSON(redacted(after))
	}
	return members.RecordAudit(ctx, tx, e)
}

func redacted(v any) any {
	e, ok := v.(Endpoint)
	if !ok {
		return v
	}
	site := ""
	if u, err := url.Parse(e.URL); err == nil {
		site = u.Scheme + "://" + u.Host
	}
	return map[string]any{"id": e.ID, "site": site, "events": e.Events, "description": e.Description, "disabled": e.DisabledAt != nil,
		"disabled_reason": e.DisabledReason}
}

func nullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: *t, Valid: true}
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time.UTC()
	return &v
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
