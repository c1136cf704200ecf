package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/migrations"
	"github.com/jobrunner/jobrunner/processors"
)

func fmtAny(v any) string { return fmt.Sprint(v) }

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		applied, err := migrations.Apply(ctx, s.DB(), s.Dialect())
		require.NoError(t, err)
		require.Empty(t, applied, "second apply must be a no-op")
		v, err := migrations.Current(ctx, s.DB())
		require.NoError(t, err)
		require.Equal(t, migrations.Latest(), v)

		// Migrations cut short after their ADD COLUMN (0007), DROP INDEX
		// (0008) and CREATE VIEW (0009) run again.
		require.NoError(t, s.DB().Exec("DELETE FROM schema_migrations WHERE version >= 7").Error)
		applied, err = migrations.Apply(ctx, s.DB(), s.Dialect())
		require.NoError(t, err, "a column already added, an index already dropped, a view already made, are skipped")
		require.Equal(t, []int{7, 8, 9, 10}, applied)
	})
}

func TestParseDSNRedactsPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"mysql://app:hunter2-CANARY@db.example:3307/jobs?tls=true", "mysql://app@db.example:3307/jobs"},
		{"mysql://app:p%40ss@db/jobs", "mysql://app@db:3306/jobs"},
		{"sqlite:jobrunner.db", "sqlite:jobrunner.db"},
		{"postgres://x", "(invalid DSN)"},
		{"mysql://app:pw@db:3306/", "(invalid DSN)"},
	} {
		require.Equal(t, tc.want, jobs.RedactDSN(tc.in), tc.in)
	}
	_, err := jobs.Open(context.Background(), "mysql://app:hunter2-CANARY@127.0.0.1:1/jobs", jobs.OpenOptions{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2-CANARY")
}

func TestEnqueueIdempotencyAndUniqueness(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Echo")
		p1 := e.params(t, "Echo", map[string]string{"OrderNumber": "WEB000123"})

		first, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Params: p1, Trigger: jobs.TriggerAPI, IdempotencyKey: "k1"})
		require.NoError(t, err)
		require.True(t, first.Created)

		again, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Params: p1, Trigger: jobs.TriggerAPI, IdempotencyKey: "k1"})
		require.NoError(t, err)
		require.False(t, again.Created)
		require.Equal(t, "idempotencyKey", again.Reason)
		require.Equal(t, first.Run.ID, again.Run.ID)

		p2 := e.params(t, "Echo", map[string]string{"OrderNumber": "WEB000999"})
		_, err = s.Enqueue(ctx, jobs.NewRun{Job: job, Params: p2, Trigger: jobs.TriggerAPI, IdempotencyKey: "k1"})
		require.ErrorIs(t, err, jobs.ErrIdempotencyMismatch)

		// Same OrderNumber while the first is active: the active run.
		dup, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Params: p1, Trigger: jobs.TriggerManual})
		require.NoError(t, err)
		require.False(t, dup.Created)
		require.Equal(t, "active", dup.Reason)
		require.Equal(t, first.Run.ID, dup.Run.ID)

		// Once finished, a new run for the same order is allowed.
		_, err = s.Cancel(ctx, first.Run.ID, "tester")
		require.NoError(t, err)
		next, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Params: p1, Trigger: jobs.TriggerManual})
		require.NoError(t, err)
		require.True(t, next.Created)
	})
}

func TestEnqueueScheduleTickIsUnique(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Flaky")
		tick := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
		a, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerSchedule, ScheduledFor: &tick})
		require.NoError(t, err)
		require.True(t, a.Created)
		other := tick.In(time.FixedZone("x", 3600)) // same instant, other zone
		b, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerSchedule, ScheduledFor: &other})
		require.NoError(t, err)
		require.False(t, b.Created)
		require.Equal(t, "tick", b.Reason)
		require.Equal(t, a.Run.ID, b.Run.ID)
	})
}

func TestLeaseFencing(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Flaky"), Trigger: jobs.TriggerManual})
		require.NoError(t, err)
		c, err := s.ClaimRun(ctx, enq.Run.ID, "w1", time.Minute)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusRunning, c.Run.Status)
		require.Equal(t, 1, c.Run.Attempt)

		_, err = s.ClaimRun(ctx, enq.Run.ID, "w2", time.Minute)
		require.ErrorIs(t, err, jobs.ErrNotQueued, "a running run cannot be claimed twice")

		stale := *c
		stale.Token = "not-the-token"
		_, err = s.Heartbeat(ctx, &stale, jobs.Progress{})
		require.ErrorIs(t, err, jobs.ErrLeaseLost)
		require.ErrorIs(t, s.AppendLogs(ctx, &stale, []jobs.LogLine{{RunID: c.Run.ID, Ts: time.Now(), Level: "info", Message: "x"}}), jobs.ErrLeaseLost)
		require.ErrorIs(t, s.Finish(ctx, &stale, jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}), jobs.ErrLeaseLost)

		cancel, err := s.Heartbeat(ctx, c, jobs.Progress{Progress: 40, Read: 7})
		require.NoError(t, err)
		require.False(t, cancel)
		_, err = s.Cancel(ctx, c.Run.ID, "ops")
		require.NoError(t, err)
		cancel, err = s.Heartbeat(ctx, c, jobs.Progress{Progress: 50})
		require.NoError(t, err)
		require.True(t, cancel, "the worker learns of the cancel at its heartbeat")

		require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusCancelled, AttemptStatus: jobs.AttemptCancelled, ErrorCode: "CANCELLED"}))
		require.ErrorIs(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}), jobs.ErrLeaseLost,
			"a final status is never left")
		r, err := s.Get(ctx, c.Run.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusCancelled, r.Status)
		require.Nil(t, r.LeaseToken)
		done, err := s.Finished(ctx, c)
		require.NoError(t, err)
		require.True(t, done)

		_, err = s.Cancel(ctx, c.Run.ID, "ops")
		require.ErrorIs(t, err, jobs.ErrFinished)
		_, err = s.Get(ctx, 987654)
		require.ErrorIs(t, err, jobs.ErrNotFound)
	})
}

func TestListFiltersMatchLiterally(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Echo")
		for _, n := range []string{"WEB%1", "WEB_12", "WEB012", "'; DROP TABLE runs; --", "日本語-注文"} {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Params: e.params(t, "Echo", map[string]string{"OrderNumber": n}), Trigger: jobs.TriggerManual})
			require.NoError(t, err)
		}
		_, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Flaky"), Trigger: jobs.TriggerAPI})
		require.NoError(t, err)

		for _, tc := range []struct {
			f    jobs.Filter
			want int
		}{
			{jobs.Filter{}, 6},
			{jobs.Filter{Job: "Echo"}, 5},
			{jobs.Filter{Job: "Echo%"}, 0},
			{jobs.Filter{Trigger: jobs.TriggerAPI}, 1},
			{jobs.Filter{Params: map[string]string{"OrderNumber": "WEB%1"}}, 1},
			{jobs.Filter{Params: map[string]string{"OrderNumber": "WEB%"}}, 0},
			{jobs.Filter{Params: map[string]string{"OrderNumber": "WEB_12"}}, 1},
			{jobs.Filter{Params: map[string]string{"OrderNumber": "'; DROP TABLE runs; --"}}, 1},
			{jobs.Filter{Params: map[string]string{"OrderNumber": "日本語-注文"}}, 1},
			{jobs.Filter{Params: map[string]string{"OrderNumber": "web012"}}, 0},
			{jobs.Filter{Status: jobs.StatusQueued, Limit: 2}, 2},
			{jobs.Filter{Since: time.Now().Add(time.Hour)}, 0},
		} {
			got, err := s.List(ctx, tc.f)
			require.NoError(t, err)
			require.Len(t, got, tc.want, "%+v", tc.f)
		}
		page1, err := s.List(ctx, jobs.Filter{Limit: 4})
		require.NoError(t, err)
		page2, err := s.List(ctx, jobs.Filter{Limit: 4, BeforeID: page1[3].ID})
		require.NoError(t, err)
		require.Len(t, page2, 2)
		require.Greater(t, page1[0].ID, page1[3].ID, "newest first")
	})
}

func TestJobState(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		_, ok, err := s.JobState(ctx, "Sync", "highWaterMark")
		require.NoError(t, err)
		require.False(t, ok)
		require.NoError(t, s.SetJobState(ctx, "Sync", "highWaterMark", "2026-01-01T00:00:00Z"))
		require.NoError(t, s.SetJobState(ctx, "Sync", "highWaterMark", "2026-02-01T00:00:00Z"))
		v, ok, err := s.JobState(ctx, "Sync", "highWaterMark")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "2026-02-01T00:00:00Z", v)
	})
}

func TestSkipLockedSelfTest(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		require.NoError(t, s.CheckSkipLocked(context.Background()))
	})
}

func TestPruneDeletesOnlyOldFinishedRuns(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		old := runInline(t, e, "Echo", map[string]string{"OrderNumber": "OLD"})
		queued, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Flaky"), Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		require.NoError(t, s.DB().Model(&jobs.Run{}).Where("id = ?", old.ID).Updates(map[string]any{"created_at": time.Now().Add(-49 * time.Hour), "finished_at": time.Now().Add(-48 * time.Hour)}).Error)
		recent := runInline(t, e, "Echo", map[string]string{"OrderNumber": "NEW"})

		n, err := s.Prune(ctx, time.Now().Add(-24*time.Hour), 1)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		_, err = s.Get(ctx, old.ID)
		require.ErrorIs(t, err, jobs.ErrNotFound)
		lines, err := s.Logs(ctx, old.ID, 0, 0)
		require.NoError(t, err)
		require.Empty(t, lines)
		for _, id := range []int64{queued.Run.ID, recent.ID} {
			_, err := s.Get(ctx, id)
			require.NoError(t, err)
		}
	})
}

// TestCancelWhileRunningIsNeverRequeued: an operator cancels a running run
// and, before its heartbeat sees the request, the attempt fails and asks
// for a retry. The run must end cancelled, never run again.
func TestCancelWhileRunningIsNeverRequeued(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		for _, batch := range []bool{false, true} {
			enq, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Flaky"), Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
			claims, err := s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "w", Max: 1, TTL: time.Minute})
			require.NoError(t, err)
			require.Len(t, claims, 1)
			_, err = s.Cancel(ctx, enq.Run.ID, "ops")
			require.NoError(t, err)
			retry := jobs.Finish{Status: jobs.StatusQueued, AttemptStatus: jobs.AttemptRetry, NotBefore: time.Now(), ErrorCode: "ERROR"}
			if batch {
				require.NoError(t, s.FinishBatch(ctx, []jobs.FinishItem{{Claim: claims[0], Finish: retry}})[0])
			} else {
				require.NoError(t, s.Finish(ctx, claims[0], retry))
			}
			r, err := s.Get(ctx, enq.Run.ID)
			require.NoError(t, err)
			require.Equal(t, jobs.StatusCancelled, r.Status, "batch=%t", batch)
			require.Equal(t, "CANCELLED", r.ErrorCode)
			again, err := s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "w", Max: 10, TTL: time.Minute})
			require.NoError(t, err)
			require.Empty(t, again, "a cancelled run is never claimed again")
		}
	})
}

// TestConcurrentLimitedClaimsDoNotDeadlock: many claimers of a job with a
// running limit serialise on its lock row without InnoDB deadlocks.
func TestConcurrentLimitedClaimsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		job := e.job(t, "Flaky")
		for i := 0; i < 40; i++ {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		limits, groups := map[string]int{"job:Flaky": 3}, map[string][]string{"Flaky": {"job:Flaky"}}
		var wg sync.WaitGroup
		errs := make(chan error, 16*10)
		var claimed atomic.Int64
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					cs, err := s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "w", Max: 2, TTL: time.Minute, Limits: limits, Groups: groups})
					if err != nil {
						errs <- err
					}
					claimed.Add(int64(len(cs)))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 3, claimed.Load(), "never more than the limit running")
	})
}

func TestInstallationIDStableAndShared(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		a, err := s.InstallationID(ctx)
		require.NoError(t, err)
		require.Regexp(t, `^[0-9a-f]{16}$`, a)
		b, err := s.InstallationID(ctx)
		require.NoError(t, err)
		require.Equal(t, a, b)
		// Another instance on the same database reads the same id.
		v, ok, err := s.JobState(ctx, "_jobrunner", "installationId")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, a, v)
	})
}

// TestEnqueueCommitAnswerLost: the COMMIT reached the database but its
// answer did not reach us (a dropped connection). Enqueue must find the
// stored run and say it was created — never "nothing was stored" — and
// must say "not stored" only when it was not, and "unknown" when it
// cannot tell.
func TestEnqueueCommitAnswerLost(t *testing.T) {
	jobs.SetResolveTimeout(500 * time.Millisecond)
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		job := &definitions.Job{Name: "Lost", Retry: definitions.RetryPolicy{MaxAttempts: 1}}
		lost := errors.New("invalid connection")

		jobs.SetCommitHook(s, func(tx *gorm.DB) error {
			require.NoError(t, tx.Commit().Error)
			return lost // committed, answer lost
		})
		e, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI, TriggeredBy: "t"})
		require.NoError(t, err, "a stored run is reported as stored")
		require.True(t, e.Created)
		got, err := s.Get(ctx, e.Run.ID)
		require.NoError(t, err)
		require.Equal(t, "Lost", got.Job)

		jobs.SetCommitHook(s, func(tx *gorm.DB) error {
			require.NoError(t, tx.Rollback().Error)
			return lost // never committed
		})
		_, err = s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI, TriggeredBy: "t"})
		require.ErrorIs(t, err, lost)
		require.NotErrorIs(t, err, jobs.ErrOutcomeUnknown)

		jobs.SetCommitHook(s, nil)
		var n int64
		require.NoError(t, s.DB().Table("runs").Where("job = ?", "Lost").Count(&n).Error)
		require.Equal(t, int64(1), n, "exactly the committed run")

		// The database is gone before the run can be looked up: unknown.
		jobs.SetCommitHook(s, func(tx *gorm.DB) error {
			require.NoError(t, tx.Commit().Error)
			sqlDB, err := s.DB().DB()
			require.NoError(t, err)
			require.NoError(t, sqlDB.Close())
			return lost
		})
		_, err = s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI, TriggeredBy: "t"})
		require.ErrorIs(t, err, jobs.ErrOutcomeUnknown)
	})
}

func TestCancelMessageSaysWhetherTheRunEverStarted(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		job := &definitions.Job{Name: "C", Retry: definitions.RetryPolicy{MaxAttempts: 3}}
		fresh, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI, TriggeredBy: "t"})
		require.NoError(t, err)
		r, err := s.Cancel(ctx, fresh.Run.ID, "api:ops")
		require.NoError(t, err)
		require.Equal(t, "cancelled by api:ops before it started", r.ErrorMessage)

		tried, err := s.Enqueue(ctx, jobs.NewRun{Job: job, Trigger: jobs.TriggerAPI, TriggeredBy: "t"})
		require.NoError(t, err)
		c, err := s.ClaimRun(ctx, tried.Run.ID, "w", time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Finish(ctx, c, jobs.Finish{Status: jobs.StatusQueued, AttemptStatus: jobs.AttemptRetry, NotBefore: time.Now().Add(time.Hour)}))
		r, err = s.Cancel(ctx, tried.Run.ID, jobs.InterruptedBy)
		require.NoError(t, err)
		require.Equal(t, "cancelled by jobrunner run (interrupted) while it waited for its next execution", r.ErrorMessage)
	})
}

func TestAttemptNeverStartsBeforeItsRun(t *testing.T) {
	t.Parallel()
	created := time.Now().Add(time.Second) // the run's creator's clock runs ahead
	c := &jobs.Claim{Run: &jobs.Run{ID: 1, Attempt: 1, CreatedAt: created}, Started: time.Now()}
	a := jobs.AttemptRow(c, jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded}, time.Now())
	require.False(t, a.StartedAt.Before(created), "attempt started %s, run created %s", a.StartedAt, created)
}

// TestEnqueueTxFollowsTheCallersTransaction: a run started inside the
// caller's transaction exists only if it commits; a duplicate key inside
// it returns the existing run and leaves the transaction usable.
func TestEnqueueTxFollowsTheCallersTransaction(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		st := e.ex.Starter()
		req := jobs.StartRequest{Job: "Echo", Text: map[string]string{"OrderNumber": "TX1"}, Trigger: jobs.TriggerAPI, IdempotencyKey: "tx-key"}
		rolledBack := errors.New("the caller's change failed")
		err := s.DB().Transaction(func(tx *gorm.DB) error {
			enq, err := st.StartTx(ctx, tx, req)
			require.NoError(t, err)
			require.True(t, enq.Created)
			return rolledBack
		})
		require.ErrorIs(t, err, rolledBack)
		require.EqualValues(t, 0, countStatus(t, s, jobs.StatusQueued), "rolled back with the caller's transaction")

		var id int64
		require.NoError(t, s.DB().Transaction(func(tx *gorm.DB) error {
			enq, err := st.StartTx(ctx, tx, req)
			require.NoError(t, err)
			id = enq.Run.ID
			return nil
		}))
		require.NoError(t, s.DB().Transaction(func(tx *gorm.DB) error {
			again, err := st.StartTx(ctx, tx, req)
			require.NoError(t, err)
			require.False(t, again.Created)
			require.Equal(t, id, again.Run.ID, "the key's run")
			// The transaction is still usable after the duplicate.
			return tx.Exec("UPDATE job_state SET value = value WHERE 1 = 0").Error
		}))
		require.EqualValues(t, 1, countStatus(t, s, jobs.StatusQueued))
		_, err = st.Start(ctx, jobs.StartRequest{Job: "NoSuchJob"})
		require.ErrorIs(t, err, jobs.ErrUnknownJob)
		_, err = st.Start(ctx, jobs.StartRequest{Job: "Echo", Text: map[string]string{"Amount": "x"}})
		var pe definitions.ParamErrors
		require.ErrorAs(t, err, &pe, "parameters are validated at the front door")
	})
}

func TestStartManyStoresPlainRunsTogetherAndRoutesTheOthersThroughStart(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		st := e.ex.Starter()
		woke := 0
		st.Wake = func() { woke++ }
		reqs := []jobs.StartRequest{
			{Job: "Flaky", Trigger: jobs.TriggerAPI, TriggeredBy: "bulk"},
			{Job: "Echo", Text: map[string]string{"OrderNumber": "U1"}}, // uniqueBy: through Start
			{Job: "Post", Text: map[string]string{"OrderNumber": "P1"}, NotBefore: time.Now().Add(time.Hour)},
			{Job: "Echo", Text: map[string]string{"OrderNumber": "U1"}}, // the active run of the first
			{Job: "Permanent", IdempotencyKey: "many-1"},
		}
		out, err := st.StartMany(ctx, reqs)
		require.NoError(t, err)
		require.Len(t, out, len(reqs))
		for i, enq := range out {
			require.NotNil(t, enq, "result %d", i)
			require.Positive(t, enq.Run.ID)
		}
		require.True(t, out[0].Created)
		require.Equal(t, "Flaky", out[0].Run.Job)
		require.Equal(t, jobs.TriggerAPI, out[0].Run.TriggerKind)
		require.Equal(t, jobs.TriggerManual, out[2].Run.TriggerKind, "the default trigger")
		require.False(t, out[3].Created)
		require.Equal(t, "active", out[3].Reason)
		require.Equal(t, out[1].Run.ID, out[3].Run.ID)
		require.NotEqual(t, out[0].Run.ID, out[2].Run.ID)
		require.Positive(t, woke)

		// The stored rows are what their results say.
		got, err := s.Get(ctx, out[2].Run.ID)
		require.NoError(t, err)
		require.Equal(t, "Post", got.Job)
		require.Equal(t, jobs.StatusQueued, got.Status)
		require.JSONEq(t, `{"OrderNumber":"P1"}`, string(got.Parameters))
		require.True(t, got.NotBefore.After(time.Now().Add(50*time.Minute)))
		listed, err := s.List(ctx, jobs.Filter{Params: map[string]string{"OrderNumber": "P1"}})
		require.NoError(t, err)
		require.Len(t, listed, 1, "found by its parameter")
		require.Equal(t, out[2].Run.ID, listed[0].ID)
		require.EqualValues(t, 4, countStatus(t, s, jobs.StatusQueued))

		// A preview is checked even when the job was prepared without one
		// earlier in the batch (the test processors cannot preview).
		_, err = st.StartMany(ctx, []jobs.StartRequest{
			{Job: "Flaky", Values: definitions.Values{}},
			{Job: "Flaky", Values: definitions.Values{}, Preview: true},
		})
		require.ErrorIs(t, err, jobs.ErrNotRunnable)
		require.ErrorIs(t, err, processors.ErrPreviewUnsupported)
		require.EqualValues(t, 4, countStatus(t, s, jobs.StatusQueued))

		// A bad request stores nothing of the plain ones.
		_, err = st.StartMany(ctx, []jobs.StartRequest{{Job: "Flaky"}, {Job: "NoSuchJob"}})
		require.ErrorIs(t, err, jobs.ErrUnknownJob)
		require.ErrorContains(t, err, "request 1")
		require.EqualValues(t, 4, countStatus(t, s, jobs.StatusQueued))
	})
}

// TestOpenRefusesANewerSchema: a database a newer jobrunner migrated is
// refused (this one would not write what that schema relies on).
func TestOpenRefusesANewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "newer.db")
	ctx := context.Background()
	s, err := jobs.Open(ctx, "sqlite:"+path, jobs.OpenOptions{})
	require.NoError(t, err)
	require.NoError(t, s.DB().Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', ?)",
		migrations.Latest()+1, time.Now().UTC()).Error)
	require.NoError(t, s.Close())
	_, err = jobs.Open(ctx, "sqlite:"+path, jobs.OpenOptions{})
	require.ErrorIs(t, err, jobs.ErrSchemaNewer)
	require.Contains(t, err.Error(), fmt.Sprintf("schema version %d", migrations.Latest()+1))
}
