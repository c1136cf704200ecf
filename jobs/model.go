package jobs

import (
	"encoding/json"
	"time"
)

// Status is a run's status.
type Status string

// Run statuses.
const (
	StatusQueued                Status = "queued"
	StatusRunning               Status = "running"
	StatusSucceeded             Status = "succeeded"
	StatusSucceededWithWarnings Status = "succeeded_with_warnings"
	StatusFailed                Status = "failed"
	StatusCancelled             Status = "cancelled"
)

// Statuses lists every status in life-cycle order.
var Statuses = []Status{StatusQueued, StatusRunning, StatusSucceeded, StatusSucceededWithWarnings, StatusFailed, StatusCancelled}

// Final reports whether s is a final status.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusSucceededWithWarnings, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Trigger says what created a run.
type Trigger string

// Triggers.
const (
	TriggerManual   Trigger = "manual"   // CLI run / trigger
	TriggerAPI      Trigger = "api"      // HTTP API or dashboard
	TriggerSchedule Trigger = "schedule" // a schedule tick
	TriggerRetry    Trigger = "retry"    // an operator's retry of a finished run
	TriggerLink     Trigger = "link"     // a linked job of a finished run
	TriggerHook     Trigger = "hook"     // an inbound hook call (POST /hooks/{name})
)

// JSONText is JSON stored as text; it marshals as the raw JSON (null when
// empty).
type JSONText string

// MarshalJSON returns the stored JSON, or null when empty or invalid.
func (j JSONText) MarshalJSON() ([]byte, error) {
	if j == "" || !json.Valid([]byte(j)) {
		return []byte("null"), nil
	}
	return []byte(j), nil
}

// Run is one run record (table runs).
type Run struct {
	ID                int64      `gorm:"primaryKey" json:"id"`
	Job               string     `json:"job"`
	DefinitionVersion string     `json:"definitionVersion"`
	Parameters        JSONText   `json:"parameters"`
	TriggerKind       Trigger    `json:"trigger"`
	TriggeredBy       string     `json:"triggeredBy"`
	IdempotencyKey    *string    `json:"idempotencyKey,omitempty"`
	RequestHash       *string    `json:"-"`
	UniqueKey         *string    `json:"-"`
	ScheduledFor      *time.Time `json:"scheduledFor,omitempty"`
	Status            Status     `json:"status"`
	Preview           bool       `json:"preview"`
	// Attempt counts executions started (claims); Snoozes those of them
	// that asked to come back later without consuming an attempt.
	Attempt         int        `json:"executions"`
	MaxAttempts     int        `json:"maxAttempts"`
	Snoozes         int        `json:"snoozes"`
	NotBefore       time.Time  `json:"notBefore"`
	LeaseOwner      *string    `json:"leaseOwner,omitempty"`
	LeaseToken      *string    `json:"-"`
	LeaseExpiresAt  *time.Time `json:"leaseExpiresAt,omitempty"`
	CancelRequested bool       `json:"cancelRequested"`
	CancelledBy     string     `json:"cancelledBy,omitempty"`
	ParentRunID     *int64     `json:"parentRunId,omitempty"`
	RetryOfRunID    *int64     `json:"retryOfRunId,omitempty"`
	CreatedAt       time.Time  `json:"createdAt"`
	StartedAt       *time.Time `json:"startedAt,omitempty"`
	FinishedAt      *time.Time `json:"finishedAt,omitempty"`
	UpdatedAt       time.Time  `json:"updatedAt"`
	Result          JSONText   `json:"result"`
	ErrorCode       string     `json:"errorCode,omitempty"`
	ErrorMessage    string     `json:"errorMessage,omitempty"`
	Progress        int        `json:"progress"`
	RecordsRead     int64      `json:"recordsRead"`
	RecordsChanged  int64      `json:"recordsChanged"`
	RecordErrors    int64      `json:"recordErrors"`
	RecordWarnings  int64      `json:"recordWarnings"`
}

// AttemptsUsed returns the attempts consumed so far (executions minus
// snoozes).
func (r *Run) AttemptsUsed() int { return r.Attempt - r.Snoozes }

// Waiting reports whether the run is queued after a snooze: waiting for
// what its ErrorCode names (a platform that asked to come back later, an
// order awaiting a person's approval), next checked at NotBefore.
func (r *Run) Waiting() bool {
	return r.Status == StatusQueued && r.Snoozes > 0 && r.ErrorCode != "" && r.Attempt > 0
}

// Attempt is one execution of a run (table run_attempts), written when the
// execution ends; a one-step run whose first attempt succeeded has no row,
// its run row records that attempt (Store.Attempts and the view
// run_attempts_all include it).
type Attempt struct {
	ID    int64 `gorm:"primaryKey" json:"-"`
	RunID int64 `json:"runId"`
	// Attempt is the execution number, from 1.
	Attempt   int    `json:"attempt"`
	StepIndex int    `json:"stepIndex"`
	Owner     string `json:"owner"`
	// Status is the execution's outcome: succeeded, failed, retry, snoozed,
	// cancelled, released or lease_expired.
	Status       string     `json:"status"`
	StartedAt    time.Time  `json:"startedAt"`
	FinishedAt   time.Time  `json:"finishedAt"`
	ErrorCode    string     `json:"errorCode,omitempty"`
	ErrorMessage string     `json:"errorMessage,omitempty"`
	RetryAt      *time.Time `json:"retryAt,omitempty"`
}

// TableName is run_attempts.
func (Attempt) TableName() string { return "run_attempts" }

// Duration returns how long the attempt took.
func (a *Attempt) Duration() time.Duration { return a.FinishedAt.Sub(a.StartedAt) }

// Attempt outcomes recorded in Attempt.Status.
const (
	AttemptSucceeded    = "succeeded"
	AttemptFailed       = "failed"
	AttemptRetry        = "retry"
	AttemptSnoozed      = "snoozed"
	AttemptCancelled    = "cancelled"
	AttemptReleased     = "released"
	AttemptLeaseExpired = "lease_expired"
)

// LogLine is one line of a run's log (table run_logs).
type LogLine struct {
	ID        int64     `gorm:"primaryKey" json:"id"`
	RunID     int64     `json:"runId"`
	Attempt   int       `json:"attempt"`
	StepIndex int       `json:"stepIndex"`
	Ts        time.Time `json:"time"`
	Level     string    `json:"level"`
	Message   string    `json:"message"`
	Fields    JSONText  `json:"fields,omitempty"`
}

// TableName is run_logs.
func (LogLine) TableName() string { return "run_logs" }

// runParam indexes one parameter value of a run for filtering.
type runParam struct {
	RunID int64
	Name  string
	Value string
}

// TableName is run_params.
func (runParam) TableName() string { return "run_params" }
