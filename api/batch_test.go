package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

func TestTriggerBatch(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		e := newEnv(t, store, envOptions{})
		var runs []map[string]any
		for i := range 300 {
			runs = append(runs, map[string]any{"parameters": map[string]any{"OrderNumber": fmt.Sprintf("BAT%04d", i)}})
		}
		runs = append(runs,
			map[string]any{"parameters": map[string]any{"OrderNumber": "bad order!"}},
			map[string]any{"parameters": map[string]any{"OrderNumber": "BAT0001"}}, // the same as entry 1
			map[string]any{"parameters": map[string]any{"OrderNumber": "KEYED"}, "idempotencyKey": "mine-1"},
			map[string]any{"parameters": map[string]any{"OrderNumber": "X"}, "idempotencyKey": "has space"},
		)
		status, _ := e.doJSON(http.MethodPost, "/api/v1/jobs/OrderCancel/runs:batch", viewerSecret, map[string]any{"runs": runs})
		require.Equal(t, http.StatusForbidden, status)
		status, m := e.doJSON(http.MethodPost, "/api/v1/jobs/OrderCancel/runs:batch", operatorSecret, map[string]any{"runs": runs})
		require.Equal(t, http.StatusOK, status, "%v", m)
		require.EqualValues(t, 301, m["created"])
		require.EqualValues(t, 1, m["existing"])
		require.EqualValues(t, 2, m["failed"])
		res := m["results"].([]any)
		require.Len(t, res, 304)
		bad := res[300].(map[string]any)["error"].(map[string]any)
		require.Equal(t, "invalid_parameters", bad["code"])
		require.Contains(t, bad["fields"], "OrderNumber")
		dup := res[301].(map[string]any)
		require.Equal(t, "idempotencyKey", dup["existing"])
		require.Equal(t, res[1].(map[string]any)["runId"], dup["runId"])
		require.Equal(t, "bad_idempotency_key", res[303].(map[string]any)["error"].(map[string]any)["code"])
		require.EqualValues(t, 301, countRuns(t, store))

		// The same batch again queues nothing.
		status, m = e.doJSON(http.MethodPost, "/api/v1/jobs/OrderCancel/runs:batch", operatorSecret, map[string]any{"runs": runs})
		require.Equal(t, http.StatusOK, status)
		require.EqualValues(t, 0, m["created"])
		require.EqualValues(t, 302, m["existing"])
		require.EqualValues(t, 301, countRuns(t, store))

		status, _ = e.doJSON(http.MethodPost, "/api/v1/jobs/OrderCancel/runs:batch", operatorSecret, map[string]any{"runs": []any{}})
		require.Equal(t, http.StatusBadRequest, status)
	})
}
