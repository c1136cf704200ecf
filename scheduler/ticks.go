package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/migrations"
)

// AdvanceTick records in store that job's schedule has been handled up to
// tick (jobs.StateLastTick, read by Store.LastTick). The stored value only
// moves forward: an instance whose clock lags, or that evaluates late,
// never moves it back. The scheduler is its only writer, which is why it
// lives here and not on jobs.Store.
func AdvanceTick(ctx context.Context, store *jobs.Store, job string, tick time.Time) error {
	v := tick.UTC().Format(jobs.TickFormat)
	now := time.Now().UTC()
	var q string
	if store.Dialect() == migrations.MySQL {
		q = "INSERT INTO job_state (job, name, value, updated_at) VALUES (?, ?, ?, ?) " +
			"ON DUPLICATE KEY UPDATE updated_at = IF(VALUES(value) > value, VALUES(updated_at), updated_at), " +
			"value = GREATEST(value, VALUES(value))"
	} else {
		q = "INSERT INTO job_state (job, name, value, updated_at) VALUES (?, ?, ?, ?) " +
			"ON CONFLICT (job, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at " +
			"WHERE excluded.value > job_state.value"
	}
	if err := store.DB().WithContext(ctx).Exec(q, job, jobs.StateLastTick, v, now).Error; err != nil {
		return fmt.Errorf("scheduler: advance last tick of %s to %s: %w", job, v, err)
	}
	return nil
}
