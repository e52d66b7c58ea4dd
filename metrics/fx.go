package metrics

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/money"
	"github.com/patronage/patronage/members"
)

// Rate is an exchange rate into the reporting currency: from ValidFrom on,
// one major unit of Currency is worth Rate major units of Reporting.
type Rate struct {
	Currency  string // lower case
	Reporting string // lower case
	ValidFrom time.Time
	Rate      string // a positive decimal, as entered
}

var decimalRate = regexp.MustCompile(`^[0-9]{1,12}(\.[0-9]{1,12})?$`)

// SetRate records a rate (replacing one for the same currency and
// instant), in the audit log too.
func (s *Service) SetRate(ctx context.Context, actor members.Actor, r Rate) (Rate, error) {
	fields := map[string]string{}
	cur, err := money.Normalize(r.Currency)
	if err != nil {
		fields["currency"] = err.Error()
	}
	r.Currency, r.Reporting = strings.ToLower(cur), strings.ToLower(r.Reporting)
	if err == nil && r.Currency == r.Reporting {
		fields["currency"] = "is the reporting currency itself"
	}
	r.Rate = strings.TrimSpace(r.Rate)
	if rat, ok := new(big.Rat).SetString(r.Rate); !decimalRate.MatchString(r.Rate) || !ok || rat.Sign() <= 0 {
		fields["rate"] = "must be a positive decimal number, e.g. 1.0834 (at most 12 decimal places)"
	}
	if r.ValidFrom.IsZero() {
		fields["valid_from"] = "is required: the instant the rate applies from (RFC 3339)"
	}
	if len(fields) > 0 {
		return Rate{}, errs.InvalidFields(fields)
	}
	r.ValidFrom = r.ValidFrom.UTC().Truncate(time.Microsecond)
	now := time.Now().UTC().Truncate(time.Microsecond)
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var before sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT rate FROM fx_rates WHERE reporting = $1 AND currency = $2 AND valid_from = $3`,
			r.Reporting, r.Currency, r.ValidFrom).Scan(&before)
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("read rate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO fx_rates (currency, reporting, valid_from, rate, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (reporting, currency, valid_from) DO UPDATE SET rate = excluded.rate, created_at = excluded.created_at`,
			r.Currency, r.Reporting, r.ValidFrom, r.Rate, now); err != nil {
			return fmt.Errorf("store rate: %w", err)
		}
		e := members.AuditEntry{ActorID: actor.MemberID, ActorLabel: actor.Label, Action: "fx_rate.set", SubjectType: "fx_rate",
			SubjectID: r.Currency + ":" + r.ValidFrom.Format(time.RFC3339Nano), After: members.AuditJSON(r), CreatedAt: now}
		if before.Valid {
			e.Before = members.AuditJSON(Rate{Currency: r.Currency, Reporting: r.Reporting, ValidFrom: r.ValidFrom, Rate: before.String})
		}
		return members.RecordAudit(ctx, tx, e)
	})
	if err != nil {
		return Rate{}, err
	}
	return r, nil
}

// Rates lists the rates into a reporting currency, by currency and date.
func (s *Service) Rates(ctx context.Context, reporting string) ([]Rate, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT currency, reporting, valid_from, rate FROM fx_rates WHERE reporting = $1 ORDER BY currency, valid_from`,
		strings.ToLower(reporting))
	if err != nil {
		return nil, fmt.Errorf("read rates: %w", err)
	}
	defer rows.Close()
	out := []Rate{}
	for rows.Next() {
		var r Rate
		if err := rows.Scan(&r.Currency, &r.Reporting, &r.ValidFrom, &r.Rate); err != nil {
			return nil, fmt.Errorf("read rates: %w", err)
		}
		r.ValidFrom = r.ValidFrom.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// RateAt is the rate in force for a currency at t (the latest with
// ValidFrom ≤ t); false when there is none. rates are as Rates lists them.
func RateAt(rates []Rate, currency string, t time.Time) (Rate, bool) {
	var found Rate
	ok := false
	for _, r := range rates {
		if r.Currency == currency && !r.ValidFrom.After(t) && (!ok || r.ValidFrom.After(found.ValidFrom)) {
			found, ok = r, true
		}
	}
	return found, ok
}

// Convert turns an amount in minor units of from into minor units of to
// at the rate (major units of to per major unit of from), rounded half to
// even; the currencies' decimal places are taken into account (yen have
// none).
func Convert(amount int64, from, to, rate string) int64 {
	r, ok := new(big.Rat).SetString(rate)
	if !ok {
		return 0
	}
	v := new(big.Rat).Mul(new(big.Rat).SetInt64(amount), r)
	scale := money.Exponent(to) - money.Exponent(from)
	pow := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(scale))), nil))
	if scale >= 0 {
		v.Mul(v, pow)
	} else {
		v.Quo(v, pow)
	}
	return roundHalfEven(new(big.Int).Set(v.Num()), new(big.Int).Set(v.Denom()))
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
