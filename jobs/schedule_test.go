package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/migrations"
	"github.com/jobrunner/jobrunner/scheduler"
)

func schedJob(name string) *definitions.Job {
	return &definitions.Job{Name: name, Version: "v1", Retry: definitions.RetryPolicy{MaxAttempts: 1}}
}

func enqueueTick(t *testing.T, s *jobs.Store, job *definitions.Job, tick time.Time) *jobs.Run {
	t.Helper()
	res, err := s.Enqueue(context.Background(), jobs.NewRun{
		Job: job, Params: definitions.Values{}, Trigger: jobs.TriggerSchedule,
		TriggeredBy: "scheduler", ScheduledFor: &tick,
	})
	require.NoError(t, err)
	require.True(t, res.Created)
	return res.Run
}

func TestLastTick(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		t.Parallel()
		ctx := context.Background()
		job, other := schedJob("Sync"), schedJob("Other")
		base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

		_, ok, err := s.LastTick(ctx, "Sync")
		require.NoError(t, err)
		require.False(t, ok, "never evaluated")

		enqueueTick(t, s, other, base.Add(time.Hour)) // another job's runs do not count
		enqueueTick(t, s, job, base.Add(-time.Minute))
		enqueueTick(t, s, job, base)
		got, ok, err := s.LastTick(ctx, "Sync")
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, base.Equal(got), "from runs: got %s", got)

		require.NoError(t, scheduler.AdvanceTick(ctx, s, "Sync", base.Add(90*time.Second+500*time.Millisecond)))
		got, _, err = s.LastTick(ctx, "Sync")
		require.NoError(t, err)
		require.True(t, base.Add(90*time.Second+500*time.Millisecond).Equal(got), "from state: got %s", got)

		// An older value never moves it back.
		require.NoError(t, scheduler.AdvanceTick(ctx, s, "Sync", base.Add(-time.Hour)))
		got, _, err = s.LastTick(ctx, "Sync")
		require.NoError(t, err)
		require.True(t, base.Add(90*time.Second+500*time.Millisecond).Equal(got), "moved back to %s", got)

		// A later run wins over the state.
		enqueueTick(t, s, job, base.Add(3*time.Minute))
		got, _, err = s.LastTick(ctx, "Sync")
		require.NoError(t, err)
		require.True(t, base.Add(3*time.Minute).Equal(got), "got %s", got)

		// Without the state row the runs still tell.
		require.NoError(t, s.DB().Exec("DELETE FROM job_state").Error)
		got, ok, err = s.LastTick(ctx, "Sync")
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, base.Add(3*time.Minute).Equal(got), "got %s", got)

		// A corrupt state value is an error.
		require.NoError(t, s.SetJobState(ctx, "Sync", jobs.StateLastTick, "yesterday"))
		_, _, err = s.LastTick(ctx, "Sync")
		require.ErrorContains(t, err, "yesterday")
	})
}

func TestAdvanceTickKeepsGreatest(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		t.Parallel()
		ctx := context.Background()
		base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		for _, d := range []time.Duration{5, 1, 9, 3, 9, 2} {
			require.NoError(t, scheduler.AdvanceTick(ctx, s, "Sync", base.Add(d*time.Second)))
		}
		v, ok, err := s.JobState(ctx, "Sync", jobs.StateLastTick)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "2026-03-01T10:00:09.000000000Z", v)
	})
}

func TestActiveRuns(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		t.Parallel()
		ctx := context.Background()
		job := schedJob("Sync")
		base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

		q, r, err := s.ActiveRuns(ctx, "Sync", time.Time{})
		require.NoError(t, err)
		require.Equal(t, [2]int64{0, 0}, [2]int64{q, r})

		r1 := enqueueTick(t, s, job, base)
		r2 := enqueueTick(t, s, job, base.Add(time.Minute))
		enqueueTick(t, s, job, base.Add(2*time.Minute))
		r4 := enqueueTick(t, s, job, base.Add(3*time.Minute))
		enqueueTick(t, s, schedJob("Other"), base)
		_, err = s.ClaimRun(ctx, r1.ID, "test", time.Minute)
		require.NoError(t, err)
		_, err = s.Cancel(ctx, r4.ID, "test")
		require.NoError(t, err)

		tests := []struct {
			name          string
			except        time.Time
			queued, runng int64
		}{
			{"all", time.Time{}, 2, 1},
			{"except a queued tick", r2.ScheduledFor.Add(0), 1, 1},
			{"except the running tick", base, 2, 0},
			{"except an unknown tick", base.Add(time.Hour), 2, 1},
		}
		for _, tc := range tests {
			q, r, err := s.ActiveRuns(ctx, "Sync", tc.except)
			require.NoError(t, err, tc.name)
			require.Equal(t, [2]int64{tc.queued, tc.runng}, [2]int64{q, r}, tc.name)
		}
	})
}

func TestDatabaseTime(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		t.Parallel()
		before := time.Now()
		got, ok, err := s.DatabaseTime(context.Background())
		require.NoError(t, err)
		if s.Dialect() != migrations.MySQL {
			require.False(t, ok)
			return
		}
		require.True(t, ok)
		require.Equal(t, time.UTC, got.Location())
		require.WithinDuration(t, before, got, 5*time.Second)
	})
}
