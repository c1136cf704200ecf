package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// Causes of an execution's context being cancelled by the executor.
var (
	errCancelRequested = errors.New("jobs: cancel requested by an operator")
	errLeaseGone       = errors.New("jobs: lease lost")
)

// Executor runs executions of runs: it resolves the processor for the
// run's job and connection, runs it under the job's timeout with a
// heartbeat that keeps the lease, recovers panics, runs the post-processor,
// decides the outcome (final status, retry with backoff, snooze) and
// records it with the attempt's logs in one transaction.
type Executor struct {
	Store    *Store
	Registry *processors.Registry
	// Definitions returns the current definitions (they may be reloaded).
	Definitions func() *definitions.Set
	// Log is the process log; nil discards.
	Log *logrus.Logger
	// Owner names this process in leases; default "host:pid".
	Owner string
	// LeaseTTL is the lease length; default 30s. Heartbeats renew it every
	// third of it.
	LeaseTTL time.Duration
	// Getenv resolves connection settings and secrets; default os.Getenv.
	Getenv func(string) string
	// ReleaseOnShutdown: when the caller's ctx is cancelled (shutdown), put
	// the run back in the queue without consuming an attempt instead of
	// recording it cancelled.
	ReleaseOnShutdown bool
	// Rand is the jitter source; default math/rand/v2.
	Rand func() float64
	// RecordTimeout bounds how long an outcome is retried against an
	// unreachable database; default 10m.
	RecordTimeout time.Duration
	// Observer receives metrics; may be nil.
	Observer Observer

	// finish records one outcome; nil means Store.Finish. A Pool sets it
	// to its group-committing completer.
	finish func(ctx context.Context, c *Claim, f Finish) error
}

func (e *Executor) owner() string {
	if e.Owner != "" {
		return e.Owner
	}
	h, _ := os.Hostname()
	return h + ":" + strconv.Itoa(os.Getpid())
}

func (e *Executor) ttl() time.Duration {
	if e.LeaseTTL > 0 {
		return e.LeaseTTL
	}
	return 30 * time.Second
}

func (e *Executor) getenv(k string) string {
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

func (e *Executor) logger() *logrus.Logger {
	if e.Log != nil {
		return e.Log
	}
	l := logrus.New()
	l.SetOutput(discard{})
	return l
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Resolve finds the processor that runs job (for preview or not), so that
// a run that cannot run is refused before it is recorded.
func (e *Executor) Resolve(job *definitions.Job, preview bool) (processors.Processor, *definitions.Connection, error) {
	defs := e.Definitions()
	conn, ok := defs.Connection(job.Connection)
	if !ok {
		return nil, nil, fmt.Errorf("job %s: connection %q is not defined", job.Name, job.Connection)
	}
	p, err := e.Registry.Resolve(job.Processor, conn.Type, preview)
	if err != nil {
		return nil, nil, fmt.Errorf("job %s: %w", job.Name, err)
	}
	return p, conn, nil
}

// Execute runs one execution of the claimed run and records its outcome.
// It returns what was recorded, or an error wrapping ErrLeaseLost when the
// run was taken away (nothing recorded), or the store's error when the
// outcome could not be recorded within RecordTimeout.
func (e *Executor) Execute(ctx context.Context, c *Claim) (*Finish, error) {
	f := e.execute(ctx, c)
	if err := e.record(ctx, c, f); err != nil {
		return nil, err
	}
	if e.Observer != nil {
		e.Observer.AttemptFinished(c.Run.Job, f.AttemptStatus, f.Status, time.Since(c.Started))
	}
	return f, nil
}

// execute runs the processor(s) and decides the outcome; it records nothing
// but log lines.
func (e *Executor) execute(parent context.Context, c *Claim) *Finish {
	run := c.Run
	mirror := e.logger().WithFields(logrus.Fields{"run_id": run.ID, "job": run.Job, "attempt": run.AttemptsUsed()})
	lg := &runLogger{runID: run.ID, attempt: int64(run.Attempt), red: newRedactor(nil), mirror: mirror}
	fail := func(code, msg string) *Finish {
		lg.Error(msg, "code", code)
		return &Finish{Status: StatusFailed, AttemptStatus: AttemptFailed, ErrorCode: code, ErrorMessage: msg, Logs: lg.take(true)}
	}

	job, ok := findJob(e.Definitions(), run.Job)
	if !ok {
		return fail("DEFINITION_NOT_FOUND", fmt.Sprintf("job %q is no longer defined", run.Job))
	}
	params, err := job.DecodeParams([]byte(run.Parameters))
	if err != nil {
		return fail("BAD_PARAMETERS", fmt.Sprintf("stored parameters no longer fit the definition: %v", err))
	}
	proc, conn, err := e.Resolve(job, run.Preview)
	if err != nil {
		return fail("PROCESSOR_UNAVAILABLE", err.Error())
	}
	secrets, err := conn.ResolveSecrets(e.getenv)
	if err != nil {
		return fail("SECRET_MISSING", err.Error())
	}
	lg.red = newRedactor(secrets)

	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	hb := &heartbeat{store: e.Store, claim: c, cancel: cancel, log: mirror, lastOK: c.Started}
	pr := &processors.Run{
		ID:             run.ID,
		Job:            job,
		Attempt:        run.AttemptsUsed(),
		MaxAttempts:    run.MaxAttempts,
		Params:         params,
		Connection:     processors.Connection{Name: conn.Name, Type: conn.Type, Settings: conn.ExpandedSettings(e.getenv), Secrets: secrets},
		Preview:        run.Preview,
		IdempotencyKey: "jobrunner-run-" + strconv.FormatInt(run.ID, 10),
		Log:            lg,
		Guard:          hb.guard,
	}
	hb.progress = func() Progress { return progressOf(pr) }
	hb.logs = lg
	stopHB := hb.start(ctx)

	timeout := job.Timeout.D()
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if parent.Err() != nil { // stopping before it started: never call the ERP
		stopHB()
		return e.decide(job, run, pr, parent.Err(), nil, true, lg)
	}
	lg.started(fmt.Sprintf("attempt %d of %d started", pr.Attempt, pr.MaxAttempts), "processor", job.Processor, "connection", conn.Name, "owner", c.Owner)
	perr := callWithTimeout(ctx, timeout, proc, pr)
	if perr == nil && job.PostProcessor != "" {
		perr = e.postProcess(ctx, timeout, job, conn, pr)
	}
	stopHB()
	cause := context.Cause(ctx)
	if errors.Is(cause, errLeaseGone) {
		lg.Warn("lease lost: another instance owns this run now; nothing more is recorded for this attempt")
		return nil
	}
	return e.decide(job, run, pr, perr, cause, parent.Err() != nil, lg)
}

// postProcess runs the job's post-processor with the processor's result as
// input.
func (e *Executor) postProcess(ctx context.Context, timeout time.Duration, job *definitions.Job, conn *definitions.Connection, pr *processors.Run) error {
	post, err := e.Registry.Resolve(job.PostProcessor, conn.Type, pr.Preview)
	if err != nil {
		return processors.Permanent("PROCESSOR_UNAVAILABLE", fmt.Sprintf("post-processor: %v", err))
	}
	in, err := json.Marshal(pr.Result())
	if err != nil {
		return processors.Permanent("BAD_RESULT", fmt.Sprintf("processor result is not JSON: %v", err))
	}
	pr.Input = in
	pr.Log.Info("post-processor started", "postProcessor", job.PostProcessor)
	return callWithTimeout(ctx, timeout, post, pr)
}

func findJob(set *definitions.Set, name string) (*definitions.Job, bool) {
	if set == nil {
		return nil, false
	}
	return set.Job(name)
}

func progressOf(pr *processors.Run) Progress {
	c := pr.Counters()
	return Progress{Progress: pr.Progress(), Read: c.Read, Changed: c.Changed, Errors: c.Errors, Warnings: c.Warnings}
}

// errPanic marks a recovered processor panic.
type errPanic struct{ value any }

func (p *errPanic) Error() string { return fmt.Sprintf("processor panicked: %v", p.value) }

// callWithTimeout calls p under timeout, turning a panic into an error with
// the stack written to the run's log.
func callWithTimeout(ctx context.Context, timeout time.Duration, p processors.Processor, run *processors.Run) (err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			run.Log.Error(fmt.Sprintf("processor panicked: %v", v), "stack", string(debug.Stack()))
			err = &errPanic{value: v}
		}
	}()
	err = p.Process(ctx, run)
	if err == nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && context.Cause(ctx) == context.DeadlineExceeded {
		// The processor ignored its deadline and returned nil late: still
		// a success, it did finish.
		return nil
	}
	return err
}

// decide turns an execution's error into the recorded outcome.
func (e *Executor) decide(job *definitions.Job, run *Run, pr *processors.Run, perr, cause error, shutdown bool, lg *runLogger) *Finish {
	prog := progressOf(pr)
	f := &Finish{Progress: prog}
	finalize := func() *Finish {
		f.Logs = lg.take(true)
		return f
	}
	used := run.AttemptsUsed()
	retryOrFail := func(code, msg string, delay time.Duration) *Finish {
		f.ErrorCode, f.ErrorMessage = code, msg
		if used >= run.MaxAttempts {
			f.Status, f.AttemptStatus = StatusFailed, AttemptFailed
			lg.Error(fmt.Sprintf("attempt %d of %d failed, no attempts left: %s", used, run.MaxAttempts, msg), "code", code)
			return finalize()
		}
		if delay <= 0 {
			delay = Backoff(job.Retry, used, e.rand())
		}
		f.Status, f.AttemptStatus, f.NotBefore = StatusQueued, AttemptRetry, time.Now().Add(delay)
		lg.Warn(fmt.Sprintf("attempt %d of %d failed, retrying in %s: %s", used, run.MaxAttempts, delay.Round(time.Millisecond), msg), "code", code)
		return finalize()
	}

	switch {
	case errors.Is(cause, errCancelRequested):
		f.Status, f.AttemptStatus, f.ErrorCode = StatusCancelled, AttemptCancelled, "CANCELLED"
		f.ErrorMessage = "cancelled by an operator while running"
		lg.Warn(f.ErrorMessage)
		return finalize()
	case shutdown && e.ReleaseOnShutdown:
		f.Status, f.AttemptStatus, f.Snoozed = StatusQueued, AttemptReleased, true
		f.ErrorMessage = "released at shutdown; another instance may start it at once"
		lg.Warn(f.ErrorMessage)
		return finalize()
	case shutdown:
		f.Status, f.AttemptStatus, f.ErrorCode = StatusCancelled, AttemptCancelled, "INTERRUPTED"
		f.ErrorMessage = "interrupted (the process was asked to stop)"
		lg.Warn(f.ErrorMessage)
		return finalize()
	}

	if perr == nil {
		res, err := json.Marshal(pr.Result())
		if err != nil {
			return retryOrFail("BAD_RESULT", fmt.Sprintf("processor result is not JSON: %v", err), 0)
		}
		f.Result = res
		switch {
		case job.MaxErrors >= 0 && prog.Errors > int64(job.MaxErrors):
			f.Status, f.AttemptStatus, f.ErrorCode = StatusFailed, AttemptFailed, "MAX_ERRORS_EXCEEDED"
			f.ErrorMessage = fmt.Sprintf("%d record errors, more than the job allows (%d)", prog.Errors, job.MaxErrors)
		case job.MaxWarnings >= 0 && prog.Warnings > int64(job.MaxWarnings):
			f.Status, f.AttemptStatus, f.ErrorCode = StatusFailed, AttemptFailed, "MAX_WARNINGS_EXCEEDED"
			f.ErrorMessage = fmt.Sprintf("%d warnings, more than the job allows (%d)", prog.Warnings, job.MaxWarnings)
		case prog.Warnings > 0 || prog.Errors > 0:
			f.Status, f.AttemptStatus = StatusSucceededWithWarnings, AttemptSucceeded
		default:
			f.Status, f.AttemptStatus = StatusSucceeded, AttemptSucceeded
		}
		if f.Status == StatusFailed {
			lg.Error(f.ErrorMessage, "code", f.ErrorCode)
		} else if f.Status == StatusSucceeded {
			lg.dropLoneStart()
		}
		return finalize()
	}

	var pe *errPanic
	if errors.As(perr, &pe) {
		return retryOrFail("PANIC", perr.Error(), 0)
	}
	out := processors.Classify(perr)
	msg := lg.red.redact(out.Message)
	switch out.Kind {
	case processors.OutcomePermanent:
		f.Status, f.AttemptStatus, f.ErrorCode, f.ErrorMessage = StatusFailed, AttemptFailed, out.Code, msg
		lg.Error(fmt.Sprintf("failed permanently: %s", msg), "code", out.Code)
		return finalize()
	case processors.OutcomeCancelled:
		f.Status, f.AttemptStatus, f.ErrorCode, f.ErrorMessage = StatusCancelled, AttemptCancelled, "CANCELLED", msg
		lg.Warn("cancelled by the processor: " + msg)
		return finalize()
	case processors.OutcomeSnooze:
		limit := job.Retry.MaxSnoozes
		if limit <= 0 {
			limit = 20
		}
		if run.Snoozes+1 > limit {
			f.Status, f.AttemptStatus, f.ErrorCode = StatusFailed, AttemptFailed, "SNOOZE_LIMIT"
			f.ErrorMessage = fmt.Sprintf("asked to come back later %d times, the job allows %d: %s", run.Snoozes+1, limit, msg)
			lg.Error(f.ErrorMessage, "code", f.ErrorCode)
			return finalize()
		}
		delay := out.Delay
		if delay <= 0 {
			delay = Backoff(job.Retry, run.Snoozes+1, e.rand())
		}
		f.Status, f.AttemptStatus, f.Snoozed, f.NotBefore = StatusQueued, AttemptSnoozed, true, time.Now().Add(delay)
		f.ErrorCode, f.ErrorMessage = out.Code, msg
		lg.Info(fmt.Sprintf("come back later in %s (does not use an attempt): %s", delay.Round(time.Millisecond), msg))
		return finalize()
	default: // retry, timeout, plain errors
		return retryOrFail(out.Code, msg, out.Delay)
	}
}

func (e *Executor) rand() func() float64 {
	if e.Rand != nil {
		return e.Rand
	}
	return defaultRand
}

// record stores f for c, retrying while the database is unreachable. After
// a failed try it first checks whether the outcome was in fact committed
// (an ambiguous commit) so nothing is recorded twice.
func (e *Executor) record(ctx context.Context, c *Claim, f *Finish) error {
	if f == nil {
		return fmt.Errorf("jobs: run %d: %w", c.Run.ID, ErrLeaseLost)
	}
	rctx := context.WithoutCancel(ctx)
	limit := e.RecordTimeout
	if limit <= 0 {
		limit = 10 * time.Minute
	}
	deadline := time.Now().Add(limit)
	delay := 100 * time.Millisecond
	for try := 0; ; try++ {
		if try > 0 {
			if done, err := e.Store.Finished(rctx, c); err == nil && done {
				return nil
			}
		}
		finish := e.finish
		if finish == nil {
			finish = e.Store.Finish
		}
		err := finish(rctx, c, *f)
		if err == nil || errors.Is(err, ErrLeaseLost) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jobs: record outcome of run %d: gave up after %s: %w", c.Run.ID, limit, err)
		}
		e.logger().WithFields(logrus.Fields{"run_id": c.Run.ID, "job": c.Run.Job}).
			Warnf("cannot record the run's outcome yet, retrying in %s: %v", delay, redactErr(err, e.Store.dsn))
		time.Sleep(delay)
		delay = min(delay*2, 5*time.Second)
	}
}

// heartbeat keeps an execution's lease, stores its log lines as they come,
// and cancels the execution when the lease is lost or an operator cancels.
type heartbeat struct {
	store    *Store
	claim    *Claim
	cancel   context.CancelCauseFunc
	log      *logrus.Entry
	progress func() Progress
	logs     *runLogger

	mu     sync.Mutex
	lastOK time.Time // monotonic: when the lease was last confirmed
}

func (h *heartbeat) start(ctx context.Context) (stop func()) {
	ttl := h.claim.TTL
	every := max(ttl/3, 50*time.Millisecond)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				h.beat(ctx)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// beat renews the lease once; failures past the lease's safe window cancel
// the execution (another instance may rescue the run).
func (h *heartbeat) beat(ctx context.Context) {
	bctx, cancel := context.WithTimeout(ctx, h.claim.TTL/2)
	defer cancel()
	if lines := h.logs.take(false); len(lines) > 0 {
		if err := h.store.AppendLogs(bctx, h.claim, lines); err != nil {
			if errors.Is(err, ErrLeaseLost) {
				h.cancel(errLeaseGone)
				return
			}
			h.logs.putBack(lines)
		}
	}
	cancelReq, err := h.store.Heartbeat(bctx, h.claim, h.progress())
	switch {
	case errors.Is(err, ErrLeaseLost):
		h.cancel(errLeaseGone)
	case err != nil:
		h.log.Warnf("heartbeat failed: %v", redactErr(err, h.store.dsn))
		h.mu.Lock()
		expired := time.Since(h.lastOK) > h.claim.TTL*9/10
		h.mu.Unlock()
		if expired {
			h.cancel(errLeaseGone)
		}
	default:
		h.mu.Lock()
		h.lastOK = time.Now()
		h.mu.Unlock()
		if cancelReq {
			h.cancel(errCancelRequested)
		}
	}
}

// guard is Run.BeforeSideEffect's check: the lease is trusted while well
// inside its TTL by the local monotonic clock; past half of it, it is
// confirmed in the database first.
func (h *heartbeat) guard(ctx context.Context) error {
	h.mu.Lock()
	fresh := time.Since(h.lastOK) < h.claim.TTL/2
	h.mu.Unlock()
	if fresh {
		return nil
	}
	cancelReq, err := h.store.Heartbeat(ctx, h.claim, h.progress())
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			h.cancel(errLeaseGone)
		}
		return fmt.Errorf("jobs: lease of run %d not confirmed: %w", h.claim.Run.ID, err)
	}
	h.mu.Lock()
	h.lastOK = time.Now()
	h.mu.Unlock()
	if cancelReq {
		h.cancel(errCancelRequested)
		return errCancelRequested
	}
	return nil
}
