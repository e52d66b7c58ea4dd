package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/internal/sqldb"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	status := len(args) > 0 && args[0] == "status"
	if status {
		if err := parseFlags("migrate status", "List every migration this binary knows and whether the database has it.", args[1:], stdout); err != nil {
			return err
		}
	} else if err := parseFlags("migrate", "Apply pending database migrations, each in its own transaction. `patronage migrate status` lists them.", args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	db, err := sqldb.Open(ctx, sqldb.Options{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()

	if status {
		list, err := db.MigrationStatus(ctx, sqldb.Migrations())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n\n", db.Where)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
		for _, m := range list {
			applied := "pending"
			if m.AppliedAt != nil {
				applied = m.AppliedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%04d\t%s\t%s\n", m.Version, m.Name, applied)
		}
		return tw.Flush()
	}
	n, err := db.Migrate(ctx, sqldb.Migrations())
	if err != nil {
		return err
	}
	queueN, err := jobs.Migrate(ctx, db)
	if err != nil {
		return err
	}
	n += queueN
	fmt.Fprintf(stdout, "%s: applied %d migration(s); the schema is up to date\n", db.Where, n)
	return nil
}
