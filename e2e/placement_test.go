package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/erpdemo"
)

// TestInstanceWithoutTheSecretDoesNotClaim: an instance started without
// JOBRUNNER_ERP_TOKEN looked ready, claimed every queued OrderCancel run
// and failed them all with SECRET_MISSING. Now it claims none (its
// /readyz says why), and an instance that has the secret runs them all.
func TestInstanceWithoutTheSecretDoesNotClaim(t *testing.T) {
	const n = 20
	dsn, store := database(t)
	erp, err := erpdemo.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = erp.Close() })
	for i := range n {
		erp.Put(erpdemo.Order{OrderNumber: fmt.Sprintf("PL%03d", i), Status: erpdemo.StatusOpen})
	}
	addr := freeAddr(t)
	blind := serve(t, "no-secret", dsn, "", baseEnv("JOBRUNNER_ERP_URL="+erp.URL()), "--http", addr, "--poll", "200ms")
	blind.waitLog("HTTP API and dashboard listening", 60*time.Second)
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range n {
		body := fmt.Sprintf(`{"parameters":{"OrderNumber":"PL%03d"}}`, i)
		resp, err := client.Post("http://"+addr+"/api/v1/jobs/OrderCancel/runs", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}
	blind.waitLog("does not claim runs of OrderCancel", 30*time.Second)
	time.Sleep(2 * time.Second) // ten polls of the blind instance (not an assertion)
	require.Equal(t, map[string]int{"queued": n}, statusCounts(t, store, "OrderCancel"), "the instance without the secret claimed nothing")

	resp, err := client.Get("http://" + addr + "/readyz")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var ready struct {
		Checks map[string]struct {
			OK      bool   `json:"ok"`
			Message string `json:"message"`
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(b, &ready), "%s", b)
	require.Contains(t, ready.Checks["jobs"].Message, "OrderCancel: connection erp: secret token: environment variable JOBRUNNER_ERP_TOKEN is not set")

	able := serve(t, "with-secret", dsn, "", baseEnv("JOBRUNNER_ERP_URL="+erp.URL(), "JOBRUNNER_ERP_TOKEN="+erp.Token()), "--http", "", "--poll", "200ms")
	able.waitLog("workers started", 60*time.Second)
	eventually(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "OrderCancel")
		return c["succeeded"] == n, fmt.Sprintf("all %d runs to succeed (now %v)", n, c)
	})
	for _, r := range runs(t, store, "job = ?", "OrderCancel") {
		for _, a := range attempts(t, store, r.ID) {
			require.NotEqual(t, "SECRET_MISSING", a.ErrorCode, "run %d", r.ID)
		}
	}
}
