package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/patronage/patronage/voting"
)

const votingUsage = `Usage:
  patronage voting rebuild [ROUND_ID]
      Rebuild a round's Redis tally and vote sets from its ballots (the
      truth), or every open round's when no id is given.
  patronage voting verify [ROUND_ID]
      Compare Redis with the ballots for a round, or every open round, and
      print every difference; exit 1 if there is any.
`

// errDifferences makes verify exit 1 after printing what differs.
var errDifferences = errors.New("redis and the ballots differ")

func runVoting(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stdout, votingUsage)
		if len(args) == 0 {
			return &usageError{"voting: missing subcommand (rebuild or verify)"}
		}
		return errHelp
	}
	sub := args[0]
	if sub != "rebuild" && sub != "verify" {
		return &usageError{fmt.Sprintf("voting: unknown subcommand %q (want rebuild or verify)", sub)}
	}
	if len(args) > 2 {
		return &usageError{"voting " + sub + ": give at most one round id"}
	}
	if len(args) == 2 && (args[1] == "--help" || args[1] == "-h") {
		fmt.Fprint(stdout, votingUsage)
		return errHelp
	}
	cfg, db, logger, err := openAdmin(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	rdb, err := serverRedis(ctx, cfg, logger)
	if err != nil {
		return fmt.Errorf("voting %s needs the Redis the server uses: %w", sub, err)
	}
	defer rdb.Close()
	hooks, err := newOutgoing(cfg, db, logger)
	if err != nil {
		return err
	}
	v := voting.NewService(voting.Deps{DB: db, Redis: rdb, Logger: logger, Events: hooks})
	rounds := args[1:]
	if len(rounds) == 0 {
		if rounds, err = v.OpenRounds(ctx); err != nil {
			return err
		}
	}
	differ := false
	for _, id := range rounds {
		if _, err := v.FindRound(ctx, id); err != nil {
			return err
		}
		if sub == "rebuild" {
			t, err := v.RebuildTally(ctx, id)
			if err != nil {
				return err
			}
			var total int64
			for _, n := range t {
				total += n
			}
			fmt.Fprintf(stdout, "rebuilt round %s: %d topic(s) with votes, %d in all\n", id, len(t), total)
			continue
		}
		diffs, err := v.VerifyRound(ctx, id)
		if err != nil {
			return err
		}
		for _, d := range diffs {
			fmt.Fprintln(stdout, d)
		}
		if len(diffs) == 0 {
			fmt.Fprintf(stdout, "round %s: Redis matches the ballots\n", id)
		}
		differ = differ || len(diffs) > 0
	}
	if differ {
		return errDifferences
	}
	return nil
}
