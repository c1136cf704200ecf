// Command greeter is a jobrunner of your own: it registers its own
// processor (Greet) for its own connection type (greeter), embeds the job
// definition that uses it (greeter.yaml), and gets the whole jobrunner CLI
// for it from cli.Main: run, runs list/show/logs/cancel, definitions,
// schedule, the SQLite or MySQL run store.
//
//	GREETER_KEY=s3cret go run ./examples/greeter run Greet --param Name=Ada
//	go run ./examples/greeter runs logs 1
//
// Copy this directory to start an integration of your own.
//
// User code: 39 lines (non-blank, non-comment; package, imports and the
// //go:embed directive included).
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jobrunner/jobrunner/cli"
	"github.com/jobrunner/jobrunner/processors"
)

// definitions holds the program's job definitions: used when no
// --definitions DIR is given.
//
//go:embed greeter.yaml
var definitions embed.FS

// greet is the Greet processor: the connection's settings and resolved
// secrets arrive in run.Connection, the typed parameters in run.Params. Its
// result is stored with the run; run.Log lines are the run's logs.
func greet(ctx context.Context, run *processors.Run) error {
	name := run.Params.String("Name")
	if name == "nobody" { // retrying cannot fix this: fail now with a code
		return processors.Permanent("UNKNOWN_PERSON", "there is nobody to greet")
	}
	text := fmt.Sprintf("%s, %s!", run.Connection.Settings["greeting"], name) // settings as in greeter.yaml
	mac := hmac.New(sha256.New, []byte(run.Connection.Secrets["key"]))        // a secret: never log or return it
	mac.Write([]byte(text))
	run.Log.Info("greeted "+name, "text", text)
	run.SetResult(map[string]string{"text": text, "signature": fmt.Sprintf("%x", mac.Sum(nil))})
	return nil
}

// register adds the program's processors: Greet, for connection type
// "greeter" (the type its definitions' connection names).
func register(r *processors.Registry) {
	r.Register("Greet", processors.ProcessorFunc(greet), processors.ForConnectionTypes("greeter"))
}

// options are the CLI's options: the program's processors, and its embedded
// definitions as the default.
func options() cli.Options {
	return cli.Options{Register: register, Definitions: definitions}
}

func main() {
	// Ctrl-C cancels the running job, which is then recorded as cancelled.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], options())
	stop()
	os.Exit(code)
}
