package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGracefulShutdownReleasesRun sends SIGTERM to a serve with a long run
// in progress and --grace 1s: the run must go back to the queue without
// consuming an attempt (attempt row "released"), the process must exit
// cleanly within the grace period plus the command's kill grace, and a
// serve started afterwards must run it to success at once.
func TestGracefulShutdownReleasesRun(t *testing.T) {
	dsn, store := database(t)
	out := filepath.Join(t.TempDir(), "witness.txt")
	defs := writeDefs(t, `
connections:`+witnessConnection(t, "slow", out, "4")+`
jobs:
  - name: Long
    description: takes 4 s
    connection: slow
    processor: Long
    retry:
      maxAttempts: 1
    timeout: 20s
`)
	flags := []string{"--http", "", "--workers", "2", "--grace", "1s", "--poll", "200ms"}
	first := serve(t, "first", dsn, defs, nil, flags...)
	first.waitLog("workers started", 60*time.Second)

	trig := start(t, "trigger", baseEnv(), "trigger", "Long", "--db", dsn, "--definitions", defs)
	require.NoError(t, trig.wait(60*time.Second), "trigger: %s", trig.output())
	m := regexp.MustCompile(`run (\d+) queued`).FindStringSubmatch(trig.output())
	require.NotNil(t, m, "trigger output: %q", trig.output())
	id, _ := strconv.ParseInt(m[1], 10, 64)

	eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		r := runs(t, store, "id = ?", id)[0]
		return r.Status == "running" && countWitness(readWitness(t, out), "start")[id] == 1,
			fmt.Sprintf("run %d to be running (now %s)", id, r.Status)
	})
	first.signal(syscall.SIGTERM)
	termAt := time.Now()
	require.NoError(t, first.wait(15*time.Second), "first serve's exit")
	stopTook := time.Since(termAt)
	// grace 1s, then the command gets SIGTERM (sh dies at once).
	require.Less(t, stopTook, 4*time.Second, "shutdown took too long")

	r := runs(t, store, "id = ?", id)[0]
	require.Equal(t, "queued", r.Status, "released run's status")
	require.Nil(t, r.LeaseOwner, "released run keeps a lease owner")
	as := attempts(t, store, id)
	require.Len(t, as, 1, "attempts: %+v", as)
	require.Equal(t, "released", as[0].Status)
	// With maxAttempts 1, a consumed attempt would leave nothing to retry.
	require.Equal(t, 1, r.Attempt, "executions")
	require.Equal(t, 1, r.Snoozes, "the release must not consume an attempt")
	require.Zero(t, countWitness(readWitness(t, out), "done")[id], "the released execution finished anyway")

	second := serve(t, "second", dsn, defs, nil, flags...)
	second.waitLog("workers started", 60*time.Second)
	startedAgain := time.Now()
	eventually(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		r := runs(t, store, "id = ?", id)[0]
		return r.Status == "succeeded", fmt.Sprintf("run %d to succeed (now %s)", id, r.Status)
	})
	t.Logf("SIGTERM → exit in %s; the second serve finished the released run %s after its start",
		stopTook.Round(10*time.Millisecond), time.Since(startedAgain).Round(10*time.Millisecond))

	as = attempts(t, store, id)
	require.Len(t, as, 2, "attempts: %+v", as)
	require.Equal(t, "released", as[0].Status)
	require.Equal(t, "succeeded", as[1].Status)
	require.Contains(t, as[1].Owner, fmt.Sprintf(":%d", second.pid()))
	evs := readWitness(t, out)
	require.Equal(t, 2, countWitness(evs, "start")[id], "executions started: %+v", evs)
	require.Equal(t, 1, countWitness(evs, "done")[id], "executions finished: %+v", evs)
}
