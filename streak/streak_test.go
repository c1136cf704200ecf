package streak

import (
	"errors"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
)

func TestAnOutageIsSaidOnceThenCountedThenRecovered(t *testing.T) {
	t.Parallel()
	log, hook := test.NewNullLogger()
	l := New(log, "scheduler evaluation", logrus.ErrorLevel, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	l.OK() // nothing to recover from
	require.Empty(t, hook.AllEntries())
	down := errors.New("connection refused")
	for range 40 { // one failure a second for 40 s
		l.Fail(down, nil)
		now = now.Add(time.Second)
	}
	require.Len(t, hook.AllEntries(), 1, "40 failures in 40 s: one line")
	require.Contains(t, hook.LastEntry().Message, "scheduler evaluation failed")
	for range 30 {
		l.Fail(down, nil)
		now = now.Add(time.Second)
	}
	require.Len(t, hook.AllEntries(), 2, "a summary after a minute")
	require.Contains(t, hook.LastEntry().Message, "still failing: 60 more failures in the last 1m0s (61 since")
	require.True(t, l.Failing())
	l.OK()
	l.OK()
	require.Len(t, hook.AllEntries(), 3)
	require.Equal(t, logrus.InfoLevel, hook.LastEntry().Level)
	require.Equal(t, "scheduler evaluation recovered after 70 failures over 1m10s", hook.LastEntry().Message)
	l.Fail(down, nil)
	require.Len(t, hook.AllEntries(), 4, "a new streak is said again")
}
