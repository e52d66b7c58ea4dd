package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/stripe/stripe-go/v76"

	"github.com/patronage/patronage/internal/config"
	"github.com/patronage/patronage/internal/errs"
)

// version is set at build time with -ldflags "-X main.version=…"; without it
// the module version from the build info is shown.
var version = ""

const usage = `patronage — a newsroom's patron program: memberships, votes, revenue.

Usage:
  patronage [command] [--help]

Commands:
  serve            run the HTTP server (the default when no command is given)
  migrate          apply pending database migrations
  migrate status   list migrations and whether each is applied
  admin create     create or promote a staff account; prints a sign-in link and an API token
  admin revoke-token
                   revoke a staff API token
  stripe push-tiers
                   mirror tiers to Stripe Products and Prices (idempotent)
  stripe import-tiers
                   adopt existing Stripe Products and Prices as tiers
  stripe sync [--since YYYY-MM-DD]
                   reconcile with Stripe, printing and repairing every drift
  webhooks replay EVENT_ID
                   queue a stored Stripe event for processing again
  voting rebuild [ROUND_ID]
                   rebuild Redis tallies from the ballots (every open round by default)
  voting verify [ROUND_ID]
                   compare Redis with the ballots; exit 1 on any difference
  metrics rebuild  compute the staff figures again from the history and the ledger
  demo seed [--patrons N] [--months M] [--seed S]
                   fill a fresh database with a synthetic history, to try the dashboard
  version          print the version
  help             print this help

Configuration comes from the environment and an optional .env file; see
.env.example for every variable.
`

// usageError is a mistake on the command line; it exits with code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// errHelp means help was asked for and printed; it exits with code 0.
var errHelp = errors.New("help requested")

// run is the whole program; main only calls it, and tests call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", []string(nil)
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "stripe":
		return runStripe(ctx, rest, getenv, stdout)
	case "webhooks":
		return runWebhooks(ctx, rest, getenv, stdout)
	case "voting":
		return runVoting(ctx, rest, getenv, stdout)
	case "admin":
		return runAdmin(ctx, rest, getenv, stdout)
	case "metrics":
		return runMetrics(ctx, rest, getenv, stdout)
	case "demo":
		return runDemo(ctx, rest, getenv, stdout)
	case "version":
		if err := parseFlags("version", "Print the version of this binary.", rest, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "patronage %s (%s, Stripe API %s)\n", buildVersion(), runtime.Version(), stripe.APIVersion)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		if len(cmd) > 0 && cmd[0] == '-' {
			return &usageError{fmt.Sprintf("unknown flag %q; run `patronage help`", cmd)}
		}
		return &usageError{fmt.Sprintf("unknown command %q; run `patronage help`", cmd)}
	}
}

// parseFlags gives every subcommand the same --help and the same refusal of
// stray arguments.
func parseFlags(name, summary string, args []string, stdout io.Writer) error {
	return parseFlagsWith(name, summary, args, stdout, nil)
}

// parseFlagsWith is parseFlags for a command with flags of its own, which
// define declares.
func parseFlagsWith(name, summary string, args []string, stdout io.Writer, define func(fs *flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if define != nil {
		define(fs)
	}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: patronage %s\n\n%s\n", name, summary)
		return errHelp
	}
	if err != nil {
		return &usageError{fmt.Sprintf("%s: %v", name, err)}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// loadConfig reads the environment and the optional .env file.
func loadConfig(getenv func(string) string) (config.Config, error) {
	env, err := config.WithEnvFile(config.FromGetenv(getenv))
	if err != nil {
		return config.Config{}, err
	}
	return config.Load(env)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// exitCode prints err for the operator and chooses the process's exit code:
// 0 for success or help, 2 for bad configuration or usage, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	var ee *errs.Error
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case config.IsError(err):
		fmt.Fprintf(stderr, "patronage: bad configuration:\n%s\n", indent(err.Error()))
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "patronage: %s\n", err)
		return 2
	case errors.As(err, &ee) && ee.Kind != errs.Internal:
		fmt.Fprintf(stderr, "patronage: %s\n", ee.Message)
		for field, problem := range ee.Fields {
			fmt.Fprintf(stderr, "  %s: %s\n", field, problem)
		}
		if ee.Kind == errs.Invalid || ee.Kind == errs.NotFound {
			return 2
		}
		return 1
	default:
		fmt.Fprintf(stderr, "patronage: %s\n", err)
		return 1
	}
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// notifyShutdown ends ctx on SIGINT or SIGTERM.
func notifyShutdown(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
}
