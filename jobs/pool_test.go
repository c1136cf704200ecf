package jobs_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/processors"
)

// waitFor polls cond (against the database, not a sleep-based guess) until
// it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countStatus(t *testing.T, s *jobs.Store, st jobs.Status) int64 {
	t.Helper()
	var n int64
	require.NoError(t, s.DB().Model(&jobs.Run{}).Where("status = ?", st).Count(&n).Error)
	return n
}

func TestPoolsDrainEveryRunExactlyOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		var mu sync.Mutex
		seen := map[int64]int{}
		var running, peak atomic.Int64
		e.reg.Register("Count", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			mu.Lock()
			seen[r.ID]++
			mu.Unlock()
			return nil
		}), processors.ForConnectionTypes("test"))
		job := e.job(t, "Flaky")
		countJob := *job
		countJob.Name, countJob.Processor = "Count", "Count"
		e.defs.Jobs = append(e.defs.Jobs, &countJob)

		const n = 300
		for i := 0; i < n; i++ {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: &countJob, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		pools := []*jobs.Pool{}
		for i := 0; i < 3; i++ {
			ex := *e.ex
			ex.Owner = "pool-" + string(rune('a'+i))
			p := jobs.NewPool(jobs.PoolConfig{Executor: &ex, Workers: 4, BatchSize: 7, PollInterval: 20 * time.Millisecond})
			p.Start(ctx)
			pools = append(pools, p)
		}
		waitFor(t, 60*time.Second, func() bool { return countStatus(t, s, jobs.StatusSucceeded) == n }, "not all runs succeeded")
		for _, p := range pools {
			p.Stop(ctx)
		}
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, seen, n)
		for id, c := range seen {
			require.Equal(t, 1, c, "run %d executed %d times", id, c)
		}
		var atts int64
		require.NoError(t, s.DB().Raw("SELECT COUNT(*) FROM run_attempts_all").Scan(&atts).Error)
		require.EqualValues(t, n, atts, "one attempt row per run")
		require.LessOrEqual(t, peak.Load(), int64(12), "3 pools × 4 workers")
	})
}

func TestPoolRescuesRunOfDeadWorker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Echo"), Params: e.params(t, "Echo", map[string]string{"OrderNumber": "W1"}), Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		// A worker claims it and dies (never heartbeats, never finishes).
		claims, err := s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "dead-worker", Max: 10, TTL: 200 * time.Millisecond})
		require.NoError(t, err)
		require.Len(t, claims, 1)

		ex := *e.ex
		ex.LeaseTTL = 2 * time.Second
		p := jobs.NewPool(jobs.PoolConfig{Executor: &ex, Workers: 2, PollInterval: 20 * time.Millisecond, RescueInterval: 50 * time.Millisecond})
		p.Start(ctx)
		waitFor(t, 20*time.Second, func() bool {
			r, err := s.Get(ctx, enq.Run.ID)
			return err == nil && r.Status.Final()
		}, "the dead worker's run was not rescued and finished")
		p.Stop(ctx)

		r, err := s.Get(ctx, enq.Run.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusSucceeded, r.Status)
		a := attempts(t, e, r.ID)
		require.Len(t, a, 2)
		require.Equal(t, jobs.AttemptLeaseExpired, a[0].Status)
		require.Equal(t, "dead-worker", a[0].Owner)
		require.Equal(t, jobs.AttemptSucceeded, a[1].Status)
		require.Equal(t, 1, e.count("Echo"), "executed once, by the rescuer")
		// The dead worker wakes up: its late outcome is refused.
		require.ErrorIs(t, s.Finish(ctx, claims[0], jobs.Finish{Status: jobs.StatusFailed, AttemptStatus: jobs.AttemptFailed}), jobs.ErrLeaseLost)
	})
}

func TestRescueFailsRunWithoutAttemptsLeft(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Blocks"), Trigger: jobs.TriggerAPI}) // maxAttempts 1
		require.NoError(t, err)
		_, err = s.ClaimBatch(ctx, jobs.ClaimOptions{Owner: "dead", Max: 1, TTL: time.Millisecond})
		require.NoError(t, err)
		waitFor(t, 5*time.Second, func() bool {
			n, err := s.RescueExpired(ctx, 10)
			require.NoError(t, err)
			return n == 1
		}, "lease did not expire")
		r, err := s.Get(ctx, enq.Run.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusFailed, r.Status)
		require.Equal(t, "LEASE_EXPIRED", r.ErrorCode)
		require.Contains(t, r.ErrorMessage, "no attempts left")
	})
}

func TestPoolStopReleasesRunningRunsWithoutUsingAnAttempt(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Blocks"), Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 2, PollInterval: 20 * time.Millisecond})
		p.Start(ctx)
		<-e.started
		grace, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		p.Stop(grace)

		r, err := s.Get(ctx, enq.Run.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusQueued, r.Status, "released, not failed")
		require.Equal(t, 0, r.AttemptsUsed(), "shutdown does not consume an attempt")
		a := attempts(t, e, r.ID)
		require.Len(t, a, 1)
		require.Equal(t, jobs.AttemptReleased, a[0].Status)
		require.Nil(t, r.LeaseToken)
	})
}

func TestPoolHonoursMaxRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		var running, peak atomic.Int64
		e.reg.Register("One", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			n := running.Add(1)
			defer running.Add(-1)
			if n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(20 * time.Millisecond)
			return nil
		}), processors.ForConnectionTypes("test"))
		one := *e.job(t, "Flaky")
		one.Name, one.Processor = "One", "One"
		one.Concurrency = definitions.Concurrency{MaxRunning: 1}
		e.defs.Jobs = append(e.defs.Jobs, &one)
		for i := 0; i < 8; i++ {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: &one, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		var pools []*jobs.Pool
		for i := 0; i < 2; i++ {
			p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 4, PollInterval: 10 * time.Millisecond})
			p.Start(ctx)
			pools = append(pools, p)
		}
		waitFor(t, 30*time.Second, func() bool { return countStatus(t, s, jobs.StatusSucceeded) == 8 }, "runs did not finish")
		for _, p := range pools {
			p.Stop(ctx)
		}
		require.EqualValues(t, 1, peak.Load(), "maxRunning 1 across two pools")
	})
}

func TestPoolHonoursConnectionMaxConcurrency(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		var running, peak atomic.Int64
		e.reg.Register("Two", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			return nil
		}), processors.ForConnectionTypes("test"))
		conn, ok := e.defs.Connection("t")
		require.True(t, ok)
		conn.MaxConcurrency = 2
		var two []*definitions.Job
		for _, name := range []string{"TwoA", "TwoB"} { // two jobs, one connection
			j := *e.job(t, "Flaky")
			j.Name, j.Processor = name, "Two"
			e.defs.Jobs = append(e.defs.Jobs, &j)
			two = append(two, &j)
		}
		for i := 0; i < 12; i++ {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: two[i%2], Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		var pools []*jobs.Pool
		for i := 0; i < 2; i++ {
			p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 8, PollInterval: 10 * time.Millisecond})
			p.Start(ctx)
			pools = append(pools, p)
		}
		waitFor(t, 30*time.Second, func() bool { return countStatus(t, s, jobs.StatusSucceeded) == 12 }, "runs did not finish")
		for _, p := range pools {
			p.Stop(ctx)
		}
		require.LessOrEqual(t, peak.Load(), int64(2), "connection maxConcurrency 2 across jobs and pools")
		require.EqualValues(t, 2, peak.Load(), "both slots are used")
	})
}

func TestPoolConfigIsValidated(t *testing.T) {
	t.Parallel()
	s := jobstest.Open(t, "sqlite")
	ex := &jobs.Executor{Store: s}
	for _, cfg := range []jobs.PoolConfig{
		{},
		{Executor: ex, Workers: -1},
		{Executor: ex, BatchSize: -5},
		{Executor: ex, PollInterval: -time.Second},
		{Executor: ex, RescueInterval: -time.Second},
	} {
		_, err := jobs.NewPoolSafely(cfg)
		require.ErrorIs(t, err, jobs.ErrBadPoolConfig, "%+v", cfg)
		require.Panics(t, func() { jobs.NewPool(cfg) })
	}
	p, err := jobs.NewPoolSafely(jobs.PoolConfig{Executor: ex})
	require.NoError(t, err, "zero values are the defaults")
	require.NotNil(t, p)
}

// TestLimitedRunsAtTheQueueHeadDoNotStarveOthers: 200 runs of a job with
// maxRunning 2 queued before 50 runs of an unlimited job, three pools:
// the limit holds across them, and the unlimited runs do not wait behind
// the limited ones (claims of unlimited jobs take no limit lock, and a
// claim whose head is saturated selects again without it).
func TestLimitedRunsAtTheQueueHeadDoNotStarveOthers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		var running, peak, limitedDone atomic.Int64
		e.reg.Register("Two", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			limitedDone.Add(1)
			return nil
		}), processors.ForConnectionTypes("test"))
		two := *e.job(t, "Flaky")
		two.Name, two.Processor = "Two", "Two"
		two.Concurrency = definitions.Concurrency{MaxRunning: 2}
		e.defs.Jobs = append(e.defs.Jobs, &two)
		for range 200 {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: &two, Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		echo := e.job(t, "Echo")
		for i := range 50 {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: echo, Params: e.params(t, "Echo", map[string]string{"OrderNumber": fmt.Sprintf("Q%d", i)}), Trigger: jobs.TriggerAPI})
			require.NoError(t, err)
		}
		var pools []*jobs.Pool
		for range 3 {
			p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 8, BatchSize: 8, PollInterval: 10 * time.Millisecond})
			p.Start(ctx)
			pools = append(pools, p)
		}
		waitFor(t, time.Minute, func() bool { return e.count("Echo") == 50 }, "the unlimited runs did not all run")
		atEcho := limitedDone.Load()
		waitFor(t, 2*time.Minute, func() bool { return countStatus(t, s, jobs.StatusSucceeded) == 250 }, "runs did not finish")
		for _, p := range pools {
			p.Stop(ctx)
		}
		require.LessOrEqual(t, peak.Load(), int64(2), "maxRunning 2 across three pools")
		require.Less(t, atEcho, int64(150), "the 50 unlimited runs finished while most limited ones still waited (they were not starved)")
		t.Logf("unlimited runs all done after %d of 200 limited runs; peak limited concurrency %d", atEcho, peak.Load())
	})
}

// TestHeartbeatsFollowThePoolsClock: a running run's lease is renewed when
// the pool's clock reaches a third of the lease, however little real time
// has passed.
func TestHeartbeatsFollowThePoolsClock(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		e.ex.LeaseTTL = time.Hour
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: e.job(t, "Blocks"), Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		clock := clockwork.NewFakeClock()
		p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 2, PollInterval: 50 * time.Millisecond, Clock: clock})
		p.Start(ctx)
		<-e.started
		first, err := s.Get(ctx, enq.Run.ID)
		require.NoError(t, err)
		require.NotNil(t, first.LeaseExpiresAt)
		// Twenty minutes of the pool's clock: the heartbeat renews the
		// lease (on the database's clock, so it moves a little).
		waitFor(t, 30*time.Second, func() bool {
			clock.Advance(time.Minute)
			r, err := s.Get(ctx, enq.Run.ID)
			require.NoError(t, err)
			return r.LeaseExpiresAt != nil && r.LeaseExpiresAt.After(*first.LeaseExpiresAt)
		}, "the lease was not renewed")
		r, err := s.Get(ctx, enq.Run.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusRunning, r.Status, "still its run")
		stop, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		p.Stop(stop) // the grace period ends: released without an attempt
		r, err = s.Get(ctx, enq.Run.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusQueued, r.Status)
		require.Zero(t, r.AttemptsUsed())
	})
}

// TestBulkheadHoldsWithClaimsRidingOnCommits: claims of the claim loop and
// those riding on outcome commits never together hand a connection more
// runs than its share, so no run is claimed only to be released (each
// run is claimed exactly once) and the share is never exceeded.
func TestBulkheadHoldsWithClaimsRidingOnCommits(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		var mu sync.Mutex
		running, peak := map[string]int{}, map[string]int{}
		e.reg.Register("Quick", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			mu.Lock()
			running[r.Connection.Name]++
			peak[r.Connection.Name] = max(peak[r.Connection.Name], running[r.Connection.Name])
			mu.Unlock()
			time.Sleep(200 * time.Microsecond) // overlap, so the share fills
			mu.Lock()
			running[r.Connection.Name]--
			mu.Unlock()
			return nil
		}), processors.ForConnectionTypes("test"))
		e.defs.Connections = append(e.defs.Connections, &definitions.Connection{Name: "other", Type: "test"})
		a := *e.job(t, "Flaky")
		a.Name, a.Processor = "QuickT", "Quick"
		e.defs.Jobs = append(e.defs.Jobs, &a)
		var nrs []jobs.NewRun
		// One connection's runs: "other" only makes the share apply.
		for range 3000 {
			nrs = append(nrs, jobs.NewRun{Job: &a, Trigger: jobs.TriggerAPI})
		}
		_, err := s.EnqueueBatch(ctx, nrs)
		require.NoError(t, err)
		p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 16, ConnectionShare: 12, PollInterval: 20 * time.Millisecond})
		p.Start(ctx)
		waitFor(t, 60*time.Second, func() bool { return countStatus(t, s, jobs.StatusSucceeded) == 3000 }, "runs did not finish")
		p.Stop(ctx)
		var again int64
		require.NoError(t, s.DB().Model(&jobs.Run{}).Where("attempt <> 1").Count(&again).Error)
		require.Zero(t, again, "runs claimed more than once")
		require.LessOrEqual(t, peak["t"], 12)
	})
}
