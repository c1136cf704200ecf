package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// Errors of Starter.Start. A parameter problem is a definitions.ParamErrors
// (one message per field); a refused preview wraps
// processors.ErrPreviewUnsupported as well as ErrNotRunnable.
var (
	// ErrUnknownJob: no job of that name in the current definitions.
	ErrUnknownJob = errors.New("jobs: unknown job")
	// ErrNotRunnable: the job's processors (any step's, its push's) or
	// connections cannot run in this binary, or cannot preview.
	ErrNotRunnable = errors.New("jobs: job cannot run here")
)

// Starter is the front door for starting runs: `jobrunner run` and
// `trigger`, the API and the dashboard, inbound hooks, the scheduler and
// the bench start their runs through Start (or StartMany for many), which resolves the job in the
// current definitions, checks that this binary can run it (the
// executor's own plan: processors, connections, preview support), types
// and validates the parameters, stores the run, records the caller's
// trace and wakes the local workers. Connection secrets are not checked
// here: an instance without them still accepts runs that an instance
// with them executes (see Executor.Unrunnable).
//
// The exceptions, and why: runs started by links are stored inside their
// parent's completion transaction (Store.finishBatch), retries repeat a
// stored run (Store.Retry), and bulk files are stored in keyed batches
// (Store.EnqueueKeyed) after each line has been prepared here (Prepare).
type Starter struct {
	// Store keeps the runs.
	Store *Store
	// Registry resolves processors; nil skips the runnable check (a
	// process that only enqueues).
	Registry *processors.Registry
	// Definitions returns the current definitions.
	Definitions func() *definitions.Set
	// Wake, when set, is called after a new run was stored (the local
	// pool's Wake), so that it starts without waiting for a poll.
	Wake func()
	// Log receives the warning when a trace link cannot be stored; nil
	// discards it.
	Log *logrus.Logger
}

// StartRequest describes a run to start.
type StartRequest struct {
	// Job names the job in the current definitions; Definition, when set,
	// is used instead (a caller that holds its own set: the scheduler).
	Job        string
	Definition *definitions.Job
	// Text are the parameters as text (--param, a CSV cell, a JSON
	// scalar), parsed and validated under the job's types with its
	// defaults. Values, when not nil, are typed already and used instead.
	Text   map[string]string
	Values definitions.Values
	// Trigger (default TriggerManual) and TriggeredBy record what and who
	// started the run.
	Trigger     Trigger
	TriggeredBy string
	// IdempotencyKey, when set, returns the run of that key instead of a
	// second one (ErrIdempotencyMismatch when its parameters differ).
	IdempotencyKey string
	Preview        bool
	// NotBefore delays the run (zero: now); ScheduledFor is a schedule
	// tick's nominal time.
	NotBefore    time.Time
	ScheduledFor *time.Time
	// Trace is the caller's span (an API request's traceparent): the
	// run's attempts link to it. Zero: none.
	Trace trace.SpanContext
}

// Prepare resolves req's job, checks that this binary can run it and
// types its parameters, without storing anything.
func (st *Starter) Prepare(req StartRequest) (*definitions.Job, definitions.Values, error) {
	set := st.set()
	job := req.Definition
	if job == nil {
		if set == nil {
			return nil, nil, fmt.Errorf("%w %q (no definitions loaded)", ErrUnknownJob, req.Job)
		}
		j, ok := set.Job(req.Job)
		if !ok {
			return nil, nil, fmt.Errorf("%w %q", ErrUnknownJob, req.Job)
		}
		job = j
	}
	if st.Registry != nil && set != nil {
		ex := Executor{Store: st.Store, Registry: st.Registry, Definitions: st.Definitions}
		if _, err := ex.planIn(set, job, req.Preview); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrNotRunnable, err)
		}
	}
	values := req.Values
	if values == nil {
		v, err := job.ParseParams(req.Text)
		if err != nil {
			return nil, nil, err
		}
		values = v
	}
	return job, values, nil
}

// Start prepares req (see Prepare) and stores its run: the new run, or
// the existing one an idempotency key, the job's uniqueBy parameters or a
// schedule tick returns instead (Enqueued.Created false).
func (st *Starter) Start(ctx context.Context, req StartRequest) (*Enqueued, error) {
	job, values, err := st.Prepare(req)
	if err != nil {
		return nil, err
	}
	return st.store(ctx, req, newRunOf(job, values, req))
}

// newRunOf is the run req asks for, with job and values as prepared.
func newRunOf(job *definitions.Job, values definitions.Values, req StartRequest) NewRun {
	trig := req.Trigger
	if trig == "" {
		trig = TriggerManual
	}
	return NewRun{Job: job, Params: values, Trigger: trig, TriggeredBy: req.TriggeredBy, IdempotencyKey: req.IdempotencyKey,
		Preview: req.Preview, NotBefore: req.NotBefore, ScheduledFor: req.ScheduledFor}
}

// store stores nr, prepared from req: Start after Prepare.
func (st *Starter) store(ctx context.Context, req StartRequest, nr NewRun) (*Enqueued, error) {
	enq, err := st.Store.Enqueue(ctx, nr)
	if err != nil {
		return nil, err
	}
	if !enq.Created {
		return enq, nil
	}
	if sc := req.Trace; sc.IsValid() {
		// Only the link is lost when this fails; the run stands.
		if err := st.Store.RecordTrace(context.WithoutCancel(ctx), enq.Run.ID, 0, sc.TraceID().String(), sc.SpanID().String()); err != nil && st.Log != nil {
			st.Log.WithError(err).WithField("run_id", enq.Run.ID).Warn("recording the trigger's trace")
		}
	}
	if st.Wake != nil {
		st.Wake()
	}
	return enq, nil
}

// StartMany starts many runs (bulk loads, the bench): each request is
// prepared as Start prepares it (the runnable check once per job), and the
// plain ones — no idempotency key, schedule tick or uniqueBy parameters —
// are stored together in one transaction with multi-row inserts
// (Store.EnqueueBatch); the others are stored one by one as Start stores
// them, so that their conflicts are handled. The results are in the order of reqs. On
// an error nothing of the batch is stored, except runs that needed Start
// and were stored before it; the error names the request's index. The
// callers' traces are not recorded.
func (st *Starter) StartMany(ctx context.Context, reqs []StartRequest) ([]*Enqueued, error) {
	out := make([]*Enqueued, len(reqs))
	plain := make([]NewRun, 0, len(reqs))
	at := make([]int, 0, len(reqs))
	type prepared struct {
		job     *definitions.Job
		preview bool
	}
	checked := map[prepared]bool{}
	set := st.set()
	for i, req := range reqs {
		job := req.Definition
		if job == nil && set != nil {
			job, _ = set.Job(req.Job)
		}
		var values definitions.Values
		var err error
		if job != nil && checked[prepared{job, req.Preview}] && req.Values != nil {
			values = req.Values
		} else if job, values, err = st.Prepare(req); err != nil {
			return nil, fmt.Errorf("jobs: start request %d: %w", i, err)
		}
		checked[prepared{job, req.Preview}] = true
		nr := newRunOf(job, values, req)
		if nr.IdempotencyKey != "" || nr.ScheduledFor != nil || uniqueKey(job, values) != "" {
			enq, err := st.store(ctx, req, nr)
			if err != nil {
				return nil, fmt.Errorf("jobs: start request %d: %w", i, err)
			}
			out[i] = enq
			continue
		}
		plain = append(plain, nr)
		at = append(at, i)
	}
	if len(plain) == 0 {
		return out, nil
	}
	runs, err := st.Store.EnqueueBatch(ctx, plain)
	if err != nil {
		return nil, err
	}
	for k, r := range runs {
		out[at[k]] = &Enqueued{Run: r, Created: true}
	}
	if st.Wake != nil {
		st.Wake()
	}
	return out, nil
}

// StartTx is Start inside the caller's transaction tx (Store.EnqueueTx):
// the run is stored only if tx commits. It does not wake the workers
// (the run is not visible before the commit): call Wake, or Pool.Wake,
// after committing; the caller's trace is not recorded.
func (st *Starter) StartTx(ctx context.Context, tx *gorm.DB, req StartRequest) (*Enqueued, error) {
	job, values, err := st.Prepare(req)
	if err != nil {
		return nil, err
	}
	return st.Store.EnqueueTx(ctx, tx, newRunOf(job, values, req))
}

func (st *Starter) set() *definitions.Set {
	if st.Definitions == nil {
		return nil
	}
	return st.Definitions()
}

// Starter returns the front door of this executor's store, registry and
// definitions (no wake-up: a Pool's Starter wakes its workers).
func (e *Executor) Starter() *Starter {
	return &Starter{Store: e.Store, Registry: e.Registry, Definitions: e.Definitions, Log: e.Log}
}
