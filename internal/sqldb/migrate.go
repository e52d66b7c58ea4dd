package sqldb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var embedded embed.FS

// Migrations returns the migrations built into the binary.
func Migrations() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// Migration is one numbered, forward-only schema change. A file named
// NNNN_name.sql applies to both engines; NNNN_name.postgres.sql or
// NNNN_name.sqlite.sql to one only.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// MigrationStatus is a migration and when it was applied (nil if pending).
type MigrationStatus struct {
	Version   int
	Name      string
	AppliedAt *time.Time
}

// SchemaTooNewError says the database was migrated by a newer binary.
type SchemaTooNewError struct {
	DatabaseVersion, BinaryVersion int
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("the database schema is at version %d but this binary knows migrations only up to %d: run a newer patronage binary", e.DatabaseVersion, e.BinaryVersion)
}

// PendingError says the database needs migrations this binary has.
type PendingError struct {
	DatabaseVersion, BinaryVersion int
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("the database schema is at version %d but this binary needs %d: run `patronage migrate`", e.DatabaseVersion, e.BinaryVersion)
}

var migrationName = regexp.MustCompile(`^(\d+)_([a-z0-9_]+?)(?:\.(postgres|sqlite))?\.sql$`)

// LoadMigrations reads the migrations in fsys that apply to the dialect,
// ordered by version.
func (d Dialect) LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byVersion := map[int]Migration{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %q: name must be NNNN_name.sql, NNNN_name.postgres.sql or NNNN_name.sqlite.sql", e.Name())
		}
		if m[3] != "" && Dialect(m[3]) != d {
			continue
		}
		version, _ := strconv.Atoi(m[1])
		if prev, dup := byVersion[version]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", prev.Name, m[2], version)
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", e.Name(), err)
		}
		byVersion[version] = Migration{Version: version, Name: m[2], SQL: d.translateDDL(string(body))}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL
)`

// ensureMigrationsTable creates schema_migrations under the migration lock:
// PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin.
func (db *DB) ensureMigrationsTable(ctx context.Context) error {
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := db.Dialect.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.Dialect.translateDDL(createMigrationsTable))
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return nil
}

// Migrate applies every pending migration in fsys, each in its own
// transaction, and returns how many it applied. Concurrent migrators are
// safe: each takes a lock and re-checks before applying.
func (db *DB) Migrate(ctx context.Context, fsys fs.FS) (int, error) {
	migrations, err := db.Dialect.LoadMigrations(fsys)
	if err != nil {
		return 0, err
	}
	if err := db.ensureMigrationsTable(ctx); err != nil {
		return 0, err
	}
	if err := db.refuseNewer(ctx, migrations); err != nil {
		return 0, err
	}
	applied := 0
	for _, m := range migrations {
		did, err := db.apply(ctx, m)
		if err != nil {
			return applied, err
		}
		if did {
			applied++
		}
	}
	return applied, nil
}

func (db *DB) apply(ctx context.Context, m Migration) (bool, error) {
	did := false
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := db.Dialect.lockMigrations(ctx, tx); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations WHERE version = $1`, m.Version).Scan(&one)
		if err == nil {
			return nil // another process applied it first
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		for _, stmt := range splitStatements(m.SQL) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, m.Version, m.Name, Now()); err != nil {
			return fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
		did = true
		return nil
	})
	return did, err
}

// splitStatements splits a migration on semicolons that end a line. Migrations
// keep one statement per such line so both drivers, one of which runs a
// single statement per Exec, see the same thing.
func splitStatements(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			if stmt := strings.TrimSpace(cur.String()); stmt != ";" {
				out = append(out, stmt)
			}
			cur.Reset()
		}
	}
	if stmt := strings.TrimSpace(cur.String()); stmt != "" {
		out = append(out, stmt)
	}
	return out
}

func (db *DB) appliedVersions(ctx context.Context) (map[int]MigrationStatus, error) {
	rows, err := db.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]MigrationStatus{}
	for rows.Next() {
		var s MigrationStatus
		var at time.Time
		if err := rows.Scan(&s.Version, &s.Name, &at); err != nil {
			return nil, err
		}
		at = at.UTC()
		s.AppliedAt = &at
		out[s.Version] = s
	}
	return out, rows.Err()
}

func (db *DB) refuseNewer(ctx context.Context, migrations []Migration) error {
	applied, err := db.appliedVersions(ctx)
	if err != nil {
		return err
	}
	latest := 0
	if len(migrations) > 0 {
		latest = migrations[len(migrations)-1].Version
	}
	for v := range applied {
		if v > latest {
			return &SchemaTooNewError{DatabaseVersion: maxKey(applied), BinaryVersion: latest}
		}
	}
	return nil
}

// MigrationStatus lists every known migration, applied or pending, and any
// version the database has that this binary does not know.
func (db *DB) MigrationStatus(ctx context.Context, fsys fs.FS) ([]MigrationStatus, error) {
	migrations, err := db.Dialect.LoadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	if err := db.ensureMigrationsTable(ctx); err != nil {
		return nil, err
	}
	applied, err := db.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	var out []MigrationStatus
	for _, m := range migrations {
		s := MigrationStatus{Version: m.Version, Name: m.Name}
		if a, ok := applied[m.Version]; ok {
			s.AppliedAt = a.AppliedAt
			delete(applied, m.Version)
		}
		out = append(out, s)
	}
	for _, a := range applied {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// CheckSchema returns nil when the database is exactly at the binary's
// version, a *PendingError when migrations are missing and a
// *SchemaTooNewError when the database is ahead.
func (db *DB) CheckSchema(ctx context.Context, fsys fs.FS) error {
	migrations, err := db.Dialect.LoadMigrations(fsys)
	if err != nil {
		return err
	}
	if err := db.ensureMigrationsTable(ctx); err != nil {
		return err
	}
	if err := db.refuseNewer(ctx, migrations); err != nil {
		return err
	}
	applied, err := db.appliedVersions(ctx)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if _, ok := applied[m.Version]; !ok {
			return &PendingError{DatabaseVersion: maxKey(applied), BinaryVersion: migrations[len(migrations)-1].Version}
		}
	}
	return nil
}

func maxKey(m map[int]MigrationStatus) int {
	max := 0
	for k := range m {
		if k > max {
			max = k
		}
	}
	return max
}
