package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

func runInline(t *testing.T, e *env, job string, raw map[string]string) *jobs.Run {
	t.Helper()
	var params definitions.Values
	if raw != nil {
		params = e.params(t, job, raw)
	} else {
		params = e.params(t, job, map[string]string{})
	}
	r, err := e.ex.RunInline(context.Background(), e.job(t, job), params, jobs.InlineOptions{TriggeredBy: "tester"})
	require.NoError(t, err)
	return r
}

func attempts(t *testing.T, e *env, id int64) []jobs.Attempt {
	t.Helper()
	a, err := e.store.Attempts(context.Background(), id)
	require.NoError(t, err)
	return a
}

func logText(t *testing.T, e *env, id int64) string {
	t.Helper()
	lines, err := e.store.Logs(context.Background(), id, 0, 0)
	require.NoError(t, err)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Level + " " + l.Message + " " + string(l.Fields) + "\n")
	}
	return b.String()
}

func TestRunInlineOutcomes(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s)

		t.Run("success keeps typed parameters and result", func(t *testing.T) {
			r := runInline(t, e, "Echo", map[string]string{"OrderNumber": "WEB000123", "Amount": "12.50"})
			require.Equal(t, jobs.StatusSucceeded, r.Status)
			require.Equal(t, 100, r.Progress, "a finished success is 100% done")
			require.JSONEq(t, `{"Amount":"12.50","OrderNumber":"WEB000123"}`, string(r.Parameters))
			require.JSONEq(t, `{"order":"WEB000123","amount":"12.5"}`, string(r.Result))
			require.Equal(t, "tester", r.TriggeredBy)
			require.Equal(t, jobs.TriggerManual, r.TriggerKind)
			require.NotNil(t, r.FinishedAt)
			require.Nil(t, r.UniqueKey, "a finished run releases its uniqueness key")
			a := attempts(t, e, r.ID)
			require.Len(t, a, 1)
			require.Equal(t, jobs.AttemptSucceeded, a[0].Status)
			require.Contains(t, logText(t, e, r.ID), "echo")
		})

		t.Run("plain errors retry with backoff until they succeed", func(t *testing.T) {
			r := runInline(t, e, "Flaky", nil)
			require.Equal(t, jobs.StatusSucceeded, r.Status)
			a := attempts(t, e, r.ID)
			require.Len(t, a, 3)
			require.Equal(t, []string{jobs.AttemptRetry, jobs.AttemptRetry, jobs.AttemptSucceeded}, []string{a[0].Status, a[1].Status, a[2].Status})
			require.NotNil(t, a[0].RetryAt)
			require.Equal(t, 3, r.AttemptsUsed())
		})

		t.Run("permanent errors fail at once with the ERP's code", func(t *testing.T) {
			before := e.count("Permanent")
			r := runInline(t, e, "Permanent", nil)
			require.Equal(t, jobs.StatusFailed, r.Status)
			require.Equal(t, "ORDER_STATE", r.ErrorCode)
			require.Equal(t, "Cancel failed as order is in [Shipped] state", r.ErrorMessage)
			require.Equal(t, before+1, e.count("Permanent"), "no retry of a permanent failure")
			require.Len(t, attempts(t, e, r.ID), 1)
		})

		t.Run("a panic is a failed attempt with its stack in the logs", func(t *testing.T) {
			r := runInline(t, e, "Panics", nil)
			require.Equal(t, jobs.StatusFailed, r.Status)
			require.Equal(t, "PANIC", r.ErrorCode)
			require.Len(t, attempts(t, e, r.ID), 2)
			logs := logText(t, e, r.ID)
			require.Contains(t, logs, "index out of range")
			require.Contains(t, logs, "goroutine", "the stack is stored")
		})

		t.Run("timeouts are retried then fail with TIMEOUT", func(t *testing.T) {
			r := runInline(t, e, "Slow", nil)
			require.Equal(t, jobs.StatusFailed, r.Status)
			require.Equal(t, "TIMEOUT", r.ErrorCode)
			require.Contains(t, r.ErrorMessage, "the job's ", "the timeout is named for any processor")
			require.Contains(t, r.ErrorMessage, " timeout elapsed: ")
			require.Len(t, attempts(t, e, r.ID), 2)
		})

		t.Run("snoozes do not consume attempts and are capped", func(t *testing.T) {
			r := runInline(t, e, "Snoozer", nil)
			require.Equal(t, jobs.StatusFailed, r.Status)
			require.Equal(t, "SNOOZE_LIMIT", r.ErrorCode)
			a := attempts(t, e, r.ID)
			require.Len(t, a, 3, "2 snoozes allowed, the 3rd fails")
			require.Equal(t, jobs.AttemptSnoozed, a[0].Status)
			require.Equal(t, 2, r.Snoozes)
			require.Equal(t, 1, r.AttemptsUsed(), "maxAttempts 1 was not used up by snoozes")
		})

		t.Run("record errors past maxErrors fail the run", func(t *testing.T) {
			r := runInline(t, e, "Errors", nil)
			require.Equal(t, jobs.StatusFailed, r.Status)
			require.Equal(t, "MAX_ERRORS_EXCEEDED", r.ErrorCode)
			require.EqualValues(t, 2, r.RecordErrors)
			require.EqualValues(t, 3, r.RecordsRead)
		})

		t.Run("post-processor gets the processor's result", func(t *testing.T) {
			r := runInline(t, e, "Post", map[string]string{"OrderNumber": "WEB1"})
			require.Equal(t, jobs.StatusSucceeded, r.Status)
			require.JSONEq(t, `{"post":true}`, string(r.Result))
			e.mu.Lock()
			defer e.mu.Unlock()
			require.JSONEq(t, `{"order":"WEB1","amount":null}`, e.postInput)
		})

		t.Run("secrets never reach logs, errors or tables", func(t *testing.T) {
			r := runInline(t, e, "Leaky", nil)
			require.Equal(t, jobs.StatusFailed, r.Status)
			require.NotContains(t, r.ErrorMessage, canary)
			require.Contains(t, r.ErrorMessage, "[REDACTED]")
			require.Contains(t, logText(t, e, r.ID), "[REDACTED]")
			require.NotContains(t, dumpAll(t, s), canary)
		})

		t.Run("the dropped-lines marker counts every dropped line", func(t *testing.T) {
			r := runInline(t, e, "Chatty", nil)
			require.Equal(t, jobs.StatusSucceeded, r.Status)
			var n int64
			require.NoError(t, s.DB().Table("run_logs").Where("run_id = ?", r.ID).Count(&n).Error)
			var last string
			require.NoError(t, s.DB().Raw("SELECT message FROM run_logs WHERE run_id = ? ORDER BY id DESC LIMIT 1", r.ID).Scan(&last).Error)
			// 20,001 lines and the start line; 10,000 are kept, then the marker.
			require.Equal(t, int64(10001), n)
			require.Equal(t, "10002 more log lines were dropped (limit 10000 per attempt)", last)
		})

		t.Run("secrets echoed in a result are redacted before it is stored", func(t *testing.T) {
			r := runInline(t, e, "LeakyResult", nil)
			require.Equal(t, jobs.StatusSucceeded, r.Status)
			require.JSONEq(t, `{"echo":"token [REDACTED] accepted"}`, string(r.Result))
			require.NotContains(t, dumpAll(t, s), canary)
		})
	})
}

func TestRunInlineRefusesDuplicateActiveRun(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s)
		ctx := context.Background()
		p := e.params(t, "Echo", map[string]string{"OrderNumber": "WEB5"})
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Echo"), Params: p, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		r, err := e.ex.RunInline(ctx, e.job(t, "Echo"), p, jobs.InlineOptions{})
		require.ErrorIs(t, err, jobs.ErrAlreadyActive)
		require.Equal(t, enq.Run.ID, r.ID)
		require.Zero(t, e.count("Echo"))
	})
}

func TestRunInlineInterruptRecordsCancelled(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-e.started
			cancel() // what Ctrl-C does to `jobrunner run`
		}()
		r, err := e.ex.RunInline(ctx, e.job(t, "Blocks"), e.params(t, "Blocks", map[string]string{}), jobs.InlineOptions{})
		require.NoError(t, err)
		require.Equal(t, jobs.StatusCancelled, r.Status)
		require.Equal(t, "INTERRUPTED", r.ErrorCode)
		require.NotNil(t, r.FinishedAt)
		require.Nil(t, r.LeaseToken)
	})
}

func TestCancelFromAnotherProcessStopsTheProcessor(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s)
		e.ex.LeaseTTL = 300 * time.Millisecond // heartbeat every 100ms
		done := make(chan *jobs.Run, 1)
		var id int64
		idc := make(chan int64, 1)
		go func() {
			r, err := e.ex.RunInline(context.Background(), e.job(t, "Blocks"), e.params(t, "Blocks", map[string]string{}),
				jobs.InlineOptions{OnEnqueued: func(r *jobs.Run) { idc <- r.ID }})
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		id = <-idc
		<-e.started
		_, err := s.Cancel(context.Background(), id, "ops@example")
		require.NoError(t, err)
		select {
		case r := <-done:
			require.Equal(t, jobs.StatusCancelled, r.Status)
			require.Equal(t, "ops@example", r.CancelledBy)
			require.Equal(t, "CANCELLED", r.ErrorCode)
		case <-time.After(10 * time.Second):
			t.Fatal("the processor was not stopped by the cancel")
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	p := definitions.RetryPolicy{Initial: definitions.Duration(time.Second), Max: definitions.Duration(10 * time.Second), Multiplier: 2}
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {500, 10 * time.Second}} {
		require.Equal(t, tc.want, jobs.Backoff(p, tc.n, nil), "n=%d", tc.n)
	}
	p.Jitter = 0.5
	lo, hi := jobs.Backoff(p, 2, func() float64 { return 0 }), jobs.Backoff(p, 2, func() float64 { return 0.999999 })
	require.Equal(t, 1500*time.Millisecond, lo)
	require.InDelta(t, float64(2500*time.Millisecond), float64(hi), float64(time.Millisecond))
}

func TestMissingSecretInAPoolReleasesTheRun(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s)
		ex := *e.ex
		ex.Getenv = func(string) string { return "" } // this instance lacks the token
		ex.ReleaseOnShutdown = true                   // as in a Pool
		job := e.job(t, "Leaky")
		require.Contains(t, ex.Unrunnable(e.defs), "Leaky", "reported as not runnable here")
		enq, err := s.Enqueue(context.Background(), jobs.NewRun{Job: job, Params: e.params(t, "Leaky", map[string]string{}), Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		c, err := s.ClaimRun(context.Background(), enq.Run.ID, "blind", time.Minute)
		require.NoError(t, err)
		f, err := ex.Execute(context.Background(), c)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusQueued, f.Status, "released, not failed")
		r, err := s.Get(context.Background(), enq.Run.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusQueued, r.Status)
		require.Equal(t, 0, r.AttemptsUsed(), "no attempt used")
		require.Equal(t, "SECRET_MISSING", r.ErrorCode)
	})
}

func TestServesLimitsTheConnectionsClaimedHere(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s)
		ex := *e.ex
		require.Empty(t, ex.Unrunnable(e.defs), "every connection by default")
		ex.Serves = []string{"zone-b"}
		un := ex.Unrunnable(e.defs)
		require.Len(t, un, len(e.defs.Jobs), "none of t's jobs is claimed by an instance serving zone-b")
		require.Equal(t, "connection t is not served by this instance (serve --connections zone-b)", un["Echo"])
		ex.Serves = []string{"zone-b", "zone-a"} // by label
		require.Empty(t, ex.Unrunnable(e.defs))
		ex.Serves = []string{"t"} // by name
		require.Empty(t, ex.Unrunnable(e.defs))
	})
}

// TestExecutorLeavesNoGoroutines: executions that succeed, fail, time out,
// panic or exceed maxErrors leave no goroutine behind (heartbeats, timeouts
// and log flushes all end with their attempt).
func TestExecutorLeavesNoGoroutines(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s)
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		for _, tc := range []struct {
			job  string
			raw  map[string]string
			want jobs.Status
		}{
			{"Echo", map[string]string{"OrderNumber": "G1"}, jobs.StatusSucceeded},
			{"Permanent", nil, jobs.StatusFailed},
			{"Panics", nil, jobs.StatusFailed},
			{"Slow", nil, jobs.StatusFailed},
			{"Errors", nil, jobs.StatusFailed}, // two record errors, maxErrors 1
		} {
			r := runInline(t, e, tc.job, tc.raw)
			require.Equal(t, tc.want, r.Status, tc.job)
		}
	})
}
