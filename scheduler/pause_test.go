package scheduler

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// A paused job's (or schedule's, or connection's) ticks fire nothing;
// once resumed, the ticks missed meanwhile follow the misfire policy.
func TestPausedScheduleFollowsMisfirePolicyOnResume(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind     jobs.PauseKind
		name     string
		misfire  string
		wantRuns int
	}{
		{jobs.PauseJob, "Sync", definitions.MisfireRunOnce, 2},
		{jobs.PauseSchedule, "Sync", definitions.MisfireSkip, 1},
		{jobs.PauseConnection, "erp", definitions.MisfireRunOnce, 2},
	} {
		t.Run(string(tc.kind)+" "+tc.misfire, func(t *testing.T) {
			t.Parallel()
			jobstest.For(t, func(t *testing.T, store *jobs.Store) {
				ctx := context.Background()
				set := defs(job("Sync", "@every 1m", "", tc.misfire, definitions.OverlapAllow))
				set.Connections = []*definitions.Connection{{Name: "erp", Type: "noop"}}
				s, err := New(Config{Store: store, Definitions: set, Log: quietLog()})
				require.NoError(t, err)
				require.NoError(t, s.Tick(ctx, utc("2026-05-01T10:00:30Z")))
				require.NoError(t, s.Tick(ctx, utc("2026-05-01T10:01:01Z")))
				require.Len(t, runs(t, store, "Sync"), 1)

				require.NoError(t, store.Pause(ctx, jobs.Pause{Kind: tc.kind, Name: tc.name, By: "test"}))
				for _, at := range []string{"10:02:01", "10:03:01", "10:04:01", "10:05:01"} {
					require.NoError(t, s.Tick(ctx, utc("2026-05-01T"+at+"Z")))
				}
				require.Len(t, runs(t, store, "Sync"), 1, "nothing fires while held")

				ok, err := store.Resume(ctx, tc.kind, tc.name)
				require.NoError(t, err)
				require.True(t, ok)
				require.NoError(t, s.Tick(ctx, utc("2026-05-01T10:06:30Z")))
				rs := runs(t, store, "Sync")
				require.Len(t, rs, tc.wantRuns)
				if tc.wantRuns == 2 {
					require.Contains(t, rs[1].TriggeredBy, "catch-up", "one catch-up run for the ticks missed while held")
				}
				require.NoError(t, s.Tick(ctx, utc("2026-05-01T10:07:01Z")))
				require.Len(t, runs(t, store, "Sync"), tc.wantRuns+1, "it fires normally again")
			})
		})
	}
}
