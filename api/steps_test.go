package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// failedMulti records a run of Multi whose first step succeeded and whose
// second failed.
func failedMulti(t *testing.T, e *env) int64 {
	t.Helper()
	ctx := context.Background()
	j, ok := e.defs.Job("Multi")
	require.True(t, ok)
	enq, err := e.store.Enqueue(ctx, jobs.NewRun{Job: j, Params: map[string]any{}, Trigger: jobs.TriggerAPI})
	require.NoError(t, err)
	c, err := e.store.ClaimRun(ctx, enq.Run.ID, "test", time.Minute)
	require.NoError(t, err)
	require.NoError(t, e.store.Finish(ctx, c, jobs.Finish{Status: jobs.StatusFailed, AttemptStatus: jobs.AttemptFailed, ErrorCode: "X",
		ErrorMessage: "step 2 (second): boom", StepIndex: 1, Steps: []jobs.RunStep{
			{StepIndex: 0, Name: "first", Processor: "Noop", ConnectionName: "local", Status: jobs.StepSucceeded, Attempts: 1, Result: `{"ok":true}`},
			{StepIndex: 1, Name: "second", Processor: "Noop", ConnectionName: "local", Status: jobs.StepFailed, Attempts: 1, ErrorCode: "X", ErrorMessage: "boom"},
		}}))
	return enq.Run.ID
}

func TestStepsChildrenAndRetryFromFailedStep(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s, envOptions{work: true})

		// A multi-step run with a link: steps and children in GET /runs/{id}.
		id := e.trigger("Multi", map[string]any{"SleepMs": 1})
		e.waitStatus(id, jobs.StatusSucceeded)
		status, m := e.doJSON(http.MethodGet, fmt.Sprintf("/api/v1/runs/%d", id), viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		steps := m["steps"].([]any)
		require.Len(t, steps, 2)
		require.Equal(t, "succeeded", steps[1].(map[string]any)["status"])
		kids := m["children"].([]any)
		require.Len(t, kids, 1)
		child := kids[0].(map[string]any)
		require.Equal(t, "Noop", child["job"])
		childID := int64(child["id"].(float64))
		status, cm := e.doJSON(http.MethodGet, fmt.Sprintf("/api/v1/runs/%d", childID), viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, float64(id), cm["parentRunId"])
		require.Equal(t, "link", cm["trigger"])
		require.Equal(t, map[string]any{"SleepMs": float64(1)}, cm["parameters"])

		// Every step succeeded: nothing to retry from.
		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/retry", id), operatorSecret, map[string]any{"fromFailedStep": true})
		require.Equal(t, http.StatusConflict, status, "%v", m)
		code, _ := apiError(t, m)
		require.Equal(t, "no_failed_step", code)

		// A failed run: the retry reuses step 1 and starts at step 2.
		failed := failedMulti(t, e)
		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/retry", failed), operatorSecret, map[string]any{"fromFailedStep": true})
		require.Equal(t, http.StatusAccepted, status, "%v", m)
		require.Equal(t, float64(failed), m["retryOfRunId"])
		retry := int64(m["id"].(float64))
		e.waitStatus(retry, jobs.StatusSucceeded)
		status, m = e.doJSON(http.MethodGet, fmt.Sprintf("/api/v1/runs/%d", retry), viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		steps = m["steps"].([]any)
		first := steps[0].(map[string]any)
		require.Equal(t, "reused", first["status"])
		require.Equal(t, float64(failed), first["skippedFromRunId"])
		require.Equal(t, float64(0), first["attempts"])
		require.Equal(t, "succeeded", steps[1].(map[string]any)["status"])

		// A one-step job has no failed step.
		noop := e.trigger("Noop", nil)
		e.waitStatus(noop, jobs.StatusSucceeded)
		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/retry", noop), operatorSecret, map[string]any{"fromFailedStep": true})
		require.Equal(t, http.StatusConflict, status, "%v", m)
	})
}

func TestDashboardStepsAndRetryFromFailedStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobstest.Open(t, "sqlite"), envOptions{work: true})
	b := e.browser()
	b.login(operatorSecret)

	failed := failedMulti(t, e)
	status, _, body := b.page("GET", fmt.Sprintf("/runs/%d", failed), nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `id="run-steps"`)
	require.Contains(t, body, `id="from-failed-step"`)
	require.Contains(t, body, "boom")

	status, path, body := b.post(fmt.Sprintf("/runs/%d/retry", failed), url.Values{"fromFailedStep": {"true"}})
	require.Equal(t, http.StatusOK, status, body)
	require.True(t, strings.HasPrefix(path, "/runs/"), path)
	var retry int64
	_, err := fmt.Sscanf(path, "/runs/%d", &retry)
	require.NoError(t, err)
	e.waitStatus(retry, jobs.StatusSucceeded)
	status, _, body = b.page("GET", fmt.Sprintf("/runs/%d", retry), nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "reused")
	require.Contains(t, body, fmt.Sprintf(`result of <a href="/runs/%d">run #%d</a>`, failed, failed))
	require.Contains(t, body, fmt.Sprintf("run #%d", failed), "retry of")
	require.Contains(t, body, `id="child-runs"`, "Multi's link started a Noop run")

	// Preview badge on a preview run's page.
	status, m := e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, map[string]any{"preview": true})
	require.Equal(t, http.StatusAccepted, status, "%v", m)
	pid := int64(m["id"].(float64))
	_, _, body = b.page("GET", fmt.Sprintf("/runs/%d", pid), nil)
	require.Contains(t, body, `id="preview-badge"`)
}
