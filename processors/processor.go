// Package processors owns the contract between the runner and the code that
// does a job's work: the [Processor] interface, the [Run] a processor sees,
// the [Registry] that resolves a processor for (processor name, connection
// type), and the errors a processor returns to say what should happen next
// ([Permanent], [RetryLater], [Retry], [Cancel]).
//
// Built-in processors live in sub-packages: processors/exec runs an external
// command (any language), processors/httperp talks to the reference ERP REST
// contract.
package processors

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/jobrunner/jobrunner/definitions"
)

// Processor does the work of one attempt of a run.
//
// Process returns nil on success (with an optional result set by
// [Run.SetResult]), or an error that says intent: [Permanent] (no retry),
// [RetryLater] (come back later without consuming an attempt), [Retry]
// (consume an attempt, retry after a given delay), [Cancel]; any other error
// is retried with the job's backoff until attempts run out. A panic is
// recovered by the runner and recorded as a failed attempt with its stack.
//
// ctx is cancelled on timeout, on cancel of the run, and when the runner
// loses the run's lease; a processor must stop promptly and must not call
// the ERP after ctx is done.
type Processor interface {
	Process(ctx context.Context, run *Run) error
}

// ProcessorFunc adapts a function to [Processor].
type ProcessorFunc func(ctx context.Context, run *Run) error

// Process calls f(ctx, run).
func (f ProcessorFunc) Process(ctx context.Context, run *Run) error { return f(ctx, run) }

// Connection is a connection as a processor sees it: its definition plus
// its secrets resolved from the environment. Secrets must never be logged,
// returned in errors or stored in results.
type Connection struct {
	Name     string
	Type     string
	Settings map[string]any
	Secrets  map[string]string
	// Preset and Operations are the definition's (see
	// definitions.Connection); read by connection types that have them.
	Preset     string
	Operations map[string]any
	// Limit, when set, blocks until the connection's rate limit
	// (definitions.Connection.RateLimit, shared by all instances) lets one
	// more request go, or returns an error when ctx ends first or the slot
	// cannot be reserved. Call it through [Connection.Wait].
	Limit func(ctx context.Context) error
}

// Wait blocks until the connection's rate limit lets one more request
// go; processors call it before each request they send. Without a limit
// it returns nil at once.
func (c Connection) Wait(ctx context.Context) error {
	if c.Limit == nil {
		return nil
	}
	return c.Limit(ctx)
}

// Target is a connection a processor writes records to (a job's push:):
// the connection with its secrets, the processor that writes one record,
// and the operation and input bindings that processor runs.
type Target struct {
	Connection Connection
	// Processor writes one record; ProcessorName is its registered name.
	Processor     Processor
	ProcessorName string
	Operation     string
	Inputs        map[string]string
	// Concurrency bounds the writes in flight (push.concurrency, else the
	// connection's maxConcurrency); 0: the caller's default.
	Concurrency int
}

// Logger writes the run's log lines: each line is stored with the run, its
// attempt and step, and shown by `jobrunner runs logs`. kv are alternating
// key, value pairs stored as the line's fields. Known secret values are
// redacted before a line is stored.
type Logger interface {
	Debug(msg string, kv ...any)
	Info(msg string, kv ...any)
	Warn(msg string, kv ...any)
	Error(msg string, kv ...any)
}

// Counters are a run's record counts.
type Counters struct {
	Read     int64 `json:"read"`
	Changed  int64 `json:"changed"`
	Errors   int64 `json:"errors"`
	Warnings int64 `json:"warnings"`
}

// Run is what a processor sees of one attempt of a run.
type Run struct {
	// ID is the run's id in the store.
	ID int64
	// Job is the run's job definition.
	Job *definitions.Job
	// Step is the current step's name ("" for a one-step job); StepIndex
	// its position (0-based).
	Step      string
	StepIndex int
	// StepParams are the step's fixed parameters as written (text). Those
	// named like a job parameter also override that parameter in Params
	// (parsed under its type) for this step; the others reach the
	// processor only here. Nil for a one-step job.
	StepParams map[string]string
	// Attempt is this attempt's number, from 1; MaxAttempts is the job's.
	Attempt     int
	MaxAttempts int
	// Params are the run's typed parameters.
	Params definitions.Values
	// Operation and Inputs are the job's (or the step's) connection
	// operation and input bindings (definitions.Job.Operation, Inputs);
	// read by processors that run connection operations.
	Operation string
	Inputs    map[string]string
	// Connection is the connection the processor works against.
	Connection Connection
	// Input is the result of the previous processor: the processor's
	// result for a post-processor, the previous step's for a step. Nil when
	// there is none.
	Input json.RawMessage
	// Preview is true when the processor must not change the ERP: it reads
	// and records what it would do.
	Preview bool
	// IdempotencyKey is stable across all attempts of the run (derived
	// from the run id); send it to the ERP with every side effect so one
	// that honours it applies the operation once.
	IdempotencyKey string
	// Log writes the run's log lines.
	Log Logger
	// Push is where the job writes its records (definitions.Job.Push),
	// resolved for this run; nil when the job has none.
	Push *Target
	// InstallationID names this installation (its database); idempotency
	// keys a processor derives itself should include it.
	InstallationID string

	// Guard is set by the runner: see [Run.BeforeSideEffect].
	Guard func(ctx context.Context) error

	mu       sync.Mutex
	result   any
	progress atomic.Int32
	read     atomic.Int64
	changed  atomic.Int64
	errs     atomic.Int64
	warns    atomic.Int64
}

// SetResult sets the attempt's result, stored as JSON with the run. v must
// marshal to JSON.
func (r *Run) SetResult(v any) {
	r.mu.Lock()
	r.result = v
	r.mu.Unlock()
}

// Result returns what SetResult set, or nil.
func (r *Run) Result() any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.result
}

// SetProgress records the run's progress in percent (clamped to 0..100).
func (r *Run) SetProgress(pct int) {
	r.progress.Store(int32(min(max(pct, 0), 100)))
}

// Progress returns the last progress set.
func (r *Run) Progress() int { return int(r.progress.Load()) }

// AddRead adds n to the records-read counter.
func (r *Run) AddRead(n int64) { r.read.Add(n) }

// AddChanged adds n to the records-changed counter.
func (r *Run) AddChanged(n int64) { r.changed.Add(n) }

// RecordError logs msg at error level and counts one record error; the
// run fails when the job's MaxErrors is exceeded.
func (r *Run) RecordError(msg string, kv ...any) {
	r.errs.Add(1)
	if r.Log != nil {
		r.Log.Error(msg, kv...)
	}
}

// RecordWarning logs msg at warning level and counts one warning; a
// successful run with warnings ends succeeded_with_warnings.
func (r *Run) RecordWarning(msg string, kv ...any) {
	r.warns.Add(1)
	if r.Log != nil {
		r.Log.Warn(msg, kv...)
	}
}

// Counters returns the run's record counts so far.
func (r *Run) Counters() Counters {
	return Counters{Read: r.read.Load(), Changed: r.changed.Load(), Errors: r.errs.Load(), Warnings: r.warns.Load()}
}

// BeforeSideEffect must be called right before each external side effect
// (an ERP call that changes something). It returns an error, and the
// processor must return it without calling the ERP, when the run's lease is
// no longer certain to be held or ctx is done.
func (r *Run) BeforeSideEffect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.Guard != nil {
		return r.Guard(ctx)
	}
	return nil
}
