package jobs_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

func TestEnqueueKeyed(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Echo") // uniqueBy OrderNumber
		var nrs []jobs.NewRun
		for i := range 120 {
			nrs = append(nrs, jobs.NewRun{Job: job, Params: e.params(t, "Echo", map[string]string{"OrderNumber": fmt.Sprintf("B%04d", i)}),
				Trigger: jobs.TriggerManual, TriggeredBy: "file", IdempotencyKey: fmt.Sprintf("file:%d", i)})
		}
		// An active run already has B0005's uniqueBy parameters.
		active, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Params: e.params(t, "Echo", map[string]string{"OrderNumber": "B0005"}), Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		res, err := s.EnqueueKeyed(ctx, nrs)
		require.NoError(t, err)
		ids := map[int64]bool{}
		for i, r := range res {
			require.NoError(t, r.Err, i)
			if i == 5 {
				require.False(t, r.Created)
				require.Equal(t, "active", r.Reason)
				require.Equal(t, active.Run.ID, r.Run.ID)
				continue
			}
			require.True(t, r.Created, i)
			require.False(t, ids[r.Run.ID], "two lines got one run")
			ids[r.Run.ID] = true
		}
		require.EqualValues(t, 120, countStatus(t, s, jobs.StatusQueued))
		// Parameters are indexed: the runs are found by them.
		page, err := s.List(ctx, jobs.Filter{Params: map[string]string{"OrderNumber": "B0077"}, Limit: 10})
		require.NoError(t, err)
		require.Len(t, page, 1)

		// The same file again creates nothing; a key reused with other
		// parameters is refused for that line only.
		nrs[3].Params = e.params(t, "Echo", map[string]string{"OrderNumber": "OTHER"})
		res2, err := s.EnqueueKeyed(ctx, nrs)
		require.NoError(t, err)
		for i, r := range res2 {
			switch i {
			case 3:
				require.ErrorIs(t, r.Err, jobs.ErrIdempotencyMismatch)
			case 5:
				require.Equal(t, "active", r.Reason)
			default:
				require.NoError(t, r.Err)
				require.False(t, r.Created)
				require.Equal(t, res[i].Run.ID, r.Run.ID)
			}
		}
		require.EqualValues(t, 120, countStatus(t, s, jobs.StatusQueued))

		// One key twice in one call: one run, the second line finds it.
		dup := []jobs.NewRun{nrs[10], nrs[11], nrs[11]}
		dup[1].IdempotencyKey, dup[2].IdempotencyKey = "new-key", "new-key"
		dup[1].Params = e.params(t, "Echo", map[string]string{"OrderNumber": "C0001"})
		dup[2].Params = dup[1].Params
		res3, err := s.EnqueueKeyed(ctx, dup)
		require.NoError(t, err)
		require.True(t, res3[1].Created)
		require.False(t, res3[2].Created)
		require.Equal(t, res3[1].Run.ID, res3[2].Run.ID)
		require.EqualValues(t, 121, countStatus(t, s, jobs.StatusQueued))
	})
}

// TestEnqueueBatchRowEqualsEnqueue: a run stored by EnqueueBatch (with
// only the columns that differ from their defaults) has, column by
// column, the row Enqueue stores for the same run.
func TestEnqueueBatchRowEqualsEnqueue(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Post") // no uniqueBy: EnqueueBatch takes it
		nr := jobs.NewRun{Job: job, Params: e.params(t, "Post", map[string]string{"OrderNumber": "WEB1"}), Trigger: jobs.TriggerAPI, TriggeredBy: "t"}
		one, err := s.Enqueue(ctx, nr)
		require.NoError(t, err)
		batch, err := s.EnqueueBatch(ctx, []jobs.NewRun{nr})
		require.NoError(t, err)
		cols := "job, definition_version, parameters, trigger_kind, triggered_by, idempotency_key IS NULL, request_hash IS NULL, " +
			"unique_key IS NULL, scheduled_for IS NULL, status, preview, attempt, max_attempts, snoozes, lease_owner IS NULL, " +
			"lease_token IS NULL, lease_expires_at IS NULL, cancel_requested, cancelled_by, parent_run_id IS NULL, " +
			"retry_of_run_id IS NULL, started_at IS NULL, finished_at IS NULL, result IS NULL, COALESCE(result, 'null'), error_code, " +
			"error_message IS NULL, COALESCE(error_message, 'null'), progress, records_read, records_changed, record_errors, record_warnings"
		row := func(id int64) map[string]any {
			m := map[string]any{}
			require.NoError(t, s.DB().Raw("SELECT "+cols+" FROM runs WHERE id = ?", id).Take(&m).Error)
			return m
		}
		require.Equal(t, row(one.Run.ID), row(batch[0].ID))
		var n int64
		require.NoError(t, s.DB().Table("run_params").Where("run_id = ?", batch[0].ID).Count(&n).Error)
		require.EqualValues(t, 1, n)
	})
}
