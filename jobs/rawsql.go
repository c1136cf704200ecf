package jobs

import (
	"database/sql"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/migrations"
)

// The hot path (claim and group commit) builds its SQL by hand: gorm's
// reflection was the largest CPU cost per run in `jobrunner bench`.

// runColumns are the runs columns in Run field order, for scanRun.
const runColumns = "id, job, definition_version, parameters, trigger_kind, triggered_by, idempotency_key, request_hash, unique_key, " +
	"scheduled_for, status, preview, attempt, max_attempts, snoozes, not_before, lease_owner, lease_token, lease_expires_at, " +
	"cancel_requested, cancelled_by, parent_run_id, retry_of_run_id, created_at, started_at, finished_at, updated_at, result, " +
	"error_code, error_message, progress, records_read, records_changed, record_errors, record_warnings"

// scanRun scans one row of runColumns.
func scanRun(rows *sql.Rows) (Run, error) {
	var r Run
	var params, result, errMsg sql.NullString
	var sched, lease, started, finished sql.NullTime
	err := rows.Scan(&r.ID, &r.Job, &r.DefinitionVersion, &params, &r.TriggerKind, &r.TriggeredBy, &r.IdempotencyKey, &r.RequestHash,
		&r.UniqueKey, &sched, &r.Status, &r.Preview, &r.Attempt, &r.MaxAttempts, &r.Snoozes, &r.NotBefore, &r.LeaseOwner,
		&r.LeaseToken, &lease, &r.CancelRequested, &r.CancelledBy, &r.ParentRunID, &r.RetryOfRunID, &r.CreatedAt, &started,
		&finished, &r.UpdatedAt, &result, &r.ErrorCode, &errMsg, &r.Progress, &r.RecordsRead, &r.RecordsChanged,
		&r.RecordErrors, &r.RecordWarnings)
	if err != nil {
		return r, err
	}
	r.Parameters, r.Result, r.ErrorMessage = JSONText(params.String), JSONText(result.String), errMsg.String
	r.ScheduledFor, r.LeaseExpiresAt, r.StartedAt, r.FinishedAt = nullTime(sched), nullTime(lease), nullTime(started), nullTime(finished)
	return r, nil
}

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// maxInsertBytes keeps one multi-row INSERT far below max_allowed_packet.
const maxInsertBytes = 1 << 20

// insertRows inserts rows into table with multi-row INSERT statements of at
// most maxRows rows and about maxInsertBytes each.
func insertRows(tx *gorm.DB, maxRows int, table string, cols []string, rows [][]any) error {
	return insertRowsThen(tx, maxRows, table, cols, rows, nil)
}

// insertRowsThen is insertRows that calls inserted, when not nil, with
// each statement's result and the rows it inserted (rows[first:first+n]).
func insertRowsThen(tx *gorm.DB, maxRows int, table string, cols []string, rows [][]any, inserted func(res sql.Result, first, n int) error) error {
	if len(rows) == 0 {
		return nil
	}
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES "
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	var sb strings.Builder
	args := make([]any, 0, len(cols)*min(len(rows), maxRows))
	first, n, size := 0, 0, 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		res, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, sb.String(), args...)
		if err == nil && inserted != nil {
			err = inserted(res, first, n)
		}
		sb.Reset()
		args, first, n, size = args[:0], first+n, 0, 0
		return err
	}
	for _, r := range rows {
		if n == 0 {
			sb.WriteString(head)
		} else {
			sb.WriteString(",")
		}
		sb.WriteString(one)
		for _, v := range r {
			if s, ok := v.(string); ok {
				size += len(s)
			}
		}
		args = append(args, r...)
		n++
		if n == maxRows || size > maxInsertBytes {
			if err := flush(); err != nil {
				return fmt.Errorf("insert into %s: %w", table, err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

var attemptCols = []string{"run_id", "attempt", "step_index", "owner", "status", "started_at", "finished_at", "error_code", "error_message", "retry_at"}

func attemptValues(a Attempt) []any {
	return []any{a.RunID, a.Attempt, a.StepIndex, a.Owner, a.Status, a.StartedAt, a.FinishedAt, a.ErrorCode, a.ErrorMessage, a.RetryAt}
}

var logCols = []string{"run_id", "attempt", "step_index", "ts", "level", "message", "fields"}

func logValues(l LogLine) []any {
	var fields any
	if l.Fields != "" {
		fields = string(l.Fields)
	}
	return []any{l.RunID, l.Attempt, l.StepIndex, l.Ts, l.Level, l.Message, fields}
}

// runInsertCols are the columns a new run is inserted with (the others
// keep their defaults until it is claimed).
var runInsertCols = []string{"job", "definition_version", "parameters", "trigger_kind", "triggered_by", "idempotency_key", "request_hash",
	"unique_key", "scheduled_for", "status", "preview", "attempt", "max_attempts", "snoozes", "not_before", "cancel_requested",
	"parent_run_id", "retry_of_run_id", "created_at", "updated_at", "result", "error_code", "error_message", "progress", "records_read", "records_changed",
	"record_errors", "record_warnings"}

func runInsertValues(r *Run) []any {
	var sched any
	if r.ScheduledFor != nil {
		sched = r.ScheduledFor.UTC()
	}
	return []any{r.Job, r.DefinitionVersion, string(r.Parameters), string(r.TriggerKind), r.TriggeredBy, r.IdempotencyKey, r.RequestHash,
		r.UniqueKey, sched, string(r.Status), r.Preview, r.Attempt, r.MaxAttempts, r.Snoozes, r.NotBefore.UTC(), r.CancelRequested,
		r.ParentRunID, r.RetryOfRunID, r.CreatedAt.UTC(), r.UpdatedAt.UTC(), string(r.Result), r.ErrorCode, r.ErrorMessage, r.Progress, r.RecordsRead, r.RecordsChanged,
		r.RecordErrors, r.RecordWarnings}
}

// runLeanCols are the columns of a plain new run, one that has no key, tick,
// attempt, snooze, cancel request, error, progress nor record counts
// yet (EnqueueBatch's runs): the other columns keep their defaults, which
// are the zero values runInsertValues would write. Half the columns is
// half the server's parsing, the largest part of its work per inserted
// run.
var runLeanCols = []string{"job", "definition_version", "parameters", "trigger_kind", "triggered_by", "status", "preview",
	"max_attempts", "not_before", "parent_run_id", "retry_of_run_id", "created_at", "updated_at", "result", "error_message"}

// leanRun reports whether r can be inserted with runLeanCols.
func leanRun(r *Run) bool {
	return r.IdempotencyKey == nil && r.RequestHash == nil && r.UniqueKey == nil && r.ScheduledFor == nil && r.Attempt == 0 &&
		r.Snoozes == 0 && !r.CancelRequested && r.ErrorCode == "" && r.Progress == 0 && r.RecordsRead == 0 &&
		r.RecordsChanged == 0 && r.RecordErrors == 0 && r.RecordWarnings == 0
}

func runLeanValues(r *Run) []any {
	return []any{r.Job, r.DefinitionVersion, string(r.Parameters), string(r.TriggerKind), r.TriggeredBy, string(r.Status), r.Preview,
		r.MaxAttempts, r.NotBefore.UTC(), r.ParentRunID, r.RetryOfRunID, r.CreatedAt.UTC(), r.UpdatedAt.UTC(), string(r.Result), r.ErrorMessage}
}

// insertRunRows inserts runs (none has an ID yet) with multi-row INSERT
// statements of at most maxRows rows, and sets their IDs: with
// runLeanCols when every run is lean, else with runInsertCols. The IDs of
// one statement's rows are consecutive (InnoDB's default "consecutive"
// auto-increment lock mode for inserts whose row count is known, and
// SQLite's single writer), which is what gorm's own batch insert relies
// on too: MySQL reports the first, SQLite the last.
func insertRunRows(tx *gorm.DB, dialect string, maxRows int, runs []*Run) error {
	cols, values := runLeanCols, runLeanValues
	for _, r := range runs {
		if !leanRun(r) {
			cols, values = runInsertCols, runInsertValues
			break
		}
	}
	rows := make([][]any, len(runs))
	for i, r := range runs {
		rows[i] = values(r)
	}
	return insertRowsThen(tx, maxRows, "runs", cols, rows, func(res sql.Result, first, n int) error {
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("read ids: %w", err)
		}
		if dialect == migrations.SQLite {
			id -= int64(n - 1)
		}
		for i, r := range runs[first : first+n] {
			r.ID = id + int64(i)
		}
		return nil
	})
}

var paramCols = []string{"run_id", "name", "value"}
