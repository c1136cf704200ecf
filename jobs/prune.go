package jobs

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Prune deletes finished runs that finished before olderThan (found through
// the creation-time index: a run is created before it finishes), with their
// parameters index, attempts, steps, log lines and keys (the idempotency
// key of a pruned run may make a new run again), in batches of batch runs
// (default 500), one transaction each, so none grows large or locks long. It
// returns how many runs it deleted.
func (s *Store) Prune(ctx context.Context, olderThan time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	total := 0
	for {
		var ids []int64
		err := s.db.WithContext(ctx).Model(&Run{}).
			Where("created_at < ? AND status IN ? AND finished_at < ?", olderThan.UTC(),
				[]Status{StatusSucceeded, StatusSucceededWithWarnings, StatusFailed, StatusCancelled}, olderThan.UTC()).
			Order("created_at").Limit(batch).Pluck("id", &ids).Error
		if err != nil {
			return total, fmt.Errorf("jobs: prune: select: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { // the keys go with their runs, or neither
			for _, t := range []string{"run_logs", "run_attempts", "run_steps", "run_params", "run_traces", "notifications", "notification_runs", "run_keys", "run_ticks"} {
				if err := tx.Exec("DELETE FROM "+t+" WHERE run_id IN ?", ids).Error; err != nil {
					return fmt.Errorf("jobs: prune %s: %w", t, err)
				}
			}
			if err := tx.Exec("DELETE FROM runs WHERE id IN ?", ids).Error; err != nil {
				return fmt.Errorf("jobs: prune runs: %w", err)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(ids)
		if len(ids) < batch {
			return total, nil
		}
	}
}
