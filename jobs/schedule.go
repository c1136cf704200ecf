package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/migrations"
)

// Names of the per-job values (see [Store.JobState]) that the scheduler
// keeps. They are prefixed so that they never collide with a processor's own
// state such as a sync's high-water mark.
const (
	// StateLastTick is the instant up to which the job's schedule has been
	// evaluated: every nominal tick at or before it was enqueued, skipped by
	// the overlap policy, or recorded as missed. Written as
	// [TickFormat] text; only ever moved forward (by the scheduler: scheduler.AdvanceTick).
	StateLastTick = "scheduler.lastTick"
	// StateMissedTicks describes the latest gap of missed ticks (JSON,
	// written by package scheduler).
	StateMissedTicks = "scheduler.missedTicks"
	// StateLastSkip describes the latest tick the overlap policy skipped
	// (JSON, written by package scheduler).
	StateLastSkip = "scheduler.lastSkip"
)

// TickFormat is the fixed-width UTC form in which StateLastTick is stored;
// its text order is its time order, so the database can keep the greater
// of two values without parsing them.
const TickFormat = "2006-01-02T15:04:05.000000000Z"

// LastTick returns the latest tick of job's schedule that the database
// knows was handled: the later of the greatest tick of the job's runs
// (run_ticks, the runs' scheduled_for) and the StateLastTick value. ok is false when there is neither (the
// schedule has never been evaluated). A StateLastTick value that does not
// parse is an error, not silently ignored.
func (s *Store) LastTick(ctx context.Context, job string) (t time.Time, ok bool, err error) {
	var r runTick
	err = s.db.WithContext(ctx).Where("job = ?", job).Order("scheduled_for DESC").Limit(1).Take(&r).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
	case err != nil:
		return time.Time{}, false, fmt.Errorf("jobs: last tick of %s: %w", job, err)
	default:
		t, ok = r.ScheduledFor.UTC(), true
	}
	v, found, err := s.JobState(ctx, job, StateLastTick)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("jobs: last tick of %s: %w", job, err)
	}
	if found {
		st, perr := time.Parse(time.RFC3339Nano, v)
		if perr != nil {
			return time.Time{}, false, fmt.Errorf("jobs: last tick of %s: stored %s %q: %w", job, StateLastTick, v, perr)
		}
		if !ok || st.After(t) {
			t, ok = st.UTC(), true
		}
	}
	return t, ok, nil
}

// ActiveRuns counts job's runs that are queued and running, leaving out the
// run of the schedule tick exceptTick (if there is one) so that an instance
// that finds the tick it is about to fire already enqueued by another
// instance does not count that run against it. A zero exceptTick leaves
// nothing out.
func (s *Store) ActiveRuns(ctx context.Context, job string, exceptTick time.Time) (queued, running int64, err error) {
	q := s.db.WithContext(ctx).Model(&Run{}).Select("status, COUNT(*) AS n").
		Where("job = ? AND status IN ?", job, []Status{StatusQueued, StatusRunning})
	if !exceptTick.IsZero() {
		q = q.Where("(scheduled_for IS NULL OR scheduled_for <> ?)", exceptTick.UTC())
	}
	var rows []struct {
		Status Status
		N      int64
	}
	if err := q.Group("status").Scan(&rows).Error; err != nil {
		return 0, 0, fmt.Errorf("jobs: count active runs of %s: %w", job, err)
	}
	for _, r := range rows {
		switch r.Status {
		case StatusQueued:
			queued = r.N
		case StatusRunning:
			running = r.N
		}
	}
	return queued, running, nil
}

// DatabaseTime returns the database server's current time in UTC (MySQL:
// UTC_TIMESTAMP(6)). ok is false for SQLite, an embedded database that has
// no clock of its own (it shares this process's).
func (s *Store) DatabaseTime(ctx context.Context) (t time.Time, ok bool, err error) {
	if s.dialect != migrations.MySQL {
		return time.Time{}, false, nil
	}
	var text string
	err = s.db.WithContext(ctx).Raw("SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f')").Row().Scan(&text)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("jobs: read database time: %w", err)
	}
	t, err = time.ParseInLocation("2006-01-02 15:04:05.999999", text, time.UTC)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("jobs: read database time: parse %q: %w", text, err)
	}
	return t, true, nil
}
