package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/patronage/patronage/internal/config"
	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/statustoken"
	"github.com/patronage/patronage/members"
)

const adminUsage = `Usage:
  patronage admin create --email EMAIL [--role admin|staff] [--name NAME]
      Create the account, or raise an existing one to the role (never lower it),
      then print a one-time sign-in link and a new API token (shown once).
  patronage admin revoke-token TOKEN_OR_ID
      Revoke an API token, given the token itself or its id (tok_…).
  patronage admin rotate-status-key [--now]
      Make a new key for readers' status tokens: published at once, signing
      ten minutes later (when every replica and cache has it), the old key
      published for an hour after that. With --now, for a key that leaked:
      every earlier key is deleted and withdrawn from the key set at once,
      and the new key signs from now (tokens already given out stop
      verifying as sites refresh the set).
`

func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stdout, adminUsage)
		if len(args) == 0 {
			return &usageError{"admin: missing subcommand (create, revoke-token or rotate-status-key)"}
		}
		return errHelp
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("admin "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	email := fs.String("email", "", "")
	role := fs.String("role", "admin", "")
	name := fs.String("name", "", "")
	now := fs.Bool("now", false, "")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, adminUsage)
			return errHelp
		}
		return &usageError{fmt.Sprintf("admin %s: %v", sub, err)}
	}
	if *now && sub != "rotate-status-key" {
		return &usageError{fmt.Sprintf("admin %s: --now belongs to rotate-status-key", sub)}
	}
	switch sub {
	case "create":
		if *email == "" || fs.NArg() > 0 {
			return &usageError{"admin create: --email is required and takes no other arguments"}
		}
		if *role != "admin" && *role != "staff" {
			return &usageError{fmt.Sprintf("admin create: --role %q (want admin or staff)", *role)}
		}
		return adminCreate(ctx, getenv, stdout, *email, *name, members.Role(*role))
	case "revoke-token":
		if fs.NArg() != 1 {
			return &usageError{"admin revoke-token: give exactly one token or token id"}
		}
		return adminRevoke(ctx, getenv, stdout, fs.Arg(0))
	case "rotate-status-key":
		if fs.NArg() != 0 {
			return &usageError{"admin rotate-status-key: takes no arguments but --now"}
		}
		cfg, db, _, err := openAdmin(ctx, getenv)
		if err != nil {
			return err
		}
		defer db.Close()
		keys := statustoken.New(db, cfg.BaseURL.String(), nil)
		if *now {
			id, err := keys.Replace(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Key %s signs status tokens from now on. Every earlier key is deleted and gone from the key set: every replica rereads its keys within a minute, and tokens the old keys signed stop verifying once sites' copies of the set expire, %d minutes after that at most.\n",
				id, statustoken.JWKSMaxAge/60)
			return nil
		}
		id, from, err := keys.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Key %s is published now and signs status tokens from %s; the previous key stays published for an hour after that.\n",
			id, from.UTC().Format(time.RFC3339))
		return nil
	default:
		return &usageError{fmt.Sprintf("admin: unknown subcommand %q (want create, revoke-token or rotate-status-key)", sub)}
	}
}

// openAdmin loads the configuration and opens the database for an admin
// subcommand, whose output is for a person, not a log.
func openAdmin(ctx context.Context, getenv func(string) string) (config.Config, *sqldb.DB, *slog.Logger, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg, err := loadConfig(getenv)
	if err != nil {
		return cfg, nil, nil, err
	}
	db, err := openDatabase(ctx, cfg, logger)
	return cfg, db, logger, err
}

// serverRedis opens the Redis the server uses: REDIS_URL's, or the
// in-process one of a server running on DATA_DIR (redisx.ErrNoSharedRedis
// when none runs there).
func serverRedis(ctx context.Context, cfg config.Config, logger *slog.Logger) (*redisx.Redis, error) {
	if cfg.RedisURL != "" {
		return redisx.Open(ctx, cfg.RedisURL, cfg.RedisKeyPrefix, logger)
	}
	return redisx.AttachShared(ctx, cfg.DataDir, cfg.RedisKeyPrefix)
}

func adminCreate(ctx context.Context, getenv func(string) string, stdout io.Writer, email, name string, role members.Role) error {
	cfg, db, logger, err := openAdmin(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()

	// The sign-in token must land in the Redis the server reads: the
	// configured one, or the in-process one of a server running on DATA_DIR.
	rdb, err := serverRedis(ctx, cfg, logger)
	if err != nil && !errors.Is(err, redisx.ErrNoSharedRedis) {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
	}
	hooks, err := newOutgoing(cfg, db, logger)
	if err != nil {
		return err
	}
	catalog, templates, err := newWording(cfg)
	if err != nil {
		return err
	}
	svc, err := newMembers(cfg, db, rdb, logger, hooks, catalog, templates)
	if err != nil {
		return err
	}
	defer svc.Close(ctx)

	m, created, err := svc.EnsureStaff(ctx, members.CommandLine, email, name, role)
	if err != nil {
		return err
	}
	verb := "Updated"
	if created {
		verb = "Created"
	}
	fmt.Fprintf(stdout, "%s %s account %s (%s).\n\n", verb, m.Role, m.Email, m.ID)

	token, info, err := svc.CreateAPIToken(ctx, members.CommandLine, m.ID, "created by patronage admin create")
	if err != nil {
		return err
	}
	if rdb != nil {
		link, err := svc.SignInLink(ctx, m.ID, "")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Sign-in link (works once, for 15 minutes):\n  %s\n\n", link)
	} else {
		fmt.Fprintf(stdout, "No sign-in link: REDIS_URL is not set and no server is running on DATA_DIR (%s),\nso a link would land in a Redis the server never reads. Start `patronage serve`\nand run this again, or ask for a link at %s/signin.\n\n", cfg.DataDir, cfg.BaseURL)
	}
	fmt.Fprintf(stdout, "API token %s (shown once; store it safely):\n  %s\n\nUse it as: Authorization: Bearer <token>\n", info.ID, token)
	return nil
}

func adminRevoke(ctx context.Context, getenv func(string) string, stdout io.Writer, tokenOrID string) error {
	cfg, db, logger, err := openAdmin(ctx, getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	catalog, templates, err := newWording(cfg)
	if err != nil {
		return err
	}
	svc, err := newMembers(cfg, db, nil, logger, nil, catalog, templates)
	if err != nil {
		return err
	}
	t, err := svc.RevokeAPIToken(ctx, members.CommandLine, tokenOrID)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Revoked API token %s (%s…, %q).\n", t.ID, t.Hint, t.Name)
	return nil
}
