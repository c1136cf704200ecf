package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/recordsync"
	"github.com/stretchr/testify/require"
)

func TestSyncStateRoundTrip(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 11, 1, 10, 0, 0, 123456000, time.UTC)
		_, ok, err := s.SyncMark(ctx, "Sync")
		require.NoError(t, err)
		require.False(t, ok)

		a := recordsync.Change{Key: recordsync.ChangeKey("A"), Subject: "A", Time: t0}
		b := recordsync.Change{Key: recordsync.ChangeKey("B"), Subject: "B", Time: t0.Add(time.Second)}
		c := recordsync.Change{Key: recordsync.ChangeKey("C"), Subject: "C", Time: t0.Add(2 * time.Second), Data: []byte(`{"x":1}`)}
		require.NoError(t, s.SyncCommit(ctx, "Sync", recordsync.Commit{Mark: t0, Done: []recordsync.Change{a, b},
			Park: []recordsync.Pending{{Change: c, Attempts: 3, Code: "EOI011", Message: "waiting"}}}))
		mark, ok, err := s.SyncMark(ctx, "Sync")
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, mark.Equal(t0), "%v", mark)

		done, err := s.SyncDone(ctx, "Sync", []string{a.Key, b.Key, c.Key, "nope"})
		require.NoError(t, err)
		require.Equal(t, map[string]bool{a.Key: true, b.Key: true, c.Key: true}, done)
		other, err := s.SyncDone(ctx, "Other", []string{a.Key})
		require.NoError(t, err)
		require.Empty(t, other)

		p, err := s.SyncPending(ctx, "Sync", "", 10)
		require.NoError(t, err)
		require.Len(t, p, 1)
		require.Equal(t, "C", p[0].Subject)
		require.Equal(t, 3, p[0].Attempts)
		require.Equal(t, "EOI011", p[0].Code)
		require.JSONEq(t, `{"x":1}`, string(p[0].Data))
		require.True(t, p[0].Time.Equal(c.Time))

		// Carrying again updates it; the mark passing b forgets a's done key.
		p[0].Attempts = 4
		require.NoError(t, s.SyncCommit(ctx, "Sync", recordsync.Commit{Mark: b.Time, Park: p}))
		done, err = s.SyncDone(ctx, "Sync", []string{a.Key, b.Key})
		require.NoError(t, err)
		require.Equal(t, map[string]bool{b.Key: true}, done)
		p, err = s.SyncPending(ctx, "Sync", "", 10)
		require.NoError(t, err)
		require.Equal(t, 4, p[0].Attempts)

		// Delivered: no longer pending.
		require.NoError(t, s.SyncCommit(ctx, "Sync", recordsync.Commit{Done: []recordsync.Change{c}}))
		n, err := s.SyncPendingCount(ctx, "Sync")
		require.NoError(t, err)
		require.Zero(t, n)
		// Idempotent: the same commit twice is fine.
		require.NoError(t, s.SyncCommit(ctx, "Sync", recordsync.Commit{Done: []recordsync.Change{c}}))
	})
}
