package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

func TestZZDebug(t *testing.T) {
	store := jobstest.Open(t, "sqlite")
	clock := clockwork.NewFakeClockAt(utc("2026-05-01T10:00:30Z"))
	s, err := New(Config{Store: store, Definitions: defs(job("Sync", "@every 1m", "", "", definitions.OverlapAllow)), Clock: clock, Resolution: 10 * time.Second, Log: quietLog()})
	require.NoError(t, err)
	evals := make(chan time.Time, 1000)
	s.afterEval = func(now time.Time) { evals <- now }
	require.NoError(t, s.Start(context.Background()))
	defer s.Stop()
	for i := 0; i < 12; i++ {
		require.NoError(t, clock.BlockUntilContext(context.Background(), 1))
		clock.Advance(10 * time.Second)
		want := clock.Now()
		for {
			got := <-evals
			fmt.Println("step", i, got.Format("15:04:05"), "queued", len(evals))
			if got.Equal(want) {
				break
			}
		}
	}
}
