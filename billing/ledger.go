package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/metrics"
)

// onCheckoutSession links a paid subscription Checkout to its member, even
// if no customer.subscription.* event ever arrives, and records one-time
// gifts.
func (s *Service) onCheckoutSession(ctx context.Context, ev Event) (effects, error) {
	cs, err := decodeCheckoutSession(ev.Object)
	if err != nil {
		return effects{}, err
	}
	if s.mode == ModeFetch {
		raw, gone, err := s.fetch(ctx, "checkout/sessions", cs.ID)
		if err != nil {
			return effects{}, err
		}
		if !gone {
			if cs, err = decodeCheckoutSession(raw); err != nil {
				return effects{}, err
			}
		}
	}
	memberID := cs.ClientReferenceID
	if memberID == "" {
		memberID = cs.Metadata["member_id"]
	}
	if memberID == "" && cs.Email != "" {
		// A gift from a reader without an account: find or make one, so the
		// gift has a member to belong to and they can sign in later.
		if m, err := s.members.FindOrCreateMember(ctx, cs.Email); err == nil {
			memberID = m.ID
		} else if !errs.Is(err, errs.Invalid) {
			return effects{}, err
		}
	}
	var sub *subscriptionState
	if cs.Mode == "subscription" && cs.SubscriptionID != "" && s.mode == ModeFetch {
		raw, gone, err := s.fetch(ctx, "subscriptions", cs.SubscriptionID)
		if err != nil {
			return effects{}, err
		}
		if !gone {
			st, err := decodeSubscription(raw)
			if err != nil {
				return effects{}, err
			}
			sub = &st
		}
	}
	var fx effects
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if memberID != "" {
			var exists int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM members WHERE id = $1`, memberID).Scan(&exists); errors.Is(err, sql.ErrNoRows) {
				memberID = ""
			} else if err != nil {
				return fmt.Errorf("find member: %w", err)
			}
		}
		if memberID != "" && cs.CustomerID != "" {
			if err := s.linkCustomer(ctx, tx, memberID, cs.CustomerID); err != nil {
				return err
			}
		}
		switch cs.Mode {
		case "subscription":
			if cs.SubscriptionID == "" {
				return nil
			}
			if sub != nil {
				if sub.MemberHint == "" {
					sub.MemberHint = memberID
				}
				if _, err := s.applySubscription(ctx, tx, *sub, s.now(), "fetch:"+ev.ID); err != nil {
					return err
				}
			} else if _, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (id, member_id, customer_id, status, updated_at) VALUES ($1, $2, $3, 'incomplete', $4)
				ON CONFLICT (id) DO UPDATE SET member_id = COALESCE(subscriptions.member_id, excluded.member_id)`,
				cs.SubscriptionID, nullable(memberID), cs.CustomerID, s.now()); err != nil {
				return fmt.Errorf("link subscription: %w", err)
			}
		case "payment":
			if err := s.recordDonation(ctx, tx, ev, cs, memberID); err != nil {
				return err
			}
		}
		if memberID == "" {
			return nil
		}
		var err error
		fx, err = s.recomputeAccess(ctx, tx, memberID)
		return err
	})
	return fx, err
}

// recordDonation stores a one-time gift; its status follows the session's
// payment status, and async results move it on.
func (s *Service) recordDonation(ctx context.Context, tx *sql.Tx, ev Event, cs checkoutState, memberID string) error {
	status := "pending"
	switch {
	case ev.Type == "checkout.session.async_payment_failed":
		status = "failed"
	case cs.PaymentStatus == "paid" || cs.PaymentStatus == "no_payment_required" || ev.Type == "checkout.session.async_payment_succeeded":
		status = "paid"
	}
	// Final outcomes (paid, failed) beat pending whatever the order; between
	// two outcomes the later event wins.
	_, err := tx.ExecContext(ctx, `INSERT INTO donations (id, member_id, email, amount, currency, message, payment_intent_id, status, stripe_created_at, state_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET member_id = COALESCE(donations.member_id, excluded.member_id),
			payment_intent_id = COALESCE(donations.payment_intent_id, excluded.payment_intent_id),
			status = CASE WHEN excluded.status = 'pending' THEN donations.status
				WHEN donations.status = 'pending' OR excluded.state_at > donations.state_at THEN excluded.status ELSE donations.status END,
			state_at = CASE WHEN excluded.state_at > donations.state_at THEN excluded.state_at ELSE donations.state_at END`,
		cs.ID, nullable(memberID), strings.ToLower(cs.Email), cs.AmountTotal, cs.Currency, cs.Metadata["message"], nullable(cs.PaymentIntentID),
		status, cs.Created, ev.Created)
	if err != nil {
		return fmt.Errorf("record donation: %w", err)
	}
	if err := s.announceDonation(ctx, tx, cs.ID); err != nil {
		return err
	}
	return metrics.RefreshLedger(ctx, tx, s.db.Dialect, nil, nil, []string{cs.ID})
}

// onInvoice records an invoice in the ledger and notes failed payments, for
// the past-due grace and the payment-failed mail.
func (s *Service) onInvoice(ctx context.Context, ev Event) (effects, error) {
	snap, err := decodeInvoice(ev.Object)
	if err != nil {
		return effects{}, err
	}
	inv, at := snap, ev.Created
	if s.mode == ModeFetch {
		raw, gone, err := s.fetch(ctx, "invoices", snap.ID)
		if err != nil {
			return effects{}, err
		}
		if !gone {
			if inv, err = decodeInvoice(raw); err != nil {
				return effects{}, err
			}
			at = s.now()
		}
	}
	failed := ev.Type == "invoice.payment_failed" || ev.Type == "invoice.payment_action_required"
	var fx effects
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		memberID, err := s.memberForCustomer(ctx, tx, inv.CustomerID, "")
		if err != nil {
			return err
		}
		if err := s.upsertInvoice(ctx, tx, inv, at, memberID); err != nil {
			return err
		}
		if failed {
			// The first failure starts the grace; a later retry's failure
			// does not move it.
			if _, err := tx.ExecContext(ctx, `UPDATE invoices SET first_failed_at = $2 WHERE id = $1 AND (first_failed_at IS NULL OR first_failed_at > $2)`,
				inv.ID, ev.Created); err != nil {
				return fmt.Errorf("record failed payment: %w", err)
			}
			if memberID != "" && ev.Type == "invoice.payment_failed" {
				first, err := s.claimNotification(ctx, tx, "payment_failed:"+inv.ID, "payment_failed", memberID)
				if err != nil {
					return err
				}
				if first && inv.Status != "paid" {
					if err := s.decideMail(ctx, tx, MailArgs{Mail: "payment_failed", MemberID: memberID, Amount: inv.AmountDue, Currency: inv.Currency, Invoice: inv.ID}); err != nil {
						return err
					}
				}
			}
		}
		if memberID == "" {
			return nil
		}
		more, err := s.recomputeAccess(ctx, tx, memberID)
		fx.add(more)
		return err
	})
	return fx, err
}

// invoiceRank orders invoice statuses: a paid (or voided) invoice is never
// made open again by an older or same-second event.
var invoiceRank = map[string]int{"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}

func (s *Service) upsertInvoice(ctx context.Context, tx *sql.Tx, inv invoiceState, at time.Time, memberID string) error {
	now := s.now()
	_, err := tx.ExecContext(ctx, `INSERT INTO invoices (id, subscription_id, customer_id, member_id, status, currency, amount_due, amount_paid, tax,
		period_start, period_end, billing_reason, charge_id, paid_at, attempt_count, stripe_created_at, state_at, updated_at)
		VALUES ($1, $2, $3, $4, '', $5, 0, 0, 0, NULL, NULL, '', NULL, NULL, 0, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
		inv.ID, nullable(inv.SubscriptionID), inv.CustomerID, nullable(memberID), inv.Currency, inv.Created, time.Unix(0, 0).UTC(), now)
	if err != nil {
		return fmt.Errorf("create invoice row: %w", err)
	}
	var status string
	var storedAt time.Time
	if err := tx.QueryRowContext(ctx, `SELECT status, state_at FROM invoices WHERE id = $1`+s.db.Dialect.ForUpdate(), inv.ID).Scan(&status, &storedAt); err != nil {
		return fmt.Errorf("lock invoice: %w", err)
	}
	newer := at.After(storedAt) || (at.Equal(storedAt) && invoiceRank[inv.Status] > invoiceRank[status])
	if status != "" && invoiceRank[status] == 3 && invoiceRank[inv.Status] < 3 {
		newer = false // paid and void are final
	}
	if !newer {
		if memberID != "" {
			_, err := tx.ExecContext(ctx, `UPDATE invoices SET member_id = $2 WHERE id = $1 AND member_id IS NULL`, inv.ID, memberID)
			return err
		}
		return nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE invoices SET subscription_id = COALESCE($2, subscription_id), customer_id = $3, member_id = COALESCE($4, member_id), status = $5,
		currency = $6, amount_due = $7, amount_paid = $8, tax = $9, period_start = $10, period_end = $11, billing_reason = $12,
		charge_id = COALESCE($13, charge_id), paid_at = COALESCE($14, paid_at), attempt_count = $15, state_at = $16, updated_at = $17 WHERE id = $1`,
		inv.ID, nullable(inv.SubscriptionID), inv.CustomerID, nullable(memberID), inv.Status, inv.Currency, inv.AmountDue, inv.AmountPaid, inv.Tax,
		nullTime(inv.PeriodStart), nullTime(inv.PeriodEnd), inv.BillingReason, nullable(inv.ChargeID), nullTime(inv.PaidAt), inv.AttemptCount, at, now)
	if err != nil {
		return fmt.Errorf("update invoice: %w", err)
	}
	return metrics.RefreshLedger(ctx, tx, s.db.Dialect, []string{inv.ID}, nil, nil)
}

// onChargeRefunded records a charge's refunds: each refund by its Stripe id
// when we can list them (fetch mode, or an event that carries them), else
// derived from the charge's running refunded total.
func (s *Service) onChargeRefunded(ctx context.Context, ev Event) (effects, error) {
	ch, err := decodeCharge(ev.Object)
	if err != nil {
		return effects{}, err
	}
	refunds := ch.Refunds
	derived := refunds == nil
	if s.mode == ModeFetch {
		raw, gone, err := s.fetch(ctx, "charges", ch.ID)
		if err != nil {
			return effects{}, err
		}
		if !gone {
			if ch, err = decodeCharge(raw); err != nil {
				return effects{}, err
			}
			if refunds, err = s.listRefunds(ctx, ch.ID); err != nil {
				return effects{}, err
			}
			derived = false
		}
	}
	var fx effects
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.upsertCharge(ctx, tx, ch); err != nil {
			return err
		}
		// A first payment refunded in full takes the access it gave away.
		if memberID, err := s.memberOfCharge(ctx, tx, ch.ID); err != nil {
			return err
		} else if memberID != "" {
			if fx, err = s.recomputeAccess(ctx, tx, memberID); err != nil {
				return err
			}
		}
		if !derived {
			for _, r := range refunds {
				if r.Status == "failed" || r.Status == "canceled" {
					continue
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO refunds (id, charge_id, amount, currency, refunded_at) VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT (id) DO UPDATE SET amount = excluded.amount`, r.ID, ch.ID, r.Amount, r.Currency, r.Created); err != nil {
					return fmt.Errorf("record refund: %w", err)
				}
			}
		} else if err := s.deriveRefunds(ctx, tx, ch, ev); err != nil {
			return err
		}
		return metrics.RefreshLedger(ctx, tx, s.db.Dialect, nil, []string{ch.ID}, nil)
	})
	return fx, err
}

// memberOfCharge finds whose a charge is: from the charge row, or the
// invoice it paid.
func (s *Service) memberOfCharge(ctx context.Context, tx *sql.Tx, chargeID string) (string, error) {
	var memberID sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT member_id FROM charges WHERE id = $1 AND member_id IS NOT NULL
		UNION ALL SELECT member_id FROM invoices WHERE charge_id = $1 AND member_id IS NOT NULL LIMIT 1`, chargeID).Scan(&memberID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find member of charge: %w", err)
	}
	return memberID.String, nil
}

// deriveRefunds keeps one marker per refunded total a charge's events have
// shown, and rebuilds the refunds between them in total order: whatever
// order the events came in, each refund's amount is its step.
func (s *Service) deriveRefunds(ctx context.Context, tx *sql.Tx, ch chargeState, ev Event) error {
	if ch.AmountRefunded <= 0 {
		return nil
	}
	id := ch.ID + "@" + strconv.FormatInt(ch.AmountRefunded, 10)
	if _, err := tx.ExecContext(ctx, `INSERT INTO refunds (id, charge_id, amount, currency, refunded_at, derived, total_after) VALUES ($1, $2, 0, $3, $4, TRUE, $5)
		ON CONFLICT (id) DO UPDATE SET refunded_at = CASE WHEN excluded.refunded_at < refunds.refunded_at THEN excluded.refunded_at ELSE refunds.refunded_at END`,
		id, ch.ID, ch.Currency, ev.Created, ch.AmountRefunded); err != nil {
		return fmt.Errorf("record refund: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, total_after FROM refunds WHERE charge_id = $1 AND derived ORDER BY total_after`, ch.ID)
	if err != nil {
		return fmt.Errorf("read refunds: %w", err)
	}
	type marker struct {
		id    string
		total int64
	}
	var marks []marker
	for rows.Next() {
		var m marker
		if err := rows.Scan(&m.id, &m.total); err != nil {
			rows.Close()
			return err
		}
		marks = append(marks, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	sort.Slice(marks, func(i, j int) bool { return marks[i].total < marks[j].total })
	var prev int64
	for _, m := range marks {
		if _, err := tx.ExecContext(ctx, `UPDATE refunds SET amount = $2 WHERE id = $1`, m.id, m.total-prev); err != nil {
			return fmt.Errorf("record refund: %w", err)
		}
		prev = m.total
	}
	return nil
}

func (s *Service) upsertCharge(ctx context.Context, tx *sql.Tx, ch chargeState) error {
	memberID, err := s.memberForCustomer(ctx, tx, ch.CustomerID, "")
	if err != nil {
		return err
	}
	if memberID == "" && ch.PaymentIntentID != "" {
		_ = tx.QueryRowContext(ctx, `SELECT member_id FROM donations WHERE payment_intent_id = $1 AND member_id IS NOT NULL`, ch.PaymentIntentID).Scan(&memberID)
	}
	// Refunded totals and disputes only grow, so the larger wins whatever
	// the order.
	_, err = tx.ExecContext(ctx, `INSERT INTO charges (id, customer_id, member_id, invoice_id, payment_intent_id, amount, amount_refunded, currency, disputed, stripe_created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (id) DO UPDATE SET member_id = COALESCE(charges.member_id, excluded.member_id),
			invoice_id = COALESCE(charges.invoice_id, excluded.invoice_id),
			amount_refunded = CASE WHEN excluded.amount_refunded > charges.amount_refunded THEN excluded.amount_refunded ELSE charges.amount_refunded END,
			disputed = charges.disputed OR excluded.disputed, updated_at = excluded.updated_at`,
		ch.ID, nullable(ch.CustomerID), nullable(memberID), nullable(ch.InvoiceID), nullable(ch.PaymentIntentID), ch.Amount, ch.AmountRefunded,
		ch.Currency, ch.Disputed, ch.Created, s.now())
	if err != nil {
		return fmt.Errorf("record charge: %w", err)
	}
	return nil
}

// disputeRank: a closed dispute's outcome is final.
var disputeRank = map[string]int{"warning_needs_response": 0, "warning_under_review": 1, "needs_response": 0, "under_review": 1,
	"warning_closed": 2, "won": 2, "lost": 2}

func (s *Service) onDispute(ctx context.Context, ev Event) (effects, error) {
	d, err := decodeDispute(ev.Object)
	if err != nil {
		return effects{}, err
	}
	at := ev.Created
	if s.mode == ModeFetch {
		raw, gone, err := s.fetch(ctx, "disputes", d.ID)
		if err != nil {
			return effects{}, err
		}
		if !gone {
			if d, err = decodeDispute(raw); err != nil {
				return effects{}, err
			}
			at = s.now()
		}
	}
	// Stripe's dispute has no closing time; the closed event's time is it.
	var closedAt sql.NullTime
	if ev.Type == "charge.dispute.closed" {
		closedAt = sql.NullTime{Time: ev.Created, Valid: true}
	}
	var fx effects
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE charges SET disputed = TRUE WHERE id = $1`, d.ChargeID); err != nil {
			return fmt.Errorf("mark charge disputed: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO disputes (id, charge_id, amount, currency, status, reason, stripe_created_at, closed_at, state_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (id) DO UPDATE SET status = excluded.status, amount = excluded.amount, reason = excluded.reason,
				state_at = excluded.state_at
			WHERE (excluded.state_at > disputes.state_at AND `+rankSQL("disputes.status")+` <= `+rankSQL("excluded.status")+`)
			   OR (`+rankSQL("excluded.status")+` > `+rankSQL("disputes.status")+`)`,
			d.ID, d.ChargeID, d.Amount, d.Currency, d.Status, d.Reason, d.Created, closedAt, at)
		if err != nil {
			return fmt.Errorf("record dispute: %w", err)
		}
		if closedAt.Valid {
			if _, err := tx.ExecContext(ctx, `UPDATE disputes SET closed_at = $2 WHERE id = $1`, d.ID, closedAt); err != nil {
				return fmt.Errorf("record dispute: %w", err)
			}
		}
		// A disputed first payment takes the access it gave, until won.
		memberID, err := s.memberOfCharge(ctx, tx, d.ChargeID)
		if err != nil || memberID == "" {
			return err
		}
		fx, err = s.recomputeAccess(ctx, tx, memberID)
		return err
	})
	return fx, err
}

// rankSQL is disputeRank as SQL.
func rankSQL(col string) string {
	return `(CASE WHEN ` + col + ` IN ('won', 'lost', 'warning_closed') THEN 2 WHEN ` + col + ` IN ('under_review', 'warning_under_review') THEN 1 ELSE 0 END)`
}

// onCustomer keeps the customer's email and deletion, and links it to a
// member: by our metadata, else by an account with the same email.
func (s *Service) onCustomer(ctx context.Context, ev Event) (effects, error) {
	c, err := decodeCustomer(ev.Object)
	if err != nil {
		return effects{}, err
	}
	at := ev.Created
	if ev.Type == "customer.deleted" {
		c.Deleted = true
	} else if s.mode == ModeFetch {
		raw, gone, err := s.fetch(ctx, "customers", c.ID)
		if err != nil {
			return effects{}, err
		}
		if gone {
			c.Deleted = true
		} else {
			fetched, err := decodeCustomer(raw)
			if err != nil {
				return effects{}, err
			}
			if fetched.Deleted {
				c.Deleted = true
			} else {
				c = fetched
			}
			at = s.now()
		}
	}
	var fx effects
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		// A deleted customer stays deleted, whatever arrives after.
		_, err := tx.ExecContext(ctx, `INSERT INTO stripe_customers (id, email, deleted, state_at, updated_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO UPDATE SET email = CASE WHEN excluded.state_at > stripe_customers.state_at THEN excluded.email ELSE stripe_customers.email END,
				deleted = stripe_customers.deleted OR excluded.deleted,
				state_at = CASE WHEN excluded.state_at > stripe_customers.state_at THEN excluded.state_at ELSE stripe_customers.state_at END,
				updated_at = excluded.updated_at`,
			c.ID, strings.ToLower(c.Email), c.Deleted, at, s.now())
		if err != nil {
			return fmt.Errorf("record customer: %w", err)
		}
		memberID, err := s.memberForCustomer(ctx, tx, c.ID, c.MemberHint)
		if err != nil {
			return err
		}
		if memberID == "" && c.Email != "" && !c.Deleted {
			err := tx.QueryRowContext(ctx, `SELECT id FROM members WHERE email = $1 AND stripe_customer_id IS NULL`, strings.ToLower(c.Email)).Scan(&memberID)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("find member by email: %w", err)
			}
			if memberID != "" {
				if err := s.linkCustomer(ctx, tx, memberID, c.ID); err != nil {
					return err
				}
			}
		}
		if memberID == "" {
			return nil
		}
		if c.Deleted {
			// The member's next checkout makes a new customer; the old one's
			// subscriptions and payments stay theirs.
			if _, err := tx.ExecContext(ctx, `UPDATE members SET stripe_customer_id = NULL, updated_at = $3 WHERE id = $1 AND stripe_customer_id = $2`,
				memberID, c.ID, s.now()); err != nil {
				return fmt.Errorf("unlink deleted customer: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE stripe_customers SET member_id = $2 WHERE id = $1`, c.ID, memberID); err != nil {
				return fmt.Errorf("record customer: %w", err)
			}
		}
		fx, err = s.recomputeAccess(ctx, tx, memberID)
		return err
	})
	return fx, err
}

// trialWillEnd mails a trial-ending notice once per trial.
func (s *Service) trialWillEnd(ctx context.Context, ev Event, snap subscriptionState) (effects, error) {
	if snap.TrialEnd == nil {
		return effects{}, nil
	}
	var fx effects
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		memberID, err := s.memberForCustomer(ctx, tx, snap.CustomerID, snap.MemberHint)
		if err != nil || memberID == "" {
			return err
		}
		first, err := s.claimNotification(ctx, tx, "trial_ending:"+snap.ID+":"+strconv.FormatInt(snap.TrialEnd.Unix(), 10), "trial_ending", memberID)
		if err != nil || !first {
			return err
		}
		tier, err := tierForPrice(ctx, tx, snap.Price)
		if err != nil {
			return err
		}
		return s.decideMail(ctx, tx, MailArgs{Mail: "trial_ending", MemberID: memberID, Tier: tier, At: *snap.TrialEnd})
	})
	return fx, err
}

// onCatalog brings a change made in the Stripe dashboard to our tiers: a
// product's name, description and active flag; a price's amount under our
// lookup key. An event older than the tier's last change here is stale
// (often the echo of our own push) and ignored.
func (s *Service) onCatalog(ctx context.Context, ev Event) error {
	defer s.forgetTiers()
	if strings.HasPrefix(ev.Type, "product.") {
		var p struct {
			ID          string            `json:"id"`
			Name        string            `json:"name"`
			Description *string           `json:"description"`
			Active      bool              `json:"active"`
			Metadata    map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(ev.Object, &p); err != nil {
			return fmt.Errorf("decode product: %w", err)
		}
		slug := p.Metadata["patronage_tier"]
		if slug == "" {
			slug, _ = strings.CutPrefix(p.ID, "patronage_")
		}
		active := p.Active && ev.Type != "product.deleted"
		desc := ""
		if p.Description != nil {
			desc = *p.Description
		}
		_, err := s.db.ExecContext(ctx, `UPDATE tiers SET name = $2, description = $3, active = $4, updated_at = $5
			WHERE slug = $1 AND (stripe_product_id = $6 OR stripe_product_id IS NULL) AND updated_at <= $5`,
			slug, p.Name, desc, active, ev.Created, p.ID)
		if err != nil {
			return fmt.Errorf("update tier from product: %w", err)
		}
		return nil
	}
	var pr stripePrice
	if err := json.Unmarshal(ev.Object, &pr); err != nil {
		return fmt.Errorf("decode price: %w", err)
	}
	slug, interval, currency, ok := parseLookupKey(pr.LookupKey)
	if !ok || !pr.Active || ev.Type == "price.deleted" || pr.UnitAmount == nil || pr.Recurring == nil || pr.Recurring.Interval != interval ||
		!strings.EqualFold(pr.Currency, currency) {
		return nil
	}
	// Each price row keeps the time of the event it came from, so prices of
	// one tier changed in the same second (monthly and yearly together) all
	// land, and a late event about an older price does not undo a newer one.
	// A change staff made here after the event still wins.
	_, err := s.db.ExecContext(ctx, `INSERT INTO tier_prices (tier_slug, currency, billing_interval, amount, stripe_price_id, stripe_event_at)
		SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM tiers WHERE slug = $1 AND updated_at <= $6)
		ON CONFLICT (tier_slug, currency, billing_interval) DO UPDATE SET amount = excluded.amount, stripe_price_id = excluded.stripe_price_id,
			stripe_event_at = excluded.stripe_event_at
		WHERE tier_prices.stripe_event_at IS NULL OR tier_prices.stripe_event_at <= excluded.stripe_event_at`,
		slug, currency, interval, *pr.UnitAmount, pr.ID, ev.Created)
	if err != nil {
		return fmt.Errorf("update tier price: %w", err)
	}
	return nil
}
