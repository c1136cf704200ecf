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
		type slot struct {
			wait time.Duration
			at   time.Time // the slot's latest possible time
			took time.Duration
		}
		slots := make([]slot, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				began := time.Now()
				w, err := s.ReserveRate(ctx, "erp", 1) // one request per second
				require.NoError(t, err)
				end := time.Now()
				// The wait is counted from a clock reading taken during the
				// call: the slot lies within [began+w, end+w].
				slots[i] = slot{wait: w, at: end.Add(w), took: end.Sub(began)}
			}()
		}
		wg.Wait()
		sort.Slice(slots, func(i, j int) bool { return slots[i].wait < slots[j].wait })
		// Slot i is i seconds after the first: a wait never exceeds that
		// (plus the time a statement waits for the row lock after reading
		// its clock), and no two callers share a slot: consecutive slots lie
		// a second apart, give or take how long each call took.
		for i, sl := range slots {
			require.LessOrEqual(t, sl.wait, time.Duration(i)*time.Second+250*time.Millisecond, "slot %d", i)
			if i > 0 {
				prev := slots[i-1]
				gap := sl.at.Sub(prev.at)
				require.Greater(t, gap, time.Second-prev.took-sl.took-50*time.Millisecond, "slots %d and %d: two callers share a slot", i-1, i)
			}
		}

		w, err := s.ReserveRate(ctx, "other", 1)
		require.NoError(t, err)
		require.Zero(t, w, "another connection's first request goes at once")

		_, err = s.ReserveRate(ctx, "erp", 0)
		require.ErrorContains(t, err, "rate must be positive")
	})
}
