package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// TestFirstAttemptThatSucceededIsTheRunRow: a one-step run whose first
// attempt succeeded writes no run_attempts row, yet its attempt is
// recoverable (Store.Attempts, the view run_attempts_all, Store.Finished)
// with the instance that ran it; a run that needed a retry keeps a row per
// attempt, its first failure included, and nothing is counted twice.
func TestFirstAttemptThatSucceededIsTheRunRow(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Flaky")
		claim := func(id int64, owner string) *jobs.Claim {
			c, err := s.ClaimRun(ctx, id, owner, time.Minute)
			require.NoError(t, err)
			return c
		}
		rows := func(table string, id int64) int64 {
			var n int64
			require.NoError(t, s.DB().Raw("SELECT COUNT(*) FROM "+table+" WHERE run_id = ?", id).Scan(&n).Error)
			return n
		}

		at, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		once := at.Run.ID
		c := claim(once, "inst-a")
		finished, err := s.Finished(ctx, c)
		require.NoError(t, err)
		require.False(t, finished, "not recorded before its finish")
		require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}))
		require.Zero(t, rows("run_attempts", once), "no attempt row for a first attempt that succeeded")
		require.EqualValues(t, 1, rows("run_attempts_all", once))
		r, err := s.Get(ctx, once)
		require.NoError(t, err)
		require.Nil(t, r.LeaseToken, "the fence is cleared")
		require.NotNil(t, r.LeaseOwner)
		require.Equal(t, "inst-a", *r.LeaseOwner)
		atts, err := s.Attempts(ctx, once)
		require.NoError(t, err)
		require.Len(t, atts, 1)
		a := atts[0]
		require.Equal(t, jobs.Attempt{RunID: once, Attempt: 1, Owner: "inst-a", Status: jobs.AttemptSucceeded,
			StartedAt: r.StartedAt.UTC(), FinishedAt: r.FinishedAt.UTC()}, a)
		require.False(t, a.FinishedAt.Before(a.StartedAt))
		finished, err = s.Finished(ctx, c)
		require.NoError(t, err)
		require.True(t, finished, "an ambiguous commit resolves to recorded")
		other := *c
		other.Owner = "inst-b"
		finished, err = s.Finished(ctx, &other)
		require.NoError(t, err)
		require.False(t, finished, "recorded for the instance that ran it only")
		// A second finish under the spent lease changes nothing.
		require.ErrorIs(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}), jobs.ErrLeaseLost)
		require.EqualValues(t, 1, rows("run_attempts_all", once))

		at, err = s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		twice := at.Run.ID
		c = claim(twice, "inst-a")
		require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusQueued, AttemptStatus: jobs.AttemptFailed, ErrorCode: "X", NotBefore: time.Now().Add(-time.Second)}))
		c = claim(twice, "inst-b")
		require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}))
		require.EqualValues(t, 2, rows("run_attempts", twice), "a row per attempt once one failed")
		require.EqualValues(t, 2, rows("run_attempts_all", twice), "the run row adds none")
		r, err = s.Get(ctx, twice)
		require.NoError(t, err)
		require.Nil(t, r.LeaseOwner, "a run with attempt rows keeps no owner")
		atts, err = s.Attempts(ctx, twice)
		require.NoError(t, err)
		require.Len(t, atts, 2)
		require.Equal(t, []string{"inst-a", "inst-b"}, []string{atts[0].Owner, atts[1].Owner})
		require.Equal(t, []string{jobs.AttemptFailed, jobs.AttemptSucceeded}, []string{atts[0].Status, atts[1].Status})

		at, err = s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		failed := at.Run.ID
		c = claim(failed, "inst-a")
		require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusFailed, AttemptStatus: jobs.AttemptFailed, ErrorCode: "X"}))
		require.EqualValues(t, 1, rows("run_attempts", failed), "a failure has its row")
		require.EqualValues(t, 1, rows("run_attempts_all", failed))
	})
}
