package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBulkTrigger100kLines queues 100,000 OrderCancel runs from a CSV file
// on MariaDB, then runs the same file again: every line becomes one run
// the first time, none the second (each line's key is derived from its
// parameters).
func TestBulkTrigger100kLines(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 lines")
	}
	const n = 100_000
	dsn, store := database(t)
	var b strings.Builder
	b.WriteString("OrderNumber,Reason\n")
	for i := range n {
		fmt.Fprintf(&b, "BULK%06d,fraud\n", i)
	}
	path := filepath.Join(t.TempDir(), "orders.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))

	begin := time.Now()
	p := start(t, "bulk", baseEnv(), "trigger", "OrderCancel", "--from-file", path, "--db", dsn)
	require.NoError(t, p.wait(5*time.Minute), p.output())
	took := time.Since(begin)
	require.Contains(t, p.output(), fmt.Sprintf("%d lines: %d runs queued, 0 already existed, 0 failed", n, n))
	var runs, params int64
	require.NoError(t, store.DB().Raw("SELECT COUNT(*) FROM runs WHERE job = 'OrderCancel' AND status = 'queued'").Scan(&runs).Error)
	require.NoError(t, store.DB().Raw("SELECT COUNT(*) FROM run_params").Scan(&params).Error)
	require.EqualValues(t, n, runs)
	require.EqualValues(t, 2*n, params, "each run's parameters are indexed")

	p = start(t, "again", baseEnv(), "trigger", "OrderCancel", "--from-file", path, "--db", dsn)
	require.NoError(t, p.wait(5*time.Minute), p.output())
	require.Contains(t, p.output(), fmt.Sprintf("%d lines: 0 runs queued, %d already existed, 0 failed", n, n))
	require.NoError(t, store.DB().Raw("SELECT COUNT(*) FROM runs").Scan(&runs).Error)
	require.EqualValues(t, n, runs)
	t.Logf("100,000 lines queued in %s (process included); %s", took.Round(time.Millisecond), strings.TrimSpace(strings.SplitN(p.output(), "\n", 2)[0]))
}
