package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/definitions"
)

// Step statuses recorded in RunStep.Status.
const (
	// StepPending: not reached yet.
	StepPending = "pending"
	// StepQueued: the step's last execution ended in a retry, snooze or
	// release; the run's next attempt resumes here.
	StepQueued    = "queued"
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	// StepSkipped: not run because an earlier step failed with onFailure
	// stop (or the run was cancelled).
	StepSkipped   = "skipped"
	StepCancelled = "cancelled"
	// StepReused: not run because a retry --from-failed-step took its
	// recorded result from the run named by SkippedFromRunID.
	StepReused = "reused"
)

// RunStep is one step of a multi-step run (table run_steps). One-step jobs
// (jobs without steps) have no rows: their run row says it all.
type RunStep struct {
	ID             int64  `gorm:"primaryKey" json:"-"`
	RunID          int64  `json:"runId"`
	StepIndex      int    `json:"stepIndex"`
	Name           string `json:"name"`
	Processor      string `json:"processor"`
	ConnectionName string `json:"connection"`
	Status         string `json:"status"`
	// Attempts counts the executions of the run that ran this step.
	Attempts int `json:"attempts"`
	// SkippedFromRunID names the run whose recorded result a reused step
	// hands on (the run that produced it).
	SkippedFromRunID *int64     `json:"skippedFromRunId,omitempty"`
	StartedAt        *time.Time `json:"startedAt,omitempty"`
	FinishedAt       *time.Time `json:"finishedAt,omitempty"`
	Result           JSONText   `json:"result"`
	ErrorCode        string     `json:"errorCode,omitempty"`
	ErrorMessage     string     `json:"errorMessage,omitempty"`
	RecordsRead      int64      `json:"recordsRead"`
	RecordsChanged   int64      `json:"recordsChanged"`
	RecordErrors     int64      `json:"recordErrors"`
	RecordWarnings   int64      `json:"recordWarnings"`
}

// TableName is run_steps.
func (RunStep) TableName() string { return "run_steps" }

// done reports whether a step needs no more execution within its run.
func (st *RunStep) done() bool {
	switch st.Status {
	case StepSucceeded, StepReused, StepFailed, StepSkipped, StepCancelled:
		return true
	}
	return false
}

// hasResult reports whether the step's result is handed on.
func (st *RunStep) hasResult() bool {
	return (st.Status == StepSucceeded || st.Status == StepReused) && st.Result != ""
}

// Errors of retries from a failed step.
var (
	// ErrNoFailedStep: the run has no step to restart from (it is a
	// one-step job, or every step succeeded).
	ErrNoFailedStep = errors.New("jobs: no failed step to retry from")
	// ErrStepsChanged: the job's steps changed since the run, so its
	// recorded results cannot be reused.
	ErrStepsChanged = errors.New("jobs: the job's steps changed since the run")
)

// Steps returns the recorded steps of a multi-step run in order (none for
// a one-step run).
func (s *Store) Steps(ctx context.Context, runID int64) ([]RunStep, error) {
	var out []RunStep
	if err := s.db.WithContext(ctx).Where("run_id = ?", runID).Order("step_index").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("jobs: steps of run %d: %w", runID, err)
	}
	return out, nil
}

// Children returns the runs started by run id's links, oldest first.
func (s *Store) Children(ctx context.Context, id int64) ([]Run, error) {
	var out []Run
	if err := s.db.WithContext(ctx).Where("parent_run_id = ?", id).Order("id").Limit(1000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("jobs: children of run %d: %w", id, err)
	}
	return out, nil
}

// RetryOptions tune Retry.
type RetryOptions struct {
	// Params replace the run's parameters when not nil.
	Params definitions.Values
	// Who asks for the retry (TriggeredBy).
	Who string
	// FromFailedStep: the new run reuses the recorded results of the
	// steps that succeeded before the first step that did not (rows with
	// status reused and SkippedFromRunID) and starts at that step.
	FromFailedStep bool
	// IdempotencyKey, when set, makes a second Retry with the same key
	// return the first one's run (a bulk retry run twice retries once).
	IdempotencyKey string
}

// Retry enqueues a new run that repeats the finished run id, linked to it
// by RetryOfRunID and triggered as TriggerRetry. With FromFailedStep it
// returns an error wrapping ErrNoFailedStep for a one-step job or a run
// whose steps all succeeded, and ErrStepsChanged when a step to reuse no
// longer has the same name and processor.
func (s *Store) Retry(ctx context.Context, job *definitions.Job, id int64, opts RetryOptions) (*Enqueued, error) {
	orig, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !orig.Status.Final() {
		return nil, fmt.Errorf("jobs: retry run %d (%s): %w", id, orig.Status, ErrNotFinished)
	}
	if job.Name != orig.Job {
		return nil, fmt.Errorf("jobs: retry run %d: it is a run of %s, not %s", id, orig.Job, job.Name)
	}
	params := opts.Params
	if params == nil {
		params, err = job.DecodeParams([]byte(orig.Parameters))
		if err != nil {
			return nil, fmt.Errorf("jobs: retry run %d: its parameters no longer fit %s: %w", id, job.Name, err)
		}
	}
	nr := NewRun{Job: job, Params: params, Trigger: TriggerRetry, TriggeredBy: opts.Who, Preview: orig.Preview, RetryOfRunID: &orig.ID,
		IdempotencyKey: opts.IdempotencyKey}
	if opts.FromFailedStep {
		reused, err := s.reusableSteps(ctx, job, orig)
		if err != nil {
			return nil, err
		}
		nr.Steps = reused
	}
	return s.Enqueue(ctx, nr)
}

// reusableSteps returns the rows a retry of orig from its failed step
// starts with: the steps that succeeded before the first that did not.
func (s *Store) reusableSteps(ctx context.Context, job *definitions.Job, orig *Run) ([]RunStep, error) {
	if len(job.Steps) == 0 {
		return nil, fmt.Errorf("jobs: retry run %d from its failed step: job %s has no steps: %w", orig.ID, job.Name, ErrNoFailedStep)
	}
	old, err := s.Steps(ctx, orig.ID)
	if err != nil {
		return nil, err
	}
	byIndex := map[int]RunStep{}
	for _, r := range old {
		byIndex[r.StepIndex] = r
	}
	steps := job.RunSteps()
	var reused []RunStep
	for i, st := range steps {
		r, ok := byIndex[i]
		if !ok || (r.Status != StepSucceeded && r.Status != StepReused) {
			break
		}
		if r.Name != st.Name || r.Processor != st.Processor {
			return nil, fmt.Errorf("jobs: retry run %d from its failed step: step %d was %s (%s), now %s (%s): %w; retry the whole run",
				orig.ID, i+1, r.Name, r.Processor, st.Name, st.Processor, ErrStepsChanged)
		}
		from := orig.ID
		if r.Status == StepReused && r.SkippedFromRunID != nil {
			from = *r.SkippedFromRunID
		}
		reused = append(reused, RunStep{StepIndex: i, Name: st.Name, Processor: st.Processor, ConnectionName: st.Connection,
			Status: StepReused, SkippedFromRunID: &from, Result: r.Result})
	}
	if len(reused) == len(steps) {
		return nil, fmt.Errorf("jobs: retry run %d from its failed step: every step succeeded: %w", orig.ID, ErrNoFailedStep)
	}
	return reused, nil
}

var stepCols = []string{"run_id", "step_index", "name", "processor", "connection_name", "status", "attempts", "skipped_from_run_id",
	"started_at", "finished_at", "result", "error_code", "error_message", "records_read", "records_changed", "record_errors", "record_warnings"}

func stepValues(st RunStep) []any {
	var result any
	if st.Result != "" {
		result = string(st.Result)
	}
	return []any{st.RunID, st.StepIndex, st.Name, st.Processor, st.ConnectionName, st.Status, st.Attempts, st.SkippedFromRunID,
		utcPtr(st.StartedAt), utcPtr(st.FinishedAt), result, st.ErrorCode, st.ErrorMessage, st.RecordsRead, st.RecordsChanged,
		st.RecordErrors, st.RecordWarnings}
}

// replaceSteps stores the step rows of the given runs (all of each run's
// rows), replacing what was stored.
func (s *Store) replaceSteps(tx *gorm.DB, runIDs []int64, rows []RunStep) error {
	if len(runIDs) == 0 {
		return nil
	}
	if err := tx.Exec("DELETE FROM run_steps WHERE run_id IN ?", runIDs).Error; err != nil {
		return fmt.Errorf("replace steps: %w", err)
	}
	vals := make([][]any, len(rows))
	for i, r := range rows {
		vals[i] = stepValues(r)
	}
	return insertRows(tx, s.batchRows(), "run_steps", stepCols, vals)
}

// insertLinks enqueues, inside a finishing transaction, the linked runs of
// one finished run, and returns the log lines that say what became of
// each. A link whose idempotency key (link:PARENT:INDEX) is taken was
// already enqueued (a replayed finish): it is not enqueued again. A link
// whose job already has an active run with the same uniqueBy parameters
// is not enqueued; that is logged, and the finish goes on.
func (s *Store) insertLinks(tx *gorm.DB, c *Claim, f *Finish, now time.Time) ([]LogLine, error) {
	var lines []LogLine
	line := func(level, msg string) {
		lines = append(lines, LogLine{RunID: c.Run.ID, Attempt: c.Run.Attempt, StepIndex: f.StepIndex, Ts: now, Level: level, Message: msg})
	}
	for _, nr := range f.Links {
		r, text, err := newRunRow(nr, now)
		if err != nil {
			line("error", fmt.Sprintf("linked job %s not started: %v", nr.Job.Name, err))
			continue
		}
		err = tx.Transaction(func(sp *gorm.DB) error { return insertRun(sp, r, text, nil) })
		if err == nil {
			line("info", fmt.Sprintf("linked job %s queued: run %d", nr.Job.Name, r.ID))
			continue
		}
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			return nil, fmt.Errorf("enqueue linked job %s: %w", nr.Job.Name, err)
		}
		e, xerr := existingIn(tx, r)
		switch {
		case errors.Is(xerr, ErrIdempotencyMismatch): // the key is this run's link i: started already
			line("info", fmt.Sprintf("linked job %s was already started by this run (%v)", nr.Job.Name, xerr))
		case xerr != nil:
			return nil, fmt.Errorf("enqueue linked job %s: %w (%v)", nr.Job.Name, err, xerr)
		case e.Reason == "idempotencyKey":
			line("info", fmt.Sprintf("linked job %s: run %d was already started by this run", nr.Job.Name, e.Run.ID))
		default: // "active"
			line("warn", fmt.Sprintf("linked job %s not started: run %d with the same unique parameters is still %s", nr.Job.Name, e.Run.ID, e.Run.Status))
		}
	}
	return lines, nil
}

// jsonOrNil returns raw as JSON text ("" for none).
func jsonOrNil(raw []byte) JSONText {
	if len(raw) == 0 || !json.Valid(raw) {
		return ""
	}
	return JSONText(raw)
}

// stepsOf returns rows with RunID set to runID.
func stepsOf(runID int64, rows []RunStep) []RunStep {
	out := make([]RunStep, len(rows))
	for i, r := range rows {
		r.ID, r.RunID = 0, runID
		out[i] = r
	}
	return out
}
