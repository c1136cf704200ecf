package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestKill9RescuedByOtherInstance kills (SIGKILL) the serve process that
// runs a long run. The other instance must rescue the run once its lease
// lapses and run it to success: the attempts record the dead owner's
// lease_expired attempt and the survivor's success, and the witness shows
// exactly one completed execution.
func TestKill9RescuedByOtherInstance(t *testing.T) {
	const ttl = 3 * time.Second
	dsn, store := database(t)
	out := filepath.Join(t.TempDir(), "witness.txt")
	defs := writeDefs(t, `
connections:`+witnessConnection(t, "slow", out, "5")+`
jobs:
  - name: Long
    description: takes 5 s
    connection: slow
    processor: Long
    retry:
      maxAttempts: 3
      initial: 100ms
    timeout: 20s
`)
	flags := []string{"--http", "", "--workers", "2", "--lease-ttl", ttl.String(), "--poll", "200ms", "--grace", "1s"}
	a := serve(t, "serveA", dsn, defs, nil, flags...)
	b := serve(t, "serveB", dsn, defs, nil, flags...)
	a.waitLog("workers started", 60*time.Second)
	b.waitLog("workers started", 60*time.Second)
	byPID := map[int]*proc{a.pid(): a, b.pid(): b}

	trig := start(t, "trigger", baseEnv(), "trigger", "Long", "--db", dsn, "--definitions", defs)
	require.NoError(t, trig.wait(60*time.Second), "trigger: %s", trig.output())
	m := regexp.MustCompile(`run (\d+) queued`).FindStringSubmatch(trig.output())
	require.NotNil(t, m, "trigger output: %q", trig.output())
	id, _ := strconv.ParseInt(m[1], 10, 64)

	// Wait until it runs and the witness saw it start, then kill its owner.
	var owner string
	eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		rs := runs(t, store, "id = ?", id)
		require.Len(t, rs, 1)
		if rs[0].Status == "running" && rs[0].LeaseOwner != nil && countWitness(readWitness(t, out), "start")[id] == 1 {
			owner = *rs[0].LeaseOwner
			return true, ""
		}
		return false, fmt.Sprintf("run %d to be running (now %s)", id, rs[0].Status)
	})
	i := strings.LastIndex(owner, ":")
	require.Positive(t, i, "lease owner %q is not host:pid", owner)
	pid, err := strconv.Atoi(owner[i+1:])
	require.NoError(t, err, "lease owner %q", owner)
	victim, ok := byPID[pid]
	require.True(t, ok, "lease owner %q is neither serve (pids %d, %d)", owner, a.pid(), b.pid())
	survivor := a
	if victim == a {
		survivor = b
	}
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	killed := time.Now()
	_ = victim.wait(10 * time.Second)

	// The survivor rescues it and runs it to the end.
	var rescuedAfter time.Duration
	eventually(t, ttl+20*time.Second, 50*time.Millisecond, func() (bool, string) {
		rs := runs(t, store, "id = ?", id)
		r := rs[0]
		if rescuedAfter == 0 && r.Attempt >= 2 {
			rescuedAfter = time.Since(killed)
		}
		return r.Status == "succeeded", fmt.Sprintf("run %d to succeed (now %s, execution %d)", id, r.Status, r.Attempt)
	})
	completedAfter := time.Since(killed)
	require.NotZero(t, rescuedAfter, "rescue not observed")
	// Lease renewed every ttl/3, so it lapses at most ttl after the kill;
	// the rescue sweep runs every ttl/2 and the poll every 200ms.
	require.Less(t, rescuedAfter, ttl+ttl/2+2*time.Second, "rescue took too long")
	t.Logf("kill -9 of %s: run %d restarted by %s after %s (lease TTL %s), succeeded after %s",
		victim.name, id, survivor.name, rescuedAfter.Round(10*time.Millisecond), ttl, completedAfter.Round(10*time.Millisecond))

	rs := runs(t, store, "id = ?", id)
	require.Equal(t, 2, rs[0].Attempt, "executions")
	as := attempts(t, store, id)
	require.Len(t, as, 2, "attempts: %+v", as)
	require.Equal(t, "lease_expired", as[0].Status)
	require.Equal(t, owner, as[0].Owner)
	require.Equal(t, "succeeded", as[1].Status)
	require.Equal(t, fmt.Sprintf("%s:%d", owner[:i], survivor.pid()), as[1].Owner)

	// The survivor is still healthy and the witness saw two starts (one per
	// execution) and exactly one finished execution: the killed attempt's
	// command did not outlive its runner.
	require.False(t, survivor.exited(), "survivor exited")
	time.Sleep(500 * time.Millisecond) // a leftover command of the dead attempt would have written "done" by now
	evs := readWitness(t, out)
	require.Equal(t, 2, countWitness(evs, "start")[id], "executions started: %+v", evs)
	require.Equal(t, 1, countWitness(evs, "done")[id], "executions finished: %+v", evs)
	for _, e := range evs {
		if e.Kind == "done" {
			require.Equal(t, 2, e.Attempt, "the finished execution is the rescued one: %+v", evs)
		}
	}
}
