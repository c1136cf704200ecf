package cli_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServeBindsBeforeStartingAnything(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	db, _ := tempDB(t)
	r := jobrunner(t, db, "serve", "--http", ln.Addr().String())
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stderr, "address already in use (nothing was started)")
	require.NotContains(t, r.stderr, "workers started")
	require.NotContains(t, r.stderr, "scheduler")
}

func TestTriggerWaitOnADatabaseNoWorkerUses(t *testing.T) {
	t.Parallel()
	db, _ := tempDB(t)
	start := time.Now()
	r := jobrunner(t, db, "trigger", "Noop", "--wait")
	require.Equal(t, 1, r.code, "%s", r)
	require.Less(t, time.Since(start), 30*time.Second)
	require.Contains(t, r.stderr, "waiting for run 1 on sqlite:")
	require.Contains(t, r.stderr, "no worker has ever run anything on sqlite:")
	require.Contains(t, r.stderr, "the run stays queued")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := jobrunner(t, "version")
	require.Equal(t, 0, r.code, "%s", r)
	require.True(t, strings.HasPrefix(r.stdout, "jobrunner "), r.stdout)
	require.Contains(t, r.stdout, "go:       go")
	r = jobrunner(t, "--version")
	require.Equal(t, 0, r.code, "%s", r)
	require.True(t, strings.HasPrefix(r.stdout, "jobrunner "), r.stdout)
	r = jobrunner(t, "version", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	v := decodeJSON[map[string]any](t, r.stdout)
	require.NotEmpty(t, v["version"])
	require.NotEmpty(t, v["goVersion"])
}

func TestJSONLogsCarryMilliseconds(t *testing.T) {
	t.Parallel()
	db, _ := tempDB(t)
	r := jobrunner(t, db, "--log-format", "json", "run", "Noop")
	require.Equal(t, 0, r.code, "%s", r)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.NotEmpty(t, lines)
	for _, l := range lines {
		v := decodeJSON[map[string]any](t, l)
		require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`, v["time"], l)
	}
}

func TestTriggerAt(t *testing.T) {
	t.Parallel()
	db, _ := tempDB(t)
	r := jobrunner(t, db, "trigger", "Noop", "--at", "2099-01-02T02:00:00+01:00", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	v := decodeJSON[map[string]any](t, r.stdout)
	require.Equal(t, "2099-01-02T01:00:00Z", v["notBefore"])
	r = jobrunner(t, db, "trigger", "Noop", "--at", "02:00")
	require.Equal(t, 2, r.code, "%s", r)
	require.Contains(t, r.stderr, "want RFC 3339 with an offset")
}

func TestBulkRetryAndCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "j.yaml"), []byte(`
connections:
  - {name: sh, type: exec, settings: {command: [/bin/sh, -c, "exit 1"]}}
jobs:
  - name: Fails
    connection: sh
    processor: Fails
    parameters: [{name: N, type: int}]
    retry: {maxAttempts: 1}
`), 0o644))
	db, _ := tempDB(t)
	jr := func(args ...string) result {
		return jobrunner(t, append([]string{db, "--definitions", dir}, args...)...)
	}
	for i := range 5 {
		r := jr("run", "Fails", "--param", "N="+strconv.Itoa(i))
		require.Equal(t, 1, r.code, "%s", r)
	}
	r := jr("runs", "bulk-retry", "--job", "Fails")
	require.Equal(t, 0, r.code, "%s", r)
	require.Equal(t, "5 runs match; run again with --yes to retry them\n", r.stdout)
	r = jr("runs", "bulk-retry", "--job", "Fails", "--yes", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	got := decodeJSON[map[string]any](t, r.stdout)
	require.Equal(t, float64(5), got["done"])
	// Again: each failed run was retried once already.
	r = jr("runs", "bulk-retry", "--job", "Fails", "--yes", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	got = decodeJSON[map[string]any](t, r.stdout)
	require.Equal(t, float64(0), got["done"], "a bulk retry run twice retries nothing twice")
	require.Equal(t, float64(5), got["already"])
	list := decodeJSON[[]runView](t, jr("runs", "list", "--trigger", "retry", "--json").stdout)
	require.Len(t, list, 5)
	for _, rv := range list {
		require.Contains(t, rv.TriggeredBy, "(bulk retry)")
	}
	r = jr("runs", "bulk-cancel", "--job", "Fails", "--yes", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	got = decodeJSON[map[string]any](t, r.stdout)
	require.Equal(t, float64(5), got["done"], "the five queued retries are cancelled")
	r = jr("runs", "bulk-retry", "--yes")
	require.Equal(t, 2, r.code, "a bulk action needs a filter: %s", r)
}

// TestServeWarnsAboutWeakSecrets: a secret too short to be hidden in logs
// is named (by its variable, never its value) when serve starts.
func TestServeWarnsAboutWeakSecrets(t *testing.T) {
	t.Setenv("JOBRUNNER_ERP_TOKEN", "xyz")
	r := jobrunner(t, "--db", "mysql://root@127.0.0.1:1/nothing", "serve", "--http", "", "--wait-db", "1s")
	require.NotEqual(t, 0, r.code, "%s", r)
	require.Contains(t, r.stderr, "connection erp: secret token (JOBRUNNER_ERP_TOKEN) is shorter than 4 characters")
	require.NotContains(t, r.stderr, "xyz")
}
