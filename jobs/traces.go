package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/migrations"
)

// RunTrace names the OpenTelemetry trace of one attempt of a run, or with
// Attempt 0 the trace context of the request that triggered the run.
// Rows exist only while traces are on.
type RunTrace struct {
	RunID     int64     `json:"-"`
	Attempt   int       `json:"attempt"`
	TraceID   string    `json:"traceId"`
	SpanID    string    `json:"spanId"`
	CreatedAt time.Time `json:"createdAt"`
}

// TableName is the table of RunTrace.
func (RunTrace) TableName() string { return "run_traces" }

// RecordTrace stores the trace of run id's attempt (0: its trigger); a
// second record of the same attempt is ignored.
func (s *Store) RecordTrace(ctx context.Context, id int64, attempt int, traceID, spanID string) error {
	ignore := "INSERT IGNORE"
	if s.dialect == migrations.SQLite {
		ignore = "INSERT OR IGNORE"
	}
	err := s.db.WithContext(ctx).Exec(ignore+" INTO run_traces (run_id, attempt, trace_id, span_id, created_at) VALUES (?, ?, ?, ?, ?)",
		id, attempt, traceID, spanID, time.Now().UTC()).Error
	if err != nil {
		return fmt.Errorf("jobs: record the trace of run %d attempt %d: %w", id, attempt, err)
	}
	return nil
}

// Traces returns the traces recorded for run id, by attempt (the trigger's
// first).
func (s *Store) Traces(ctx context.Context, id int64) ([]RunTrace, error) {
	var out []RunTrace
	if err := s.db.WithContext(ctx).Where("run_id = ?", id).Order("attempt").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("jobs: traces of run %d: %w", id, err)
	}
	return out, nil
}
