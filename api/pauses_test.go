package api_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

func TestPausesAPIAndDashboard(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		e := newEnv(t, store, envOptions{})
		status, m := e.doJSON(http.MethodPost, "/api/v1/pauses", viewerSecret, map[string]any{"kind": "connection", "name": "erp"})
		require.Equal(t, http.StatusForbidden, status, "%v", m)
		status, m = e.doJSON(http.MethodPost, "/api/v1/pauses", operatorSecret, map[string]any{"kind": "connection", "name": "nope"})
		require.Equal(t, http.StatusNotFound, status, "%v", m)
		status, m = e.doJSON(http.MethodPost, "/api/v1/pauses", operatorSecret, map[string]any{"kind": "queue", "name": "erp"})
		require.Equal(t, http.StatusBadRequest, status, "%v", m)
		status, m = e.doJSON(http.MethodPost, "/api/v1/pauses", operatorSecret, map[string]any{"kind": "connection", "name": "erp", "for": "soon"})
		require.Equal(t, http.StatusBadRequest, status, "%v", m)

		status, m = e.doJSON(http.MethodPost, "/api/v1/pauses", operatorSecret, map[string]any{"kind": "connection", "name": "erp", "for": "2h", "reason": "ERP upgrade"})
		require.Equal(t, http.StatusCreated, status, "%v", m)
		require.Equal(t, "api:ops", m["by"])
		require.NotEmpty(t, m["until"])

		// Shown on every job that calls the connection.
		status, m = e.doJSON(http.MethodGet, "/api/v1/jobs/OrderCancel", viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		held := m["held"].(map[string]any)
		require.Equal(t, true, held["runs"])
		require.Contains(t, held["reason"], "connection erp paused by api:ops until")
		require.Contains(t, held["reason"], "ERP upgrade")
		status, m = e.doJSON(http.MethodGet, "/api/v1/jobs/Noop", viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		require.Nil(t, m["held"])
		status, m = e.doJSON(http.MethodGet, "/api/v1/pauses", viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		require.Len(t, m["pauses"], 1)

		status, _ = e.doJSON(http.MethodDelete, "/api/v1/pauses/connection/erp", operatorSecret, nil)
		require.Equal(t, http.StatusOK, status)
		status, _ = e.doJSON(http.MethodDelete, "/api/v1/pauses/connection/erp", operatorSecret, nil)
		require.Equal(t, http.StatusNotFound, status)

		// The dashboard: pause a job with a reason, see it held, resume it.
		b := e.browser()
		b.login(operatorSecret)
		_, _, page := b.page(http.MethodGet, "/", nil)
		require.Contains(t, page, `id="conn-erp"`)
		code, _, _ := b.post("/pause", url.Values{"kind": {"job"}, "name": {"OrderCancel"}, "reason": {"month end"}})
		require.Equal(t, http.StatusOK, code)
		_, _, page = b.page(http.MethodGet, "/", nil)
		require.Contains(t, page, "job paused by dashboard:ops")
		require.Contains(t, page, "month end")
		require.Contains(t, page, "Resume job")
		ps, err := store.Pauses(t.Context())
		require.NoError(t, err)
		require.Len(t, ps, 1)
		code, _, _ = b.post("/resume", url.Values{"kind": {"job"}, "name": {"OrderCancel"}})
		require.Equal(t, http.StatusOK, code)
		ps, err = store.Pauses(t.Context())
		require.NoError(t, err)
		require.Empty(t, ps)
	})
}

func TestMaintenanceWindowErrorsHaveLines(t *testing.T) {
	t.Parallel()
	set, err := definitions.LoadFS(mapFS("c.yaml", `
connections:
  - name: a
    type: noop
    maintenance:
      - {cron: "0 2 * * *"}
      - {cron: "0 2 * * *", duration: 1h, from: "2026-01-01T00:00:00Z"}
      - {from: "2026-01-02T00:00:00Z", until: "2026-01-01T00:00:00Z"}
      - {cron: "61 * * * *", duration: 1h}
      - {cron: "0 2 * * *", duration: 1h, timezone: Mars/Olympus}
      - {from: "tomorrow"}
`), ".")
	require.Error(t, err)
	require.Contains(t, err.Error(), `c.yaml:11: connections[0].maintenance[5].from: want an RFC 3339 time`)
	_ = set
	set, err = definitions.LoadFS(mapFS("c.yaml", `
connections:
  - name: a
    type: noop
    maintenance:
      - {cron: "0 2 * * *"}
      - {cron: "0 2 * * *", duration: 1h, from: "2026-01-01T00:00:00Z"}
      - {from: "2026-01-02T00:00:00Z", until: "2026-01-01T00:00:00Z"}
      - {cron: "61 * * * *", duration: 1h}
      - {cron: "0 2 * * *", duration: 1h, timezone: Mars/Olympus}
`), ".")
	require.NoError(t, err)
	err = set.Validate(nil)
	require.Error(t, err)
	for _, want := range []string{
		`c.yaml:6: connections[0].maintenance[0].duration: required`,
		`c.yaml:7: connections[0].maintenance[1]: a window is recurring (cron, duration) or one-off (from, until), not both`,
		`c.yaml:8: connections[0].maintenance[2].until: must be after from`,
		`c.yaml:9: connections[0].maintenance[3].cron: invalid cron`,
		`c.yaml:10: connections[0].maintenance[4].timezone: invalid timezone`,
	} {
		require.Contains(t, err.Error(), want)
	}
}

func TestDashboardRetryOfARunThatChangedTheERPAsksFirst(t *testing.T) {
	t.Parallel()
	store := jobstest.Open(t, "sqlite")
	e := newEnv(t, store, envOptions{work: true, demo: true})
	id := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000123"})
	run := e.waitStatus(id, jobs.StatusSucceeded)
	require.EqualValues(t, 1, run.RecordsChanged)
	b := e.browser()
	b.login(operatorSecret)
	path := "/runs/" + strconv.FormatInt(id, 10)
	_, _, page := b.page(http.MethodGet, path, nil)
	require.Contains(t, page, `id="confirm-changes"`)
	status, _, page := b.post(path+"/retry", nil)
	require.Equal(t, http.StatusConflict, status)
	require.Contains(t, page, "a retry repeats those changes")
	require.EqualValues(t, 1, countRuns(t, store), "nothing retried without the confirmation")
	_, newPath, _ := b.post(path+"/retry", url.Values{"confirmChanges": {"1"}})
	require.NotEqual(t, path, newPath)
	require.EqualValues(t, 2, countRuns(t, store))

	// A failed run (it changed nothing) retries without asking.
	failed := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000126"})
	e.waitStatus(failed, jobs.StatusFailed)
	_, _, page = b.page(http.MethodGet, "/runs/"+strconv.FormatInt(failed, 10), nil)
	require.NotContains(t, page, `id="confirm-changes"`)
}

func TestRunPageShowsNotifications(t *testing.T) {
	t.Parallel()
	store := jobstest.Open(t, "sqlite")
	e := newEnv(t, store, envOptions{})
	id := e.trigger("Noop", nil)
	now := time.Now().UTC()
	require.NoError(t, store.DB().Exec("INSERT INTO notifications (run_id, job, channel, kind, status, attempts, next_attempt_at, last_error, created_at, payload) VALUES (?, 'Noop', 'webhook', 'failure', 'pending', 2, ?, 'connection refused', ?, '{}')",
		id, now.Add(time.Minute), now).Error)
	b := e.browser()
	b.login(viewerSecret)
	_, _, page := b.page(http.MethodGet, "/runs/"+strconv.FormatInt(id, 10), nil)
	require.Contains(t, page, `id="notifications"`)
	require.Contains(t, page, "connection refused")
	require.Contains(t, page, `nt-pending`)

	status, m := e.doJSON(http.MethodGet, "/api/v1/runs/"+strconv.FormatInt(id, 10), viewerSecret, nil)
	require.Equal(t, http.StatusOK, status)
	nts := m["notifications"].([]any)
	require.Len(t, nts, 1, "the API's run object carries its notifications")
	nt := nts[0].(map[string]any)
	require.Equal(t, "pending", nt["status"])
	require.Equal(t, "connection refused", nt["lastError"])
	require.EqualValues(t, 2, nt["attempts"])
	require.NotContains(t, nt, "payload")
}

func TestInstancesView(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		e := newEnv(t, store, envOptions{})
		ctx := t.Context()
		started := time.Now().Add(-time.Hour)
		require.NoError(t, store.ReportInstance(ctx, jobs.Instance{Owner: "hostA:11", Version: "v1.2.3", Workers: 16, Busy: 3, Scheduler: true,
			HTTPAddr: "10.0.0.1:8080", Unrunnable: map[string]string{"OrderCancel": "connection erp: secret token: environment variable JOBRUNNER_ERP_TOKEN is not set"},
			ClockSkewMs: 12, StartedAt: started, Serves: []string{"erp", "eu-zone"}}))
		require.NoError(t, store.ReportInstance(ctx, jobs.Instance{Owner: "hostB:22", Version: "v1.2.3", Workers: 8, StartedAt: started}))
		require.NoError(t, store.DB().Exec("UPDATE instances SET heartbeat_at = ? WHERE owner = 'hostB:22'", time.Now().Add(-time.Minute).UTC()).Error)
		status, m := e.doJSON(http.MethodGet, "/api/v1/instances", viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		ins := m["instances"].([]any)
		require.Len(t, ins, 2)
		a := ins[0].(map[string]any)
		require.Equal(t, "hostA:11", a["owner"])
		require.Equal(t, true, a["live"])
		require.EqualValues(t, 3, a["busy"])
		require.Contains(t, a["unrunnable"], "OrderCancel")
		require.Equal(t, []any{"erp", "eu-zone"}, a["serves"])
		require.Equal(t, false, ins[1].(map[string]any)["live"])
		require.Equal(t, []any{}, ins[1].(map[string]any)["serves"], "every connection")

		b := e.browser()
		b.login(viewerSecret)
		_, _, page := b.page(http.MethodGet, "/instances", nil)
		require.Contains(t, page, `id="inst-hostA:11"`)
		require.Contains(t, page, "3 / 16")
		require.Contains(t, page, "JOBRUNNER_ERP_TOKEN is not set")
		require.Contains(t, page, ">gone<")
		require.Contains(t, page, "<code>eu-zone</code>")
		require.Contains(t, page, "every connection")
		require.NoError(t, store.RemoveInstance(ctx, "hostA:11"))
		got, err := store.Instances(ctx)
		require.NoError(t, err)
		require.Len(t, got, 1)
	})
}

func TestOverviewPage(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		e := newEnv(t, store, envOptions{work: true, demo: true})
		ok := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000123"})
		bad := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000126"})
		e.waitStatus(ok, jobs.StatusSucceeded)
		e.waitStatus(bad, jobs.StatusFailed)
		status, m := e.doJSON(http.MethodGet, "/api/v1/overview", viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		var oc map[string]any
		for _, j := range m["jobs"].([]any) {
			if j.(map[string]any)["job"] == "OrderCancel" {
				oc = j.(map[string]any)
			}
		}
		require.NotNil(t, oc)
		require.InDelta(t, 0.5, oc["failureRate"], 0.001)
		require.Len(t, oc["hours"], jobs.OverviewHours)

		b := e.browser()
		b.login(viewerSecret)
		code, _, page := b.page(http.MethodGet, "/overview", nil)
		require.Equal(t, http.StatusOK, code, page)
		require.Contains(t, page, `id="ov-OrderCancel"`)
		require.Contains(t, page, "50.0 %")
		require.Contains(t, page, `fill="#c62828"`, "a failed bar")
		require.Contains(t, page, `fill="#2e7d32"`, "a succeeded bar")
	})
}
