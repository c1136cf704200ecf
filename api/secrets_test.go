package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// TestSecretsNeverLeak runs the server with canary secrets — an API token,
// the ERP connection's token and the database password — exercises every
// API route, the dashboard pages, /metrics, /readyz and error paths
// (including a closed database), and asserts that no response body and no
// log line contains any canary.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const (
		tokenCanary = "CANARY-api-token-7c1d9e42"
		erpCanary   = "CANARY-erp-token-5b2f0a17"
		dbCanary    = "CANARYdbpw4e8a93"
	)
	canaries := []string{tokenCanary, erpCanary, dbCanary, ShopCanary}

	// A MySQL user whose password is the DB canary.
	dsn := jobstest.DSN(t, "mysql")
	d, err := jobs.ParseDSN(dsn)
	require.NoError(t, err)
	root, err := sql.Open("mysql", d.MySQL.FormatDSN())
	require.NoError(t, err)
	t.Cleanup(func() { _ = root.Close() })
	user := "u" + d.MySQL.DBName[len(d.MySQL.DBName)-8:]
	for _, host := range []string{"%", "127.0.0.1", "localhost"} {
		_, err = root.Exec(fmt.Sprintf("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'", user, host, dbCanary))
		require.NoError(t, err)
		_, err = root.Exec(fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%s'", d.MySQL.DBName, user, host))
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = root.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", user, host)) })
	}
	u := url.URL{Scheme: "mysql", User: url.UserPassword(user, dbCanary), Host: d.MySQL.Addr, Path: "/" + d.MySQL.DBName}
	store, err := jobs.Open(context.Background(), u.String(), jobs.OpenOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })

	var logs bytes.Buffer
	lg := logrus.New()
	lg.SetOutput(&logs)
	lg.SetLevel(logrus.DebugLevel)
	e := newEnv(t, store, envOptions{
		work: true, metrics: true, demo: true, erpToken: erpCanary, log: lg,
		tokens: "canary:admin:" + tokenCanary + ",viewer:viewer:" + viewerSecret + ",ops:operator:" + operatorSecret,
	})

	// API: every route, successes and errors.
	ok := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000123"})
	refused := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000126"})
	locked := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000129"})
	unknown := e.trigger("OrderCancel", map[string]any{"OrderNumber": "NOPE"})
	sync := e.trigger("OrderStatusSync", nil)
	e.waitStatus(ok, jobs.StatusSucceeded)
	e.waitStatus(refused, jobs.StatusFailed)
	e.waitStatus(locked, jobs.StatusFailed)
	e.waitStatus(unknown, jobs.StatusFailed)
	e.waitStatus(sync, jobs.StatusSucceeded)
	for _, id := range []int64{ok, refused, locked, unknown, sync} {
		e.do("GET", fmt.Sprintf("/api/v1/runs/%d", id), tokenCanary, nil)
		e.do("GET", fmt.Sprintf("/api/v1/runs/%d/logs", id), tokenCanary, nil)
		e.follow(id, 0)
		e.do("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), tokenCanary, nil)
	}
	e.do("POST", fmt.Sprintf("/api/v1/runs/%d/retry", refused), tokenCanary, `{"parameters":{"Reason":"fraud"}}`)
	e.do("GET", "/api/v1/jobs", tokenCanary, nil)
	e.do("GET", "/api/v1/jobs/OrderCancel", tokenCanary, nil)
	e.do("GET", "/api/v1/runs?limit=2", tokenCanary, nil)
	e.do("POST", "/api/v1/jobs/OrderCancel/runs", tokenCanary, `{"parameters":{"OrderNumber":"x y"}}`)
	e.do("POST", "/api/v1/jobs/OrderCancel/runs", tokenCanary, `{"bogus":1}`)
	e.do("POST", "/api/v1/admin/reload", tokenCanary, nil)
	e.do("GET", "/api/v1/jobs", tokenCanary+"x", nil)
	e.do("GET", "/api/v1/jobs", "x"+tokenCanary, nil)
	e.do("GET", "/api/v1/jobs", viewerSecret, nil)
	e.do("POST", "/api/v1/jobs/Noop/runs", viewerSecret, nil)
	e.do("GET", "/metrics", tokenCanary, nil)
	e.do("GET", "/readyz", "", nil)
	e.do("GET", "/healthz", "", nil)
	e.do("GET", "/openapi.yaml", "", nil)

	// Dashboard pages.
	b := e.browser()
	b.page("GET", "/login", nil)
	b.page("POST", "/login", url.Values{"csrf": {b.csrf}, "token": {tokenCanary + "-wrong"}})
	b.login(tokenCanary)
	for _, p := range []string{"/", "/runs", "/runs?param=OrderNumber&value=WEB000126"} {
		status, _, _ := b.page("GET", p, nil)
		require.Equal(t, http.StatusOK, status, p)
	}
	for _, id := range []int64{ok, refused, locked, unknown, sync} {
		b.page("GET", fmt.Sprintf("/runs/%d", id), nil)
		b.page("GET", fmt.Sprintf("/runs/%d/logs", id), nil)
		b.page("GET", fmt.Sprintf("/runs/%d/live", id), nil)
	}
	b.post("/jobs/OrderCancel/run", url.Values{"p.OrderNumber": {"WEB000124"}, "idem": {"c1"}})
	b.post("/jobs/OrderCancel/run", url.Values{"p.OrderNumber": {""}, "idem": {"c2"}})

	// The database goes away (the worker is stopped first: nothing runs).
	e.worker.stop()
	require.NoError(t, store.Close())
	e.do("POST", "/api/v1/jobs/Noop/runs", tokenCanary, nil)
	e.do("GET", "/api/v1/runs", tokenCanary, nil)
	e.do("GET", "/readyz", "", nil)
	e.do("GET", "/metrics", tokenCanary, nil)
	b.page("GET", "/", nil)
	b.page("GET", "/runs", nil)

	e.mu.Lock()
	bodies := e.bodies
	e.mu.Unlock()
	require.Greater(t, len(bodies), 60)
	var all strings.Builder
	for _, body := range bodies {
		all.Write(body)
		all.WriteByte('\n')
	}
	require.Contains(t, all.String(), "cancelled WEB000123", "the run logs were read")
	require.Contains(t, all.String(), "jobrunner_attempts_total", "metrics were read")
	require.Contains(t, logs.String(), "ERP call", "the executor logged")
	for _, c := range canaries {
		require.NotContains(t, all.String(), c, "a response body contains a secret")
		require.NotContains(t, logs.String(), c, "a log line contains a secret")
	}
}
