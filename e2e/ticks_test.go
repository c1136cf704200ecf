package e2e

import (
	"fmt"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTicksThreeInstancesOneRunPerTick runs three `serve` processes on one
// database with a definition that fires every second, for 30 s. Every
// instance fires every tick; the database must turn that into exactly one
// run per scheduled second — no duplicate, no gap — and the exec witness
// must show each of those runs executed exactly once.
func TestTicksThreeInstancesOneRunPerTick(t *testing.T) {
	const window = 30 * time.Second
	dsn, store := database(t)
	out := filepath.Join(t.TempDir(), "witness.txt")
	defs := writeDefs(t, `
connections:`+witnessConnection(t, "witness", out, "")+`
jobs:
  - name: Tick
    description: fires every second; the witness records each execution
    connection: witness
    processor: Tick
    schedule:
      cron: "* * * * * *"
    concurrency:
      overlap: allow
    retry:
      maxAttempts: 1
    timeout: 10s
`)

	var serves []*proc
	for i := range 3 {
		serves = append(serves, serve(t, fmt.Sprintf("serve%d", i+1), dsn, defs, nil,
			"--http", "", "--workers", "4", "--grace", "10s", "--poll", "500ms"))
	}
	for _, p := range serves {
		p.waitLog("workers started", 60*time.Second)
	}
	time.Sleep(window)
	// Stop all three (no more ticks), then drain what is still queued with
	// an instance that does not schedule.
	for _, p := range serves {
		p.signal(syscall.SIGTERM)
	}
	for _, p := range serves {
		require.NoError(t, p.wait(30*time.Second), "%s exit", p.name)
	}
	drain := serve(t, "drain", dsn, defs, nil, "--http", "", "--workers", "4", "--no-scheduler", "--poll", "200ms")
	drain.waitLog("workers started", 60*time.Second)
	eventually(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "Tick")
		return c["queued"] == 0 && c["running"] == 0, fmt.Sprintf("every Tick run to finish (now %v)", c)
	})
	drain.signal(syscall.SIGTERM)
	require.NoError(t, drain.wait(30*time.Second))

	all := runs(t, store, "job = ?", "Tick")
	var ticks []time.Time
	seen := map[time.Time]int64{}
	for _, r := range all {
		require.Equal(t, "schedule", r.TriggerKind, "run %d", r.ID)
		require.NotNil(t, r.ScheduledFor, "run %d has no scheduled_for", r.ID)
		tick := r.ScheduledFor.UTC()
		if other, dup := seen[tick]; dup {
			t.Fatalf("runs %d and %d share the tick %s", other, r.ID, tick.Format(time.RFC3339Nano))
		}
		seen[tick] = r.ID
		ticks = append(ticks, tick)
		require.Equal(t, "succeeded", r.Status, "run %d (%s)", r.ID, tick)
		require.Equal(t, 1, r.Attempt, "run %d executions", r.ID)
	}
	// ~30 ticks in the window; allow for start-up and scheduler alignment.
	require.GreaterOrEqual(t, len(ticks), int(window/time.Second)-3, "runs in %s", window)
	require.LessOrEqual(t, len(ticks), int(window/time.Second)+15, "runs in %s", window)
	sort.Slice(ticks, func(i, j int) bool { return ticks[i].Before(ticks[j]) })
	for i, tick := range ticks {
		require.Equal(t, 0, tick.Nanosecond(), "tick %s is not a whole second", tick.Format(time.RFC3339Nano))
		if i > 0 {
			require.Equal(t, time.Second, tick.Sub(ticks[i-1]), "gap or duplicate between ticks %s and %s",
				ticks[i-1].Format(time.RFC3339), tick.Format(time.RFC3339))
		}
	}

	// External witness: each run executed exactly once, and nothing else ran.
	evs := readWitness(t, out)
	starts, dones := countWitness(evs, "start"), countWitness(evs, "done")
	require.Len(t, starts, len(all), "runs the witness saw start: %v", sortedKeys(starts))
	for _, r := range all {
		require.Equal(t, 1, starts[r.ID], "executions of run %d", r.ID)
		require.Equal(t, 1, dones[r.ID], "completed executions of run %d", r.ID)
	}

	// Who executed them: every attempt succeeded, owners spread (reported).
	owners := map[string]int{}
	for _, r := range all {
		as := attempts(t, store, r.ID)
		require.Len(t, as, 1, "attempts of run %d", r.ID)
		require.Equal(t, "succeeded", as[0].Status)
		owners[as[0].Owner]++
	}
	t.Logf("%d ticks from %s to %s, one run each; executions per instance: %v",
		len(ticks), ticks[0].Format(time.TimeOnly), ticks[len(ticks)-1].Format(time.TimeOnly), owners)
}
