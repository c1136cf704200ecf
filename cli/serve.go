package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/jobrunner/jobrunner/api"
	"github.com/jobrunner/jobrunner/buildinfo"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/metrics"
	"github.com/jobrunner/jobrunner/notify"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/scheduler"
	"github.com/jobrunner/jobrunner/tracing"
)

// serveOptions are serve's flags.
type serveOptions struct {
	addr         string
	workers      int
	batch        int
	connShare    int
	poll         time.Duration
	leaseTTL     time.Duration
	grace        time.Duration
	demo         bool
	noScheduler  bool
	retention    time.Duration
	waitDB       time.Duration
	baseURL      string
	misfireGrace time.Duration
	connections  []string
}

func (a *app) serveCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the scheduler, workers, HTTP API, dashboard, /metrics and health checks",
		Long: `Run jobrunner as a service: schedules fire, queued runs are claimed and
executed by --workers workers with leases, and the HTTP API, dashboard,
/metrics, /healthz and /readyz listen on --http. Any number of instances may
share one MySQL database.

SIGHUP (or POST /api/v1/admin/reload) reloads the definitions; a bad file
keeps the old set running and logs every problem. SIGTERM or Ctrl-C stops
claiming at once, lets running runs finish within --grace, then releases
the rest to the queue without using an attempt.

API tokens: JOBRUNNER_API_TOKENS="name:role:token,…" (roles viewer,
operator, admin). Without tokens serve listens only on loopback.`,
		Args: wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serve(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "http", "127.0.0.1:8080", "listen address of the API, dashboard and /metrics (\"\" disables HTTP)")
	f.IntVar(&o.workers, "workers", jobs.DefaultWorkers, "runs executed at once by this instance (one connection's runs take at most --connection-share of them)")
	f.IntVar(&o.batch, "batch", 0, "runs claimed per query (default min(workers, 256))")
	f.IntVar(&o.connShare, "connection-share", 0, "most runs of one connection executing at once here, so that a hung ERP leaves workers for the others (default 3/4 of workers, at most 16; -1: no cap; noop connections are not capped)")
	f.DurationVar(&o.poll, "poll", time.Second, "how often to look for runs queued by other instances or coming due")
	f.DurationVar(&o.leaseTTL, "lease-ttl", 30*time.Second, "lease length; heartbeats renew it every third of it, and another instance rescues a run whose lease lapsed")
	f.DurationVar(&o.grace, "grace", 30*time.Second, "on SIGTERM, how long running runs may finish before they are released")
	f.BoolVar(&o.demo, "demo", false, "start the built-in demo ERP on a loopback port and point the erp connection at it")
	f.BoolVar(&o.noScheduler, "no-scheduler", false, "do not fire schedules in this instance (workers and API only)")
	f.DurationVar(&o.retention, "retention", 30*24*time.Hour, "prune finished runs and their logs older than this (0 keeps everything)")
	f.DurationVar(&o.waitDB, "wait-db", 5*time.Minute, "at start-up, wait this long for the database before giving up")
	f.DurationVar(&o.misfireGrace, "misfire-grace", 0, "how late a schedule tick may fire and still count as on time; later ticks follow the job's misfire policy (default 5s, at least 2×1s+1s)")
	f.StringSliceVar(&o.connections, "connections", nil, "serve only these connections, each named or by one of its labels (comma-separated); runs of jobs calling any other connection are left to instances that serve it (default: every connection)")
	f.StringVar(&o.baseURL, "base-url", os.Getenv("JOBRUNNER_BASE_URL"), "the dashboard's external URL, for run links in notifications (env JOBRUNNER_BASE_URL)")
	return cmd
}

func (a *app) serve(parent context.Context, o serveOptions) error {
	if o.misfireGrace < 0 {
		return usagef("--misfire-grace %s: must not be negative", o.misfireGrace)
	}
	if o.workers < 1 || o.workers > 10000 {
		return usagef("--workers %d: want 1..10000", o.workers)
	}
	if o.leaseTTL < time.Second {
		return usagef("--lease-ttl %s: want at least 1s", o.leaseTTL)
	}
	tokens, err := api.ParseTokens(os.Getenv("JOBRUNNER_API_TOKENS"))
	if err != nil {
		return usageError{fmt.Errorf("JOBRUNNER_API_TOKENS: %w", err)}
	}
	// Bind first: with the port taken, nothing (workers, scheduler) may
	// start and claim runs before the failure.
	var ln net.Listener
	if o.addr != "" {
		if err := api.CheckListen(o.addr, tokens); err != nil {
			return usageError{err}
		}
		ln, err = net.Listen("tcp", o.addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (nothing was started)", o.addr, err)
		}
		defer ln.Close() // also closed by the server's Shutdown; a second Close is harmless
	}
	if o.demo {
		stop, err := a.startDemoERP()
		if err != nil {
			return err
		}
		defer stop()
	}
	set, err := a.definitions()
	if err != nil {
		return err
	}
	a.warnWeakSecrets(set)
	ctx, stopSignals := signal.NotifyContext(parent, syscall.SIGTERM, os.Interrupt)
	defer stopSignals()

	stopTraces, err := tracing.Setup(ctx)
	if err != nil {
		return usageError{err}
	}
	if tracing.Enabled() {
		a.log.Info("traces: exporting spans over OTLP/HTTP (OTEL_* settings)")
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTraces(sctx)
	}()

	dsn := a.dsn()
	wctx, cancel := context.WithTimeout(ctx, o.waitDB)
	store, err := jobs.OpenWait(wctx, dsn, jobs.OpenOptions{NoMigrate: a.noMigrate, MaxOpenConns: o.workers/4 + 8}, a.log)
	cancel()
	if err != nil {
		if errors.Is(err, jobs.ErrBadDSN) {
			return usageError{err}
		}
		if ctx.Err() != nil {
			a.log.Info("stopped before the database was reachable")
			return nil
		}
		return err
	}
	a.store, a.state.store = store, store
	if err := store.CheckSkipLocked(ctx); err != nil {
		return err
	}

	m := metrics.New(metrics.Options{Queue: store, Log: a.log})
	a.metrics.Store(m)
	if err := checkServes(set, o.connections); err != nil {
		return usageError{err}
	}
	ex := a.executor()
	ex.Serves = o.connections
	ex.LeaseTTL = o.leaseTTL
	ex.Observer = m
	if o.connShare > o.workers {
		return usagef("--connection-share %d is more than --workers %d", o.connShare, o.workers)
	}
	pool := jobs.NewPool(jobs.PoolConfig{Executor: ex, Workers: o.workers, BatchSize: o.batch, PollInterval: o.poll, Observer: m, ConnectionShare: o.connShare})
	pool.Start(ctx)
	a.log.WithFields(map[string]any{"db": store.DSN(), "workers": o.workers, "jobs": len(set.Jobs)}).Info("workers started")

	host, _ := os.Hostname()
	notifier, err := notify.New(notify.Config{Store: store, Definitions: a.defs.Load, Log: a.log, BaseURL: o.baseURL, Owner: host, Getenv: a.getenv,
		OnOutcome: m.ObserveNotification})
	if err != nil {
		pool.Stop(context.Background())
		return err
	}
	if missing := notify.MissingSecrets(set, a.getenv); len(missing) > 0 {
		a.log.Warnf("notifications: environment variables not set: %s (their notifications wait until they are)", strings.Join(missing, ", "))
	}
	notifier.Start(ctx)
	defer notifier.Stop() // after pool.Stop on the normal path

	var sched *scheduler.Scheduler
	if !o.noScheduler {
		sched, err = scheduler.New(scheduler.Config{Store: store, Definitions: set, Log: a.log, MisfireGrace: o.misfireGrace,
			OnFire: func(job string, scheduled, fired time.Time, created bool) {
				m.ObserveSchedulerLag(job, fired.Sub(scheduled))
				if created {
					pool.Wake()
				}
			}})
		if err != nil {
			pool.Stop(context.Background())
			return usageError{err}
		}
		if err := sched.Start(ctx); err != nil {
			pool.Stop(context.Background())
			return err
		}
	}

	reload := func(rctx context.Context) error {
		set, err := a.loadDefinitions()
		if err != nil {
			a.log.Errorf("reload refused, the previous definitions stay in effect: %v", err)
			return err
		}
		if sched != nil {
			if err := sched.Reload(set); err != nil {
				a.log.Errorf("reload: scheduler: %v", err)
				return err
			}
		}
		a.log.WithField("jobs", len(set.Jobs)).Info("definitions reloaded")
		pool.Wake()
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = reload(ctx)
			}
		}
	}()

	if o.retention > 0 {
		go a.pruneLoop(ctx, store, o.retention)
	}

	var srv *http.Server
	httpErr := make(chan error, 1)
	if o.addr != "" {
		h, err := api.New(api.Config{
			Store: store, Definitions: a.defs.Load, Registry: a.registry, Tokens: tokens, Wake: pool.Wake, Unrunnable: pool.Unrunnable, Serves: o.connections, PausesChanged: pool.PausesChanged,
			Log: a.log, Metrics: m, Demo: o.demo, Reload: reload, Getenv: a.getenv,
			Ready: func(rctx context.Context) error {
				if sched != nil && !sched.Running() {
					return errors.New("scheduler not running")
				}
				skew, err := scheduler.ClockSkew(rctx, store)
				if err != nil {
					return err
				}
				if skew > time.Second || skew < -time.Second {
					return fmt.Errorf("clock differs from the database's by %s (over 1s)", skew.Round(time.Millisecond))
				}
				return nil
			},
		})
		if err != nil {
			return err
		}
		srv = &http.Server{Handler: h.Handler(), ReadHeaderTimeout: 10 * time.Second}
		a.log.WithField("addr", "http://"+ln.Addr().String()).Info("HTTP API and dashboard listening")
		go func() { httpErr <- srv.Serve(ln) }()
	}

	httpAddr := ""
	if ln != nil {
		httpAddr = ln.Addr().String()
	}
	instCtx, instStop := context.WithCancel(context.WithoutCancel(ctx))
	instDone := make(chan struct{})
	go func() {
		defer close(instDone)
		a.reportInstance(instCtx, store, pool, o, sched != nil, httpAddr)
	}()
	defer func() {
		instStop()
		<-instDone
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = store.RemoveInstance(rctx, pool.Owner())
		cancel()
	}()

	select {
	case <-ctx.Done():
	case err := <-httpErr:
		a.log.Errorf("HTTP server stopped: %v", err)
	}
	a.log.WithField("grace", o.grace).Info("stopping: no more claims; running runs may finish within the grace period (a second SIGTERM or Ctrl-C stops at once)")
	// A second signal during the grace period stops at once.
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(again)
	stopNow := make(chan struct{})
	defer close(stopNow)
	go func() {
		select {
		case <-again:
			a.log.Warn("second signal: stopping now")
			pool.StopNow()
		case <-stopNow:
		}
	}()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	if sched != nil {
		_ = sched.Stop()
	}
	gctx, cancel := context.WithTimeout(context.Background(), o.grace)
	pool.Stop(gctx)
	cancel()
	a.log.Info("stopped")
	return nil
}

// reportInstance writes this instance's row every jobs.InstanceEvery until
// ctx is done (the instances view).
func (a *app) reportInstance(ctx context.Context, store *jobs.Store, pool *jobs.Pool, o serveOptions, scheduling bool, httpAddr string) {
	started := time.Now()
	for {
		var skew time.Duration
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if d, err := scheduler.ClockSkew(sctx, store); err == nil {
			skew = d
		}
		in := jobs.Instance{Owner: pool.Owner(), Version: buildinfo.Read().Short(), Workers: o.workers, Busy: pool.Busy(), Scheduler: scheduling,
			HTTPAddr: httpAddr, Unrunnable: pool.Unrunnable(), Serves: o.connections, ClockSkewMs: skew.Milliseconds(), StartedAt: started}
		if err := store.ReportInstance(sctx, in); err != nil && ctx.Err() == nil {
			a.log.Debugf("instances view: %v", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(jobs.InstanceEvery):
		}
	}
}

// pruneLoop deletes finished runs older than retention, hourly.
func (a *app) pruneLoop(ctx context.Context, store *jobs.Store, retention time.Duration) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := store.Prune(ctx, time.Now().Add(-retention), 500)
		if err != nil && ctx.Err() == nil {
			a.log.Warnf("retention: %v", err)
		} else if n > 0 {
			a.log.WithField("runs", n).Infof("retention: pruned finished runs older than %s", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkServes refuses a --connections entry that names no connection and
// no label of the loaded definitions (a typo would leave jobs unserved).
func checkServes(set *definitions.Set, serves []string) error {
	known := map[string]bool{}
	for _, c := range set.Connections {
		known[c.Name] = true
		for _, l := range c.Labels {
			known[l] = true
		}
	}
	for _, s := range serves {
		if !known[s] {
			return fmt.Errorf("--connections %s: no connection or label of that name (known: %s)", s, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		}
	}
	return nil
}

// warnWeakSecrets warns about connection secrets too short to be hidden
// in logs, errors and results (processors.MinSecretLen), by variable
// name, never by value.
func (a *app) warnWeakSecrets(set *definitions.Set) {
	for _, c := range set.Connections {
		for _, name := range slices.Sorted(maps.Keys(c.Secrets)) {
			env := c.Secrets[name]
			if v := a.getenv(env); v != "" && utf8.RuneCountInString(v) < processors.MinSecretLen {
				a.log.WithField("connection", c.Name).Warnf("connection %s: secret %s (%s) is shorter than %d characters: it is weak, and too short to be hidden in logs, errors and results",
					c.Name, name, env, processors.MinSecretLen)
			}
		}
	}
}
