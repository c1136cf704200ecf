// Package cli owns the jobrunner command line: global flags, the commands
// (migrate, definitions, run, runs, schedule) and the wiring of definitions,
// processors and the run store behind them. cmd/jobrunner calls [Main]; a
// program of your own can too, with your processors registered, and gets the
// whole CLI for them:
//
//	os.Exit(cli.Main(ctx, os.Args[1:], cli.Options{Register: func(r *processors.Registry) {
//		r.Register("Greet", greet, processors.ForConnectionTypes("greeter"))
//	}}))
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/jobrunner/jobrunner/buildinfo"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/metrics"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/processors/exec"
	"github.com/jobrunner/jobrunner/processors/noop"
	"github.com/jobrunner/jobrunner/recordsync"
)

// Options configure Main.
type Options struct {
	// Register adds the program's own processors to the registry, after
	// the built-in ones (noop, exec, http). It may panic on duplicates as
	// processors.Registry.Register does.
	Register func(*processors.Registry)
	// Definitions are the default definitions when --definitions is not
	// given (their YAML files at the root of the FS); nil: the built-in
	// examples.
	Definitions fs.FS
	// Stdout and Stderr default to os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
}

// app holds the global flags and what they resolve to.
type app struct {
	defaultDefs    fs.FS
	stdout, stderr io.Writer
	dbFlag         string
	defsFlag       string
	logFormat      string
	logLevel       string
	noMigrate      bool

	log      *logrus.Logger
	registry *processors.Registry
	store    *jobs.Store
	defs     atomic.Pointer[definitions.Set]
	state    *stateProxy
	// metrics are set by serve (ERP responses are observed through them).
	metrics atomic.Pointer[metrics.Metrics]
	// env overrides environment variables for connections (demo ERP).
	env map[string]string
	// configFlag is --config; settings the configurable flags of the
	// command being run, with their sources (see applyConfig).
	configFlag string
	settings   []*setting
}

// stateProxy lets processors registered before the store is opened reach
// it (a sync's mark, done set and pending orders).
type stateProxy struct{ store *jobs.Store }

var errNoStore = errors.New("sync state: no database open")

func (p *stateProxy) SyncMark(ctx context.Context, job string) (time.Time, bool, error) {
	if p.store == nil {
		return time.Time{}, false, errNoStore
	}
	return p.store.SyncMark(ctx, job)
}

func (p *stateProxy) SyncDone(ctx context.Context, job string, keys []string) (map[string]bool, error) {
	if p.store == nil {
		return nil, errNoStore
	}
	return p.store.SyncDone(ctx, job, keys)
}

func (p *stateProxy) SyncPending(ctx context.Context, job, after string, limit int) ([]recordsync.Pending, error) {
	if p.store == nil {
		return nil, errNoStore
	}
	return p.store.SyncPending(ctx, job, after, limit)
}

func (p *stateProxy) SyncCommit(ctx context.Context, job string, c recordsync.Commit) error {
	if p.store == nil {
		return errNoStore
	}
	return p.store.SyncCommit(ctx, job, c)
}

func newApp(opts Options) *app {
	a := &app{stdout: opts.Stdout, stderr: opts.Stderr, defaultDefs: opts.Definitions, registry: processors.NewRegistry(), state: &stateProxy{}}
	if a.stdout == nil {
		a.stdout = os.Stdout
	}
	if a.stderr == nil {
		a.stderr = os.Stderr
	}
	noop.Register(a.registry)
	exec.Register(a.registry)
	registerHTTP(a)
	if opts.Register != nil {
		opts.Register(a.registry)
	}
	return a
}

func (a *app) setupLog() error {
	a.log = logrus.New()
	a.log.SetOutput(a.stderr)
	lv, err := logrus.ParseLevel(a.logLevel)
	if err != nil {
		return usagef("--log-level %q: want one of trace, debug, info, warn, error, fatal, panic", a.logLevel)
	}
	a.log.SetLevel(lv)
	switch a.logFormat {
	case "json":
		a.log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: logTimeFormat})
	case "text", "":
		f, ok := a.stderr.(*os.File)
		a.log.SetFormatter(&logrus.TextFormatter{ForceColors: ok && term.IsTerminal(int(f.Fd())), FullTimestamp: true, TimestampFormat: logTimeFormat})
	default:
		return usagef("--log-format: want text or json, got %q", a.logFormat)
	}
	// The MySQL driver's own lines ("[mysql] … unexpected EOF") go through
	// the same logger, so they are JSON with --log-format json.
	driverLogger.Store(a.log)
	return nil
}

// logTimeFormat is RFC 3339 with milliseconds.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// driverLogger is the logger the MySQL driver's lines go to: the driver's
// logger is process-wide, so it is set once (init) to driverLog, which
// writes to the logger of the latest command (cli.Main may run many
// times in one process).
var driverLogger atomic.Pointer[logrus.Logger]

func init() { _ = gomysql.SetLogger(driverLog{}) }

// driverLog adapts the process logger to the MySQL driver's Logger.
type driverLog struct{}

// Print logs one driver line as a warning.
func (driverLog) Print(v ...any) {
	log := driverLogger.Load()
	if log == nil {
		log = logrus.StandardLogger()
	}
	log.WithField("component", "mysql-driver").Warn(strings.TrimSpace(fmt.Sprint(v...)))
}

// definitions loads and validates the definitions once.
func (a *app) definitions() (*definitions.Set, error) {
	if set := a.defs.Load(); set != nil {
		return set, nil
	}
	return a.loadDefinitions()
}

// loadDefinitions loads and validates the definitions from their source
// and makes them current; on error the current set stays.
func (a *app) loadDefinitions() (*definitions.Set, error) {
	var (
		set *definitions.Set
		err error
	)
	switch {
	case a.defsFlag == "" && a.defaultDefs != nil:
		set, err = definitions.LoadFS(a.defaultDefs, ".")
		if err == nil {
			err = set.Validate(a.registry)
		}
	default:
		set, err = definitions.LoadAndValidate(a.defsFlag, a.registry)
	}
	if err != nil {
		return nil, usageError{fmt.Errorf("definitions in %s:\n%w", a.defsWhere(), err)}
	}
	a.defs.Store(set)
	return set, nil
}

// openStore opens the database once.
func (a *app) openStore(ctx context.Context) (*jobs.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	s, err := jobs.Open(ctx, a.dsn(), jobs.OpenOptions{NoMigrate: a.noMigrate})
	if err != nil {
		if errors.Is(err, jobs.ErrBadDSN) {
			return nil, usageError{err}
		}
		return nil, err
	}
	a.store = s
	a.state.store = s
	return s, nil
}

// dsn is the database address: --db, else JOBRUNNER_DB, else the embedded
// default.
func (a *app) dsn() string {
	if a.dbFlag != "" {
		return a.dbFlag
	}
	if v := os.Getenv("JOBRUNNER_DB"); v != "" {
		return v
	}
	return jobs.DefaultDSN
}

func (a *app) close() {
	if a.store != nil {
		_ = a.store.Close()
	}
}

func (a *app) executor() *jobs.Executor {
	return &jobs.Executor{
		Store:       a.store,
		Registry:    a.registry,
		Definitions: a.defs.Load,
		Log:         a.log,
		Getenv:      a.getenv,
	}
}

// parseKV parses repeated K=V flags.
func parseKV(flag string, kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("%s %q: want NAME=VALUE", flag, kv)
		}
		if _, dup := out[k]; dup {
			return nil, usagef("%s %s given twice", flag, k)
		}
		out[k] = v
	}
	return out, nil
}

// defsWhere names where the definitions come from, for messages.
func (a *app) defsWhere() string {
	switch {
	case a.defsFlag != "":
		return a.defsFlag
	case a.defaultDefs != nil:
		return "the program's definitions"
	}
	return "the built-in examples"
}

// Main runs the jobrunner CLI with args (without the program name) and
// returns the exit code: 0 success, 1 the run or command failed, 2 bad
// usage or bad input. Cancelling ctx (e.g. on SIGINT) cancels running work.
func Main(ctx context.Context, args []string, opts Options) int {
	a := newApp(opts)
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		var f failedError
		if !errors.As(err, &f) || f.msg != "" {
			fmt.Fprintln(a.stderr, "jobrunner:", err)
		}
	}
	return exitCode(err)
}

func (a *app) rootCommand() *cobra.Command {
	root := group(&cobra.Command{
		Use:           "jobrunner",
		Short:         "Run commerce ↔ ERP integration jobs and record every run",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := a.applyConfig(cmd); err != nil {
				return err
			}
			return a.setupLog()
		},
	})
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })
	root.Version = buildinfo.Read().Short()
	root.SetVersionTemplate(buildinfo.Read().String())
	pf := root.PersistentFlags()
	pf.StringVar(&a.dbFlag, "db", "", "database: sqlite:PATH or mysql://user:pass@host:port/db (env JOBRUNNER_DB; default "+jobs.DefaultDSN+")")
	pf.StringVar(&a.defsFlag, "definitions", os.Getenv("JOBRUNNER_DEFINITIONS"), "directory of job definition YAML files (env JOBRUNNER_DEFINITIONS; default: the built-in examples)")
	pf.StringVar(&a.logFormat, "log-format", "text", "process log format: text or json")
	pf.StringVar(&a.logLevel, "log-level", "info", "process log level: debug, info, warn, error")
	pf.BoolVar(&a.noMigrate, "no-migrate", false, "do not apply pending database migrations")
	pf.StringVar(&a.configFlag, "config", "", "YAML configuration file: global settings by flag name, command settings under the command (serve: {workers: 32}); env JOBRUNNER_CONFIG; flags > environment > file > defaults")
	root.AddCommand(a.migrateCommand(), a.definitionsCommand(), a.runCommand(), a.runsCommand(), a.scheduleCommand(), a.serveCommand(), a.triggerCommand(), a.benchCommand(), a.versionCommand(), a.healthcheckCommand(), a.demoERPCommand(), a.configCommand(), a.pauseCommand(), a.resumeCommand(), a.pausesCommand())
	return root
}

// wrapArgs turns cobra's argument errors into usage errors.
func wrapArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// group makes a command that only holds subcommands treat an unknown
// subcommand as bad usage (exit 2): cobra would otherwise print the help
// and exit 0 (a command without RunE), or return a plain error (the root).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = wrapArgs(cobra.NoArgs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the build: module version, VCS revision and time, Go version",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(a.stdout, buildinfo.Read())
			}
			fmt.Fprint(a.stdout, buildinfo.Read().String())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
