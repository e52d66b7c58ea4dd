// Package testenv gives tests real services, one private copy each: a fresh
// SQLite file and, when TEST_DATABASE_URL is set, a fresh PostgreSQL schema;
// an in-process Redis and, when TEST_REDIS_URL is set, a private key prefix
// on a real Redis. With CI=true a missing service fails the test instead of
// going untested. It is imported only by tests.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
)

// InCI reports whether the run is in CI, where a missing service is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Logger discards logs unless PATRONAGE_TEST_LOGS=1.
func Logger() *slog.Logger {
	if os.Getenv("PATRONAGE_TEST_LOGS") == "1" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// PostgresURL is TEST_DATABASE_URL. In CI its absence fails the test; outside
// CI it returns "" and the caller runs on SQLite only (the test command says
// so loudly, once).
func PostgresURL(t testing.TB) string {
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" && InCI() {
		t.Fatal("CI=true but TEST_DATABASE_URL is not set: PostgreSQL would go untested")
	}
	return u
}

// RedisURL is TEST_REDIS_URL, with the same CI rule as PostgresURL.
func RedisURL(t testing.TB) string {
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" && InCI() {
		t.Fatal("CI=true but TEST_REDIS_URL is not set: a real Redis would go untested")
	}
	return u
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// EachDB runs fn against a fresh, unmigrated database on every engine
// available: SQLite always, PostgreSQL when TEST_DATABASE_URL is set.
func EachDB(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	if PostgresURL(t) != "" {
		t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
	}
}

// EachMigratedDB is EachDB with Patronage's migrations applied.
func EachMigratedDB(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	EachDB(t, func(t *testing.T, db *sqldb.DB) {
		if _, err := db.Migrate(context.Background(), sqldb.Migrations()); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		fn(t, db)
	})
}

// SQLite opens a fresh embedded database in a temporary directory.
func SQLite(t testing.TB) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), sqldb.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open SQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresSchemaURL creates a private schema on the test PostgreSQL and
// returns a URL whose connections use it; the schema is dropped at cleanup.
func PostgresSchemaURL(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	if base == "" {
		t.Fatal("PostgresSchemaURL needs TEST_DATABASE_URL")
	}
	schema := randomName("t_")
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open TEST_DATABASE_URL: %v", err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		t.Fatalf("create schema on TEST_DATABASE_URL: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Postgres opens a private schema on the test PostgreSQL.
func Postgres(t testing.TB) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), sqldb.Options{URL: PostgresSchemaURL(t), MaxOpenConns: 10})
	if err != nil {
		t.Fatalf("open PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// EachRedis runs fn against an in-process Redis and, when TEST_REDIS_URL is
// set, against a real one under a private key prefix.
func EachRedis(t *testing.T, fn func(t *testing.T, r *redisx.Redis)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) { fn(t, EmbeddedRedis(t)) })
	if RedisURL(t) != "" {
		t.Run("redis", func(t *testing.T) { fn(t, RealRedis(t)) })
	}
}

// EmbeddedRedis starts a private in-process Redis.
func EmbeddedRedis(t testing.TB) *redisx.Redis {
	t.Helper()
	r, err := redisx.Open(context.Background(), "", "test:", Logger())
	if err != nil {
		t.Fatalf("start embedded Redis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// RedisPrefix returns a fresh key prefix on the real test Redis and deletes
// every key under it at cleanup.
func RedisPrefix(t testing.TB) string {
	t.Helper()
	prefix := randomName("test:") + ":"
	t.Cleanup(func() {
		r, err := redisx.Open(context.Background(), RedisURL(t), prefix, Logger())
		if err != nil {
			t.Errorf("clean Redis prefix %s: %v", prefix, err)
			return
		}
		defer r.Close()
		if err := r.DeleteByPrefix(context.Background()); err != nil {
			t.Errorf("clean Redis prefix %s: %v", prefix, err)
		}
	})
	return prefix
}

// RealRedis connects to TEST_REDIS_URL with a private key prefix.
func RealRedis(t testing.TB) *redisx.Redis {
	t.Helper()
	if RedisURL(t) == "" {
		t.Fatal("RealRedis needs TEST_REDIS_URL")
	}
	prefix := RedisPrefix(t)
	r, err := redisx.Open(context.Background(), RedisURL(t), prefix, Logger())
	if err != nil {
		t.Fatalf("connect TEST_REDIS_URL: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var template struct {
	once  sync.Once
	bytes []byte
	err   error
}

// MigratedSQLite opens a fresh embedded database with Patronage's and the
// job queue's migrations applied. The migrations run once per test binary;
// each test gets a copy of the result, which is much faster than migrating
// again (River's migrations are many).
func MigratedSQLite(t testing.TB) *sqldb.DB {
	t.Helper()
	template.once.Do(func() {
		dir, err := os.MkdirTemp("", "patronage-template-")
		if err != nil {
			template.err = err
			return
		}
		defer os.RemoveAll(dir)
		ctx := context.Background()
		db, err := sqldb.Open(ctx, sqldb.Options{DataDir: dir})
		if err != nil {
			template.err = err
			return
		}
		_, err = db.Migrate(ctx, sqldb.Migrations())
		if err == nil {
			_, err = jobs.Migrate(ctx, db)
		}
		// Closing the last connection checkpoints the WAL into the file; a
		// checkpoint run on one pooled connection may stop short of that
		// while another holds a snapshot, and say nothing.
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			template.err = err
			return
		}
		if _, err := os.Stat(filepath.Join(dir, sqldb.SQLiteFile+"-wal")); err == nil {
			template.err = fmt.Errorf("the template's WAL was not checkpointed on close")
			return
		}
		template.bytes, template.err = os.ReadFile(filepath.Join(dir, sqldb.SQLiteFile))
	})
	if template.err != nil {
		t.Fatalf("migrate the template database: %v", template.err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, sqldb.SQLiteFile), template.bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(context.Background(), sqldb.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("open SQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
