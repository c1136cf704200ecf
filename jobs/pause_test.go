package jobs_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/processors"
)

func TestPauseResumeAndExpiry(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		soon := time.Now().Add(300 * time.Millisecond)
		require.NoError(t, s.Pause(ctx, jobs.Pause{Kind: jobs.PauseConnection, Name: "erp", Reason: "ERP upgrade", By: "ops"}))
		require.NoError(t, s.Pause(ctx, jobs.Pause{Kind: jobs.PauseJob, Name: "Sync", Until: &soon, By: "ops"}))
		past := time.Now().Add(-time.Second)
		require.ErrorIs(t, s.Pause(ctx, jobs.Pause{Kind: jobs.PauseJob, Name: "X", Until: &past}), jobs.ErrBadPause)
		require.ErrorIs(t, s.Pause(ctx, jobs.Pause{Kind: "queue", Name: "X"}), jobs.ErrBadPause)

		ps, err := s.Pauses(ctx)
		require.NoError(t, err)
		require.Len(t, ps, 2)
		require.Equal(t, jobs.PauseConnection, ps[0].Kind)
		require.Equal(t, "ERP upgrade", ps[0].Reason)
		require.Nil(t, ps[0].Until)
		require.NotNil(t, ps[1].Until)

		// The circuit breaker never shortens a pause, but lengthens one.
		short, long := time.Now().Add(time.Minute), time.Now().Add(time.Hour)
		require.NoError(t, s.PauseAtLeast(ctx, jobs.Pause{Kind: jobs.PauseConnection, Name: "erp", Until: &short, By: "circuit-breaker"}))
		require.NoError(t, s.PauseAtLeast(ctx, jobs.Pause{Kind: jobs.PauseConnection, Name: "shop", Until: &short, By: "circuit-breaker"}))
		require.NoError(t, s.PauseAtLeast(ctx, jobs.Pause{Kind: jobs.PauseConnection, Name: "shop", Until: &long, By: "circuit-breaker"}))
		require.NoError(t, s.PauseAtLeast(ctx, jobs.Pause{Kind: jobs.PauseConnection, Name: "shop", Until: &short, By: "circuit-breaker"}))
		ps, err = s.Pauses(ctx)
		require.NoError(t, err)
		require.Len(t, ps, 3)
		require.Equal(t, "ops", ps[0].By, "an operator's open-ended pause stays")
		require.WithinDuration(t, long, *ps[1].Until, time.Second)

		// Expired pauses are gone; resume ends one; resuming twice says so.
		time.Sleep(400 * time.Millisecond)
		ps, err = s.Pauses(ctx)
		require.NoError(t, err)
		require.Len(t, ps, 2)
		ok, err := s.Resume(ctx, jobs.PauseConnection, "erp")
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.Resume(ctx, jobs.PauseConnection, "erp")
		require.NoError(t, err)
		require.False(t, ok)
	})
}

func TestHeldJobs(t *testing.T) {
	t.Parallel()
	set, err := definitions.LoadFS(mapFS(`
connections:
  - {name: erp, type: test}
  - {name: shop, type: test, maintenance: [{cron: "0 2 * * *", duration: 2h, timezone: Europe/Amsterdam}, {from: "2026-12-24T18:00:00Z", until: "2026-12-27T06:00:00Z"}]}
jobs:
  - {name: A, connection: erp, processor: P}
  - {name: B, connection: erp, processor: P, push: {connection: shop, processor: P}}
  - {name: C, connection: other, processor: P, schedule: {cron: "* * * * *"}}
`), ".")
	require.NoError(t, err)
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	// 02:30 in Amsterdam (01:30 UTC in winter): inside the nightly window of shop.
	h := jobs.HeldJobs(set, nil, at("2026-12-01T01:30:00Z"))
	require.Len(t, h, 1)
	require.True(t, h["B"].Runs())
	require.Equal(t, "connection shop in a maintenance window until 2026-12-01T03:00:00Z", h["B"].Why())
	require.Empty(t, jobs.HeldJobs(set, nil, at("2026-12-01T03:00:00Z")), "the window ends at 04:00 Amsterdam")
	require.True(t, jobs.HeldJobs(set, nil, at("2026-12-25T12:00:00Z"))["B"].Runs(), "one-off window")

	pauses := []jobs.Pause{{Kind: jobs.PauseConnection, Name: "erp", By: "ops"}, {Kind: jobs.PauseSchedule, Name: "C", By: "ops"}}
	h = jobs.HeldJobs(set, pauses, at("2026-12-01T12:00:00Z"))
	require.True(t, h["A"].Runs())
	require.True(t, h["B"].Runs())
	require.False(t, h["C"].Runs(), "a schedule pause holds only the ticks")
	require.True(t, h["C"].Ticks())
	require.Equal(t, "connection erp paused by ops", h["A"].Why())
}

func TestPoolDoesNotClaimRunsOfAPausedConnection(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		require.NoError(t, s.Pause(ctx, jobs.Pause{Kind: jobs.PauseConnection, Name: "t", By: "test", Reason: "maintenance"}))
		for i := 0; i < 5; i++ {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Flaky"), Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		// A run of another connection, queued after them, is the barrier:
		// claims take the oldest due runs first, so once it has run, a
		// claim has passed the paused runs over.
		e.defs.Connections = append(e.defs.Connections, &definitions.Connection{Name: "other", Type: "test"})
		bj := *e.job(t, "Permanent")
		bj.Name, bj.Connection = "Barrier", "other"
		e.defs.Jobs = append(e.defs.Jobs, &bj)
		_, err := s.Enqueue(ctx, jobs.NewRun{Job: &bj, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		// The pool's clock is a fake one: pauses are read again only when
		// it has moved a poll interval on.
		clock := clockwork.NewFakeClock()
		p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 4, PollInterval: 100 * time.Millisecond, Clock: clock})
		p.Start(ctx)
		waitFor(t, 30*time.Second, func() bool { return countStatus(t, s, jobs.StatusFailed) == 1 }, "the barrier run did not run")
		e.mu.Lock()
		calls := e.calls["Flaky"]
		e.mu.Unlock()
		require.Zero(t, calls, "no run of a paused connection starts")
		require.EqualValues(t, 5, countStatus(t, s, jobs.StatusQueued))
		ok, err := s.Resume(ctx, jobs.PauseConnection, "t")
		require.NoError(t, err)
		require.True(t, ok)
		// Resumed in another process: this pool sees it once its clock has
		// moved a poll interval on.
		waitFor(t, 30*time.Second, func() bool {
			// About as fast as real time: whether a retry is due is the
			// database's clock's say, its delay this clock's.
			clock.Advance(10 * time.Millisecond)
			return countStatus(t, s, jobs.StatusSucceeded) == 5
		}, "runs did not finish after resume")
		p.Stop(ctx)
		var used int64
		require.NoError(t, s.DB().Raw("SELECT COUNT(*) FROM run_attempts_all").Scan(&used).Error)
		require.EqualValues(t, 16, used, "3 attempts each (Flaky), none used while paused; one for the barrier")
	})
}

func mapFS(yaml string) fstest.MapFS { return fstest.MapFS{"jobs.yaml": {Data: []byte(yaml)}} }

// A hung connection holds at most its share of the workers (three
// quarters by default): another connection's runs still start at once.
func TestHungConnectionLeavesWorkersForOthers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		hang := make(chan struct{})
		var hung atomic.Int64
		e.reg.Register("Hang", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			hung.Add(1)
			select {
			case <-hang:
			case <-ctx.Done():
			}
			return nil
		}), processors.ForConnectionTypes("test"))
		started := make(chan time.Time, 10)
		e.reg.Register("Quick", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			started <- time.Now()
			return nil
		}), processors.ForConnectionTypes("test"))
		e.defs.Connections = append(e.defs.Connections, &definitions.Connection{Name: "other", Type: "test"})
		hj := *e.job(t, "Flaky")
		hj.Name, hj.Processor = "HangJob", "Hang"
		qj := *e.job(t, "Flaky")
		qj.Name, qj.Processor, qj.Connection = "QuickJob", "Quick", "other"
		e.defs.Jobs = append(e.defs.Jobs, &hj, &qj)
		for range 40 {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: &hj, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 16, PollInterval: 20 * time.Millisecond})
		p.Start(ctx)
		defer func() { close(hang); p.Stop(ctx) }()
		waitFor(t, 10*time.Second, func() bool { return hung.Load() == 12 }, "the hung connection did not take its share")
		time.Sleep(100 * time.Millisecond)
		require.EqualValues(t, 12, hung.Load(), "at most three quarters of 16 workers on one connection")
		var waits []time.Duration
		for range 5 {
			enq := time.Now()
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: &qj, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
			p.Wake()
			select {
			case at := <-started:
				waits = append(waits, at.Sub(enq))
			case <-time.After(5 * time.Second):
				t.Fatal("a run of another connection did not start while one hung")
			}
		}
		// Without the bulkhead they would not start at all while the 16
		// workers hang; the bound is loose for a busy CI machine (quiet:
		// 0.5-8 ms).
		for _, w := range waits {
			require.Less(t, w, 2*time.Second, "waits %v", waits)
		}
		require.EqualValues(t, 12, hung.Load(), "the hung connection still holds only its share")
		t.Logf("16 workers, 40 runs hung on one connection (12 running): another connection's runs started after %v", waits)
	})
}

// An operator's cancel reaches a running processor within a second, not
// at the next heartbeat (a third of the lease).
func TestCancelReachesTheProcessorWithinASecond(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		started := make(chan struct{})
		stopped := make(chan time.Time, 1)
		e.reg.Register("Long", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			close(started)
			<-ctx.Done()
			stopped <- time.Now()
			return ctx.Err()
		}), processors.ForConnectionTypes("test"))
		j := *e.job(t, "Flaky")
		j.Name, j.Processor, j.Timeout = "LongJob", "Long", definitions.Duration(time.Minute)
		e.defs.Jobs = append(e.defs.Jobs, &j)
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: &j, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		ex := *e.ex
		ex.LeaseTTL = 30 * time.Second // heartbeats every 10 s
		p := jobs.NewPool(jobs.PoolConfig{Executor: &ex, Workers: 2, PollInterval: 20 * time.Millisecond})
		p.Start(ctx)
		defer p.Stop(ctx)
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the run did not start")
		}
		asked := time.Now()
		_, err = s.Cancel(ctx, enq.Run.ID, "ops")
		require.NoError(t, err)
		select {
		case at := <-stopped:
			// The heartbeat would take up to 10 s; the cancel watch asks
			// twice a second (quiet: 0.5 s; loose for a busy CI machine).
			require.Less(t, at.Sub(asked), 3*time.Second)
			t.Logf("cancel reached the processor after %s", at.Sub(asked).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatal("the cancel did not reach the processor within 5 s")
		}
		waitFor(t, 10*time.Second, func() bool { return countStatus(t, s, jobs.StatusCancelled) == 1 }, "the run did not end cancelled")
	})
}

// A running run's log lines are stored within about a second (live logs),
// not only at the next heartbeat (a third of the lease).
func TestLogLinesAreStoredWithinASecond(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		release := make(chan struct{})
		logged := make(chan time.Time, 1)
		e.reg.Register("Talky", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			r.Log.Info("reading page 1 of 40")
			logged <- time.Now()
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}), processors.ForConnectionTypes("test"))
		j := *e.job(t, "Flaky")
		j.Name, j.Processor, j.Timeout = "TalkyJob", "Talky", definitions.Duration(time.Minute)
		e.defs.Jobs = append(e.defs.Jobs, &j)
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: &j, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		ex := *e.ex
		ex.LeaseTTL = 30 * time.Second // heartbeats every 10 s
		p := jobs.NewPool(jobs.PoolConfig{Executor: &ex, Workers: 2, PollInterval: 20 * time.Millisecond})
		p.Start(ctx)
		defer p.Stop(ctx)
		defer close(release)
		at := <-logged
		var seen time.Duration
		waitFor(t, 5*time.Second, func() bool {
			lines, err := s.Logs(ctx, enq.Run.ID, 0, 10)
			require.NoError(t, err)
			for _, l := range lines {
				if l.Message == "reading page 1 of 40" {
					seen = time.Since(at)
					return true
				}
			}
			return false
		}, "the line was not stored while the run ran")
		require.Less(t, seen, 5*time.Second, "the heartbeat alone would take 10 s (quiet: 1.0 s)")
		t.Logf("a log line was readable %s after it was written", seen.Round(10*time.Millisecond))
	})
}
