package jobs_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/migrations"
)

// keyRunID returns the run id that key k of run_keys names (0: none).
func keyRunID(t *testing.T, s *jobs.Store, k string) int64 {
	t.Helper()
	var ids []int64
	require.NoError(t, s.DB().Table("run_keys").Where("k = ?", k).Pluck("run_id", &ids).Error)
	if len(ids) == 0 {
		return 0
	}
	return ids[0]
}

// TestActiveKeyPassesOnWhenTheHolderIsFinal: the active key of a job's
// uniqueBy parameters refuses a second run while the first is queued,
// and passes to the next run once the first is final (the finishing
// transaction does not release it: the next run takes it over), through
// Enqueue and EnqueueKeyed alike.
func TestActiveKeyPassesOnWhenTheHolderIsFinal(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Echo") // uniqueBy OrderNumber
		nr := jobs.NewRun{Job: job, Params: e.params(t, "Echo", map[string]string{"OrderNumber": "A1"}), Trigger: jobs.TriggerAPI}
		// Enqueue (TestEnqueueIdempotencyAndUniqueness has the refusal
		// while active): the key's row passes to the next run.
		first, err := s.Enqueue(ctx, nr)
		require.NoError(t, err)
		var uk string
		require.NoError(t, s.DB().Raw("SELECT unique_key FROM runs WHERE id = ?", first.Run.ID).Scan(&uk).Error)
		require.Equal(t, first.Run.ID, keyRunID(t, s, "u:"+uk))
		_, err = s.Cancel(ctx, first.Run.ID, "t")
		require.NoError(t, err)
		second, err := s.Enqueue(ctx, nr)
		require.NoError(t, err)
		require.True(t, second.Created, "the first run is final: its key is free")
		require.Equal(t, second.Run.ID, keyRunID(t, s, "u:"+uk))

		// EnqueueKeyed: refused while second is queued; two lines of one
		// call with the same uniqueBy values make one run.
		kr := func(key, order string) jobs.NewRun {
			return jobs.NewRun{Job: job, Params: e.params(t, "Echo", map[string]string{"OrderNumber": order}), Trigger: jobs.TriggerManual,
				IdempotencyKey: key}
		}
		res, err := s.EnqueueKeyed(ctx, []jobs.NewRun{kr("k1", "A1"), kr("k2", "B1"), kr("k3", "B1")})
		require.NoError(t, err)
		require.Equal(t, "active", res[0].Reason)
		require.Equal(t, second.Run.ID, res[0].Run.ID)
		require.True(t, res[1].Created)
		require.False(t, res[2].Created)
		require.Equal(t, "active", res[2].Reason)
		require.Equal(t, res[1].Run.ID, res[2].Run.ID)

		_, err = s.Cancel(ctx, second.Run.ID, "t")
		require.NoError(t, err)
		res, err = s.EnqueueKeyed(ctx, []jobs.NewRun{kr("k4", "A1")})
		require.NoError(t, err)
		require.NoError(t, res[0].Err)
		require.True(t, res[0].Created, "second is final: its key passes on")
		require.Equal(t, res[0].Run.ID, keyRunID(t, s, "u:"+uk))
	})
}

// TestActiveKeyFloodMakesOneRun: many callers at once enqueue runs with
// the same uniqueBy values after the holder of the key became final:
// exactly one run is created, every other caller gets it back.
func TestActiveKeyFloodMakesOneRun(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Echo")
		nr := jobs.NewRun{Job: job, Params: e.params(t, "Echo", map[string]string{"OrderNumber": "F1"}), Trigger: jobs.TriggerAPI}
		old, err := s.Enqueue(ctx, nr)
		require.NoError(t, err)
		_, err = s.Cancel(ctx, old.Run.ID, "t")
		require.NoError(t, err)

		const callers = 16
		var wg sync.WaitGroup
		got := make([]*jobs.Enqueued, callers)
		errs := make([]error, callers)
		for i := range callers {
			wg.Go(func() { got[i], errs[i] = s.Enqueue(ctx, nr) }) // no retries: no deadlock, no "try again"
		}
		wg.Wait()
		created := map[int64]bool{}
		runs := map[int64]bool{}
		for i := range callers {
			require.NoError(t, errs[i], i)
			runs[got[i].Run.ID] = true
			if got[i].Created {
				created[got[i].Run.ID] = true
			}
		}
		require.Len(t, created, 1, "one run created")
		require.Len(t, runs, 1, "every caller got that run")
		require.EqualValues(t, 1, countStatus(t, s, jobs.StatusQueued))
	})
}

// TestMigrationMovesKeysOutOfRuns: migration 0010 copies the keys of
// existing runs into run_keys and run_ticks (here: a store whose key rows
// are gone and whose version is put back to 9), so that an idempotency
// key, an active key and a tick stored before the upgrade still refuse a
// second run after it.
func TestMigrationMovesKeysOutOfRuns(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		echo := e.job(t, "Echo")
		tick := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
		runs := []jobs.NewRun{
			{Job: echo, Params: e.params(t, "Echo", map[string]string{"OrderNumber": "M1"}), Trigger: jobs.TriggerAPI, IdempotencyKey: "before"},
			{Job: echo, Params: e.params(t, "Echo", map[string]string{"OrderNumber": "M2"}), Trigger: jobs.TriggerAPI},
			{Job: echo, Params: e.params(t, "Echo", map[string]string{"OrderNumber": "M3"}), Trigger: jobs.TriggerSchedule, ScheduledFor: &tick},
		}
		var ids []int64
		for _, nr := range runs {
			r, err := s.Enqueue(ctx, nr)
			require.NoError(t, err)
			require.True(t, r.Created)
			ids = append(ids, r.Run.ID)
		}
		_, err := s.Cancel(ctx, ids[0], "t") // final: only its idempotency key refuses
		require.NoError(t, err)
		_, err = s.Cancel(ctx, ids[2], "t") // final: only its tick refuses
		require.NoError(t, err)
		for _, q := range []string{"DELETE FROM run_keys", "DELETE FROM run_ticks", "DELETE FROM schema_migrations WHERE version = 10"} {
			require.NoError(t, s.DB().Exec(q).Error)
		}
		applied, err := migrations.Apply(ctx, s.DB(), s.Dialect())
		require.NoError(t, err)
		require.Equal(t, []int{10}, applied)

		for i, reason := range []string{"idempotencyKey", "active", "tick"} {
			r, err := s.Enqueue(ctx, runs[i])
			require.NoError(t, err)
			require.False(t, r.Created, i)
			require.Equal(t, reason, r.Reason, i)
			require.Equal(t, ids[i], r.Run.ID, i)
		}
		last, ok, err := s.LastTick(ctx, "Echo")
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, last.Equal(tick))
	})
}

// TestKeyOfADeletedRunIsFree: a run deleted by hand (not by Prune, which
// deletes its keys too) leaves its key rows behind; the next run with
// its idempotency key or uniqueBy values takes them over, through
// Enqueue and EnqueueKeyed, instead of failing on every call.
func TestKeyOfADeletedRunIsFree(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Echo")
		nr := func(key, order string) jobs.NewRun {
			return jobs.NewRun{Job: job, Params: e.params(t, "Echo", map[string]string{"OrderNumber": order}), Trigger: jobs.TriggerAPI, IdempotencyKey: key}
		}
		del := func(id int64) {
			require.NoError(t, s.DB().Exec("DELETE FROM run_params WHERE run_id = ?", id).Error)
			require.NoError(t, s.DB().Exec("DELETE FROM runs WHERE id = ?", id).Error)
		}
		a, err := s.Enqueue(ctx, nr("gone-1", "D1"))
		require.NoError(t, err)
		del(a.Run.ID)
		b, err := s.Enqueue(ctx, nr("gone-1", "D1"))
		require.NoError(t, err)
		require.True(t, b.Created)
		require.Equal(t, b.Run.ID, keyRunID(t, s, "i:gone-1"))

		del(b.Run.ID)
		res, err := s.EnqueueKeyed(ctx, []jobs.NewRun{nr("gone-1", "D1")})
		require.NoError(t, err)
		require.NoError(t, res[0].Err)
		require.True(t, res[0].Created)
		require.Equal(t, res[0].Run.ID, keyRunID(t, s, "i:gone-1"))
		again, err := s.Enqueue(ctx, nr("gone-1", "D1"))
		require.NoError(t, err)
		require.False(t, again.Created)
		require.Equal(t, res[0].Run.ID, again.Run.ID)
	})
}

// TestLinkRefusedByAKey: a linked run whose idempotency key already made a
// run, or whose uniqueBy values an active run holds, is not started; the
// parent's finish goes on and its log says which run stood in the way.
func TestLinkRefusedByAKey(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		echo := e.job(t, "Echo")
		nr := func(order, key string) jobs.NewRun {
			return jobs.NewRun{Job: echo, Params: e.params(t, "Echo", map[string]string{"OrderNumber": order}), Trigger: jobs.TriggerAPI, IdempotencyKey: key}
		}
		active, err := s.Enqueue(ctx, nr("L1", ""))
		require.NoError(t, err)
		keyed, err := s.Enqueue(ctx, nr("L2", "link:used"))
		require.NoError(t, err)
		parent, err := s.Enqueue(ctx, nr("P1", ""))
		require.NoError(t, err)
		c, err := s.ClaimRun(ctx, parent.Run.ID, "tester", time.Minute)
		require.NoError(t, err)
		id := parent.Run.ID
		links := []jobs.NewRun{nr("L1", "link:fresh"), nr("L2", "link:used")}
		for i := range links {
			links[i].Trigger, links[i].ParentRunID = jobs.TriggerLink, &id
		}
		require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded, Links: links}))

		got, err := s.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusSucceeded, got.Status)
		require.Empty(t, children(t, s, id))
		log := logText(t, &env{store: s}, id)
		require.Contains(t, log, fmt.Sprintf("linked job Echo not started: run %d with the same unique parameters is still queued", active.Run.ID))
		require.Contains(t, log, fmt.Sprintf("linked job Echo: run %d was already started by this run", keyed.Run.ID))
		require.Zero(t, keyRunID(t, s, "i:link:fresh"), "the refused link's key was rolled back with it")
	})
}
