package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
)

const halfSecondJob = `
jobs:
  - name: Half
    description: takes half a second; the witness records each execution
    connection: witness
    processor: Half
    retry:
      maxAttempts: 3
      initial: 1s
    timeout: 20s
`

// TestDatabaseOutage10s stops the (private) MariaDB for 10 s while runs are
// queued and running under one serve (4 workers, 30 s leases). The serve
// must keep going (logging that it retries), the API must refuse triggers
// with 503 while the database is away, and once it is back every run must
// succeed, none lost and — per the external witness — each executed
// exactly once: with a 30 s lease a 10 s outage must not cause a rescue.
func TestDatabaseOutage10s(t *testing.T) {
	const (
		total  = 40
		outage = 10 * time.Second
	)
	m := newPrivateMariaDB(t)
	m.start()
	m.createDatabase("jr")
	dsn := m.dsn("jr")
	ctx := context.Background()
	store, err := jobs.Open(ctx, dsn, jobs.OpenOptions{MaxOpenConns: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })

	out := filepath.Join(t.TempDir(), "witness.txt")
	defs := writeDefs(t, "connections:"+witnessConnection(t, "witness", out, "0.5")+halfSecondJob)
	set, err := definitions.LoadDir(defs)
	require.NoError(t, err)
	job, ok := set.Job("Half")
	require.True(t, ok)
	params, err := job.ParseParams(nil)
	require.NoError(t, err)
	for range total {
		e, err := store.Enqueue(ctx, jobs.NewRun{Job: job, Params: params, Trigger: jobs.TriggerManual, TriggeredBy: "e2e"})
		require.NoError(t, err)
		require.True(t, e.Created)
	}

	addr := freeAddr(t)
	srv := serve(t, "serve", dsn, defs, nil, "--http", addr, "--workers", "4", "--lease-ttl", "30s", "--poll", "500ms")
	srv.waitLog("workers started", 60*time.Second)

	// Some runs done, some running, most still queued: pull the plug.
	eventually(t, 60*time.Second, 20*time.Millisecond, func() (bool, string) {
		n := len(countWitness(readWitness(t, out), "done"))
		return n >= 4, fmt.Sprintf("4 executions to finish (now %d)", n)
	})
	m.stop()
	down := time.Now()
	before := readWitness(t, out)
	t.Logf("database stopped: %d executions started, %d finished", len(countWitness(before, "start")), len(countWitness(before, "done")))

	// While it is down, an API trigger must be refused, not accepted and lost.
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Post("http://"+addr+"/api/v1/jobs/Half/runs", "application/json", strings.NewReader(`{"parameters":{}}`))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "trigger while the database is down")
	require.NotEmpty(t, resp.Header.Get("Retry-After"), "503 without Retry-After")

	time.Sleep(outage - time.Since(down)) // the outage itself, not an assertion
	if srv.exited() {
		t.Fatalf("serve exited while the database was down: %v", srv.err) // err is set before done closes
	}
	during := readWitness(t, out)
	m.start()
	up := time.Now()
	t.Logf("database back after %s", up.Sub(down).Round(10*time.Millisecond))

	eventually(t, 90*time.Second, 200*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "Half")
		return c["succeeded"]+c["failed"]+c["cancelled"] == total, fmt.Sprintf("all %d runs to finish (now %v)", total, c)
	})
	recovered := time.Since(up)
	require.Equal(t, map[string]int{"succeeded": total}, statusCounts(t, store, "Half"), "final statuses (%d runs)", total)
	all := runs(t, store, "")
	require.Len(t, all, total, "runs: the 503 trigger must not have been stored")
	evs := readWitness(t, out)
	starts, dones := countWitness(evs, "start"), countWitness(evs, "done")
	require.Len(t, starts, total)
	for _, r := range all {
		require.Equal(t, 1, starts[r.ID], "executions of run %d", r.ID)
		require.Equal(t, 1, dones[r.ID], "finished executions of run %d", r.ID)
	}
	// No run may have waited for its lease to lapse: a claim whose COMMIT
	// reached the server while its answer was lost must not leave runs
	// "running" under a lease nobody holds, to be rescued TTL later with
	// an attempt consumed (with maxAttempts 1 they would fail).
	for _, r := range all {
		as := attempts(t, store, r.ID)
		statuses := make([]string, len(as))
		for i, a := range as {
			statuses[i] = a.Status
		}
		require.Equal(t, []string{"succeeded"}, statuses, "attempts of run %d (%s)", r.ID, r.ErrorCode)
	}
	require.Less(t, recovered, 25*time.Second, "runs finished only %s after the database came back", recovered)

	if srv.exited() {
		t.Fatalf("serve exited: %v", srv.err)
	}
	log := srv.output()
	claimRetries := countLines(log, "cannot claim runs, retrying")
	recordRetries := countLines(log, "cannot record the run's outcome yet, retrying")
	require.Positive(t, claimRetries+recordRetries, "serve did not log that it was retrying")
	finishedDuring := len(countWitness(during, "done")) - len(countWitness(before, "done"))
	t.Logf("outage %s: %d executions finished while the database was down (outcome recorded after); "+
		"all %d runs succeeded %s after it came back; serve logged %d claim retries, %d record retries",
		up.Sub(down).Round(10*time.Millisecond), finishedDuring, total, recovered.Round(10*time.Millisecond), claimRetries, recordRetries)
}

// TestServeStartsWhileDatabaseDown starts serve before its database is
// up: it must wait with backoff (logging so) instead of crashing, and work
// once the database is there. `jobrunner trigger` while the database is
// down must fail with a non-zero exit, not hang and not claim success.
func TestServeStartsWhileDatabaseDown(t *testing.T) {
	m := newPrivateMariaDB(t)
	m.start()
	m.createDatabase("jr")
	m.stop()
	dsn := m.dsn("jr")
	out := filepath.Join(t.TempDir(), "witness.txt")
	defs := writeDefs(t, "connections:"+witnessConnection(t, "witness", out, "")+halfSecondJob)

	srv := serve(t, "serve", dsn, defs, nil, "--http", "", "--workers", "2", "--poll", "200ms")
	srv.waitLog("database not reachable yet, retrying", 30*time.Second)

	trig := start(t, "trigger-down", baseEnv(), "trigger", "Half", "--db", dsn, "--definitions", defs)
	err := trig.wait(60 * time.Second)
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "trigger while the database is down: %s", trig.output())
	require.Equal(t, 1, exitErr.ExitCode(), "trigger exit code: %s", trig.output())
	require.NotContains(t, trig.output(), "queued")

	time.Sleep(2 * time.Second) // let serve retry a few times more
	require.False(t, srv.exited(), "serve gave up: %v\n%s", srv.err, srv.output())
	m.start()
	up := time.Now()
	srv.waitLog("workers started", 30*time.Second)
	ready := time.Since(up)

	trig = start(t, "trigger-up", baseEnv(), "trigger", "Half", "--db", dsn, "--definitions", defs, "--wait", "--timeout", "30s")
	require.NoError(t, trig.wait(60*time.Second), "trigger --wait: %s", trig.output())
	evs := readWitness(t, out)
	require.Len(t, countWitness(evs, "done"), 1, "witness: %+v", evs)
	retries := countLines(srv.output(), "database not reachable yet, retrying")
	t.Logf("serve waited for the database (%d retries logged) and started its workers %s after it came up",
		retries, ready.Round(10*time.Millisecond))
	require.False(t, srv.exited())
	srv.signal(syscall.SIGTERM)
	require.NoError(t, srv.wait(30*time.Second))
}
