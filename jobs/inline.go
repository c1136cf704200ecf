package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
)

// ErrAlreadyActive is returned by RunInline when the job's uniqueness
// parameters match a run that is still queued or running.
var ErrAlreadyActive = errors.New("jobs: a run with the same unique parameters is already active")

// InlineOptions tune RunInline.
type InlineOptions struct {
	Trigger        Trigger // default TriggerManual
	TriggeredBy    string
	IdempotencyKey string
	Preview        bool
	// OnEnqueued is called once the run is recorded (e.g. to print its id).
	OnEnqueued func(*Run)
}

// RunInline records a run of job with params and executes it in this
// process until it reaches a final status: it waits each retry's backoff
// itself and records every attempt. Cancelling ctx (Ctrl-C) cancels the
// processor's context and records the run cancelled — queued or running,
// nothing is left behind. It returns the final run; an error only when the
// run could not be recorded, could not run here (processor unavailable,
// checked before anything is stored), or is a duplicate of an active run
// (ErrAlreadyActive, with that run).

// InterruptedBy is who cancels a RunInline run whose context ended while
// it waited (Ctrl-C on `jobrunner run`), as recorded in cancelled_by.
const InterruptedBy = "jobrunner run (interrupted)"

func (e *Executor) RunInline(ctx context.Context, job *definitions.Job, params definitions.Values, opts InlineOptions) (*Run, error) {
	enq, err := e.Starter().Start(ctx, StartRequest{Definition: job, Values: params, Trigger: opts.Trigger,
		TriggeredBy: opts.TriggeredBy, IdempotencyKey: opts.IdempotencyKey, Preview: opts.Preview})
	if err != nil {
		return nil, err
	}
	if !enq.Created {
		if enq.Run.Status.Final() {
			return enq.Run, nil
		}
		if enq.Reason == "active" {
			return enq.Run, fmt.Errorf("%w: run %d (%s)", ErrAlreadyActive, enq.Run.ID, enq.Run.Status)
		}
	}
	run := enq.Run
	if opts.OnEnqueued != nil {
		opts.OnEnqueued(run)
	}
	store := context.WithoutCancel(ctx)
	for {
		if wait := time.Until(run.NotBefore); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				r, err := e.Store.Cancel(store, run.ID, InterruptedBy)
				if err != nil && !errors.Is(err, ErrFinished) {
					return nil, err
				}
				return r, nil
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			r, err := e.Store.Cancel(store, run.ID, InterruptedBy)
			if err != nil && !errors.Is(err, ErrFinished) {
				return nil, err
			}
			return r, nil
		}
		c, err := e.Store.ClaimRun(store, run.ID, e.owner(), e.ttl())
		if err != nil {
			if errors.Is(err, ErrNotQueued) {
				// Cancelled or taken by a worker meanwhile: report it as it is.
				return e.Store.Get(store, run.ID)
			}
			return nil, err
		}
		f, err := e.Execute(ctx, c)
		if err != nil && !errors.Is(err, ErrLeaseLost) {
			return nil, err
		}
		run, err = e.Store.Get(store, run.ID)
		if err != nil {
			return nil, err
		}
		if f == nil || run.Status.Final() || run.Status == StatusRunning {
			return run, nil
		}
	}
}
