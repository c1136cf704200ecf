package e2e

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
