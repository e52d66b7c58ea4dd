package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/patronage/patronage/metrics"
)

const metricsUsage = `Usage:
  patronage metrics rebuild
      Throw the staff figures' counters away and compute them again from the
      subscription history and the payment ledger (docs/metrics.md). On
      PostgreSQL servers keep running (their writes of figures wait until the
      rebuild commits); on the embedded SQLite stop the server first, as the
      rebuild holds the database's write lock throughout.
`

func runMetrics(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stdout, metricsUsage)
		if len(args) == 0 {
			return &usageError{"metrics: missing subcommand (rebuild)"}
		}
		return errHelp
	}
	if args[0] != "rebuild" {
		return &usageError{fmt.Sprintf("metrics: unknown subcommand %q (want rebuild)", args[0])}
	}
	if len(args) > 1 {
		return &usageError{"metrics rebuild takes no arguments"}
	}
	_, db, _, err := openAdmin(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	rep, err := metrics.NewService(db).Rebuild(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt the staff figures in %.1f s: %d patrons, %d ledger rows, %d contributions\n",
		time.Since(start).Seconds(), rep.Patrons, rep.LedgerRows, rep.Contributions)
	return nil
}
