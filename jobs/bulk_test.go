package jobs_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// TestBulkRetryOfAThousandFailedRuns: 1,000 failed runs, three operators
// pressing "retry all" at once (as from three instances): every failed
// run is retried exactly once, and a fourth bulk retry retries nothing.
func TestBulkRetryOfAThousandFailedRuns(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		const n = 1000
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Permanent")
		nrs := make([]jobs.NewRun, n)
		for i := range nrs {
			nrs[i] = jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI, IdempotencyKey: "fail-" + strconv.Itoa(i)}
		}
		_, err := s.EnqueueKeyed(ctx, nrs)
		require.NoError(t, err)
		p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 16, PollInterval: 20 * time.Millisecond})
		p.Start(ctx)
		waitFor(t, 2*time.Minute, func() bool { return countStatus(t, s, jobs.StatusFailed) == n }, "the runs did not all fail")
		p.Stop(ctx)

		f := jobs.Filter{Job: "Permanent", Status: jobs.StatusFailed}
		dry, err := s.BulkRetry(ctx, e.defs, f, "test", true)
		require.NoError(t, err)
		require.Equal(t, n, dry.Matched, "the count shown before confirming")
		require.Zero(t, dry.Done)

		results := make([]jobs.BulkResult, 3)
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.BulkRetry(ctx, e.defs, f, "operator"+strconv.Itoa(i), false)
				require.NoError(t, err)
				results[i] = r
			}()
		}
		wg.Wait()
		done := 0
		for _, r := range results {
			require.Zero(t, r.Failed, "%+v", r)
			done += r.Done
		}
		require.Equal(t, n, done, "the three bulk retries created one retry per failed run between them: %+v", results)

		var perRun []struct {
			RetryOfRunID int64
			N            int
		}
		require.NoError(t, s.DB().Raw("SELECT retry_of_run_id, COUNT(*) AS n FROM runs WHERE retry_of_run_id IS NOT NULL GROUP BY retry_of_run_id").Scan(&perRun).Error)
		require.Len(t, perRun, n, "every failed run has a retry")
		for _, r := range perRun {
			require.Equal(t, 1, r.N, "run %d retried %d times", r.RetryOfRunID, r.N)
		}
		again, err := s.BulkRetry(ctx, e.defs, jobs.Filter{Job: "Permanent", Status: jobs.StatusFailed, Trigger: jobs.TriggerAPI}, "test", false)
		require.NoError(t, err)
		require.Zero(t, again.Done, "a bulk retry run again retries nothing twice")
		require.Equal(t, n, again.Already)
	})
}
