package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
)

// TestGuardRefusesSideEffectAfterPause is the SIGSTOP case: a worker that
// was paused longer than its lease (by its own monotonic clock) must
// confirm the lease in the database before an ERP call, and must make no
// call for a run that was rescued and claimed by another worker meanwhile.
func TestGuardRefusesSideEffectAfterPause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+t.TempDir()+"/g.db", OpenOptions{})
	require.NoError(t, err)
	defer s.Close()
	job := &definitions.Job{Name: "G", Retry: definitions.RetryPolicy{MaxAttempts: 3}}
	enq, err := s.Enqueue(ctx, NewRun{Job: job, Trigger: TriggerAPI})
	require.NoError(t, err)
	mine, err := s.ClaimRun(ctx, enq.Run.ID, "paused-worker", 50*time.Millisecond)
	require.NoError(t, err)

	var cancelled error
	hb := &heartbeat{clock: realClock, store: s, claim: mine, cancel: func(err error) { cancelled = err }, progress: func() Progress { return Progress{} },
		lastOK: time.Now()}
	require.NoError(t, hb.guard(ctx), "a fresh lease needs no database round trip")

	// The worker is paused past its lease; another instance rescues the
	// run and claims it.
	time.Sleep(60 * time.Millisecond)
	n, err := s.RescueExpired(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	other, err := s.ClaimRun(ctx, enq.Run.ID, "other-worker", time.Minute)
	require.NoError(t, err)

	// Resumed: the guard sees its lease is stale by the local clock,
	// checks the database and refuses.
	err = hb.guard(ctx)
	require.ErrorIs(t, err, ErrLeaseLost)
	require.ErrorIs(t, cancelled, errLeaseGone, "the paused worker's processor is cancelled")
	_, err = s.Heartbeat(ctx, other, Progress{})
	require.NoError(t, err, "the new owner keeps its lease")
}

// TestStopReleasesUnconfirmedClaim: a claim whose reply was lost (its
// commit landed) is released at stop, not left to its lease.
func TestStopReleasesUnconfirmedClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+t.TempDir()+"/u.db", OpenOptions{})
	require.NoError(t, err)
	defer s.Close()
	job := &definitions.Job{Name: "U", Retry: definitions.RetryPolicy{MaxAttempts: 1}}
	enq, err := s.Enqueue(ctx, NewRun{Job: job, Trigger: TriggerAPI})
	require.NoError(t, err)
	p := NewPool(PoolConfig{Executor: &Executor{Store: s, Owner: "me"}})
	claims, err := s.claimBatch(ctx, claimOptions{Owner: "me", Max: 1, TTL: time.Minute, Token: "lost-reply"})
	require.NoError(t, err)
	require.Len(t, claims, 1)

	p.releaseUnconfirmed(p.ex.logger().WithField("t", 1), "lost-reply")
	r, err := s.Get(ctx, enq.Run.ID)
	require.NoError(t, err)
	require.Equal(t, StatusQueued, r.Status)
	require.Equal(t, 0, r.AttemptsUsed(), "released, not an attempt used")
	require.Nil(t, r.LeaseToken)
}

// TestDefaultConnectionShare: three quarters of the workers, at most
// MaxDefaultConnectionShare; only the plain three-quarter share is off
// when every job calls one connection (it only leaves room for others),
// the capped one also spares the ERP.
func TestDefaultConnectionShare(t *testing.T) {
	t.Parallel()
	s := &Store{} // never used: the pool is not started
	for _, tc := range []struct {
		workers, share, want int
		forOthers            bool
	}{
		{16, 0, 12, true},
		{21, 0, 15, true},
		{64, 0, MaxDefaultConnectionShare, false},
		{1000, 0, MaxDefaultConnectionShare, false},
		{64, 40, 40, false},
		{64, -1, 0, false},
		{2, 0, 0, false},
	} {
		p := NewPool(PoolConfig{Executor: &Executor{Store: s, Owner: "me"}, Workers: tc.workers, ConnectionShare: tc.share})
		require.Equal(t, tc.want, p.cfg.ConnectionShare, "workers %d share %d", tc.workers, tc.share)
		require.Equal(t, tc.forOthers, p.shareForOthers, "workers %d share %d", tc.workers, tc.share)
	}
	// serve's default: many workers, few per connection.
	require.Equal(t, 512, DefaultWorkers)
	require.Equal(t, MaxDefaultConnectionShare, NewPool(PoolConfig{Executor: &Executor{Store: s, Owner: "me"}, Workers: DefaultWorkers}).cfg.ConnectionShare)
}

// TestClaimsTakenWhileStoppingGoBack: a claim that rode on an outcome
// commit and landed after Stop closed the workers' queue is put back in
// the queue without using an attempt, and its slots are given back.
func TestClaimsTakenWhileStoppingGoBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+t.TempDir()+"/a.db", OpenOptions{})
	require.NoError(t, err)
	defer s.Close()
	job := &definitions.Job{Name: "A", Retry: definitions.RetryPolicy{MaxAttempts: 1}}
	for range 3 {
		_, err := s.Enqueue(ctx, NewRun{Job: job, Trigger: TriggerAPI})
		require.NoError(t, err)
	}
	p := NewPool(PoolConfig{Executor: &Executor{Store: s, Owner: "me"}, Workers: 8})
	want := p.reserve(5)
	require.Equal(t, 5, want)
	ahead := &claimOptions{Owner: "me", Max: want, TTL: time.Minute, Token: newToken()}
	claims, err := s.claimBatch(ctx, *ahead)
	require.NoError(t, err)
	require.Len(t, claims, 3)
	p.workClosed = true
	p.claimMu.Lock() // as claimAhead leaves it with a bulkhead
	p.tookAhead(&aheadClaim{opts: *ahead, locked: true}, claims, nil)
	require.Zero(t, p.reserved.Load(), "the slots are given back")
	require.Zero(t, p.busy.Load())
	for _, c := range claims {
		r, err := s.Get(ctx, c.Run.ID)
		require.NoError(t, err)
		require.Equal(t, StatusQueued, r.Status)
		require.Zero(t, r.AttemptsUsed(), "no attempt used")
	}
	require.False(t, p.moreDue.Load(), "fewer than asked: the queue is drained")
}

// TestRedactorsAreSharedPerSecretSet: one redactor per distinct set of
// secrets, none for no secrets, a new one when a value rotates.
func TestRedactorsAreSharedPerSecretSet(t *testing.T) {
	t.Parallel()
	require.Nil(t, newRedactor(nil))
	a := newRedactor(map[string]string{"token": "rotating-value-1", "user": "x"})
	b := newRedactor(map[string]string{"user": "x", "token": "rotating-value-1"})
	require.Same(t, a, b)
	require.Equal(t, "call with [REDACTED]", a.Redact("call with rotating-value-1"))
	c := newRedactor(map[string]string{"token": "rotating-value-2", "user": "x"})
	require.NotSame(t, a, c)
	require.Equal(t, "call with [REDACTED]", c.Redact("call with rotating-value-2"))
	require.Equal(t, "call with [REDACTED]", a.Redact("call with rotating-value-1"), "the old one still hides the old value")
}
