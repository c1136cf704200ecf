package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// TestOutcomesCarryTheNextClaim: the next runs are claimed in the
// transaction that records the last outcomes, within the claim limits,
// under the claim's own token; a batch with a lost lease claims nothing.
func TestOutcomesCarryTheNextClaim(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		limited, free := e.job(t, "Flaky"), e.job(t, "Permanent")
		for range 4 {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: limited, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		first, err := s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "w", Max: 2, TTL: time.Minute})
		require.NoError(t, err)
		require.Len(t, first, 2)
		for range 3 {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: free, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		items := make([]jobs.FinishItem, len(first))
		for i, c := range first {
			items[i] = jobs.FinishItem{Claim: c, Finish: jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}}
		}
		// Flaky may have one run running at a time: the two just finished
		// no longer count, so one of its two queued runs is taken, and all
		// three of Permanent.
		ahead := &jobs.ClaimOptions{Owner: "w", Max: 10, TTL: time.Minute, Token: "ahead-token-0000000000000000000",
			Limits: map[string]int{"job:Flaky": 1}, Groups: map[string][]string{"Flaky": {"job:Flaky"}}}
		errs, claims, claimErr := s.FinishAndClaim(ctx, items, ahead)
		require.NoError(t, claimErr)
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 2, countStatus(t, s, jobs.StatusSucceeded), "the outcomes are recorded")
		require.Len(t, claims, 4)
		perJob := map[string]int{}
		for _, c := range claims {
			perJob[c.Run.Job]++
			require.Equal(t, ahead.Token, c.Token)
			require.Equal(t, jobs.StatusRunning, c.Run.Status)
			got, err := s.Get(ctx, c.Run.ID)
			require.NoError(t, err)
			require.Equal(t, jobs.StatusRunning, got.Status)
			require.Equal(t, 1, got.Attempt)
		}
		require.Equal(t, map[string]int{"Flaky": 1, "Permanent": 3}, perJob)

		// One of two leases was lost: the batch is recorded one by one and
		// nothing is claimed.
		left, err := s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "w", Max: 10, TTL: time.Minute})
		require.NoError(t, err)
		require.Len(t, left, 1, "the Flaky run the limit kept back")
		_, err = s.Enqueue(ctx, jobs.NewRun{Job: free, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		stolen := *claims[0]
		stolen.Token = "not-the-token-00000000000000000"
		items = []jobs.FinishItem{
			{Claim: &stolen, Finish: jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}},
			{Claim: claims[1], Finish: jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}},
		}
		ahead.Token, ahead.Limits, ahead.Groups = "ahead-token-1111111111111111111", nil, nil
		errs, more, claimErr := s.FinishAndClaim(ctx, items, ahead)
		require.NoError(t, claimErr)
		require.ErrorIs(t, errs[0], jobs.ErrLeaseLost)
		require.NoError(t, errs[1])
		require.Empty(t, more, "a batch with a lost lease claims nothing")
		require.EqualValues(t, 1, countStatus(t, s, jobs.StatusQueued), "the new run waits for the next claim")
	})
}
