package main

import (
	"context"
	"fmt"
	"io"

	"github.com/patronage/patronage/internal/jobs"
	"github.com/patronage/patronage/webhooks"
)

const webhooksUsage = `Usage:
  patronage webhooks replay EVENT_ID
      Queue a stored Stripe event for processing again, whatever its status
      (a dead-lettered event after its cause is fixed, say). Handlers are
      idempotent, so replaying a processed event changes nothing that is right.
`

func runWebhooks(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stdout, webhooksUsage)
		if len(args) == 0 {
			return &usageError{"webhooks: missing subcommand (replay)"}
		}
		return errHelp
	}
	if args[0] != "replay" {
		return &usageError{fmt.Sprintf("webhooks: unknown subcommand %q (want replay)", args[0])}
	}
	if len(args) == 2 && (args[1] == "--help" || args[1] == "-h") {
		fmt.Fprint(stdout, webhooksUsage)
		return errHelp
	}
	if len(args) != 2 {
		return &usageError{"webhooks replay: give exactly one event id"}
	}
	_, db, logger, err := openAdmin(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	queue, err := jobs.New(db, nil, logger, jobs.Options{})
	if err != nil {
		return err
	}
	if err := webhooks.NewIntake(db, queue, nil).Retry(ctx, args[1]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Queued %s for processing.\n", args[1])
	return nil
}
