package cli_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/platformsim"
)

// Secret canaries of the connector tests: none may appear in any output,
// run record or log.
const (
	occKeyCanary      = "occ-appkey-CANARY-41b7"
	vtexKeyCanary     = "vtex-appkey-CANARY-93e1"
	vtexTokenCanary   = "vtex-apptoken-CANARY-0c5d"
	sfccIDCanary      = "sfcc-client-CANARY-6a2f"
	sfccSecretCanary  = "sfcc-secret-CANARY-d84e"
	connectorDefsYAML = `
connections:
  - name: occ
    type: http
    preset: oracle-commerce
    settings: {baseURL: "${T_OCC_URL}", timeout: 5s}
    secrets: {applicationKey: T_OCC_APP_KEY}
  - name: vtex
    type: http
    preset: vtex
    settings: {baseURL: "${T_VTEX_URL}", connectorName: acme, connectorEndpoint: "https://acme.example/vtex", waitInterval: 20ms, waitHorizon: 400ms}
    secrets: {appKey: T_VTEX_APP_KEY, appToken: T_VTEX_APP_TOKEN}
  - name: sfcc
    type: http
    preset: salesforce-b2c
    settings: {baseURL: "${T_SFCC_URL}", tokenURL: "${T_SFCC_URL}/dwsso/oauth2/access_token", site: RefArch}
    secrets: {clientID: T_SFCC_CLIENT_ID, clientSecret: T_SFCC_CLIENT_SECRET}
jobs:
  - name: OccOrderAction
    connection: occ
    processor: http
    operation: handleOrderActions
    parameters:
      - {name: id, type: string, required: true}
      - {name: op, type: enum, values: [cancel, validateOrder, validatePaymentAuthorization, validActions, invalidateOrder, sendPlacedOrderEmailNotification]}
      - {name: organization, type: string}
    retry: {maxAttempts: 3, initial: 10ms, max: 10ms}
  - name: VtexOrderStatus
    connection: vtex
    processor: http
    operation: updateOrderStatus
    inputs: {marketplaceOrderId: OrderId, marketplaceOrderStatus: Status}
    parameters:
      - {name: OrderId, type: string, required: true}
      - {name: Status, type: string, default: APPROVED}
    retry: {maxAttempts: 3, initial: 10ms, max: 10ms, maxSnoozes: 2}
  - name: SfccOrderStatus
    connection: sfcc
    processor: http
    operation: updateOrderStatus
    parameters:
      - {name: orderNo, type: string, required: true}
      - {name: status, type: string, required: true}
    retry: {maxAttempts: 3, initial: 10ms, max: 10ms}
`
)

// connectorWorld starts the three simulators and writes the YAML-only
// definitions that reach them.
type connectorWorld struct {
	occ  *platformsim.Oracle
	vtex *platformsim.VTEX
	sfcc *platformsim.Salesforce
	defs string
	db   string
	outs []string
}

func newConnectorWorld(t *testing.T) *connectorWorld {
	w := &connectorWorld{
		occ:  platformsim.NewOracle(occKeyCanary),
		vtex: platformsim.NewVTEX(vtexKeyCanary, vtexTokenCanary),
		sfcc: platformsim.NewSalesforce(sfccIDCanary, sfccSecretCanary),
	}
	occ, vtex, sfcc := httptest.NewServer(w.occ), httptest.NewServer(w.vtex), httptest.NewServer(w.sfcc)
	t.Cleanup(occ.Close)
	t.Cleanup(vtex.Close)
	t.Cleanup(sfcc.Close)
	t.Setenv("T_OCC_URL", occ.URL)
	t.Setenv("T_OCC_APP_KEY", occKeyCanary)
	t.Setenv("T_VTEX_URL", vtex.URL)
	t.Setenv("T_VTEX_APP_KEY", vtexKeyCanary)
	t.Setenv("T_VTEX_APP_TOKEN", vtexTokenCanary)
	t.Setenv("T_SFCC_URL", sfcc.URL)
	t.Setenv("T_SFCC_CLIENT_ID", sfccIDCanary)
	t.Setenv("T_SFCC_CLIENT_SECRET", sfccSecretCanary)
	w.defs = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(w.defs, "connectors.yaml"), []byte(connectorDefsYAML), 0o644))
	w.db, _ = tempDB(t)
	return w
}

func (w *connectorWorld) jr(t *testing.T, args ...string) result {
	t.Helper()
	r := jobrunner(t, append([]string{w.db, "--definitions", w.defs, "--log-level", "debug"}, args...)...)
	w.outs = append(w.outs, r.stdout, r.stderr)
	return r
}

// noSecrets checks every output so far, and every run's record and logs.
func (w *connectorWorld) noSecrets(t *testing.T) {
	t.Helper()
	list := w.jr(t, "runs", "list", "--limit", "1000", "--json")
	require.Equal(t, 0, list.code, "%s", list)
	for _, rv := range decodeJSON[[]runView](t, list.stdout) {
		w.jr(t, "runs", "show", itoa(rv.ID), "--json")
		w.jr(t, "runs", "logs", itoa(rv.ID), "--json")
	}
	all := strings.Join(w.outs, "\n")
	for _, c := range []string{occKeyCanary, vtexKeyCanary, vtexTokenCanary, sfccIDCanary, sfccSecretCanary, "access-"} {
		require.NotContains(t, all, c, "a secret or access token leaked into output, a run record or a log")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// connectorCase is one platform answer and what the run must record.
type connectorCase struct {
	name   string
	args   []string
	status string
	code   string
	msg    string // exact error message ("" for a success)
	prefix bool   // msg is a prefix (a message jobrunner adds to)
	// calls is the number of requests the simulator's operation endpoint
	// received; executions the run's executions and snoozes those that
	// used no attempt.
	calls, executions, snoozes int
	atLeast                    bool // snoozes is a minimum (horizon-bound waits)
}

func (w *connectorWorld) check(t *testing.T, tc connectorCase, count func() int) runView {
	t.Helper()
	before := count()
	r := w.jr(t, append([]string{"run"}, append(tc.args, "--json")...)...)
	want := 0
	if tc.status == "failed" {
		want = 1
	}
	require.Equal(t, want, r.code, "%s", r)
	rv := decodeJSON[runView](t, r.stdout)
	require.Equal(t, tc.status, rv.Status, "%s", r)
	require.Equal(t, tc.code, rv.ErrorCode, "%s", r)
	if tc.prefix {
		require.True(t, strings.HasPrefix(rv.ErrorMessage, tc.msg), "message %q does not start with %q", rv.ErrorMessage, tc.msg)
	} else {
		require.Equal(t, tc.msg, rv.ErrorMessage)
	}
	require.Equal(t, tc.calls, count()-before, "requests the platform received")
	if tc.atLeast {
		require.GreaterOrEqual(t, rv.Snoozes, tc.snoozes, "snoozes")
		require.Equal(t, rv.Snoozes+tc.executions, rv.Executions, "executions = snoozes + attempts used")
	} else {
		require.Equal(t, tc.snoozes, rv.Snoozes, "snoozes")
		require.Equal(t, tc.executions, rv.Executions, "executions")
	}
	return rv
}

func TestOracleCommercePresetEveryCode(t *testing.T) {
	w := newConnectorWorld(t)
	orders := func() int {
		n := 0
		for _, rq := range w.occ.Requests() {
			if strings.HasPrefix(rq.Path, "/ccagent/v1/orders/") {
				n++
			}
		}
		return n
	}
	cases := []connectorCase{
		{name: "success", args: []string{"OccOrderAction", "--param", "id=o10008", "--param", "op=cancel", "--param", "organization=or-100001"}, status: "succeeded", calls: 1, executions: 1},
		// 200100 internal error: retried, every attempt used, the code kept.
		{name: "200100", args: []string{"OccOrderAction", "--param", "id=err-200100", "--param", "op=cancel"}, status: "failed", code: "200100",
			msg: "Internal error occurred while processing the request.", calls: 3, executions: 3},
		{name: "210105", args: []string{"OccOrderAction", "--param", "id=err-210105", "--param", "op=validateOrder"}, status: "failed", code: "210105",
			msg: "Specified order does not exist.", calls: 1, executions: 1},
	}
	for _, code := range []string{"200101", "200103", "200104", "100094", "100095", "100096", "100097", "100098", "100099", "100101",
		"30014", "30015", "30019", "30020", "30021", "200218", "200219"} {
		cases = append(cases, connectorCase{name: code, args: []string{"OccOrderAction", "--param", "id=err-" + code, "--param", "op=cancel"},
			status: "failed", code: code, msg: platformsim.OracleMessages[code], calls: 1, executions: 1})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { w.check(t, tc, orders) })
	}
	// Every op of the seed reaches the platform with its body.
	for _, op := range platformsim.OracleOps {
		r := w.jr(t, "run", "OccOrderAction", "--param", "id=o-"+op, "--param", "op="+op, "--json")
		require.Equal(t, 0, r.code, "%s", r)
	}
	var sawOrg, sawKey bool
	for _, rq := range w.occ.Requests() {
		if rq.Path == "/ccagent/v1/orders/o10008" {
			require.JSONEq(t, `{"op":"cancel"}`, rq.Body)
			sawOrg = rq.Header.Get("X-CCOrganization") == "or-100001"
			sawKey = strings.HasPrefix(rq.Header.Get("Idempotency-Key"), "jobrunner-")
		}
		if rq.Path == "/ccagent/v1/orders/o-validActions" {
			require.JSONEq(t, `{"op":"validActions"}`, rq.Body)
			require.Empty(t, rq.Header.Get("X-CCOrganization"), "an absent optional input sends no header")
		}
	}
	require.True(t, sawOrg, "organization is sent as X-CCOrganization")
	require.True(t, sawKey, "a changing request carries an Idempotency-Key")
	w.noSecrets(t)
}

func TestVTEXPresetEveryCode(t *testing.T) {
	w := newConnectorWorld(t)
	calls := func() int { return w.vtex.Count("/api/order-integration/orders/status") }
	cases := []connectorCase{
		{name: "SOI003", args: []string{"VtexOrderStatus", "--param", "OrderId=1001"}, status: "succeeded", calls: 1, executions: 1},
		{name: "SOI002", args: []string{"VtexOrderStatus", "--param", "OrderId=err-SOI002"}, status: "succeeded", calls: 1, executions: 1},
		{name: "EOI000", args: []string{"VtexOrderStatus", "--param", "OrderId=err-EOI000"}, status: "failed", code: "EOI000", msg: "Unknown error", calls: 3, executions: 3},
		{name: "EOI001", args: []string{"VtexOrderStatus", "--param", "OrderId=err-EOI001"}, status: "failed", code: "EOI001", msg: "Unmapped error", calls: 3, executions: 3},
	}
	// Waiting codes: come back later past the job's maxSnoozes (2), until
	// the horizon (400ms here), then fail with the last code.
	for _, code := range []string{"EOI008", "EOI009", "EOI011"} {
		cases = append(cases, connectorCase{name: code, args: []string{"VtexOrderStatus", "--param", "OrderId=err-" + code},
			status: "failed", code: code, msg: platformsim.VTEXMessages[code] + " (still snoozed after", prefix: true,
			executions: 1, snoozes: 3, atLeast: true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := calls()
			rv := w.check(t, tc, func() int {
				if tc.atLeast {
					return 0
				}
				return calls()
			})
			if tc.atLeast {
				require.Equal(t, rv.Executions, calls()-before, "one request per execution")
			}
		})
	}
	// The seller acts after 3 waits: the run succeeds, no attempt used.
	t.Run("until the state moves", func(t *testing.T) {
		w.check(t, connectorCase{args: []string{"VtexOrderStatus", "--param", "OrderId=wait-3"}, status: "succeeded", calls: 4, executions: 4, snoozes: 3}, calls)
	})
	for _, rq := range w.vtex.Requests() {
		if strings.Contains(rq.Body, `"1001"`) {
			require.JSONEq(t, `{"marketplaceOrderId":"1001","marketplaceOrderStatus":"APPROVED","connectorName":"acme","connectorEndpoint":"https://acme.example/vtex"}`, rq.Body)
		}
	}
	w.noSecrets(t)
}

func TestSalesforceB2CPresetEveryCode(t *testing.T) {
	w := newConnectorWorld(t)
	calls := func() int {
		n := 0
		for _, rq := range w.sfcc.Requests() {
			if strings.HasSuffix(rq.Path, "/status") {
				n++
			}
		}
		return n
	}
	const om = "the order status is owned by Salesforce Order Management"
	for _, tc := range []connectorCase{
		{name: "success", args: []string{"SfccOrderStatus", "--param", "orderNo=00001234", "--param", "status=cancelled"}, status: "succeeded", calls: 1, executions: 1},
		{name: "StatusTransitionNotPossibleException", args: []string{"SfccOrderStatus", "--param", "orderNo=som-1", "--param", "status=cancelled"}, status: "failed",
			code: "StatusTransitionNotPossibleException", msg: "The order status of order 'som-1' can't be changed to 'cancelled'. — " + om, prefix: true, calls: 1, executions: 1},
		{name: "IllegalOrderIntegrationStateException", args: []string{"SfccOrderStatus", "--param", "orderNo=illegal-1", "--param", "status=completed"}, status: "failed",
			code: "IllegalOrderIntegrationStateException", msg: "Status of integrated orders cannot be changed. — " + om, prefix: true, calls: 1, executions: 1},
		{name: "OrderNotFoundException", args: []string{"SfccOrderStatus", "--param", "orderNo=missing-1", "--param", "status=completed"}, status: "failed",
			code: "OrderNotFoundException", msg: "No order with number 'missing-1' was found.", calls: 1, executions: 1},
	} {
		t.Run(tc.name, func(t *testing.T) { w.check(t, tc, calls) })
	}
	for _, rq := range w.sfcc.Requests() {
		if rq.Path == "/s/-/dw/data/v23_2/sites/RefArch/orders/00001234/status" {
			require.JSONEq(t, `{"status":"cancelled"}`, rq.Body)
			require.True(t, strings.HasPrefix(rq.Header.Get("Authorization"), "Bearer sfcc-access-"))
		}
	}
	w.noSecrets(t)
}

func TestDefinitionsValidateJSONReportsConnectorProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(`connections:
  - name: occ
    type: http
    preset: oracle-commerce
    settings: {baseURL: "http://x", timout: 5s}
    secrets: {applicationKey: K}
jobs:
  - name: A
    connection: occ
    processor: http
    operation: handleOrderActions
    parameters: [{name: op, type: string}]
`), 0o644))
	r := jobrunner(t, "definitions", "validate", "--json", "--definitions", dir)
	require.Equal(t, 2, r.code, "%s", r)
	v := decodeJSON[struct {
		OK       bool `json:"ok"`
		Problems []struct {
			File, Path, Message string
			Line                int
		} `json:"problems"`
	}](t, r.stdout)
	require.False(t, v.OK)
	require.Len(t, v.Problems, 2, "%s", r.stdout)
	require.Equal(t, "x.yaml", v.Problems[0].File)
	require.Equal(t, 5, v.Problems[0].Line)
	require.Equal(t, "connections[0].settings.timout", v.Problems[0].Path)

	require.Equal(t, "jobs[0].operation", v.Problems[1].Path)

	// Fixed settings: the job's missing input is still reported.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(`connections:
  - name: occ
    type: http
    preset: oracle-commerce
    settings: {baseURL: "http://x"}
    secrets: {applicationKey: K}
jobs:
  - name: A
    connection: occ
    processor: http
    operation: handleOrderActions
    parameters: [{name: op, type: string}]
`), 0o644))
	r = jobrunner(t, "definitions", "validate", "--json", "--definitions", dir)
	require.Equal(t, 2, r.code, "%s", r)
	require.Contains(t, r.stdout, `"line": 11`)
	require.Contains(t, r.stdout, "operation handleOrderActions needs input id, which no parameter provides")
}
