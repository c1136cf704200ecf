package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/platformsim"
)

// TestConnectorPresetsThroughServe runs each preset's operation from a
// YAML-only definition through `jobrunner serve` and its API, against the
// platform simulators in this test process: success, the platform's
// refusal (code and message verbatim, one call), and a wait (VTEX) that
// ends when the seller acts. No secret or access token appears in the
// API's answers, the dashboard's pages or the process's log.
func TestConnectorPresetsThroughServe(t *testing.T) {
	const (
		occKey   = "e2e-occ-key-CANARY-1f"
		vKey     = "e2e-vtex-key-CANARY-2e"
		vToken   = "e2e-vtex-token-CANARY-3d"
		sfID     = "e2e-sfcc-id-CANARY-4c"
		sfSecret = "e2e-sfcc-secret-CANARY-5b"
	)
	occ, vtex, sfcc := platformsim.NewOracle(occKey), platformsim.NewVTEX(vKey, vToken), platformsim.NewSalesforce(sfID, sfSecret)
	occSrv, vtexSrv, sfccSrv := httptest.NewServer(occ), httptest.NewServer(vtex), httptest.NewServer(sfcc)
	t.Cleanup(occSrv.Close)
	t.Cleanup(vtexSrv.Close)
	t.Cleanup(sfccSrv.Close)

	defs := writeDefs(t, `
connections:
  - name: occ
    type: http
    preset: oracle-commerce
    settings: {baseURL: "${OCC_URL}"}
    secrets: {applicationKey: OCC_APP_KEY}
  - name: vtex
    type: http
    preset: vtex
    settings: {baseURL: "${VTEX_URL}", connectorName: acme, connectorEndpoint: "https://acme.example/vtex", waitInterval: 50ms}
    secrets: {appKey: VTEX_APP_KEY, appToken: VTEX_APP_TOKEN}
  - name: sfcc
    type: http
    preset: salesforce-b2c
    settings: {baseURL: "${SFCC_URL}", tokenURL: "${SFCC_TOKEN_URL}", site: RefArch}
    secrets: {clientID: SFCC_CLIENT_ID, clientSecret: SFCC_CLIENT_SECRET}
jobs:
  - name: OccOrderAction
    connection: occ
    processor: http
    operation: handleOrderActions
    parameters:
      - {name: id, type: string, required: true}
      - {name: op, type: enum, values: [cancel, validateOrder, validatePaymentAuthorization, validActions, invalidateOrder, sendPlacedOrderEmailNotification]}
  - name: VtexOrderStatus
    connection: vtex
    processor: http
    operation: updateOrderStatus
    parameters:
      - {name: marketplaceOrderId, type: string, required: true}
      - {name: marketplaceOrderStatus, type: string, required: true}
  - name: SfccOrderStatus
    connection: sfcc
    processor: http
    operation: updateOrderStatus
    parameters:
      - {name: orderNo, type: string, required: true}
      - {name: status, type: string, required: true}
`)
	dsn, _ := database(t)
	addr := freeAddr(t)
	env := baseEnv("OCC_URL="+occSrv.URL, "OCC_APP_KEY="+occKey, "VTEX_URL="+vtexSrv.URL, "VTEX_APP_KEY="+vKey, "VTEX_APP_TOKEN="+vToken,
		"SFCC_URL="+sfccSrv.URL, "SFCC_TOKEN_URL="+sfccSrv.URL+platformsim.SalesforceTokenPath, "SFCC_CLIENT_ID="+sfID, "SFCC_CLIENT_SECRET="+sfSecret)
	p := serve(t, "serve", dsn, defs, env, "--http", addr, "--workers", "4", "--poll", "200ms", "--no-scheduler")
	p.waitLog("HTTP API and dashboard listening", 60*time.Second)
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}
	var seen []string // every API answer and page
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
		seen = append(seen, string(b))
		return string(b)
	}
	type runJSON struct {
		ID           int64           `json:"id"`
		Status       string          `json:"status"`
		ErrorCode    string          `json:"errorCode"`
		ErrorMessage string          `json:"errorMessage"`
		Snoozes      int             `json:"snoozes"`
		Executions   int             `json:"executions"`
		Result       json.RawMessage `json:"result"`
	}
	trigger := func(job string, params map[string]string) runJSON {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"parameters": params})
		resp, err := client.Post(base+"/api/v1/jobs/"+job+"/runs", "application/json", strings.NewReader(string(body)))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		seen = append(seen, string(b))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
		var r runJSON
		require.NoError(t, json.Unmarshal(b, &r))
		var final runJSON
		eventually(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
			require.NoError(t, json.Unmarshal([]byte(get(fmt.Sprintf("/api/v1/runs/%d", r.ID))), &final))
			return final.Status != "queued" && final.Status != "running", fmt.Sprintf("run %d of %s to finish (now %s)", r.ID, job, final.Status)
		})
		get(fmt.Sprintf("/api/v1/runs/%d/logs", r.ID))
		get(fmt.Sprintf("/runs/%d", r.ID))
		get(fmt.Sprintf("/runs/%d/logs", r.ID))
		return final
	}

	ok := trigger("OccOrderAction", map[string]string{"id": "o10008", "op": "cancel"})
	require.Equal(t, "succeeded", ok.Status, "%+v", ok)
	require.Contains(t, string(ok.Result), "Order [o10008] has been successfully cancelled.")
	before := occ.Count("/ccagent/v1/orders/err-200101")
	refused := trigger("OccOrderAction", map[string]string{"id": "err-200101", "op": "cancel"})
	require.Equal(t, "failed", refused.Status)
	require.Equal(t, "200101", refused.ErrorCode)
	require.Equal(t, "Cancel failed as order is in [PENDING_PAYMENT] state.", refused.ErrorMessage)
	require.Equal(t, 1, occ.Count("/ccagent/v1/orders/err-200101")-before)

	ok = trigger("VtexOrderStatus", map[string]string{"marketplaceOrderId": "1001", "marketplaceOrderStatus": "APPROVED"})
	require.Equal(t, "succeeded", ok.Status, "%+v", ok)
	require.Contains(t, string(ok.Result), `"SOI003"`)
	waited := trigger("VtexOrderStatus", map[string]string{"marketplaceOrderId": "wait-2", "marketplaceOrderStatus": "APPROVED"})
	require.Equal(t, "succeeded", waited.Status, "%+v", waited)
	require.Equal(t, 2, waited.Snoozes, "two EOI011 answers, no attempt used")
	require.Equal(t, 3, waited.Executions)

	ok = trigger("SfccOrderStatus", map[string]string{"orderNo": "00001234", "status": "cancelled"})
	require.Equal(t, "succeeded", ok.Status, "%+v", ok)
	som := trigger("SfccOrderStatus", map[string]string{"orderNo": "illegal-9", "status": "cancelled"})
	require.Equal(t, "failed", som.Status)
	require.Equal(t, "IllegalOrderIntegrationStateException", som.ErrorCode)
	require.True(t, strings.HasPrefix(som.ErrorMessage, "Status of integrated orders cannot be changed."), som.ErrorMessage)
	require.Contains(t, som.ErrorMessage, "Order Management")
	require.Equal(t, 1, sfcc.TokensIssued(), "one token for the instance's runs")

	get("/")
	get("/runs")
	get("/api/v1/runs?limit=100")
	logBytes, err := os.ReadFile(p.logPath)
	require.NoError(t, err)
	seen = append(seen, string(logBytes))
	all := strings.Join(seen, "\n")
	for _, c := range []string{occKey, vKey, vToken, sfID, sfSecret, "occ-access-", "sfcc-access-"} {
		require.NotContains(t, all, c, "secret or access token in an API answer, a page or the log")
	}
}
