package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
)

// TestRateWaiterGivesUpASlotItWokeTooLateFor: a caller that wakes more
// than two slots (2/rate) after its slot reserves another instead of
// sending into the slots of the callers after it, at most lateRetries
// times; one on time, or late by less than that, sends.
func TestRateWaiterGivesUpASlotItWokeTooLateFor(t *testing.T) {
	t.Parallel()
	const slot = 100 * time.Millisecond // every reservation waits this long
	tests := []struct {
		name   string
		stalls []time.Duration // how late the caller wakes for each slot it reserves
	}{
		{"on time", []time.Duration{0}},
		{"late by less than two slots (100 ms at 20/s)", []time.Duration{90 * time.Millisecond}},
		{"late by more: reserves again", []time.Duration{300 * time.Millisecond, 0}},
		{"late twice", []time.Duration{time.Second, 150 * time.Millisecond, 10 * time.Millisecond}},
		{"always late: sends after lateRetries", []time.Duration{time.Second, time.Second, time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := clockwork.NewFakeClock()
			reserves := 0
			wait := rateWaiter(clock, "erp", 20, func(context.Context) (time.Duration, error) {
				reserves++
				return slot, nil
			})
			done := make(chan error, 1)
			go func() { done <- wait(context.Background()) }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, stall := range tt.stalls {
				require.NoError(t, clock.BlockUntilContext(ctx, 1), "the caller waits for its slot")
				clock.Advance(slot + stall)
			}
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-ctx.Done():
				t.Fatal("the caller did not send")
			}
			require.Equal(t, len(tt.stalls), reserves)
		})
	}
	require.Equal(t, 3, lateRetries, "the last case has lateRetries+1 stalls")
}

// TestRateWaiterGivesUpASlowReservation: a reservation that took longer
// than two slots (its COMMIT waited for a stalled log flush) may hand out a
// slot already past; the caller reserves again rather than send into the
// slots after it.
func TestRateWaiterGivesUpASlowReservation(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	var took []time.Duration
	wait := rateWaiter(clock, "erp", 20, func(context.Context) (time.Duration, error) {
		d := 200 * time.Millisecond // the first is slow
		if len(took) > 0 {
			d = time.Millisecond
		}
		took = append(took, d)
		clock.Advance(d)
		return 0, nil
	})
	require.NoError(t, wait(context.Background()))
	require.Equal(t, []time.Duration{200 * time.Millisecond, time.Millisecond}, took, "reserved again after the slow one only")
}

// TestRateWaiterStopsWithItsContext: a caller waiting for its slot gives
// up when its context ends, saying what it waited for; a failed
// reservation is returned as is.
func TestRateWaiterStopsWithItsContext(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	wait := rateWaiter(clock, "erp", 20, func(context.Context) (time.Duration, error) { return time.Minute, nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wait(ctx) }()
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer bcancel()
	require.NoError(t, clock.BlockUntilContext(bctx, 1))
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "waiting 1m0s for a request slot of connection erp (rateLimit 20/s)")

	boom := errors.New("boom")
	wait = rateWaiter(clock, "erp", 20, func(context.Context) (time.Duration, error) { return 0, boom })
	require.ErrorIs(t, wait(context.Background()), boom)
}
