package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

func TestOverview(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Flaky")
		now := time.Now().UTC()
		mk := func(status jobs.Status, created time.Time, snoozes int) {
			enq, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
			require.NoError(t, s.DB().Exec("UPDATE runs SET status = ?, created_at = ?, snoozes = ? WHERE id = ?", string(status), created, snoozes, enq.Run.ID).Error)
		}
		for range 3 {
			mk(jobs.StatusSucceeded, now.Add(-2*time.Hour), 0)
		}
		mk(jobs.StatusFailed, now.Add(-2*time.Hour), 0)
		mk(jobs.StatusFailed, now, 0)
		mk(jobs.StatusQueued, now.Add(-30*time.Minute), 2)
		mk(jobs.StatusQueued, now.Add(-10*time.Minute), 0)
		mk(jobs.StatusSucceeded, now.Add(-30*time.Hour), 0) // outside the window
		ov, err := s.Overview(ctx, now, []string{"Flaky", "Echo"})
		require.NoError(t, err)
		require.Len(t, ov, 2)
		require.Equal(t, "Echo", ov[0].Job)
		require.Zero(t, ov[0].Queued)
		f := ov[1]
		require.Equal(t, map[jobs.Status]int{jobs.StatusSucceeded: 3, jobs.StatusFailed: 2, jobs.StatusQueued: 2}, f.Counts)
		require.InDelta(t, 0.4, f.FailureRate, 0.001)
		require.Equal(t, 2, f.Queued)
		require.Equal(t, 1, f.Waiting)
		require.WithinDuration(t, now.Add(-30*time.Minute), *f.OldestQueued, time.Second)
		require.Len(t, f.Hours, jobs.OverviewHours)
		last := f.Hours[jobs.OverviewHours-1]
		require.Equal(t, 1, last.Failed)
		two := f.Hours[jobs.OverviewHours-3]
		require.Equal(t, 3, two.Succeeded)
		require.Equal(t, 1, two.Failed)
	})
}
