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
