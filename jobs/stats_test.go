package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// statsSet is a minimal definition set for the stats tests (no processor
// is needed: runs are only enqueued, claimed and finished by hand).
func statsSet(t *testing.T) *definitions.Set {
	t.Helper()
	set := &definitions.Set{
		Connections: []*definitions.Connection{{Name: "c", Type: "none"}},
		Jobs: []*definitions.Job{
			{Name: "A", Connection: "c", Processor: "P"},
			{Name: "B", Connection: "c", Processor: "P"},
			{Name: "C", Connection: "c", Processor: "P"},
		},
	}
	set.ApplyDefaults()
	return set
}

func TestStoreStats(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		set := statsSet(t)
		enqueue := func(name string) *jobs.Run {
			j, ok := set.Job(name)
			require.True(t, ok)
			e, err := s.Enqueue(ctx, jobs.NewRun{Job: j, Params: definitions.Values{}, Trigger: jobs.TriggerManual})
			require.NoError(t, err)
			return e.Run
		}

		counts, err := s.CountByStatus(ctx)
		require.NoError(t, err)
		require.Len(t, counts, len(jobs.Statuses))
		for _, st := range jobs.Statuses {
			require.Zero(t, counts[st], st)
		}
		latest, err := s.LatestByJob(ctx, []string{"A", "B"})
		require.NoError(t, err)
		require.Empty(t, latest)

		a1 := enqueue("A")
		a2 := enqueue("A")
		b1 := enqueue("B")
		a3 := enqueue("A")
		_, err = s.Cancel(ctx, a1.ID, "test")
		require.NoError(t, err)
		c, err := s.ClaimRun(ctx, a2.ID, "me", time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusFailed, AttemptStatus: jobs.AttemptFailed, ErrorCode: "X"}))
		_, err = s.ClaimRun(ctx, b1.ID, "me", time.Minute)
		require.NoError(t, err)

		counts, err = s.CountByStatus(ctx)
		require.NoError(t, err)
		require.Equal(t, map[jobs.Status]int64{
			jobs.StatusQueued: 1, jobs.StatusRunning: 1, jobs.StatusSucceeded: 0,
			jobs.StatusSucceededWithWarnings: 0, jobs.StatusFailed: 1, jobs.StatusCancelled: 1,
		}, counts)
		counts, err = s.CountByStatus(ctx, jobs.StatusQueued, jobs.StatusRunning)
		require.NoError(t, err)
		require.Equal(t, map[jobs.Status]int64{jobs.StatusQueued: 1, jobs.StatusRunning: 1}, counts)

		latest, err = s.LatestByJob(ctx, []string{"A", "B", "C"})
		require.NoError(t, err)
		require.Len(t, latest, 2)
		require.Equal(t, a3.ID, latest["A"].ID)
		require.Equal(t, jobs.StatusQueued, latest["A"].Status)
		require.Equal(t, b1.ID, latest["B"].ID)
		require.Equal(t, jobs.StatusRunning, latest["B"].Status)
		latest, err = s.LatestByJob(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, latest)

		require.NoError(t, s.Ping(ctx))
		require.NoError(t, s.Close())
		require.Error(t, s.Ping(ctx))
		_, err = s.CountByStatus(ctx)
		require.Error(t, err)
	})
}
