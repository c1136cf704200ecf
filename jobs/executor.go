package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/tracing"
)

// Causes of an execution's context being cancelled by the executor.
var (
	errCancelRequested = errors.New("jobs: cancel requested by an operator")
	errLeaseGone       = errors.New("jobs: lease lost")
	// errLeaseUnconfirmed: heartbeats failed for most of the lease (the
	// database is unreachable): the processor is stopped, since another
	// instance may soon rescue the run, but an outcome it reached is still
	// recorded, fenced by the lease token (the owner's outcome wins unless
	// the run was rescued meanwhile).
	errLeaseUnconfirmed = errors.New("jobs: lease not confirmed")
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
	// Clock tells the time of heartbeats, retry and snooze delays and the
	// local lease check; default the real clock (tests pass a
	// clockwork.FakeClock and advance it). Lease expiry itself is judged
	// on the database's clock.
	Clock clockwork.Clock
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
	// Serves, when not empty, names the connections this process serves,
	// each by its name or one of its labels (serve --connections): runs of
	// a job that calls any other connection (a step's or its push's) are
	// not claimed here (see Unrunnable). Empty: every connection.
	Serves []string

	// giveUp, when set (by a Pool), holds the UnixNano time at which
	// outcome recording stops retrying: the shutdown's last try.
	giveUp *atomic.Int64
	// quietSuccess drops the stored start line of a quick, clean success
	// (its attempt record says it all): set by a Pool, where one log row less
	// per run is throughput; `jobrunner run` keeps it.
	quietSuccess bool

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

// clock returns e.Clock, or the real clock.
func (e *Executor) clock() clockwork.Clock {
	if e.Clock != nil {
		return e.Clock
	}
	return realClock
}

var realClock = clockwork.NewRealClock()

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

// Resolve finds the processors that run job (for preview or not) — every
// step's, and the post-processor — so that a run that cannot run is
// refused before it is recorded. It returns the first step's processor and
// connection. A preview of a job with a step (or post-processor) that does
// not support preview fails with an error wrapping
// processors.ErrPreviewUnsupported.
func (e *Executor) Resolve(job *definitions.Job, preview bool) (processors.Processor, *definitions.Connection, error) {
	plan, err := e.plan(job, preview)
	if err != nil {
		return nil, nil, err
	}
	return plan[0].proc, plan[0].conn, nil
}

// stepPlan is one step of a run as the executor runs it.
type stepPlan struct {
	def  definitions.Step
	proc processors.Processor
	conn *definitions.Connection
	push *pushPlan // the job's push (one-step jobs only)
}

// pushPlan is a job's push as the executor resolves it.
type pushPlan struct {
	def  *definitions.Push
	name string
	proc processors.Processor
	conn *definitions.Connection
}

// plan resolves every step of job (a one-step job has one, unnamed).
func (e *Executor) plan(job *definitions.Job, preview bool) ([]stepPlan, error) {
	return e.planIn(e.Definitions(), job, preview)
}

// planIn is plan against the definitions defs.
func (e *Executor) planIn(defs *definitions.Set, job *definitions.Job, preview bool) ([]stepPlan, error) {
	steps := job.RunSteps()
	out := make([]stepPlan, len(steps))
	for i, st := range steps {
		what := "job " + job.Name
		if len(job.Steps) > 0 {
			what = fmt.Sprintf("job %s step %d (%s)", job.Name, i+1, st.Name)
		}
		conn, ok := defs.Connection(st.Connection)
		if !ok {
			return nil, fmt.Errorf("%s: connection %q is not defined", what, st.Connection)
		}
		p, err := e.Registry.Resolve(st.Processor, conn.Type, preview)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out[i] = stepPlan{def: st, proc: p, conn: conn}
	}
	if job.Push != nil && len(out) == 1 {
		pp := &pushPlan{def: job.Push, name: job.Push.Processor}
		if pp.name == "" {
			pp.name = definitions.PushDefaultProcessor
		}
		conn, ok := defs.Connection(job.Push.Connection)
		if !ok {
			return nil, fmt.Errorf("job %s: push: connection %q is not defined", job.Name, job.Push.Connection)
		}
		p, err := e.Registry.Resolve(pp.name, conn.Type, false) // a preview pushes nothing
		if err != nil {
			return nil, fmt.Errorf("job %s: push: %w", job.Name, err)
		}
		pp.proc, pp.conn = p, conn
		out[0].push = pp
	}
	if job.PostProcessor != "" {
		last := out[len(out)-1].conn
		if _, err := e.Registry.Resolve(job.PostProcessor, last.Type, preview); err != nil {
			return nil, fmt.Errorf("job %s: post-processor: %w", job.Name, err)
		}
	}
	return out, nil
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
		e.Observer.AttemptFinished(c.Run.Job, f.AttemptStatus, f.Status, e.clock().Since(c.Started))
	}
	return f, nil
}

// execute runs the run's steps (a one-step job is one unnamed step) and
// decides the outcome; it records nothing but log lines.
func (e *Executor) execute(parent context.Context, c *Claim) *Finish {
	run := c.Run
	mirror := &runEntry{logger: e.logger(), run: run}
	lg := &runLogger{runID: run.ID, attempt: int64(run.Attempt), red: newRedactor(nil), mirror: mirror}
	fail := func(code, msg string) *Finish {
		lg.Error(msg, "code", code)
		return &Finish{Status: StatusFailed, AttemptStatus: AttemptFailed, ErrorCode: code, ErrorMessage: msg, Logs: lg.take(true)}
	}

	if run.CancelRequested { // cancelled while it waited for this attempt: never call the processor
		lg.Warn("cancelled by an operator before this attempt started")
		return &Finish{Status: StatusCancelled, AttemptStatus: AttemptCancelled, ErrorCode: "CANCELLED",
			ErrorMessage: "cancelled by an operator", Logs: lg.take(true)}
	}
	job, ok := findJob(e.Definitions(), run.Job)
	if !ok {
		return fail("DEFINITION_NOT_FOUND", fmt.Sprintf("job %q is no longer defined", run.Job))
	}
	params, err := job.DecodeParams([]byte(run.Parameters))
	if err != nil {
		return fail("BAD_PARAMETERS", fmt.Sprintf("stored parameters no longer fit the definition: %v", err))
	}
	plan, err := e.plan(job, run.Preview)
	if err != nil {
		return e.withLinks(job, run, params, fail("PROCESSOR_UNAVAILABLE", err.Error()), lg)
	}
	secrets := map[string]map[string]string{}
	var all map[string]string
	// Every step's connection, then the push's (a one-step job).
	n := len(plan)
	if plan[0].push != nil {
		n++
	}
	for i := range n {
		conn, what := plan[min(i, len(plan)-1)].conn, ""
		if i == len(plan) {
			conn, what = plan[0].push.conn, "push connection: "
		}
		if _, done := secrets[conn.Name]; done {
			continue
		}
		sec, err := conn.ResolveSecrets(e.getenv)
		if err != nil {
			if e.ReleaseOnShutdown { // a pool: another instance may have the secret
				msg := "this instance cannot run it (" + what + err.Error() + "): released, no attempt used, for an instance that has the secret"
				lg.Warn(msg)
				return &Finish{Status: StatusQueued, AttemptStatus: AttemptReleased, Snoozed: true, NotBefore: e.clock().Now().Add(secretRetry),
					ErrorCode: "SECRET_MISSING", ErrorMessage: msg, Logs: lg.take(true)}
			}
			return e.withLinks(job, run, params, fail("SECRET_MISSING", what+err.Error()), lg)
		}
		secrets[conn.Name] = sec
		if n == 1 {
			all = sec
			break
		}
		if all == nil {
			all = map[string]string{}
		}
		for k, v := range sec {
			all[conn.Name+"\x00"+k] = v
		}
	}
	lg.red = newRedactor(all)
	sctx, span := tracing.Tracer().Start(parent, tracing.SpanAttempt)
	if span.IsRecording() { // no attribute or database work when traces are off (the hot path)
		span.SetAttributes(attribute.String("jobrunner.job", job.Name), attribute.Int64("jobrunner.run_id", run.ID),
			attribute.Int("jobrunner.attempt", run.AttemptsUsed()), attribute.Int("jobrunner.execution", run.Attempt),
			attribute.Bool("jobrunner.preview", run.Preview))
		e.traceAttempt(parent, run, span)
	}
	f := e.runSteps(sctx, c, job, params, plan, secrets, lg, mirror)
	endSpan(span, f)
	return e.withLinks(job, run, params, f, lg)
}

// runSteps runs the steps of one execution, from the first step that is
// not done yet (a retried multi-step run resumes there; steps reused by a
// retry from a failed step are done), each with the previous step's
// recorded result as Input. It returns nil when the lease was lost.
func (e *Executor) runSteps(parent context.Context, c *Claim, job *definitions.Job, params definitions.Values, plan []stepPlan,
	secrets map[string]map[string]string, lg *runLogger, mirror *runEntry) *Finish {
	run := c.Run
	multi := len(job.Steps) > 0
	var rows []RunStep
	start := 0
	if multi {
		stored, err := e.Store.Steps(context.WithoutCancel(parent), run.ID)
		if err != nil {
			msg := "could not read the run's steps; trying again shortly: " + redactErr(err, e.Store.dsn)
			lg.Warn(msg)
			return &Finish{Status: StatusQueued, AttemptStatus: AttemptReleased, Snoozed: true, NotBefore: e.clock().Now().Add(time.Second),
				ErrorMessage: msg, Logs: lg.take(true)}
		}
		rows = stepRows(run.ID, plan, stored)
		for start < len(rows) && rows[start].done() {
			start++
		}
	}

	inst, err := e.Store.InstallationID(context.WithoutCancel(parent))
	if err != nil {
		msg := "could not read the installation id (idempotency keys); trying again shortly: " + redactErr(err, e.Store.dsn)
		lg.Warn(msg)
		return &Finish{Status: StatusQueued, AttemptStatus: AttemptReleased, Snoozed: true, NotBefore: e.clock().Now().Add(time.Second),
			ErrorMessage: msg, Logs: lg.take(true)}
	}

	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	if c.watch != nil {
		defer c.watch(run.ID, cancel)()
	}
	hb := &heartbeat{store: e.Store, claim: c, cancel: cancel, log: mirror, lastOK: c.Started, clock: e.clock()}
	if e.Clock != nil {
		// The claim's time is the real clock's; the lease check counts on
		// this one from now.
		hb.lastOK = e.Clock.Now()
	}
	var (
		pmu  sync.Mutex
		cur  *processors.Run
		base Progress // counts of this run's steps finished before cur
	)
	if multi {
		base = stepTotals(rows)
	}
	hb.progress = func() Progress {
		pmu.Lock()
		defer pmu.Unlock()
		if cur == nil {
			return base
		}
		p := progressOf(cur)
		if multi {
			p.Read, p.Changed, p.Errors, p.Warnings = p.Read+base.Read, p.Changed+base.Changed, p.Errors+base.Errors, p.Warnings+base.Warnings
			p.Progress = stepProgress(rows, p.Progress)
		}
		return p
	}
	hb.logs = lg
	stopOnce := sync.OnceFunc(hb.start(ctx))
	stopHB := stopOnce
	defer stopHB()

	timeout := job.Timeout.D()
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	newRun := func(i int) *processors.Run {
		sp := plan[i]
		pr := &processors.Run{
			ID:          run.ID,
			Job:         job,
			Attempt:     run.AttemptsUsed(),
			MaxAttempts: run.MaxAttempts,
			Params:      params,
			Connection: processors.Connection{Name: sp.conn.Name, Type: sp.conn.Type, Settings: sp.conn.ExpandedSettings(e.getenv), Secrets: secrets[sp.conn.Name],
				Preset: sp.conn.Preset, Operations: sp.conn.Operations, Limit: e.limit(sp.conn)},
			Operation:      sp.def.Operation,
			Inputs:         sp.def.Inputs,
			Preview:        run.Preview,
			IdempotencyKey: "jobrunner-" + inst + "-run-" + strconv.FormatInt(run.ID, 10),
			InstallationID: inst,
			Log:            lg,
			Guard:          hb.guard,
		}
		if pp := sp.push; pp != nil {
			conc := pp.def.Concurrency
			if conc <= 0 {
				conc = pp.conn.MaxConcurrency
			}
			pr.Push = &processors.Target{
				Connection: processors.Connection{Name: pp.conn.Name, Type: pp.conn.Type, Settings: pp.conn.ExpandedSettings(e.getenv),
					Secrets: secrets[pp.conn.Name], Preset: pp.conn.Preset, Operations: pp.conn.Operations, Limit: e.limit(pp.conn)},
				Processor: pp.proc, ProcessorName: pp.name, Operation: pp.def.Operation, Inputs: pp.def.Inputs, Concurrency: conc,
			}
		}
		if multi {
			pr.Step, pr.StepIndex, pr.StepParams = sp.def.Name, i, sp.def.Parameters
			pr.Params = job.StepValues(params, sp.def)
			pr.IdempotencyKey += "-step-" + strconv.Itoa(i)
			if i > 0 && rows[i-1].hasResult() {
				pr.Input = json.RawMessage(rows[i-1].Result)
			}
		}
		return pr
	}

	if !multi {
		pr := newRun(0)
		cur = pr
		if parent.Err() != nil { // stopping before it started: never call the ERP
			stopHB()
			return e.decide(job, run, pr, parent.Err(), nil, true, lg, false)
		}
		lg.started(fmt.Sprintf("attempt %d of %d started%s", pr.Attempt, pr.MaxAttempts, executionNote(run)),
			append([]any{"processor", plan[0].def.Processor, "connection", plan[0].conn.Name, "owner", c.Owner}, traceKV(parent)...)...)
		perr := callWithTimeout(ctx, timeout, plan[0].proc, pr)
		if perr == nil && job.PostProcessor != "" {
			perr = e.postProcess(ctx, timeout, job, plan[0].conn, pr)
		}
		stopHB()
		cause := context.Cause(ctx)
		if errors.Is(cause, errLeaseGone) {
			lg.Warn("lease lost: another instance owns this run now; nothing more is recorded for this attempt")
			return nil
		}
		perr, cause = unconfirmed(perr, cause, c.TTL, lg)
		return e.decide(job, run, pr, perr, cause, parent.Err() != nil, lg, false)
	}

	// Multi-step.
	var logs []LogLine
	finish := func(f *Finish, at int) *Finish {
		stopHB()
		f.Logs = append(append(logs, f.Logs...), lg.take(true)...)
		f.Steps, f.StepIndex = rows, at
		totals := stepTotals(rows)
		f.Progress = Progress{Progress: stepProgress(rows, 0), Read: totals.Read, Changed: totals.Changed, Errors: totals.Errors, Warnings: totals.Warnings}
		return f
	}
	if start < len(rows) {
		lg.started(fmt.Sprintf("attempt %d of %d started at step %d of %d (%s)%s", run.AttemptsUsed(), run.MaxAttempts, start+1, len(rows), rows[start].Name, executionNote(run)),
			append([]any{"owner", c.Owner}, traceKV(parent)...)...)
	}
	last := min(start, len(rows)-1)
	for i := start; i < len(plan); i++ {
		last = i
		sp := plan[i]
		row := &rows[i]
		pr := newRun(i)
		lg.setStep(i)
		ran := false
		var perr error
		if ctx.Err() != nil { // stopping or cancelled between steps: do not start the next one
			perr = context.Cause(ctx)
		} else {
			ran = true
			lg.Info(fmt.Sprintf("step %d of %d (%s) started", i+1, len(plan), sp.def.Name), "processor", sp.def.Processor, "connection", sp.conn.Name)
			t := e.clock().Now().UTC()
			pmu.Lock()
			cur = pr
			row.Attempts++
			row.StartedAt, row.FinishedAt = &t, nil
			pmu.Unlock()
			stepCtx, stepSpan := tracing.Tracer().Start(ctx, tracing.SpanStep)
			if stepSpan.IsRecording() {
				stepSpan.SetAttributes(attribute.String("jobrunner.step", sp.def.Name), attribute.Int("jobrunner.step_index", i),
					attribute.String("jobrunner.processor", sp.def.Processor), attribute.String("jobrunner.connection", sp.conn.Name))
			}
			perr = callWithTimeout(stepCtx, timeout, sp.proc, pr)
			if perr == nil && i == len(plan)-1 && job.PostProcessor != "" {
				perr = e.postProcess(stepCtx, timeout, job, sp.conn, pr)
			}
			if perr != nil {
				o := processors.Classify(perr)
				stepSpan.SetAttributes(attribute.String("jobrunner.outcome", o.Kind.String()), attribute.String("jobrunner.error_code", o.Code))
				stepSpan.SetStatus(codes.Error, o.Code)
			}
			stepSpan.End()
		}
		cause := context.Cause(ctx)
		if errors.Is(cause, errLeaseGone) {
			stopHB()
			lg.Warn("lease lost: another instance owns this run now; nothing more is recorded for this attempt")
			return nil
		}
		perr, cause = unconfirmed(perr, cause, c.TTL, lg)
		sf := e.decide(job, run, pr, perr, cause, parent.Err() != nil, lg, true)
		logs = append(logs, sf.Logs...)
		sf.Logs = nil
		pmu.Lock()
		cur = nil
		if ran {
			t := e.clock().Now().UTC()
			ctr := pr.Counters()
			row.FinishedAt = &t
			row.RecordsRead, row.RecordsChanged, row.RecordErrors, row.RecordWarnings = ctr.Read, ctr.Changed, ctr.Errors, ctr.Warnings
			row.ErrorCode, row.ErrorMessage = sf.ErrorCode, sf.ErrorMessage
		}
		switch {
		case sf.Status == StatusSucceeded || sf.Status == StatusSucceededWithWarnings:
			row.Status, row.Result = StepSucceeded, jsonOrNil(sf.Result)
		case sf.Status == StatusFailed:
			row.Status = StepFailed
		case sf.Status == StatusCancelled:
			row.Status = StepCancelled
			if !ran {
				row.Status = StepSkipped
			}
		default: // queued again: retry, snooze or release
			if ran {
				row.Status = StepQueued
			}
		}
		base = stepTotals(rows)
		pmu.Unlock()

		switch {
		case row.Status == StepSucceeded:
			continue
		case row.Status == StepFailed && sp.def.OnFailure == definitions.OnFailureContinue:
			lg.Warn(fmt.Sprintf("step %d (%s) failed; its onFailure is continue, so the run goes on (the failed step counts as one record error)", i+1, sp.def.Name),
				"code", sf.ErrorCode)
			continue
		}
		if sf.Status.Final() {
			pmu.Lock()
			for k := i + 1; k < len(rows); k++ {
				rows[k].Status = StepSkipped
			}
			pmu.Unlock()
			if sf.Status == StatusFailed {
				sf.ErrorMessage = fmt.Sprintf("step %d (%s): %s", i+1, sp.def.Name, sf.ErrorMessage)
				lg.Info(fmt.Sprintf("later steps skipped: step %d (%s) failed and its onFailure is stop", i+1, sp.def.Name))
			}
		}
		sf.Result = nil
		return finish(sf, i)
	}

	// Every step ran (or was done already): the run's outcome derives from
	// the steps' record counts, a failed step (onFailure continue) counting
	// as one record error, under the job's maxErrors / maxWarnings.
	f := &Finish{}
	for k := len(rows) - 1; k >= 0; k-- {
		if rows[k].hasResult() {
			f.Result = []byte(rows[k].Result)
			break
		}
	}
	f = finish(f, last)
	f.Status, f.AttemptStatus, f.ErrorCode, f.ErrorMessage = outcomeOf(job, f.Progress)
	if f.Status == StatusFailed {
		lg.Error(f.ErrorMessage, "code", f.ErrorCode)
		f.Logs = append(f.Logs, lg.take(true)...)
	}
	return f
}

// stepRows returns the step rows of a run: those stored (from earlier
// executions, or reused by a retry), pending rows for the others.
func stepRows(runID int64, plan []stepPlan, stored []RunStep) []RunStep {
	rows := make([]RunStep, len(plan))
	for i, sp := range plan {
		rows[i] = RunStep{RunID: runID, StepIndex: i, Name: sp.def.Name, Processor: sp.def.Processor, ConnectionName: sp.conn.Name, Status: StepPending}
	}
	for _, st := range stored {
		if st.StepIndex >= 0 && st.StepIndex < len(rows) {
			rows[st.StepIndex] = st
		}
	}
	return rows
}

// stepTotals sums the record counts of a run's steps; a failed step adds
// one record error.
func stepTotals(rows []RunStep) Progress {
	var p Progress
	for _, r := range rows {
		if r.Status == StepReused || r.Status == StepPending || r.Status == StepSkipped {
			continue
		}
		p.Read += r.RecordsRead
		p.Changed += r.RecordsChanged
		p.Errors += r.RecordErrors
		p.Warnings += r.RecordWarnings
		if r.Status == StepFailed {
			p.Errors++
		}
	}
	return p
}

// stepProgress is a multi-step run's progress in percent: the steps done
// plus the running step's own progress.
func stepProgress(rows []RunStep, current int) int {
	done := 0
	for _, r := range rows {
		if r.done() {
			done++
		}
	}
	if len(rows) == 0 {
		return 0
	}
	return min(100, (done*100+min(current, 99))/len(rows))
}

// outcomeOf applies the job's maxErrors / maxWarnings to a successful
// execution's record counts.
func outcomeOf(job *definitions.Job, prog Progress) (Status, string, string, string) {
	switch {
	case job.MaxErrors >= 0 && prog.Errors > int64(job.MaxErrors):
		return StatusFailed, AttemptFailed, "MAX_ERRORS_EXCEEDED", fmt.Sprintf("%d record errors, more than the job allows (%d)", prog.Errors, job.MaxErrors)
	case job.MaxWarnings >= 0 && prog.Warnings > int64(job.MaxWarnings):
		return StatusFailed, AttemptFailed, "MAX_WARNINGS_EXCEEDED", fmt.Sprintf("%d warnings, more than the job allows (%d)", prog.Warnings, job.MaxWarnings)
	case prog.Warnings > 0 || prog.Errors > 0:
		return StatusSucceededWithWarnings, AttemptSucceeded, "", ""
	default:
		return StatusSucceeded, AttemptSucceeded, "", ""
	}
}

// withLinks adds to a final outcome the linked runs its job starts (see
// definitions.Link); Finish enqueues them in the same transaction. Links
// that cannot start (target gone, parameters that do not parse, processor
// unavailable, a preview run without preview: true) are logged instead.
func (e *Executor) withLinks(job *definitions.Job, run *Run, params definitions.Values, f *Finish, lg *runLogger) *Finish {
	if f == nil || !f.Status.Final() || len(job.Links) == 0 || params == nil {
		return f
	}
	text := params.Text()
	defs := e.Definitions()
	for i, lk := range job.Links {
		if !lk.Matches(string(f.Status)) {
			continue
		}
		if run.Preview && !lk.Preview {
			lg.Info(fmt.Sprintf("linked job %s not started: this is a preview run (the link does not say preview: true)", lk.Job))
			continue
		}
		target, ok := findJob(defs, lk.Job)
		if !ok {
			lg.Error(fmt.Sprintf("linked job %s not started: it is no longer defined", lk.Job))
			continue
		}
		vals, err := target.ParseParams(lk.Expand(text))
		if err != nil {
			lg.Error(fmt.Sprintf("linked job %s not started: its parameters do not parse: %v", lk.Job, err))
			continue
		}
		if _, _, err := e.Resolve(target, run.Preview); err != nil {
			lg.Error(fmt.Sprintf("linked job %s not started: %v", lk.Job, err))
			continue
		}
		parent := run.ID
		f.Links = append(f.Links, NewRun{Job: target, Params: vals, Trigger: TriggerLink,
			TriggeredBy:    fmt.Sprintf("link from run %d (%s)", run.ID, run.Job),
			IdempotencyKey: fmt.Sprintf("link:%d:%d", run.ID, i), Preview: run.Preview, ParentRunID: &parent})
	}
	f.Logs = append(f.Logs, lg.take(false)...)
	return f
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
// With step set it classifies one step of a multi-step run: success is not
// checked against maxErrors / maxWarnings (the run's totals are, once all
// steps ran).
func (e *Executor) decide(job *definitions.Job, run *Run, pr *processors.Run, perr, cause error, shutdown bool, lg *runLogger, step bool) *Finish {
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
		f.Status, f.AttemptStatus, f.NotBefore = StatusQueued, AttemptRetry, e.clock().Now().Add(delay)
		lg.Warn(fmt.Sprintf("attempt %d of %d failed, retrying in %s: %s", used, run.MaxAttempts, HumanDuration(delay), msg), "code", code)
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
		f.Result = redactResult(lg.red, res)
		if step {
			f.Status, f.AttemptStatus = StatusSucceeded, AttemptSucceeded
			return finalize()
		}
		f.Status, f.AttemptStatus, f.ErrorCode, f.ErrorMessage = outcomeOf(job, prog)
		if f.Status == StatusSucceeded || f.Status == StatusSucceededWithWarnings {
			f.Progress.Progress = 100 // done, whether or not the processor reported progress
		}
		if f.Status == StatusFailed {
			lg.Error(f.ErrorMessage, "code", f.ErrorCode)
		} else if f.Status == StatusSucceeded {
			if e.quietSuccess {
				lg.dropLoneStart()
			}
		}
		return finalize()
	}

	var pe *errPanic
	if errors.As(perr, &pe) {
		return retryOrFail("PANIC", perr.Error(), 0)
	}
	out := processors.Classify(perr)
	msg := lg.red.Redact(out.Message)
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
		if out.Horizon > 0 {
			// The wait ends when someone acts, not after N tries: keep
			// coming back until the horizon, then fail with the code.
			if age := e.clock().Since(run.CreatedAt); age >= out.Horizon {
				f.Status, f.AttemptStatus, f.ErrorCode = StatusFailed, AttemptFailed, out.Code
				f.ErrorMessage = fmt.Sprintf("%s (still snoozed after %s, the horizon is %s)", msg, age.Round(time.Second), out.Horizon)
				lg.Error(f.ErrorMessage, "code", f.ErrorCode)
				return finalize()
			}
		} else if run.Snoozes+1 > limit {
			f.Status, f.AttemptStatus, f.ErrorCode = StatusFailed, AttemptFailed, "SNOOZE_LIMIT"
			f.ErrorMessage = fmt.Sprintf("snoozed %d times, the job allows %d (retry.maxSnoozes): %s", run.Snoozes+1, limit, msg)
			lg.Error(f.ErrorMessage, "code", f.ErrorCode)
			return finalize()
		}
		delay := out.Delay
		if delay <= 0 {
			delay = Backoff(job.Retry, run.Snoozes+1, e.rand())
		} else {
			delay = SnoozeDelay(job.Retry, delay, out.Horizon > 0, e.rand())
		}
		f.Status, f.AttemptStatus, f.Snoozed, f.NotBefore = StatusQueued, AttemptSnoozed, true, e.clock().Now().Add(delay)
		f.ErrorCode, f.ErrorMessage = out.Code, msg
		lg.Info(fmt.Sprintf("snoozed for %s (does not use an attempt): %s", HumanDuration(delay), msg))
		return finalize()
	default: // retry, timeout, plain errors
		if out.Kind == processors.OutcomeTimeout && !strings.Contains(msg, "timeout elapsed") {
			// Name the limit for any processor ("context deadline exceeded"
			// says nothing); connectors that know the call say more.
			limit := job.Timeout.D()
			if limit <= 0 {
				limit = 5 * time.Minute
			}
			msg = fmt.Sprintf("the job's %s timeout elapsed: %s", limit, msg)
		}
		return retryOrFail(out.Code, msg, out.Delay)
	}
}

// unconfirmed turns an execution stopped because its lease could not be
// confirmed into what is recorded, fenced by the lease token: the
// processor's own outcome when it reached one (the work is done; a rescue
// must not do it again), else a failed attempt saying why it stopped.
// Other causes pass through.
func unconfirmed(perr, cause error, ttl time.Duration, lg *runLogger) (error, error) {
	if !errors.Is(cause, errLeaseUnconfirmed) {
		return perr, cause
	}
	if perr == nil {
		lg.Warn("the lease could not be confirmed (database unreachable) but the processor had finished: its outcome is recorded unless another instance took the run over")
		return nil, nil
	}
	// Not wrapped: the processor's context.Canceled must not read as an
	// operator's cancel.
	return fmt.Errorf("interrupted: the lease could not be confirmed for %s (database unreachable), so the processor was stopped before another instance could take the run over: %v",
		HumanDuration(ttl*9/10), perr), nil
}

// HumanDuration rounds d for people: whole seconds from 10s, tenths of a
// second from 1s, milliseconds below ("2.990759344s" reads "3s").
func HumanDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// secretRetry is how long a run released for a missing secret waits
// before any instance claims it again.
const secretRetry = 30 * time.Second

// Unrunnable returns the jobs of set this executor cannot run, with why:
// a processor that is not registered for the connection's type, or a
// connection secret whose environment variable is not set here. A Pool
// does not claim their runs (another instance may run them); /readyz
// lists them.
func (e *Executor) Unrunnable(set *definitions.Set) map[string]string {
	if set == nil || e.Registry == nil {
		return nil
	}
	out := map[string]string{}
	for _, j := range set.Jobs {
		plan, err := e.planIn(set, j, false)
		if err != nil {
			out[j.Name] = err.Error()
			continue
		}
		for _, sp := range plan {
			if why := e.notServed(sp.conn); why != "" {
				out[j.Name] = why
				break
			}
			if sp.push != nil {
				if why := e.notServed(sp.push.conn); why != "" {
					out[j.Name] = "push " + why
					break
				}
			}
			if _, err := sp.conn.ResolveSecrets(e.getenv); err != nil {
				out[j.Name] = err.Error()
				break
			}
			if sp.push != nil {
				if _, err := sp.push.conn.ResolveSecrets(e.getenv); err != nil {
					out[j.Name] = "push connection: " + err.Error()
					break
				}
			}
		}
	}
	return out
}

// notServed says why connection c is not served here (Serves), or "".
func (e *Executor) notServed(c *definitions.Connection) string {
	if len(e.Serves) == 0 {
		return ""
	}
	for _, name := range e.Serves {
		if name == c.Name || slices.Contains(c.Labels, name) {
			return ""
		}
	}
	return fmt.Sprintf("connection %s is not served by this instance (serve --connections %s)", c.Name, strings.Join(e.Serves, ","))
}

// limit returns the rate limiter of a connection with a rateLimit (nil
// without one).
func (e *Executor) limit(c *definitions.Connection) func(ctx context.Context) error {
	if c.RateLimit <= 0 {
		return nil
	}
	return e.Store.rateLimiter(e.clock(), c.Name, c.RateLimit)
}

// traceAttempt links the attempt's span to the request that triggered the
// run (its recorded trace context) and records the attempt's trace, so
// that `runs show`, the API and the run page can name it. Failures only
// cost the link; the run goes on.
func (e *Executor) traceAttempt(ctx context.Context, run *Run, span trace.Span) {
	sctx := context.WithoutCancel(ctx)
	if ts, err := e.Store.Traces(sctx, run.ID); err == nil {
		for _, t := range ts {
			if t.Attempt != 0 {
				continue
			}
			tid, terr := trace.TraceIDFromHex(t.TraceID)
			sid, serr := trace.SpanIDFromHex(t.SpanID)
			if terr == nil && serr == nil {
				span.AddLink(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true}),
					Attributes: []attribute.KeyValue{attribute.String("jobrunner.link", "trigger")}})
			}
		}
	}
	sc := span.SpanContext()
	if err := e.Store.RecordTrace(sctx, run.ID, run.Attempt, sc.TraceID().String(), sc.SpanID().String()); err != nil {
		e.logger().WithField("run_id", run.ID).Warnf("traces: %v", redactErr(err, e.Store.dsn))
	}
}

// traceKV returns the trace id of ctx's span as log fields (none when
// traces are off).
func traceKV(ctx context.Context) []any {
	if id := tracing.TraceID(ctx); id != "" {
		return []any{"trace_id", id}
	}
	return nil
}

// endSpan records an attempt's outcome on its span and ends it.
func endSpan(span trace.Span, f *Finish) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if f == nil {
		span.SetAttributes(attribute.String("jobrunner.outcome", "lease_lost"))
		span.End()
		return
	}
	span.SetAttributes(attribute.String("jobrunner.outcome", f.AttemptStatus), attribute.String("jobrunner.status", string(f.Status)))
	if f.ErrorCode != "" {
		span.SetAttributes(attribute.String("jobrunner.error_code", f.ErrorCode))
	}
	if f.Status == StatusFailed {
		span.SetStatus(codes.Error, f.ErrorCode)
	}
	span.End()
}

// executionNote says, when the run was snoozed before, which execution
// this is: an attempt that follows a snooze has the same number as the
// attempt before it ("attempt 1 of 5 started (execution 3, after 2
// snoozes)").
func executionNote(run *Run) string {
	if run.Snoozes == 0 {
		return ""
	}
	s := "s"
	if run.Snoozes == 1 {
		s = ""
	}
	return fmt.Sprintf(" (execution %d, after %d snooze%s)", run.Attempt, run.Snoozes, s)
}

// redactResult hides known secret values in a result as everywhere else
// (a processor that echoes a secret must not have it stored and shown).
// A result that redaction would make invalid JSON is stored as a JSON
// string of its redacted text.
func redactResult(red *redactor, res []byte) []byte {
	if red.Empty() {
		return res
	}
	out := red.Redact(string(res))
	if out == string(res) {
		return res
	}
	if !json.Valid([]byte(out)) {
		b, _ := json.Marshal(out)
		return b
	}
	return []byte(out)
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
	return e.recordFrom(ctx, c, f, 0)
}

// recordAgain is record after a try that failed elsewhere (a pool's group
// commit): it checks for an ambiguous commit before its first try. This
// is the one place that check is made.
func (e *Executor) recordAgain(ctx context.Context, c *Claim, f *Finish) error {
	return e.recordFrom(ctx, c, f, 1)
}

func (e *Executor) recordFrom(ctx context.Context, c *Claim, f *Finish, first int) error {
	if f == nil {
		return fmt.Errorf("jobs: run %d: %w", c.Run.ID, ErrLeaseLost)
	}
	rctx := context.WithoutCancel(ctx)
	limit := e.RecordTimeout
	if limit <= 0 {
		limit = 10 * time.Minute
	}
	deadline := e.clock().Now().Add(limit)
	delay := 100 * time.Millisecond
	for try := first; ; try++ {
		// Each try is bounded (a frozen database must not hold it), and at
		// shutdown the whole loop is (see giveUpAt).
		tctx, cancel := context.WithTimeout(rctx, recordTryTimeout)
		if g := e.giveUpAt(); !g.IsZero() {
			cancel()
			tctx, cancel = context.WithDeadline(rctx, g)
		}
		if try > 0 { // after a failed try (recordAgain: before the first)
			if done, err := e.Store.Finished(tctx, c); err == nil && done {
				cancel()
				return nil
			}
		}
		finish := e.finish
		if finish == nil {
			finish = e.Store.Finish
		}
		err := finish(tctx, c, *f)
		cancel()
		if err == nil || errors.Is(err, ErrLeaseLost) {
			return err
		}
		if g := e.giveUpAt(); !g.IsZero() && !e.clock().Now().Before(g) {
			return fmt.Errorf("jobs: record outcome of run %d: stopping, gave up (the lease lapses and another instance takes the run over): %w", c.Run.ID, err)
		}
		if e.clock().Now().After(deadline) {
			return fmt.Errorf("jobs: record outcome of run %d: gave up after %s: %w", c.Run.ID, limit, err)
		}
		e.logger().WithFields(logrus.Fields{"run_id": c.Run.ID, "job": c.Run.Job}).
			Warnf("cannot record the run's outcome yet, retrying in %s: %v", delay, redactErr(err, e.Store.dsn))
		sleep := delay
		if g := e.giveUpAt(); !g.IsZero() {
			sleep = min(sleep, max(g.Sub(e.clock().Now()), 0))
		}
		e.clock().Sleep(sleep)
		delay = min(delay*2, 5*time.Second)
	}
}

// recordTryTimeout bounds one try to record an outcome.
const recordTryTimeout = 15 * time.Second

// giveUpAt is when outcome recording stops retrying (set at shutdown by
// Pool.Stop); zero: not stopping.
func (e *Executor) giveUpAt() time.Time {
	if e.giveUp == nil {
		return time.Time{}
	}
	if n := e.giveUp.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// heartbeat keeps an execution's lease, stores its log lines as they come,
// and cancels the execution when the lease is lost or an operator cancels.
type heartbeat struct {
	clock    clockwork.Clock
	store    *Store
	claim    *Claim
	cancel   context.CancelCauseFunc
	log      *runEntry
	progress func() Progress
	logs     *runLogger

	mu     sync.Mutex
	lastOK time.Time // monotonic: when the lease was last confirmed
}

// start beats every third of the lease TTL and stores log lines within
// LogFlushInterval, from a goroutine started only when the first of those
// is due: most runs end before, and then cost a stopped timer instead of a
// goroutine and two tickers.
func (h *heartbeat) start(ctx context.Context) (stop func()) {
	ttl := h.claim.TTL
	every := max(ttl/3, 50*time.Millisecond)
	flushEvery := min(LogFlushInterval, every)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	first := h.clock.AfterFunc(flushEvery, func() {
		defer wg.Done()
		// Beat until the execution ends, not until its context does: a
		// cancelled processor may take a while to stop (exec's kill
		// grace), and its lease must not lapse meanwhile, or another
		// instance would start the run while it still runs.
		bctx := context.WithoutCancel(ctx)
		// The beats keep their times (every, 2×every… after the start);
		// log lines are stored within LogFlushInterval of being written
		// (live logs), not only with the heartbeat (a beat stores them too).
		beat := h.clock.NewTimer(every - flushEvery)
		defer beat.Stop()
		lt := h.clock.NewTicker(flushEvery)
		defer lt.Stop()
		if flushEvery < every && h.logs != nil && h.logs.hasLines() && h.flushLogs(bctx) {
			return
		}
		for {
			select {
			case <-done:
				return
			case <-beat.Chan():
				if h.beat(bctx) {
					return // the lease is gone: nothing more to renew
				}
				beat.Reset(every)
			case <-lt.Chan():
				if h.logs != nil && h.logs.hasLines() && h.flushLogs(bctx) {
					return
				}
			}
		}
	})
	return func() {
		close(done)
		if first.Stop() {
			wg.Done() // never started
		}
		wg.Wait()
	}
}

// LogFlushInterval is how soon a running run's log lines are stored
// (and shown by runs logs --follow and the run page).
const LogFlushInterval = time.Second

// flushLogs stores the buffered log lines (fenced by the lease); it
// reports whether the lease is gone.
func (h *heartbeat) flushLogs(ctx context.Context) (gone bool) {
	lines := h.logs.take(false)
	if len(lines) == 0 {
		return false
	}
	fctx, cancel := context.WithTimeout(ctx, h.claim.TTL/2)
	defer cancel()
	if err := h.store.AppendLogs(fctx, h.claim, lines); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			h.cancel(errLeaseGone)
			return true
		}
		h.logs.putBack(lines)
	}
	return false
}

// beat renews the lease once; failures past the lease's safe window cancel
// the execution (another instance may rescue the run). It reports whether
// the lease is gone.
func (h *heartbeat) beat(ctx context.Context) (gone bool) {
	bctx, cancel := context.WithTimeout(ctx, h.claim.TTL/2)
	defer cancel()
	if lines := h.logs.take(false); len(lines) > 0 {
		if err := h.store.AppendLogs(bctx, h.claim, lines); err != nil {
			if errors.Is(err, ErrLeaseLost) {
				h.cancel(errLeaseGone)
				return true
			}
			h.logs.putBack(lines)
		}
	}
	cancelReq, err := h.store.Heartbeat(bctx, h.claim, h.progress())
	switch {
	case errors.Is(err, ErrLeaseLost):
		h.cancel(errLeaseGone)
		return true
	case err != nil:
		h.log.entry().Warnf("heartbeat failed: %v", redactErr(err, h.store.dsn))
		h.mu.Lock()
		expired := h.clock.Since(h.lastOK) > h.claim.TTL*9/10
		h.mu.Unlock()
		if expired {
			h.cancel(errLeaseUnconfirmed)
			return true
		}
	default:
		h.mu.Lock()
		h.lastOK = h.clock.Now()
		h.mu.Unlock()
		if cancelReq {
			h.cancel(errCancelRequested)
		}
	}
	return false
}

// guard is Run.BeforeSideEffect's check: the lease is trusted while well
// inside its TTL by the local monotonic clock; past half of it, it is
// confirmed in the database first.
func (h *heartbeat) guard(ctx context.Context) error {
	h.mu.Lock()
	fresh := h.clock.Since(h.lastOK) < h.claim.TTL/2
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
	h.lastOK = h.clock.Now()
	h.mu.Unlock()
	if cancelReq {
		h.cancel(errCancelRequested)
		return errCancelRequested
	}
	return nil
}
