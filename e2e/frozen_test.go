package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
)

// TestFrozenDatabaseBoundsRequests freezes the database (SIGSTOP of its
// mariadbd): a trigger and /readyz must answer 503 with Retry-After within
// their bounds (api.RequestTimeout 5 s, plus the look-up of a commit whose
// answer may be lost; ReadyTimeout 2 s), not hang as long as the freeze.
// After SIGCONT everything works again.
func TestFrozenDatabaseBoundsRequests(t *testing.T) {
	m := newPrivateMariaDB(t)
	m.start()
	m.createDatabase("jr")
	dsn := m.dsn("jr")
	addr := freeAddr(t)
	srv := serve(t, "serve", dsn, "", baseEnv(), "--http", addr, "--workers", "2", "--poll", "500ms")
	srv.waitLog("HTTP API and dashboard listening", 60*time.Second)
	base := "http://" + addr
	client := &http.Client{Timeout: 60 * time.Second}
	post := func() (*http.Response, string, time.Duration) {
		start := time.Now()
		resp, err := client.Post(base+"/api/v1/jobs/Noop/runs", "application/json", strings.NewReader(`{"parameters":{}}`))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp, string(b), time.Since(start)
	}
	resp, body, _ := post()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)

	require.NoError(t, syscall.Kill(m.cmd.Process.Pid, syscall.SIGSTOP))
	frozen := true
	t.Cleanup(func() {
		if frozen {
			_ = syscall.Kill(m.cmd.Process.Pid, syscall.SIGCONT)
		}
	})
	resp, body, took := post()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Less(t, took, 12*time.Second, "a trigger against a frozen database is bounded (took %s)", took)
	t.Logf("trigger against a frozen database: %d after %s: %s", resp.StatusCode, took.Round(10*time.Millisecond), strings.TrimSpace(body))

	start := time.Now()
	rresp, err := client.Get(base + "/readyz")
	require.NoError(t, err)
	_ = rresp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, rresp.StatusCode)
	require.Less(t, time.Since(start), 4*time.Second, "/readyz is bounded")

	require.NoError(t, syscall.Kill(m.cmd.Process.Pid, syscall.SIGCONT))
	frozen = false
	eventually(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		resp, body, _ := post()
		return resp.StatusCode == http.StatusAccepted, "a trigger to be accepted after the freeze: " + body
	})
	require.False(t, srv.exited())
}

// TestShutdownIsBoundedWhileTheDatabaseIsDown: runs finish while the
// database is stopped, then SIGTERM with --grace 2s: serve must end within
// the grace plus jobs.LastTry (5 s) and a little, not retry its outcomes
// for the whole outage; a second serve, SIGTERMed twice, ends at once.
func TestShutdownIsBoundedWhileTheDatabaseIsDown(t *testing.T) {
	m := newPrivateMariaDB(t)
	m.start()
	m.createDatabase("jr")
	dsn := m.dsn("jr")
	out := t.TempDir() + "/witness.txt"
	defs := writeDefs(t, "connections:"+witnessConnection(t, "witness", out, "0.5")+halfSecondJob)
	srv := serve(t, "serve", dsn, defs, nil, "--http", "", "--workers", "2", "--poll", "200ms", "--grace", "2s")
	srv.waitLog("workers started", 60*time.Second)
	for range 2 {
		trig := start(t, "trigger", baseEnv(), "trigger", "Half", "--db", dsn, "--definitions", defs)
		require.NoError(t, trig.wait(60*time.Second), "trigger: %s", trig.output())
	}
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		return len(countWitness(readWitness(t, out), "start")) == 2, "both runs to start"
	})
	m.stop()
	eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return len(countWitness(readWitness(t, out), "done")) == 2, "both runs to finish while the database is down"
	})
	srv.signal(syscall.SIGTERM)
	term := time.Now()
	require.NoError(t, srv.wait(30*time.Second), "serve's exit: %s", srv.output())
	took := time.Since(term)
	t.Logf("serve stopped %s after SIGTERM with the database down", took.Round(10*time.Millisecond))
	require.Less(t, took, 10*time.Second, "shutdown with the database down is bounded by the grace (2s) plus the last try (5s)")

}

// TestSecondSignalStopsAtOnce: during a 30 s grace period for a long run,
// a second SIGTERM ends serve at once (its run's lease then lapses).
func TestSecondSignalStopsAtOnce(t *testing.T) {
	dsn, store := database(t)
	out := t.TempDir() + "/witness.txt"
	defs := writeDefs(t, `
connections:`+witnessConnection(t, "slow", out, "20")+`
jobs:
  - name: Long
    connection: slow
    processor: Long
    timeout: 60s
`)
	srv := serve(t, "serve", dsn, defs, nil, "--http", "", "--workers", "1", "--poll", "200ms", "--grace", "30s")
	srv.waitLog("workers started", 60*time.Second)
	trig := start(t, "trigger", baseEnv(), "trigger", "Long", "--db", dsn, "--definitions", defs)
	require.NoError(t, trig.wait(60*time.Second), "trigger: %s", trig.output())
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		return len(countWitness(readWitness(t, out), "start")) == 1, "the run to start"
	})
	srv.signal(syscall.SIGTERM)
	srv.waitLog("a second SIGTERM or Ctrl-C stops at once", 10*time.Second)
	time.Sleep(500 * time.Millisecond) // inside the grace period, not an assertion
	require.False(t, srv.exited(), "the first SIGTERM waits for the grace period")
	srv.signal(syscall.SIGTERM)
	second := time.Now()
	require.NoError(t, srv.wait(15*time.Second), "serve's exit: %s", srv.output())
	require.Less(t, time.Since(second), 3*time.Second, "the second SIGTERM stops at once")
	require.Contains(t, srv.output(), "second signal: stopping now")
	require.Len(t, runs(t, store, ""), 1)
}

// TestOwnersOutcomesWinAfterAnOutage: runs finish on instance A while the
// database is stopped, for longer than their lease (6 s); when it returns,
// a fresh instance B starts at once. B's rescue must wait a lease TTL from
// when the database answers, so A records its outcomes first: no run is
// executed twice (before, B's start-up rescue marked them lease_expired
// and ran them again).
func TestOwnersOutcomesWinAfterAnOutage(t *testing.T) {
	m := newPrivateMariaDB(t)
	m.start()
	m.createDatabase("jr")
	dsn := m.dsn("jr")
	out := t.TempDir() + "/witness.txt"
	defs := writeDefs(t, "connections:"+witnessConnection(t, "witness", out, "1")+halfSecondJob)
	flags := []string{"--http", "", "--workers", "4", "--poll", "200ms", "--lease-ttl", "6s"}
	a := serve(t, "a", dsn, defs, nil, flags...)
	a.waitLog("workers started", 60*time.Second)
	const total = 8
	for range total {
		trig := start(t, "trigger", baseEnv(), "trigger", "Half", "--db", dsn, "--definitions", defs)
		require.NoError(t, trig.wait(60*time.Second), "trigger: %s", trig.output())
	}
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		return len(countWitness(readWitness(t, out), "start")) >= 2, "runs to start"
	})
	m.stop()
	eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		evs := readWitness(t, out)
		return len(countWitness(evs, "done")) == len(countWitness(evs, "start")), "the started runs to finish while the database is down"
	})
	time.Sleep(8 * time.Second) // longer than the lease: every lease of A lapses (the outage itself)
	m.start()
	b := serve(t, "b", dsn, defs, nil, flags...)
	store, err := jobs.Open(context.Background(), dsn, jobs.OpenOptions{NoMigrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	eventually(t, 120*time.Second, 200*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "Half")
		return c["succeeded"]+c["failed"]+c["cancelled"] == total, fmt.Sprintf("all %d runs to finish (now %v)", total, c)
	})
	require.Equal(t, map[string]int{"succeeded": total}, statusCounts(t, store, "Half"))
	starts := countWitness(readWitness(t, out), "start")
	for _, r := range runs(t, store, "") {
		require.Equal(t, 1, starts[r.ID], "executions of run %d", r.ID)
		for _, at := range attempts(t, store, r.ID) {
			require.NotEqual(t, "lease_expired", at.Status, "run %d was rescued although its owner recorded it", r.ID)
		}
	}
	require.False(t, a.exited())
	require.False(t, b.exited())
}

// TestFreezeDoublesNothing freezes MariaDB (SIGSTOP) for 10 s, longer than
// the 3 s leases, while two instances run runs: the rescue that waited in
// the frozen server must not overtake the owners' heartbeats and outcomes
// (it is abandoned when its look-up was slow, and rescues wait a lease TTL
// after the database answers again). Every run executes once.
func TestFreezeDoublesNothing(t *testing.T) {
	m := newPrivateMariaDB(t)
	m.start()
	m.createDatabase("jr")
	dsn := m.dsn("jr")
	out := t.TempDir() + "/witness.txt"
	defs := writeDefs(t, "connections:"+witnessConnection(t, "witness", out, "2")+halfSecondJob)
	flags := []string{"--http", "", "--workers", "3", "--poll", "200ms", "--lease-ttl", "3s"}
	a := serve(t, "a", dsn, defs, nil, flags...)
	b := serve(t, "b", dsn, defs, nil, flags...)
	a.waitLog("workers started", 60*time.Second)
	b.waitLog("workers started", 60*time.Second)
	const total = 12
	for range total {
		trig := start(t, "trigger", baseEnv(), "trigger", "Half", "--db", dsn, "--definitions", defs)
		require.NoError(t, trig.wait(60*time.Second), "trigger: %s", trig.output())
	}
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		return len(countWitness(readWitness(t, out), "start")) >= 4, "runs to start"
	})
	require.NoError(t, syscall.Kill(m.cmd.Process.Pid, syscall.SIGSTOP))
	time.Sleep(10 * time.Second) // the freeze itself
	require.NoError(t, syscall.Kill(m.cmd.Process.Pid, syscall.SIGCONT))
	store, err := jobs.Open(context.Background(), dsn, jobs.OpenOptions{NoMigrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	eventually(t, 180*time.Second, 200*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "Half")
		return c["succeeded"]+c["failed"]+c["cancelled"] == total, fmt.Sprintf("all %d runs to finish (now %v)", total, c)
	})
	evs := readWitness(t, out)
	starts, dones := countWitness(evs, "start"), countWitness(evs, "done")
	doubled := 0
	for _, r := range runs(t, store, "") {
		var st []string
		for _, at := range attempts(t, store, r.ID) {
			st = append(st, at.Status)
		}
		if dones[r.ID] != 1 {
			doubled++
			t.Errorf("run %d completed %d times (%d starts; attempts %v)", r.ID, dones[r.ID], starts[r.ID], st)
		} else if starts[r.ID] != 1 {
			t.Logf("run %d: an execution cut short by the freeze was retried (%d starts; attempts %v)", r.ID, starts[r.ID], st)
		}
	}
	require.Zero(t, doubled, "runs whose work completed twice")
	require.Equal(t, map[string]int{"succeeded": total}, statusCounts(t, store, "Half"))
}
