package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/internal/ids"
	"github.com/patronage/patronage/internal/stripeapi"
)

// Drift is one difference between Stripe and our copy that a sync repaired.
type Drift struct {
	Kind string `json:"kind"` // customer, subscription, invoice, event
	ID   string `json:"id"`
	What string `json:"what"`
}

// SyncReport is what a reconciliation found and fixed.
type SyncReport struct {
	ID             string     `json:"id"`
	StartedAt      time.Time  `json:"started_at"`
	FinishedAt     time.Time  `json:"finished_at"`
	Since          *time.Time `json:"since"`
	Customers      int        `json:"customers"`
	Subscriptions  int        `json:"subscriptions"`
	Invoices       int        `json:"invoices"`
	EventsReplayed int        `json:"events_replayed"`
	Drift          []Drift    `json:"drift"`
}

// EventSink stores an event from Stripe's Events API as if it had been
// delivered, queueing its processing; it reports whether it was new.
type EventSink func(ctx context.Context, ev Event, livemode bool, payload []byte) (bool, error)

// SetEventSink gives reconciliation a way to replay missed events.
func (s *Service) SetEventSink(sink EventSink) { s.eventSink = sink }

// SyncStripe reconciles our copy with Stripe: it lists customers,
// subscriptions and invoices (created since since, or all), repairs every
// difference it finds and reports it, then replays the events Stripe still
// holds (30 days) that we never stored. A second run right after finds
// nothing to do.
func (s *Service) SyncStripe(ctx context.Context, since *time.Time) (SyncReport, error) {
	sc, err := s.stripeClient()
	if err != nil {
		return SyncReport{}, err
	}
	rep := SyncReport{ID: ids.New("sync"), StartedAt: s.now(), Since: since, Drift: []Drift{}}
	var created *stripe.RangeQueryParams
	if since != nil {
		created = &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
	}

	cp := &stripe.CustomerListParams{}
	cp.Context, cp.CreatedRange = ctx, created
	cit := sc.Customers.List(cp)
	for cit.Next() {
		rep.Customers++
		if err := s.syncCustomer(ctx, cit.Customer(), &rep); err != nil {
			return rep, err
		}
	}
	if err := cit.Err(); err != nil {
		return rep, stripeapi.MapError(err)
	}

	sp := &stripe.SubscriptionListParams{Status: stripe.String("all")}
	sp.Context, sp.CreatedRange = ctx, created
	sit := sc.Subscriptions.List(sp)
	for sit.Next() {
		rep.Subscriptions++
		raw, err := json.Marshal(sit.Subscription())
		if err != nil {
			return rep, err
		}
		if err := s.syncSubscription(ctx, raw, &rep); err != nil {
			return rep, err
		}
	}
	if err := sit.Err(); err != nil {
		return rep, stripeapi.MapError(err)
	}

	ip := &stripe.InvoiceListParams{}
	ip.Context, ip.CreatedRange = ctx, created
	iit := sc.Invoices.List(ip)
	for iit.Next() {
		rep.Invoices++
		raw, err := json.Marshal(iit.Invoice())
		if err != nil {
			return rep, err
		}
		if err := s.syncInvoice(ctx, raw, &rep); err != nil {
			return rep, err
		}
	}
	if err := iit.Err(); err != nil {
		return rep, stripeapi.MapError(err)
	}

	if err := s.replayMissedEvents(ctx, since, &rep); err != nil {
		return rep, err
	}
	rep.FinishedAt = s.now()
	body, _ := json.Marshal(rep)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO stripe_sync_reports (id, started_at, finished_at, report_json) VALUES ($1, $2, $3, $4)`,
		rep.ID, rep.StartedAt, rep.FinishedAt, string(body)); err != nil {
		return rep, fmt.Errorf("save sync report: %w", err)
	}
	return rep, nil
}

// LastSyncReport is the newest reconciliation report; found is false when
// none has run.
func (s *Service) LastSyncReport(ctx context.Context) (rep SyncReport, found bool, err error) {
	var body string
	err = s.db.QueryRowContext(ctx, `SELECT report_json FROM stripe_sync_reports ORDER BY started_at DESC, id DESC LIMIT 1`).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return SyncReport{}, false, nil
	}
	if err != nil {
		return SyncReport{}, false, fmt.Errorf("read sync report: %w", err)
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		return SyncReport{}, false, fmt.Errorf("read sync report: %w", err)
	}
	return rep, true, nil
}

func (s *Service) syncCustomer(ctx context.Context, c *stripe.Customer, rep *SyncReport) error {
	var fx effects
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var email string
		var deleted bool
		err := tx.QueryRowContext(ctx, `SELECT email, deleted FROM stripe_customers WHERE id = $1`, c.ID).Scan(&email, &deleted)
		known := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read customer: %w", err)
		}
		want := strings.ToLower(c.Email)
		if !known || email != want || deleted != c.Deleted {
			what := "not known here"
			if known {
				what = fmt.Sprintf("email %q → %q, deleted %v → %v", email, want, deleted, c.Deleted)
			}
			rep.Drift = append(rep.Drift, Drift{Kind: "customer", ID: c.ID, What: what})
			if _, err := tx.ExecContext(ctx, `INSERT INTO stripe_customers (id, email, deleted, state_at, updated_at) VALUES ($1, $2, $3, $4, $4)
				ON CONFLICT (id) DO UPDATE SET email = excluded.email, deleted = stripe_customers.deleted OR excluded.deleted, state_at = excluded.state_at,
				updated_at = excluded.updated_at`, c.ID, want, c.Deleted, s.now()); err != nil {
				return fmt.Errorf("record customer: %w", err)
			}
		}
		memberID, err := s.memberForCustomer(ctx, tx, c.ID, c.Metadata["member_id"])
		if err != nil {
			return err
		}
		if memberID == "" && want != "" && !c.Deleted {
			err := tx.QueryRowContext(ctx, `SELECT id FROM members WHERE email = $1 AND stripe_customer_id IS NULL`, want).Scan(&memberID)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("find member by email: %w", err)
			}
			if memberID != "" {
				rep.Drift = append(rep.Drift, Drift{Kind: "customer", ID: c.ID, What: "linked to member " + memberID + " by email"})
				if err := s.linkCustomer(ctx, tx, memberID, c.ID); err != nil {
					return err
				}
				fx, err = s.recomputeAccess(ctx, tx, memberID)
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.afterCommit(ctx, fx)
	}
	return err
}

func (s *Service) syncSubscription(ctx context.Context, raw json.RawMessage, rep *SyncReport) error {
	st, err := decodeSubscription(raw)
	if err != nil {
		return err
	}
	var fx effects
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		tier, err := st.tier(ctx, tx)
		if err != nil {
			return err
		}
		var have struct {
			status, price, currency string
			tier                    sql.NullString
			amount, quantity        int64
			end                     sql.NullTime
			cancel                  bool
			stateAt                 sql.NullTime
		}
		err = tx.QueryRowContext(ctx, `SELECT status, price_id, currency, tier_slug, unit_amount, quantity, current_period_end, cancel_at_period_end, state_at
			FROM subscriptions WHERE id = $1`, st.ID).Scan(&have.status, &have.price, &have.currency, &have.tier, &have.amount, &have.quantity, &have.end, &have.cancel, &have.stateAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read subscription: %w", err)
		}
		var diffs []string
		if err != nil || !have.stateAt.Valid {
			diffs = append(diffs, "not known here")
		} else {
			diff := func(name string, a, b any) {
				if fmt.Sprint(a) != fmt.Sprint(b) {
					diffs = append(diffs, fmt.Sprintf("%s %v → %v", name, a, b))
				}
			}
			diff("status", have.status, st.Status)
			diff("price", have.price, st.PriceID)
			diff("tier", have.tier.String, tier)
			diff("amount", have.amount, st.UnitAmount)
			diff("quantity", have.quantity, st.Quantity)
			diff("cancel_at_period_end", have.cancel, st.CancelAtPeriodEnd)
			diff("current_period_end", unixOr0(timePtr(have.end)), unixOr0(st.CurrentPeriodEnd))
		}
		if len(diffs) == 0 {
			return nil
		}
		rep.Drift = append(rep.Drift, Drift{Kind: "subscription", ID: st.ID, What: strings.Join(diffs, ", ")})
		memberID, err := s.applySubscription(ctx, tx, st, s.now(), "sync:"+rep.ID)
		if err != nil || memberID == "" {
			return err
		}
		fx, err = s.recomputeAccess(ctx, tx, memberID)
		return err
	})
	if err == nil {
		s.afterCommit(ctx, fx)
	}
	return err
}

func (s *Service) syncInvoice(ctx context.Context, raw json.RawMessage, rep *SyncReport) error {
	inv, err := decodeInvoice(raw)
	if err != nil {
		return err
	}
	var fx effects
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var status string
		var paid int64
		err := tx.QueryRowContext(ctx, `SELECT status, amount_paid FROM invoices WHERE id = $1`, inv.ID).Scan(&status, &paid)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read invoice: %w", err)
		}
		if err == nil && status == inv.Status && paid == inv.AmountPaid {
			return nil
		}
		what := "not known here"
		if err == nil {
			what = fmt.Sprintf("status %s → %s, amount_paid %d → %d", status, inv.Status, paid, inv.AmountPaid)
		}
		rep.Drift = append(rep.Drift, Drift{Kind: "invoice", ID: inv.ID, What: what})
		memberID, err := s.memberForCustomer(ctx, tx, inv.CustomerID, "")
		if err != nil {
			return err
		}
		if err := s.upsertInvoice(ctx, tx, inv, s.now(), memberID); err != nil {
			return err
		}
		if memberID != "" {
			fx, err = s.recomputeAccess(ctx, tx, memberID)
		}
		return err
	})
	if err == nil {
		s.afterCommit(ctx, fx)
	}
	return err
}

// replayMissedEvents stores, through the event sink, every event of a
// handled type that Stripe holds (since the newest event we have, less a
// day, or since) and we never stored.
func (s *Service) replayMissedEvents(ctx context.Context, since *time.Time, rep *SyncReport) error {
	if s.eventSink == nil {
		return nil
	}
	from := since
	if from == nil {
		var newest sql.NullTime
		if err := s.db.QueryRowContext(ctx, `SELECT created_at FROM stripe_events ORDER BY created_at DESC LIMIT 1`).Scan(&newest); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read newest event: %w", err)
		}
		if newest.Valid {
			t := newest.Time.Add(-24 * time.Hour) // deliveries arrive out of order: look back a day
			from = &t
		}
	}
	// types[] takes at most 20 exact names and billing handles more, so the
	// list is unfiltered and the types no handler wants are skipped here.
	p := &stripe.EventListParams{}
	p.Context = ctx
	if from != nil {
		p.CreatedRange = &stripe.RangeQueryParams{GreaterThanOrEqual: from.Unix()}
	}
	it := s.stripe.Events.List(p)
	for it.Next() {
		e := it.Event()
		if !handles(string(e.Type)) {
			continue
		}
		payload, err := json.Marshal(e)
		if err != nil {
			return err
		}
		fresh, err := s.eventSink(ctx, Event{ID: e.ID, Type: string(e.Type), APIVersion: e.APIVersion, Created: time.Unix(e.Created, 0).UTC(), Object: e.Data.Raw}, e.Livemode, payload)
		if err != nil {
			return err
		}
		if fresh {
			rep.EventsReplayed++
			rep.Drift = append(rep.Drift, Drift{Kind: "event", ID: e.ID, What: string(e.Type) + " was never delivered; queued"})
		}
	}
	if err := it.Err(); err != nil {
		return stripeapi.MapError(err)
	}
	return nil
}

func handles(typ string) bool {
	for _, t := range EventTypes {
		if t == typ {
			return true
		}
	}
	return false
}
