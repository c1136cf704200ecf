package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/streak"
)

// DefaultResolution is how often the schedules are evaluated when
// Config.Resolution is zero.
const DefaultResolution = time.Second

// TriggeredBy is what scheduled runs record as Run.TriggeredBy; a catch-up
// run records "scheduler (catch-up, N missed)".
const TriggeredBy = "scheduler"

// Errors of the Scheduler's life cycle.
var (
	// ErrStarted: Start was called on a scheduler that already started.
	ErrStarted = errors.New("scheduler: already started")
	// ErrStopped: Start was called on a scheduler that was stopped; create
	// a new one instead.
	ErrStopped = errors.New("scheduler: stopped")
)

// Config configures a Scheduler.
type Config struct {
	// Store is where runs are enqueued and ticks are recorded. Required.
	Store *jobs.Store
	// Definitions are the jobs to schedule (those with a Schedule); nil is an
	// empty set. Replace them later with Reload.
	Definitions *definitions.Set
	// Clock is the time source (and gocron's); nil means the real clock.
	// Tests with a fake clock should not advance it onto exact multiples of
	// Resolution: gocron v2.21.2 can then re-fire its job many times at the
	// same fake instant (harmless but busy; a real clock never lands on the
	// nanosecond).
	Clock clockwork.Clock
	// Log receives what the scheduler does; nil discards.
	Log *logrus.Logger
	// Resolution is how often the schedules are evaluated; default
	// DefaultResolution (1s). Evaluations are aligned to multiples of it.
	Resolution time.Duration
	// MisfireGrace is how late a tick may be evaluated and still count as
	// on time; older ticks are misfires handled by the job's misfire policy.
	// Default: the larger of 5s and 2×Resolution+1s. It must exceed the
	// clock skew between instances plus Resolution; see the package
	// documentation.
	MisfireGrace time.Duration
	// OnFire, when set, is called after every tick that was handed to the
	// store: scheduled is the tick's nominal time, fired when the enqueue
	// returned (this scheduler's clock), created whether this call created
	// the run (false: another instance already had). Use it for the
	// "scheduler lag" metric (fired − scheduled) and to wake local workers.
	// It is called from the evaluation goroutine and must be fast; it is not
	// called for ticks skipped by the overlap policy or recorded as missed.
	OnFire func(job string, scheduled, fired time.Time, created bool)
}

// Scheduler fires the schedules of job definitions by enqueueing runs: one
// gocron job evaluates every scheduled job each Resolution. It is
// safe for concurrent use. Create it with New.
type Scheduler struct {
	store  *jobs.Store
	clock  clockwork.Clock
	log    *logrus.Logger
	res    time.Duration
	grace  time.Duration
	onFire func(job string, scheduled, fired time.Time, created bool)
	// failures logs evaluation failures once per streak (an outage).
	failures *streak.Logger

	plan atomic.Pointer[plan]
	// evalMu serialises evaluations (gocron's job and direct Tick calls)
	// and guards the per-job caches of every plan.
	evalMu sync.Mutex

	mu        sync.Mutex // guards the life cycle below
	started   bool
	gs        gocron.Scheduler
	cancel    context.CancelFunc
	stopAfter func() bool
	stopOnce  sync.Once
	stopErr   error
	ctxWatch  sync.WaitGroup
	running   atomic.Bool

	// afterEval, when set (tests), is called after each evaluation with
	// the time it evaluated.
	afterEval func(now time.Time)
}

// New returns a Scheduler for cfg. It returns an error when Store is nil,
// Resolution is negative, or a scheduled job cannot be scheduled: an invalid
// cron spec or time zone, an unknown misfire or overlap policy, or a
// parameter that is required and has no default (a tick has nobody to ask
// for it). Nothing runs until Start.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Store == nil {
		return nil, errors.New("scheduler: Config.Store is nil")
	}
	if cfg.Resolution < 0 {
		return nil, fmt.Errorf("scheduler: negative resolution %s", cfg.Resolution)
	}
	if cfg.MisfireGrace < 0 {
		return nil, fmt.Errorf("scheduler: negative misfire grace %s", cfg.MisfireGrace)
	}
	s := &Scheduler{
		store:  cfg.Store,
		clock:  cfg.Clock,
		log:    cfg.Log,
		res:    cfg.Resolution,
		grace:  cfg.MisfireGrace,
		onFire: cfg.OnFire,
	}
	if s.clock == nil {
		s.clock = clockwork.NewRealClock()
	}
	if s.log == nil {
		s.log = logrus.New()
		s.log.SetOutput(io.Discard)
	}
	if s.res == 0 {
		s.res = DefaultResolution
	}
	s.failures = streak.New(s.log, "scheduler: evaluation", logrus.ErrorLevel, 0)
	if s.grace == 0 {
		s.grace = max(5*time.Second, 2*s.res+time.Second)
	}
	p, err := newPlan(cfg.Definitions)
	if err != nil {
		return nil, err
	}
	s.plan.Store(p)
	return s, nil
}

// Start evaluates the schedules once, synchronously, then starts gocron to
// evaluate them every Resolution until Stop. ctx is the parent of every
// evaluation; when it is cancelled the scheduler stops as if Stop were
// called. An evaluation that fails (e.g. the database is unreachable) is
// logged and retried at the next one: its ticks are not lost, they become
// misfires only once they are older than MisfireGrace. Start returns
// ErrStarted or ErrStopped when called twice or after Stop, and an error
// when gocron cannot be set up.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		if s.gs == nil {
			return ErrStopped
		}
		return ErrStarted
	}
	gs, err := gocron.NewScheduler(gocron.WithClock(s.clock), gocron.WithLocation(time.UTC))
	if err != nil {
		return fmt.Errorf("scheduler: start gocron: %w", err)
	}
	evalCtx, cancel := context.WithCancel(ctx)
	now := s.clock.Now()
	first := now.Truncate(s.res).Add(s.res)
	_, err = gs.NewJob(
		gocron.DurationJob(s.res),
		gocron.NewTask(s.evaluate),
		gocron.WithName("jobrunner-scheduler"),
		// Not gocron.WithSingletonMode: evaluate skips itself while one
		// is in progress (the same as LimitModeReschedule), and does so
		// before it reports the evaluation done, which gocron's limiter,
		// released only after the task returns, would not.
		gocron.WithContext(evalCtx),
		gocron.WithStartAt(gocron.WithStartDateTime(first)),
	)
	if err != nil {
		cancel()
		_ = gs.Shutdown()
		return fmt.Errorf("scheduler: add evaluation job: %w", err)
	}
	s.started, s.gs, s.cancel = true, gs, cancel
	s.evaluate(evalCtx)
	gs.Start()
	s.running.Store(true)
	s.ctxWatch.Add(1)
	s.stopAfter = context.AfterFunc(ctx, func() {
		defer s.ctxWatch.Done()
		s.stopOnce.Do(s.shutdown)
	})
	p := s.plan.Load()
	s.log.WithFields(logrus.Fields{"jobs": len(p.entries), "resolution": s.res, "misfireGrace": s.grace}).
		Info("scheduler: started")
	return nil
}

// Stop stops evaluating schedules: it cancels an evaluation in progress,
// shuts gocron down and waits for every goroutine the scheduler started.
// It is idempotent and safe to call on a scheduler that never started; it
// returns gocron's shutdown error, if any.
func (s *Scheduler) Stop() error {
	s.mu.Lock()
	started, stopAfter := s.started, s.stopAfter
	s.started = true // a stopped scheduler cannot start
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.stopOnce.Do(s.shutdown)
	if stopAfter != nil && stopAfter() {
		s.ctxWatch.Done() // the ctx watcher will never run
	}
	s.ctxWatch.Wait()
	return s.stopErr
}

// shutdown runs once, from Stop or when Start's ctx ends.
func (s *Scheduler) shutdown() {
	s.mu.Lock()
	gs, cancel := s.gs, s.cancel
	s.gs = nil
	s.mu.Unlock()
	s.running.Store(false)
	if cancel != nil {
		cancel()
	}
	if gs != nil {
		if err := gs.Shutdown(); err != nil {
			s.stopErr = fmt.Errorf("scheduler: stop gocron: %w", err)
		}
	}
	s.log.Info("scheduler: stopped")
}

// Running reports whether the scheduler has started and not stopped (for
// /readyz).
func (s *Scheduler) Running() bool { return s.running.Load() }

// Reload replaces the scheduled definitions atomically: the next evaluation
// uses set. A job added by it starts from now (its first evaluation records
// the current time, unless the database already knows its last tick); a job
// removed by it no longer fires. When set cannot be scheduled (see New) it
// returns the error and keeps the current definitions.
func (s *Scheduler) Reload(set *definitions.Set) error {
	p, err := newPlan(set)
	if err != nil {
		return err
	}
	old := s.plan.Swap(p)
	s.log.WithFields(logrus.Fields{"jobs": len(p.entries), "before": len(old.entries)}).
		Info("scheduler: definitions reloaded")
	return nil
}

// evaluate is gocron's task: one evaluation at the clock's current time.
// When the previous evaluation is still running (a slow database), this one
// is skipped: the next finds every tick still due.
func (s *Scheduler) evaluate(ctx context.Context) {
	if !s.evalMu.TryLock() {
		s.log.Warn("scheduler: previous evaluation still running; this one is skipped")
		return
	}
	now := s.clock.Now()
	err := s.tick(ctx, now)
	s.evalMu.Unlock()
	switch {
	case err != nil && ctx.Err() == nil:
		s.failures.Fail(err, logrus.Fields{"retry": "its ticks are retried at the next evaluation"})
	case err == nil:
		s.failures.OK()
	}
	if s.afterEval != nil {
		s.afterEval(now)
	}
}

// Tick evaluates every scheduled job as of now, as each Resolution's
// evaluation does: it enqueues the ticks that are due, applies the misfire
// and overlap policies and records what it did in the store. It is exported
// for tests and one-shot evaluation (it works without Start) and waits for
// an evaluation in progress. A job whose evaluation fails keeps its
// unhandled ticks for the next evaluation; the errors of all jobs are
// joined.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) error {
	s.evalMu.Lock()
	defer s.evalMu.Unlock()
	return s.tick(ctx, now)
}

// tick is Tick with evalMu held.
func (s *Scheduler) tick(ctx context.Context, now time.Time) error {
	start := s.clock.Now()
	p := s.plan.Load()
	var errs []error
	var held map[string]jobs.Held
	if len(p.entries) > 0 {
		pauses, err := s.store.Pauses(ctx)
		if err != nil {
			// Without the pauses no tick is fired: a paused job must not
			// fire because the database hiccuped.
			return fmt.Errorf("scheduler: reading pauses: %w", err)
		}
		held = jobs.HeldJobs(p.set, pauses, now)
	}
	for _, e := range p.entries {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("scheduler: evaluation at %s: %w", now.UTC().Format(time.RFC3339), err))
			break
		}
		if h, ok := held[e.job.Name]; ok && h.Ticks() {
			s.holdJob(e, h, now)
			continue // its ticks stay unhandled: after the pause they follow the misfire policy
		}
		s.released(e)
		if err := s.evalJob(ctx, e, now, start); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
