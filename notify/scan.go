package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/migrations"
)

var finalStatuses = []string{string(jobs.StatusSucceeded), string(jobs.StatusSucceededWithWarnings),
	string(jobs.StatusFailed), string(jobs.StatusCancelled)}

var activeStatuses = []string{string(jobs.StatusQueued), string(jobs.StatusRunning)}

func (n *Notifier) mysql() bool { return n.cfg.Store.Dialect() == migrations.MySQL }

// now returns an SQL expression for the current time in UTC plus d: the
// database's clock on MySQL (shared by every instance), Config.Now on
// SQLite.
func (n *Notifier) now(d time.Duration) (string, []any) {
	if n.mysql() {
		return "UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND", []any{d.Microseconds()}
	}
	return "?", []any{n.cfg.Now().UTC().Add(d)}
}

// runRow is what the scanner reads of a run.
type runRow struct {
	id               int64
	job, status      string
	preview          bool
	trigger, by      string
	params           sql.NullString
	errCode          string
	errMsg           sql.NullString
	attempt, snoozes int
	createdAt        time.Time
	finishedAt       sql.NullTime
}

const runCols = "id, job, status, preview, trigger_kind, triggered_by, parameters, error_code, error_message, attempt, snoozes, created_at, finished_at"

// Scan handles the runs that reached a final status since the cursor, up
// to Config.Batch of them, in one transaction. It returns how many outbox
// rows it created and whether more runs are waiting. Another instance's
// scan in progress makes it return at once with nothing done.
func (n *Notifier) Scan(ctx context.Context) (created int, more bool, err error) {
	set := n.cfg.Definitions()
	if set == nil {
		return 0, false, nil
	}
	red := n.redactor()
	var notifying, previewing []string
	for _, j := range set.Jobs {
		if j.Notify != nil {
			notifying = append(notifying, j.Name)
			if j.Notify.Preview {
				previewing = append(previewing, j.Name)
			}
		}
	}
	err = n.cfg.Store.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := "SELECT value FROM job_state WHERE job = ? AND name = ?"
		if n.mysql() {
			q += " FOR UPDATE SKIP LOCKED"
		}
		var vals []string
		if err := tx.Raw(q, CursorJob, CursorName).Scan(&vals).Error; err != nil {
			return fmt.Errorf("lock the cursor: %w", err)
		}
		if len(vals) == 0 {
			return n.initCursor(tx)
		}
		low, err := strconv.ParseInt(vals[0], 10, 64)
		if err != nil {
			return fmt.Errorf("cursor %q does not parse: %w", vals[0], err)
		}

		// Where the cursor may move to, computed before the candidates are
		// read: not past a run created less than CommitMargin ago (its
		// predecessors may not be committed yet), nor past an active run.
		var horizon []int64
		if err := tx.Raw("SELECT id FROM runs WHERE created_at < ? ORDER BY created_at DESC, id DESC LIMIT 1",
			n.cfg.Now().UTC().Add(-n.cfg.CommitMargin)).Scan(&horizon).Error; err != nil {
			return fmt.Errorf("read the commit horizon: %w", err)
		}
		limit := int64(math.MaxInt64)
		if len(horizon) > 0 {
			limit = horizon[0] + 1
		} else {
			limit = low
		}
		var minActive *int64
		if err := tx.Raw("SELECT MIN(id) FROM runs WHERE status IN ?", activeStatuses).Scan(&minActive).Error; err != nil {
			return fmt.Errorf("read active runs: %w", err)
		}
		if minActive != nil {
			limit = min(limit, *minActive)
		}

		var cands []runRow
		if len(notifying) > 0 {
			query := "SELECT " + runCols + " FROM runs r WHERE r.id >= ? AND r.status IN ? AND r.job IN ?"
			args := []any{low, finalStatuses, notifying}
			if len(previewing) > 0 {
				query += " AND (r.preview = ? OR r.job IN ?)"
				args = append(args, false, previewing)
			} else {
				query += " AND r.preview = ?"
				args = append(args, false)
			}
			query += " AND NOT EXISTS (SELECT 1 FROM notification_runs h WHERE h.run_id = r.id) ORDER BY r.id LIMIT ?"
			args = append(args, n.cfg.Batch)
			rows, err := tx.Raw(query, args...).Rows()
			if err != nil {
				return fmt.Errorf("read finished runs: %w", err)
			}
			for rows.Next() {
				var r runRow
				if err := rows.Scan(&r.id, &r.job, &r.status, &r.preview, &r.trigger, &r.by, &r.params, &r.errCode, &r.errMsg,
					&r.attempt, &r.snoozes, &r.createdAt, &r.finishedAt); err != nil {
					rows.Close()
					return fmt.Errorf("read finished run: %w", err)
				}
				cands = append(cands, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read finished runs: %w", err)
			}
		}
		if len(cands) == n.cfg.Batch {
			more = true
			limit = min(limit, cands[len(cands)-1].id+1)
		}
		for i := range cands {
			r := &cands[i]
			job, ok := set.Job(r.job)
			if !ok || job.Notify == nil {
				continue
			}
			c, err := n.handle(tx, job, r, red)
			if err != nil {
				return fmt.Errorf("run %d: %w", r.id, err)
			}
			created += c
		}
		if limit > low {
			nowSQL, nowArgs := n.now(0)
			if err := tx.Exec("UPDATE job_state SET value = ?, updated_at = "+nowSQL+" WHERE job = ? AND name = ?",
				append(append([]any{strconv.FormatInt(limit, 10)}, nowArgs...), CursorJob, CursorName)...).Error; err != nil {
				return fmt.Errorf("advance the cursor: %w", err)
			}
			if err := tx.Exec("DELETE FROM notification_runs WHERE run_id < ?", limit).Error; err != nil {
				return fmt.Errorf("forget handled runs: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("scan finished runs: %w", err)
	}
	return created, more, nil
}

// ScanWaiting creates a waiting notification (once per run and channel)
// for each run of a job whose notify.on has waiting that is queued after
// a snooze on a code (Run.Waiting) and has waited longer than the job's
// waitingAfter since its first execution. It returns how many outbox rows
// it created. Preview runs notify only when the job opts in.
func (n *Notifier) ScanWaiting(ctx context.Context) (int, error) {
	set := n.cfg.Definitions()
	if set == nil {
		return 0, nil
	}
	red := n.redactor()
	created := 0
	for _, j := range set.Jobs {
		nt := j.Notify
		if nt == nil || !nt.Wants(KindWaiting) {
			continue
		}
		before := n.cfg.Now().UTC().Add(-nt.Waiting())
		q := "SELECT " + runCols + ", started_at, not_before FROM runs r WHERE r.job = ? AND r.status = ? AND r.snoozes > 0 AND r.error_code <> '' AND r.attempt > 0" +
			" AND r.started_at <= ? AND NOT EXISTS (SELECT 1 FROM notifications x WHERE x.run_id = r.id AND x.kind = ?)"
		args := []any{j.Name, string(jobs.StatusQueued), before, KindWaiting}
		if !nt.Preview {
			q += " AND r.preview = ?"
			args = append(args, false)
		}
		q += " ORDER BY r.id LIMIT ?"
		args = append(args, n.cfg.Batch)
		rows, err := n.cfg.Store.DB().WithContext(ctx).Raw(q, args...).Rows()
		if err != nil {
			return created, fmt.Errorf("scan waiting runs of %s: %w", j.Name, err)
		}
		type waiting struct {
			runRow
			started, next sql.NullTime
		}
		var ws []waiting
		for rows.Next() {
			var w waiting
			r := &w.runRow
			if err := rows.Scan(&r.id, &r.job, &r.status, &r.preview, &r.trigger, &r.by, &r.params, &r.errCode, &r.errMsg,
				&r.attempt, &r.snoozes, &r.createdAt, &r.finishedAt, &w.started, &w.next); err != nil {
				rows.Close()
				return created, fmt.Errorf("read a waiting run: %w", err)
			}
			ws = append(ws, w)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return created, fmt.Errorf("scan waiting runs of %s: %w", j.Name, err)
		}
		for _, w := range ws {
			r := w.runRow
			s := n.summary(&r, KindWaiting, red)
			if w.started.Valid {
				t := w.started.Time.UTC()
				s.WaitingSince = &t
			}
			if w.next.Valid {
				t := w.next.Time.UTC()
				s.NextCheck = &t
			}
			c, err := n.insert(n.cfg.Store.DB().WithContext(ctx), nt, r.id, r.job, KindWaiting, s)
			if err != nil {
				return created, fmt.Errorf("run %d: %w", r.id, err)
			}
			created += c
		}
	}
	return created, nil
}

// summary is the redacted summary of run r for a notification of kind.
func (n *Notifier) summary(r *runRow, kind string, red *redactor) Summary {
	s := Summary{
		Event: kind, ID: r.id, Job: r.job, Status: r.status, Trigger: r.trigger, TriggeredBy: red.clean(r.by),
		Preview: r.preview, ErrorCode: red.clean(r.errCode), ErrorMessage: red.clean(r.errMsg.String),
		Attempts: r.attempt - r.snoozes, CreatedAt: r.createdAt.UTC(), Link: RunLink(n.cfg.BaseURL, r.id),
		Parameters: json.RawMessage("{}"),
	}
	if p := red.clean(r.params.String); json.Valid([]byte(p)) && p != "" {
		s.Parameters = json.RawMessage(p)
	}
	return s
}

// initCursor creates the cursor when it is missing (normally migration
// 0002 does): at the oldest active run, or after the newest run, so that
// history is not notified. A cursor that exists but is locked by another
// instance's scan is left alone.
func (n *Notifier) initCursor(tx *gorm.DB) error {
	var count int64
	if err := tx.Raw("SELECT COUNT(*) FROM job_state WHERE job = ? AND name = ?", CursorJob, CursorName).Scan(&count).Error; err != nil {
		return fmt.Errorf("read the cursor: %w", err)
	}
	if count > 0 {
		return nil // another instance is scanning
	}
	var minActive, maxID *int64
	if err := tx.Raw("SELECT MIN(id) FROM runs WHERE status IN ?", activeStatuses).Scan(&minActive).Error; err != nil {
		return fmt.Errorf("read active runs: %w", err)
	}
	if err := tx.Raw("SELECT MAX(id) FROM runs").Scan(&maxID).Error; err != nil {
		return fmt.Errorf("read the newest run: %w", err)
	}
	start := int64(1)
	if maxID != nil {
		start = *maxID + 1
	}
	if minActive != nil {
		start = *minActive
	}
	n.log.WithField("cursor", start).Warn("notifications: no scan cursor; starting at the oldest active run (earlier runs do not notify)")
	row := map[string]any{"job": CursorJob, "name": CursorName, "value": strconv.FormatInt(start, 10), "updated_at": n.cfg.Now().UTC()}
	return tx.Table("job_state").Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error
}

// readStreak returns the job's open failure streak, nil when none.
func readStreak(tx *gorm.DB, job string) (*Streak, error) {
	var vals []string
	if err := tx.Raw("SELECT value FROM job_state WHERE job = ? AND name = ?", job, StreakName).Scan(&vals).Error; err != nil {
		return nil, fmt.Errorf("read the failure streak: %w", err)
	}
	if len(vals) == 0 {
		return nil, nil
	}
	var s Streak
	if err := json.Unmarshal([]byte(vals[0]), &s); err != nil {
		return nil, nil //nolint:nilerr // an unreadable streak is treated as none
	}
	return &s, nil
}

func (n *Notifier) writeStreak(tx *gorm.DB, job string, s *Streak) error {
	if s == nil {
		return tx.Exec("DELETE FROM job_state WHERE job = ? AND name = ?", job, StreakName).Error
	}
	b, _ := json.Marshal(s)
	row := map[string]any{"job": job, "name": StreakName, "value": string(b), "updated_at": n.cfg.Now().UTC()}
	return tx.Table("job_state").Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "job"}, {Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"value", "updated_at"}),
	}).Create(row).Error
}

// decide returns the kind of notification run r of a job with notify nt
// sends ("" for none) and updates the job's failure streak.
func (n *Notifier) decide(tx *gorm.DB, nt *definitions.Notify, r *runRow) (kind string, streak *Streak, err error) {
	status := jobs.Status(r.status)
	if r.preview { // opted in: no streak
		switch {
		case status == jobs.StatusFailed && nt.Wants(KindFailure):
			return KindFailure, nil, nil
		case status == jobs.StatusSucceededWithWarnings && nt.Wants(KindWarning):
			return KindWarning, nil, nil
		case (status == jobs.StatusSucceeded || status == jobs.StatusSucceededWithWarnings) && nt.Wants(KindSuccess):
			return KindSuccess, nil, nil
		case nt.Wants(KindCompletion):
			return KindCompletion, nil, nil
		}
		return "", nil, nil
	}
	open, err := readStreak(tx, r.job)
	if err != nil {
		return "", nil, err
	}
	switch status {
	case jobs.StatusFailed:
		if open != nil {
			open.Failures++
			if err := n.writeStreak(tx, r.job, open); err != nil {
				return "", nil, err
			}
			if nt.Wants(KindCompletion) {
				return KindCompletion, open, nil
			}
			return "", nil, nil
		}
		if nt.Wants(KindFailure) {
			s := &Streak{FirstRunID: r.id, Failures: 1}
			return KindFailure, s, n.writeStreak(tx, r.job, s)
		}
	case jobs.StatusSucceeded, jobs.StatusSucceededWithWarnings:
		if open != nil {
			return KindRecovery, open, n.writeStreak(tx, r.job, nil)
		}
		if status == jobs.StatusSucceededWithWarnings && nt.Wants(KindWarning) {
			return KindWarning, nil, nil
		}
		if nt.Wants(KindSuccess) {
			return KindSuccess, nil, nil
		}
	}
	if nt.Wants(KindCompletion) {
		return KindCompletion, nil, nil
	}
	return "", nil, nil
}

// handle records run r as handled and inserts its outbox rows; it returns
// how many it inserted.
func (n *Notifier) handle(tx *gorm.DB, job *definitions.Job, r *runRow, red *redactor) (int, error) {
	nowSQL, nowArgs := n.now(0)
	if err := tx.Exec("INSERT INTO notification_runs (run_id, job, handled_at) VALUES (?, ?, "+nowSQL+")",
		append([]any{r.id, r.job}, nowArgs...)...).Error; err != nil {
		return 0, fmt.Errorf("mark handled: %w", err)
	}
	nt := job.Notify
	kind, streak, err := n.decide(tx, nt, r)
	if err != nil || kind == "" {
		return 0, err
	}
	s := n.summary(r, kind, red)
	s.Streak = streak
	if r.finishedAt.Valid {
		t := r.finishedAt.Time.UTC()
		s.FinishedAt = &t
	}
	return n.insert(tx, nt, r.id, r.job, kind, s)
}

// insert adds the outbox rows of one notification, one per channel of nt;
// a row that exists already (another scan made it) is left alone.
func (n *Notifier) insert(tx *gorm.DB, nt *definitions.Notify, runID int64, job, kind string, s Summary) (int, error) {
	nowSQL, nowArgs := n.now(0)
	payload, err := json.Marshal(s)
	if err != nil {
		return 0, fmt.Errorf("encode the summary: %w", err)
	}
	var channels []string
	if nt.Webhook != nil {
		channels = append(channels, ChannelWebhook)
	}
	if nt.Email != nil {
		channels = append(channels, ChannelEmail)
	}
	ins := "INSERT INTO notifications (run_id, job, channel, kind, status, attempts, next_attempt_at, created_at, payload) VALUES (?, ?, ?, ?, ?, 0, " +
		nowSQL + ", " + nowSQL + ", ?)"
	if n.mysql() {
		ins += " ON DUPLICATE KEY UPDATE id = id"
	} else {
		ins += " ON CONFLICT DO NOTHING"
	}
	created := 0
	for _, ch := range channels {
		args := append([]any{runID, job, ch, kind, StatusPending}, nowArgs...)
		args = append(args, nowArgs...)
		args = append(args, string(payload))
		res := tx.Exec(ins, args...)
		if res.Error != nil {
			return 0, fmt.Errorf("insert %s notification: %w", ch, res.Error)
		}
		if res.RowsAffected > 0 {
			created++
		}
	}
	return created, nil
}

var errNotConfigured = errors.New("no longer configured")
