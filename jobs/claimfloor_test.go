package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// TestClaimsReachRunsDueBeforeTheFloor: a claimer's reads resume past the
// last run it took (jobs' dueFloor), so a run that becomes due before that
// point (queued by a lagging clock here; released or resumed runs alike)
// must still be claimed: at once when nothing else is due, and within
// FloorScans claims while newer runs keep the queue busy.
func TestClaimsReachRunsDueBeforeTheFloor(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Permanent")
		enqueue := func(n int, notBefore time.Time) []int64 {
			var ids []int64
			for range n {
				enq, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI, NotBefore: notBefore})
				require.NoError(t, err)
				ids = append(ids, enq.Run.ID)
			}
			return ids
		}
		floor := &jobs.DueFloor{}
		claim := func(max int) []int64 {
			claims, err := s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "w", Max: max, TTL: time.Minute, Floor: floor})
			require.NoError(t, err)
			var ids []int64
			for _, c := range claims {
				ids = append(ids, c.Run.ID)
			}
			return ids
		}
		first := enqueue(3, time.Time{})
		require.Equal(t, first[:2], claim(2), "oldest due first")

		// Nothing else is due: the late run is found at once.
		late := enqueue(1, time.Now().Add(-time.Hour))
		require.Equal(t, []int64{late[0], first[2]}, claim(2), "a read from the floor that comes up short reads from the head")

		// The queue stays busy with newer runs: the late run waits at
		// most FloorScans claims.
		enqueue(3*jobs.FloorScans, time.Time{})
		require.Len(t, claim(1), 1) // the floor is past the late run
		late = enqueue(1, time.Now().Add(-time.Hour))
		for i := 0; ; i++ {
			require.LessOrEqual(t, i, jobs.FloorScans, "the run due before the floor is claimed within FloorScans claims")
			got := claim(1)
			require.Len(t, got, 1, "newer runs are due all along")
			if got[0] == late[0] {
				break
			}
		}
	})
}

// TestClaimsSkipRowsAnotherTransactionHolds: on MySQL a claim neither
// waits for nor takes runs whose rows another transaction holds (its reads
// by primary key skip them), takes the next due ones instead, and takes
// the held ones once they are let go.
func TestClaimsSkipRowsAnotherTransactionHolds(t *testing.T) {
	t.Parallel()
	s := jobstest.Open(t, "mysql")
	ctx := context.Background()
	e := newEnv(t, s)
	job := e.job(t, "Permanent")
	var ids []int64
	for range 30 {
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		ids = append(ids, enq.Run.ID)
	}
	held := s.DB().Begin()
	defer held.Rollback()
	// By primary key, so the holder locks exactly these rows (a scan of
	// another index would lock every row it reads).
	var locked []int64
	require.NoError(t, held.Raw("SELECT id FROM runs FORCE INDEX (PRIMARY) WHERE id IN ? FOR UPDATE", ids[:10]).Scan(&locked).Error)
	require.Len(t, locked, 10)

	floor := &jobs.DueFloor{}
	quick, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := s.ClaimBatch(quick, jobs.ClaimOptions{Owner: "a", Max: 10, TTL: time.Minute, Floor: floor})
	require.NoError(t, err, "the claim does not wait for the held rows")
	var claimed []int64
	for _, c := range got {
		claimed = append(claimed, c.Run.ID)
	}
	require.Equal(t, ids[10:20], claimed, "the next due runs, oldest first")

	require.NoError(t, held.Rollback().Error)
	got, err = s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "a", Max: 30, TTL: time.Minute, Floor: floor})
	require.NoError(t, err)
	claimed = claimed[:0]
	for _, c := range got {
		claimed = append(claimed, c.Run.ID)
	}
	require.Equal(t, append(append([]int64{}, ids[:10]...), ids[20:]...), claimed, "the rows let go, then the rest")
}
