package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
)

func testMigrations(files map[string]string) fstest.MapFS {
	fs := fstest.MapFS{}
	for name, body := range files {
		fs[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fs
}

var twoMigrations = testMigrations(map[string]string{
	"0001_notes.sql": `CREATE TABLE notes (
	id TEXT PRIMARY KEY,
	body TEXT NOT NULL,
	amount BIGINT NOT NULL,
	currency TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);`,
	"0002_tags.sql": `CREATE TABLE tags (note_id TEXT NOT NULL REFERENCES notes (id), tag TEXT NOT NULL);
CREATE UNIQUE INDEX tags_key ON tags (note_id, tag);`,
})

func TestMigrateAppliesInOrderOnce(t *testing.T) {
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		n, err := db.Migrate(ctx, twoMigrations)
		if err != nil {
			t.Fatalf("first Migrate: %v", err)
		}
		if n != 2 {
			t.Errorf("first Migrate applied %d, want 2", n)
		}
		n, err = db.Migrate(ctx, twoMigrations)
		if err != nil || n != 0 {
			t.Errorf("second Migrate = (%d, %v), want (0, nil)", n, err)
		}
		status, err := db.MigrationStatus(ctx, twoMigrations)
		if err != nil {
			t.Fatal(err)
		}
		if len(status) != 2 || status[0].Name != "notes" || status[1].Name != "tags" || status[0].AppliedAt == nil || status[1].AppliedAt == nil {
			t.Errorf("status = %+v, want notes and tags applied", status)
		}
		if err := db.CheckSchema(ctx, twoMigrations); err != nil {
			t.Errorf("CheckSchema after Migrate: %v", err)
		}
	})
}

func TestAFailedMigrationLeavesNothingHalfDone(t *testing.T) {
	broken := testMigrations(map[string]string{
		"0001_ok.sql":     `CREATE TABLE ok (id TEXT PRIMARY KEY);`,
		"0002_broken.sql": "CREATE TABLE half (id TEXT PRIMARY KEY);\nCREATE TABLE nope (id NOT A TYPE ((;",
	})
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		n, err := db.Migrate(ctx, broken)
		if err == nil {
			t.Fatal("Migrate accepted a broken migration")
		}
		if n != 1 {
			t.Errorf("applied %d before the failure, want 1", n)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO half (id) VALUES ('x')`); err == nil {
			t.Error("the broken migration's first statement survived its failure")
		}
		var pe *sqldb.PendingError
		if err := db.CheckSchema(ctx, broken); !errors.As(err, &pe) || pe.DatabaseVersion != 1 || pe.BinaryVersion != 2 {
			t.Errorf("CheckSchema = %v, want pending from 1 to 2", err)
		}
	})
}

func TestADatabaseNewerThanTheBinaryIsRefused(t *testing.T) {
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Migrate(ctx, twoMigrations); err != nil {
			t.Fatal(err)
		}
		older := testMigrations(map[string]string{"0001_notes.sql": `CREATE TABLE notes (id TEXT PRIMARY KEY);`})
		var tooNew *sqldb.SchemaTooNewError
		if _, err := db.Migrate(ctx, older); !errors.As(err, &tooNew) {
			t.Fatalf("Migrate with an older binary = %v, want SchemaTooNewError", err)
		}
		if tooNew.DatabaseVersion != 2 || tooNew.BinaryVersion != 1 {
			t.Errorf("error = %+v, want database 2, binary 1", tooNew)
		}
		if err := db.CheckSchema(ctx, older); !errors.As(err, &tooNew) {
			t.Errorf("CheckSchema with an older binary = %v, want SchemaTooNewError", err)
		}
	})
}

func TestDialectSpecificMigrations(t *testing.T) {
	fs := testMigrations(map[string]string{
		"0001_base.sql":           `CREATE TABLE base (id TEXT PRIMARY KEY);`,
		"0002_extra.postgres.sql": `CREATE TABLE only_pg (id TEXT PRIMARY KEY);`,
		"0002_extra.sqlite.sql":   `CREATE TABLE only_sqlite (id TEXT PRIMARY KEY);`,
	})
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Migrate(ctx, fs); err != nil {
			t.Fatal(err)
		}
		mine, other := "only_sqlite", "only_pg"
		if db.Dialect == sqldb.Postgres {
			mine, other = other, mine
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO `+mine+` (id) VALUES ('x')`); err != nil {
			t.Errorf("the %s migration did not run: %v", db.Dialect, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO `+other+` (id) VALUES ('x')`); err == nil {
			t.Errorf("the other dialect's migration ran on %s", db.Dialect)
		}
	})
}

func TestConcurrentMigratorsApplyEachMigrationOnce(t *testing.T) {
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		var wg sync.WaitGroup
		total := make(chan int, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := db.Migrate(ctx, twoMigrations)
				if err != nil {
					t.Errorf("concurrent Migrate: %v", err)
				}
				total <- n
			}()
		}
		wg.Wait()
		close(total)
		sum := 0
		for n := range total {
			sum += n
		}
		if sum != 2 {
			t.Errorf("four concurrent migrators applied %d migrations in all, want 2", sum)
		}
	})
}

func TestTimesAndMoneyRoundTripExactly(t *testing.T) {
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Migrate(ctx, twoMigrations); err != nil {
			t.Fatal(err)
		}
		berlin, _ := time.LoadLocation("Europe/Berlin")
		early := time.Date(2026, 3, 1, 9, 30, 0, 123456789, berlin)
		late := early.Add(time.Microsecond)
		for i, at := range []time.Time{late, early} {
			_, err := db.ExecContext(ctx, `INSERT INTO notes (id, body, amount, currency, created_at) VALUES ($1, $2, $3, $4, $5)`,
				[]string{"late", "early"}[i], "x", int64(9_007_199_254_740_993), "JPY", at.UTC().Truncate(time.Microsecond))
			if err != nil {
				t.Fatal(err)
			}
		}
		rows, err := db.QueryContext(ctx, `SELECT id, amount, created_at FROM notes WHERE created_at >= $1 ORDER BY created_at`, early.UTC().Truncate(time.Microsecond))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			var amount int64
			var at time.Time
			if err := rows.Scan(&id, &amount, &at); err != nil {
				t.Fatal(err)
			}
			if amount != 9_007_199_254_740_993 {
				t.Errorf("amount = %d, want it exact beyond float precision", amount)
			}
			if at.Location() != time.UTC {
				t.Errorf("%s read back in %v, want UTC", id, at.Location())
			}
			if id == "early" && !at.Equal(early.Truncate(time.Microsecond)) {
				t.Errorf("early read back as %v, want %v", at, early.Truncate(time.Microsecond))
			}
			ids = append(ids, id)
		}
		if len(ids) != 2 || ids[0] != "early" || ids[1] != "late" {
			t.Errorf("order by time = %v, want [early late] one microsecond apart", ids)
		}
	})
}

func TestUniqueViolationsAreRecognised(t *testing.T) {
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Migrate(ctx, twoMigrations); err != nil {
			t.Fatal(err)
		}
		insert := func() error {
			_, err := db.ExecContext(ctx, `INSERT INTO notes (id, body, amount, currency, created_at) VALUES ('n1', 'x', 1, 'EUR', $1)`, sqldb.Now())
			return err
		}
		if err := insert(); err != nil {
			t.Fatal(err)
		}
		err := insert()
		if !sqldb.IsUniqueViolation(err) {
			t.Errorf("duplicate insert error %v is not recognised as a unique violation", err)
		}
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	testenv.EachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Migrate(ctx, twoMigrations); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO notes (id, body, amount, currency, created_at) VALUES ('n1', 'x', 1, 'EUR', $1)`, sqldb.Now()); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want the function's error", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notes`).Scan(&n); err != nil || n != 0 {
			t.Errorf("after a failed transaction the table has %d rows (%v), want 0", n, err)
		}
	})
}

func TestSQLiteFileSurvivesReopen(t *testing.T) {
	// A DATA_DIR with URI characters in it is still the directory used.
	dir := filepath.Join(t.TempDir(), "news#room?", "da%20ta")
	ctx := context.Background()
	db, err := sqldb.Open(ctx, sqldb.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := db.Migrate(ctx, sqldb.Migrations()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO members (id, email, role, created_at, updated_at) VALUES ('m1', 'a@example.org', 'patron', $1, $1)`, sqldb.Now()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, sqldb.SQLiteFile)); err != nil {
		t.Fatalf("database file: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(filepath.Dir(dir))); len(entries) != 1 {
		t.Errorf("files beside the data directory: %v; SQLite opened another path", entries)
	}

	db, err = sqldb.Open(ctx, sqldb.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	var email string
	if err := db.QueryRowContext(ctx, `SELECT email FROM members WHERE id = 'm1'`).Scan(&email); err != nil || email != "a@example.org" {
		t.Errorf("after reopening, member m1 = %q (%v), want a@example.org", email, err)
	}
	var fk int
	if err := db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d (%v), want 1", fk, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
}
