package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the engine behind a DB. Everything that differs between
// PostgreSQL and SQLite is in this file.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// sqliteTypes maps the PostgreSQL column types migrations are written with to
// their SQLite spelling. TIMESTAMP is the declared type the SQLite driver
// reads back as time.Time; JSONB and BYTEA would otherwise get NUMERIC
// affinity and mangle a value that looks like a number.
var sqliteTypes = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?i)\bTIMESTAMPTZ\b`), "TIMESTAMP"},
	{regexp.MustCompile(`(?i)\bJSONB\b`), "TEXT"},
	{regexp.MustCompile(`(?i)\bBYTEA\b`), "BLOB"},
	// SQLite compares text as bytes already, and knows no collation "C".
	{regexp.MustCompile(`(?i)\s+COLLATE "C"`), ""},
	// Storage tuning is PostgreSQL's alone.
	{regexp.MustCompile(`(?im)^\s*ALTER TABLE \S+ ALTER COLUMN \S+ SET STORAGE \w+;\s*$`), ""},
}

// translateDDL rewrites a migration written for PostgreSQL into the dialect.
func (d Dialect) translateDDL(ddl string) string {
	if d != SQLite {
		return ddl
	}
	for _, t := range sqliteTypes {
		ddl = t.re.ReplaceAllString(ddl, t.repl)
	}
	return ddl
}

// lockMigrations serialises migrators within a transaction. SQLite needs
// nothing: its transactions begin with the write lock (_txlock=immediate).
func (d Dialect) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if d != Postgres {
		return nil
	}
	// An arbitrary constant shared by every Patronage process.
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7268326651)`)
	return err
}

// LockKeys holds a lock on each name until the transaction ends, in
// sorted order, for work that must not interleave but has no row of its
// own to lock. On PostgreSQL they are transaction advisory locks on a
// 64-bit hash of the name (two names sharing a hash only wait for each
// other); SQLite needs nothing, its transactions holding the write lock.
func (d Dialect) LockKeys(ctx context.Context, tx *sql.Tx, names []string) error {
	if d != Postgres {
		return nil
	}
	for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7268326651))`, name); err != nil {
			return err
		}
	}
	return nil
}

// readTimesInUTC makes pgx return timestamptz values in UTC, as the SQLite
// driver does, instead of the process's local zone.
func readTimesInUTC(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{
		Name:  "timestamptz",
		OID:   pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}

// IsUniqueViolation reports whether err is a unique or primary-key violation.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		return sqliteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqliteErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsUnavailable reports whether err says the database could not be
// reached or went away — refused, reset, timed out connecting, shut down,
// or busy past the wait — rather than that the query was wrong. Callers
// answer it with "try again" (503), never as their own failure.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01–57P03: the server is
		// shutting down or not yet accepting connections; 53300: too many
		// connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || pgconn.SafeToRetry(err) {
		return true
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		return sqliteErr.Code()&0xff == sqlite3.SQLITE_BUSY || sqliteErr.Code()&0xff == sqlite3.SQLITE_LOCKED
	}
	// pgx's own words for a connection it lost or closed under a query.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "failed to connect to")
}

// ForUpdate is the clause that locks the rows a SELECT reads until the
// transaction ends. SQLite has none and needs none: a write transaction
// there holds the database's write lock from its first statement.
func (d Dialect) ForUpdate() string {
	if d == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// ForShare is the clause that keeps the rows a SELECT reads from being
// changed until the transaction ends, while letting others read them.
func (d Dialect) ForShare() string {
	if d == Postgres {
		return " FOR SHARE"
	}
	return ""
}
