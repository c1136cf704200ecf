package jobs_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// TestReserveRateHandsOutOneSlotEach: callers reserving at once (as
// workers of several instances do) each get their own slot, 1/rate
// apart; a connection's slots do not delay another's.
func TestReserveRateHandsOutOneSlotEach(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		const n = 30
		waits := make([]time.Duration, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := s.ReserveRate(ctx, "erp", 1) // one request per second
				require.NoError(t, err)
				waits[i] = w
			}()
		}
		wg.Wait()
		sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
		// Slot i is i seconds after the first; each wait is that minus the
		// time taken to get there (well under half a second). A caller's
		// clock reading is taken when its statement starts, before it waits
		// for the row lock, so a wait may exceed its slot by that lock wait
		// (a little late, never early).
		for i, w := range waits {
			require.LessOrEqual(t, w, time.Duration(i)*time.Second+250*time.Millisecond, "slot %d", i)
			require.Greater(t, w, time.Duration(i)*time.Second-500*time.Millisecond, "slot %d: two callers share a slot", i)
		}

		w, err := s.ReserveRate(ctx, "other", 1)
		require.NoError(t, err)
		require.Zero(t, w, "another connection's first request goes at once")

		_, err = s.ReserveRate(ctx, "erp", 0)
		require.ErrorContains(t, err, "rate must be positive")
	})
}
