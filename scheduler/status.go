package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/jobs"
)

// Gap is the latest run of missed ticks of a job, stored as JSON in its
// job_state value jobs.StateMissedTicks when an evaluation finds ticks older
// than MisfireGrace that were never handled (the scheduler was down or
// could not reach the database).
type Gap struct {
	// Count is the number of missed ticks, including the one a catch-up
	// run stands for; with AtLeast it is only a lower bound (counting
	// stopped at 100,000).
	Count   int64 `json:"count"`
	AtLeast bool  `json:"atLeast,omitempty"`
	// First and Last are the first and latest missed ticks (UTC).
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Policy is the misfire policy applied: skip or runOnce.
	Policy string `json:"policy"`
	// CatchUp is the tick the runOnce catch-up run was enqueued for (Last);
	// nil for skip, or when the overlap policy skipped the catch-up.
	CatchUp *time.Time `json:"catchUp,omitempty"`
	// DetectedAt is when the gap was found (the evaluating instance's
	// clock).
	DetectedAt time.Time `json:"detectedAt"`
}

// Skip is the latest tick of a job that the overlap policy (or the job's
// uniqueBy parameters) kept from being enqueued, stored as JSON in its
// job_state value jobs.StateLastSkip.
type Skip struct {
	Tick   time.Time `json:"tick"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// CatchUp marks a skipped runOnce catch-up run.
	CatchUp bool `json:"catchUp,omitempty"`
}

// JobStatus is what the database says about a job's schedule.
type JobStatus struct {
	// LastTick is the instant up to which the schedule was handled (see
	// jobs.Store.LastTick); nil when it was never evaluated.
	LastTick *time.Time `json:"lastTick,omitempty"`
	// Gap is the latest gap of missed ticks; nil when there was none.
	Gap *Gap `json:"missedTicks,omitempty"`
	// Skip is the latest skipped tick; nil when there was none.
	Skip *Skip `json:"lastSkip,omitempty"`
}

// Status reads job's schedule status from store (for the API, the
// dashboard and `definitions list`). It returns an error when the store
// fails or a stored value is not valid JSON.
func Status(ctx context.Context, store *jobs.Store, job string) (*JobStatus, error) {
	st := &JobStatus{}
	last, ok, err := store.LastTick(ctx, job)
	if err != nil {
		return nil, fmt.Errorf("scheduler: status of %s: %w", job, err)
	}
	if ok {
		st.LastTick = &last
	}
	var gap Gap
	if found, err := readState(ctx, store, job, jobs.StateMissedTicks, &gap); err != nil {
		return nil, err
	} else if found {
		st.Gap = &gap
	}
	var sk Skip
	if found, err := readState(ctx, store, job, jobs.StateLastSkip, &sk); err != nil {
		return nil, err
	} else if found {
		st.Skip = &sk
	}
	return st, nil
}

// readState decodes job's JSON state value name into dst.
func readState(ctx context.Context, store *jobs.Store, job, name string, dst any) (bool, error) {
	text, found, err := store.JobState(ctx, job, name)
	if err != nil {
		return false, fmt.Errorf("scheduler: status of %s: %w", job, err)
	}
	if !found {
		return false, nil
	}
	if err := json.Unmarshal([]byte(text), dst); err != nil {
		return false, fmt.Errorf("scheduler: status of %s: stored %s: %w", job, name, err)
	}
	return true, nil
}
