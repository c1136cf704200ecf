package jobs_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
)

func TestSnoozeDelayCappedByTheJobAndJittered(t *testing.T) {
	t.Parallel()
	p := definitions.RetryPolicy{Max: definitions.Duration(time.Minute), Jitter: 0.2}
	mid := func() float64 { return 0.5 }
	require.Equal(t, time.Minute, jobs.SnoozeDelay(p, 10*time.Minute, false, mid), "a long Retry-After is capped at retry.max")
	require.Equal(t, 10*time.Minute, jobs.SnoozeDelay(p, 10*time.Minute, true, mid), "a horizon wait is not")
	require.Equal(t, 30*time.Second, jobs.SnoozeDelay(p, 30*time.Second, false, mid))
	lo, hi := jobs.SnoozeDelay(p, 30*time.Second, false, func() float64 { return 0 }), jobs.SnoozeDelay(p, 30*time.Second, false, func() float64 { return 0.999 })
	require.Equal(t, 27*time.Second, lo, "spread by ±jitter/2")
	require.Greater(t, hi, 32*time.Second)
}

func TestWaiting(t *testing.T) {
	t.Parallel()
	r := jobs.Run{Status: jobs.StatusQueued, Attempt: 3, Snoozes: 2, ErrorCode: "EOI011"}
	require.True(t, r.Waiting())
	r.Status = jobs.StatusRunning
	require.False(t, r.Waiting())
	require.False(t, (&jobs.Run{Status: jobs.StatusQueued, Attempt: 1, ErrorCode: "ERP_UNAVAILABLE"}).Waiting(), "a retry after a failed attempt is not a wait")
}
