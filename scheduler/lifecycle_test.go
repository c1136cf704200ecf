package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobrunner/jobrunner/cronspec"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// Not parallel: goleak compares against the goroutines at its start.
func TestLifecycleLeavesNoGoroutines(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) }) // runs after the store is closed
	store := jobstest.Open(t, "sqlite")
	set := defs(job("Sync", "@every 1s", "", "", definitions.OverlapAllow))

	// Real clock: Start, Stop, and the life-cycle errors.
	s, err := New(Config{Store: store, Definitions: set})
	require.NoError(t, err)
	require.False(t, s.Running())
	require.NoError(t, s.Start(context.Background()))
	require.True(t, s.Running())
	require.ErrorIs(t, s.Start(context.Background()), ErrStarted)
	require.NoError(t, s.Stop())
	require.False(t, s.Running())
	require.NoError(t, s.Stop(), "idempotent")
	require.ErrorIs(t, s.Start(context.Background()), ErrStopped)

	// Stop before Start.
	s, err = New(Config{Store: store, Definitions: set})
	require.NoError(t, err)
	require.NoError(t, s.Stop())
	require.ErrorIs(t, s.Start(context.Background()), ErrStopped)

	// Cancelling Start's context stops it.
	ctx, cancel := context.WithCancel(context.Background())
	s, err = New(Config{Store: store, Definitions: set})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	cancel()
	s.ctxWatch.Wait() // the watcher has shut it down
	require.False(t, s.Running())
	require.NoError(t, s.Stop())

	// A fake clock with gocron firing a few evaluations.
	// (Another job: the real clock above recorded Sync's last tick now.)
	h := start(t, Config{Store: store, Definitions: defs(job("Fake", "@every 1s", "", "", definitions.OverlapAllow))}, utc("2026-05-01T10:00:00.5Z"))
	h.advance(3)
	require.Len(t, ticks(t, store, "Fake"), 3)
	require.NoError(t, h.s.Stop())
}

// A failed evaluation loses no tick: the next one, within MisfireGrace,
// enqueues it.
func TestFailedEvaluationIsRetried(t *testing.T) {
	t.Parallel()
	store := jobstest.Open(t, "sqlite")
	s, err := New(Config{Store: store, Definitions: defs(job("Sync", "@every 1m", "", "", "")), Log: quietLog()})
	require.NoError(t, err)
	require.NoError(t, s.Tick(context.Background(), utc("2026-05-01T10:00:30Z")))
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, s.Tick(dead, utc("2026-05-01T10:01:00Z")), context.Canceled)
	require.Empty(t, ticks(t, store, "Sync"))
	require.NoError(t, s.Tick(context.Background(), utc("2026-05-01T10:01:03Z")))
	require.Equal(t, []time.Time{utc("2026-05-01T10:01:00Z")}, ticks(t, store, "Sync"))
}

// latestTick and countTicks agree with stepping Next one tick at a time.
func TestLatestAndCountTicks(t *testing.T) {
	t.Parallel()
	ams, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	tests := []struct {
		spec  string
		loc   *time.Location
		after string
		span  time.Duration
	}{
		{"@every 1m", nil, "2026-05-01T10:00:30Z", time.Hour},
		{"@every 90s", nil, "2026-05-01T10:00:00Z", 3 * time.Hour},
		{"*/7 * * * * *", nil, "2026-05-01T10:00:00Z", time.Hour},
		{"0 * * * *", ams, "2026-03-28T23:00:00Z", 24 * time.Hour},
		{"30 2 * * *", ams, "2026-03-27T00:00:00Z", 5 * 24 * time.Hour},
		{"30 2 * * *", ams, "2026-10-23T00:00:00Z", 5 * 24 * time.Hour},
		{"0 9 * * mon-fri", nil, "2026-01-01T00:00:00Z", 40 * 24 * time.Hour},
		{"0 0 1 1 *", nil, "2026-03-01T00:00:00Z", 24 * time.Hour}, // none in the span
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			spec, err := cronspec.Parse(tc.spec, tc.loc)
			require.NoError(t, err)
			after := utc(tc.after)
			// Several end points, including ones exactly on a tick.
			ends := []time.Time{after.Add(tc.span), after.Add(tc.span / 3), spec.Next(after.Add(tc.span / 2))}
			for _, end := range ends {
				if end.IsZero() {
					continue
				}
				var want []time.Time
				for x := spec.Next(after); !x.IsZero() && !x.After(end); x = spec.Next(x) {
					want = append(want, x)
				}
				got, ok := latestTick(spec, after, end)
				n, atLeast := countTicks(spec, after, end)
				require.False(t, atLeast)
				require.Equal(t, int64(len(want)), n, "count up to %s", end)
				if len(want) == 0 {
					require.False(t, ok, "none up to %s", end)
					continue
				}
				require.True(t, ok)
				require.True(t, want[len(want)-1].Equal(got), "latest up to %s: got %s want %s", end, got, want[len(want)-1])
			}
		})
	}
}
