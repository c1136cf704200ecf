package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// TestEveryOperationFollowsTheLifeCycle applies every operation that can
// change a run's status (claim, cancel, finish with its own or a foreign
// lease, release, rescue) to a run in every status, on the real
// databases: each change it makes is one of the life cycle's transitions,
// and an operation that does not apply leaves the run as it was.
func TestEveryOperationFollowsTheLifeCycle(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Flaky")
		// in returns a new run in status st, and its claim when running.
		in := func(st jobs.Status) (int64, *jobs.Claim) {
			enq, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
			id := enq.Run.ID
			if st == jobs.StatusQueued {
				return id, nil
			}
			if st == jobs.StatusCancelled {
				_, err := s.Cancel(ctx, id, "test")
				require.NoError(t, err)
				return id, nil
			}
			c, err := s.ClaimRun(ctx, id, "owner", time.Minute)
			require.NoError(t, err)
			if st == jobs.StatusRunning {
				return id, c
			}
			require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: st, AttemptStatus: jobs.AttemptSucceeded}))
			return id, nil
		}
		status := func(id int64) jobs.Status {
			r, err := s.Get(ctx, id)
			require.NoError(t, err)
			return r.Status
		}
		ops := []struct {
			name string
			do   func(id int64, c *jobs.Claim)
		}{
			{"claim", func(id int64, _ *jobs.Claim) { _, _ = s.ClaimRun(ctx, id, "other", time.Minute) }},
			{"cancel", func(id int64, _ *jobs.Claim) { _, _ = s.Cancel(ctx, id, "op") }},
			{"finish with a foreign lease", func(id int64, c *jobs.Claim) {
				run, err := s.Get(ctx, id)
				require.NoError(t, err)
				_ = s.Finish(ctx, &jobs.Claim{Run: run, Token: "not-the-lease", Owner: "x", TTL: time.Minute},
					jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded})
			}},
			{"finish: succeed", func(id int64, c *jobs.Claim) {
				if c != nil {
					require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}))
				}
			}},
			{"finish: fail", func(id int64, c *jobs.Claim) {
				if c != nil {
					require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusFailed, AttemptStatus: jobs.AttemptFailed, ErrorCode: "X"}))
				}
			}},
			{"finish: retry", func(id int64, c *jobs.Claim) {
				if c != nil {
					require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusQueued, AttemptStatus: jobs.AttemptFailed, NotBefore: time.Now().Add(time.Hour)}))
				}
			}},
			{"release", func(id int64, c *jobs.Claim) {
				if c != nil {
					require.NoError(t, s.Release(ctx, c, "shutdown"))
				}
			}},
			{"rescue", func(id int64, c *jobs.Claim) {
				require.NoError(t, s.DB().Exec("UPDATE runs SET lease_expires_at = ? WHERE id = ? AND lease_token IS NOT NULL", time.Now().UTC().Add(-time.Hour), id).Error)
				_, err := s.RescueExpired(ctx, 1000)
				require.NoError(t, err)
			}},
		}
		seen := map[string]bool{}
		for _, from := range []jobs.Status{jobs.StatusQueued, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusCancelled} {
			for _, op := range ops {
				id, c := in(from)
				require.Equal(t, from, status(id))
				op.do(id, c)
				to := status(id)
				if to != from {
					require.True(t, jobs.Allowed(from, to), "%s on a %s run made it %s: not a transition of the life cycle", op.name, from, to)
					seen[fmt.Sprintf("%s→%s", from, to)] = true
				}
				if from.Final() {
					require.Equal(t, from, to, "%s changed a final run", op.name)
				}
			}
		}
		for _, pair := range []string{"queued→running", "queued→cancelled", "running→succeeded", "running→failed", "running→queued"} {
			require.True(t, seen[pair], "%s was exercised: %v", pair, seen)
		}
	})
}
