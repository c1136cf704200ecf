package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
)

func TestStoreErrorNeverSaysNothingStoredWhenItCannotTell(t *testing.T) {
	t.Parallel()
	e := storeError(fmt.Errorf("jobs: enqueue X: %w: lost", jobs.ErrOutcomeUnknown))
	require.Equal(t, http.StatusServiceUnavailable, e.Status())
	require.Equal(t, "outcome_unknown", e.Code)
	require.NotContains(t, e.Message, "nothing was stored")
	require.Contains(t, e.Message, "idempotencyKey")

	e = storeError(errors.New("dial tcp: connection refused"))
	require.Equal(t, "database_unavailable", e.Code)
}
