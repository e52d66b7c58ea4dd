// Package sqldb opens Patronage's system of record — PostgreSQL through pgx,
// or an embedded SQLite file when no DATABASE_URL is set — applies the
// embedded migrations and runs transactions. Every query in Patronage is
// written once, in the portable subset both engines share ($n placeholders,
// ON CONFLICT, RETURNING); the few places the engines differ live in
// dialect.go. This package stores nothing of its own and decides nothing.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is a database handle that knows which engine it talks to.
type DB struct {
	*sql.DB
	Dialect Dialect
	// Where describes the database for logs without credentials.
	Where string
}

// Options says which database to open.
type Options struct {
	URL          string // postgres://…; empty selects embedded SQLite
	DataDir      string // directory of the SQLite file
	MaxOpenConns int
}

// SQLiteFile is the file name of the embedded database inside DATA_DIR.
const SQLiteFile = "patronage.db"

// Open connects and checks the connection answers.
func Open(ctx context.Context, opts Options) (*DB, error) {
	var db *DB
	var err error
	if opts.URL == "" {
		db, err = openSQLite(opts)
	} else {
		db, err = openPostgres(opts)
	}
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", db.Where, err)
	}
	return db, nil
}

func openPostgres(opts Options) (*DB, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, errors.New("parse DATABASE_URL: not a valid URL")
	}
	connConfig, err := pgx.ParseConfig(opts.URL)
	if err != nil {
		return nil, errors.New("parse DATABASE_URL: not a valid PostgreSQL connection string")
	}
	sdb := stdlib.OpenDB(*connConfig, stdlib.OptionAfterConnect(readTimesInUTC))
	max := opts.MaxOpenConns
	if max <= 0 {
		max = 20
	}
	sdb.SetMaxOpenConns(max)
	sdb.SetMaxIdleConns(max)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{DB: sdb, Dialect: Postgres, Where: "PostgreSQL at " + u.Host + u.Path}, nil
}

func openSQLite(opts Options) (*DB, error) {
	dir := opts.DataDir
	if dir == "" {
		dir = "./data"
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create DATA_DIR: %w", err)
	}
	path := filepath.Join(dir, SQLiteFile)
	// Times are stored as integer microseconds since the epoch so they sort
	// and compare correctly and read back as time.Time in UTC; _txlock=immediate
	// takes the write lock at BEGIN, so two writers queue on busy_timeout
	// instead of failing when a read transaction upgrades.
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("_txlock", "immediate")
	q.Set("_time_integer_format", "unix_micro")
	q.Set("_inttotime", "1")
	q.Set("_timezone", "UTC")
	// The name is a SQLite URI: a '#' or '?' in DATA_DIR must be escaped,
	// or SQLite opens a different file.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open SQLite: %w", err)
	}
	max := opts.MaxOpenConns
	if max <= 0 || max > 8 {
		// SQLite has one writer; a few connections serve concurrent readers.
		max = 8
	}
	sdb.SetMaxOpenConns(max)
	sdb.SetMaxIdleConns(max)
	return &DB{DB: sdb, Dialect: SQLite, Where: "SQLite at " + path}, nil
}

// InTx runs fn in one transaction, committing when fn returns nil and rolling
// back otherwise (and on panic).
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// Now is the current time as stored: UTC, to the microsecond (the resolution
// both engines keep), so a value read back equals the value written.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Queryer is a *sql.DB or a *sql.Tx.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// QueryStrings runs a query of one text column and returns its values.
func QueryStrings(ctx context.Context, q Queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Placeholders lists n numbered parameters from $first: "$1, $2, …", for
// IN lists and multi-row VALUES built at run time.
func Placeholders(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$")
		b.WriteString(strconv.Itoa(first + i))
	}
	return b.String()
}

// Args turns a list of strings into query arguments.
func Args(list []string) []any {
	out := make([]any, len(list))
	for i, v := range list {
		out[i] = v
	}
	return out
}
