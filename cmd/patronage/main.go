// Command patronage runs a newsroom's patron program: the HTTP API and pages,
// the webhook intake and the workers, plus the admin subcommands.
package main

import (
	"context"
	"os"
)

func main() {
	err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}
