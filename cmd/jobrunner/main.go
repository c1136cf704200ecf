// Command jobrunner runs ERP integration jobs: it loads job definitions,
// runs jobs on demand or on schedule, and records every run in MySQL or an
// embedded SQLite file. It only wires signals to the cli package; see the
// README for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // time zones inside the binary: a scratch image has no zoneinfo

	"github.com/jobrunner/jobrunner/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Options{})
	stop()
	os.Exit(code)
}
