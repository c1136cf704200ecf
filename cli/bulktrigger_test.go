package cli_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTriggerFromFile(t *testing.T) {
	t.Parallel()
	db, _ := tempDB(t)
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "orders.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte("OrderNumber,Reason,idempotencyKey\nWEB1,fraud,\nWEB2,,k-2\nbad order!,fraud,\nWEB1,fraud,\nWEB3,nonsense,\n"), 0o644))
	r := jobrunner(t, db, "trigger", "OrderCancel", "--from-file", csvPath)
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stdout, "5 lines: 2 runs queued, 1 already existed, 2 failed")
	require.Contains(t, r.stderr, csvPath+":4: parameter OrderNumber")
	require.Contains(t, r.stderr, csvPath+":6: parameter Reason")
	require.Contains(t, r.stderr, "2 of 5 lines were not queued (lines 4, 6)")

	// Again: nothing new; the key column is kept.
	r = jobrunner(t, db, "trigger", "OrderCancel", "--from-file", csvPath, "--json")
	require.Equal(t, 1, r.code)
	out := decodeJSON[map[string]any](t, r.stdout)
	require.EqualValues(t, 0, out["created"])
	require.EqualValues(t, 3, out["existing"])

	jsonl := filepath.Join(dir, "orders.jsonl")
	require.NoError(t, os.WriteFile(jsonl, []byte(`{"OrderNumber":"WEB9"}
{"parameters":{"OrderNumber":"WEB10","Reason":"fraud"},"idempotencyKey":"j-10"}

{"OrderNumber": 42}
`), 0o644))
	r = jobrunner(t, db, "trigger", "OrderCancel", "--from-file", jsonl)
	require.Equal(t, 0, r.code, "stdout %s stderr %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "3 lines: 3 runs queued, 0 already existed, 0 failed")

	r = jobrunner(t, db, "trigger", "OrderCancel", "--from-file", jsonl, "--param", "OrderNumber=X")
	require.Equal(t, 2, r.code)
	r = jobrunner(t, db, "runs", "list", "--json")
	require.Equal(t, 0, r.code)
	require.Len(t, decodeJSON[[]map[string]any](t, r.stdout), 5)
}
