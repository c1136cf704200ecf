package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/erpdemo"
)

// requirePython3 skips when python3 is absent, except in CI where the
// exec variant must run.
func requirePython3(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 is required in CI for the exec ERP connection: %v", err)
		}
		t.Skipf("python3 not on PATH (%v): skipping the exec ERP connection (CI does not skip)", err)
	}
}

// TestOrderCancelSwitchesConnection runs the same OrderCancel job
// definition (testdata/erp-switch/*/ordercancel.yaml, identical files)
// against a demo ERP twice: through the built-in http connection type, and
// through an exec connection whose command is a Python script
// (testdata/erp-switch/ordercancel.py). Only the connection file differs;
// no code changes. Both cancel WEB000123, both fail a shipped order
// permanently with ORDER_NOT_CANCELLABLE (exec: exit 3) without sending the
// cancel, both come back later on 503 (exec: exit 75) and keep the ERP's
// STATUS_LOCKED, and neither lets the token out.
func TestOrderCancelSwitchesConnection(t *testing.T) {
	requirePython3(t)
	t.Chdir("..") // the exec connection's command is relative to the repository root
	const canary = "exec-tok-CANARY-31d9"

	httpJob, err := os.ReadFile("testdata/erp-switch/http/ordercancel.yaml")
	require.NoError(t, err)
	execJob, err := os.ReadFile("testdata/erp-switch/exec/ordercancel.yaml")
	require.NoError(t, err)
	require.Equal(t, string(httpJob), string(execJob), "the job definition is the same file in both variants")

	// The job is also the built-in one: same parameters, retry, timeout, uniqueness.
	builtin := jobrunner(t, "definitions", "list", "--json")
	require.Equal(t, 0, builtin.code, "%s", builtin)
	type jobDef struct {
		Name, Connection, Processor, Timeout string
		Parameters                           []map[string]any
		Retry                                map[string]any
		UniqueBy                             []string
	}
	find := func(out string) jobDef {
		for _, j := range decodeJSON[[]jobDef](t, out) {
			if j.Name == "OrderCancel" {
				return j
			}
		}
		t.Fatalf("no OrderCancel in %s", out)
		return jobDef{}
	}
	want := find(builtin.stdout)

	type outcome struct {
		code      int
		status    string
		errorCode string
		result    map[string]any
	}
	results := map[string]map[string]outcome{}
	for _, variant := range []string{"http", "exec"} {
		dir := filepath.Join("testdata", "erp-switch", variant)
		listed := jobrunner(t, "--definitions", dir, "definitions", "list", "--json")
		require.Equal(t, 0, listed.code, "%s", listed)
		require.Equal(t, want, find(listed.stdout), variant)

		erp := startERP(t, canary) // a fresh ERP per variant
		db, path := tempDB(t)
		var outputs []string
		got := map[string]outcome{}
		for _, order := range []string{"WEB000123", "WEB000126", "WEB000128", "WEB000129", "WEB000130", "NOPE000001"} {
			r := jobrunner(t, db, "--definitions", dir, "run", "OrderCancel", "--param", "OrderNumber="+order, "--json")
			outputs = append(outputs, r.stdout, r.stderr)
			run := decodeJSON[runView](t, r.stdout)
			got[order] = outcome{r.code, run.Status, run.ErrorCode, run.Result}
			if order == "WEB000130" {
				require.Equal(t, erpdemo.UnavailableCalls, run.Snoozes, "%s: 503 + Retry-After comes back later without using attempts", variant)
				require.Len(t, run.Attempts, erpdemo.UnavailableCalls+1)
			}
		}
		results[variant] = got

		o, _ := erp.Get("WEB000123")
		require.Equal(t, erpdemo.StatusCancelled, o.Status, variant)
		require.Equal(t, 1, erp.CancelsApplied("WEB000123"), variant)
		require.Zero(t, erp.CancelCalls("WEB000126"), "%s: a shipped order's cancel is refused before it is sent", variant)
		require.Zero(t, erp.CancelCalls("WEB000128"), "%s: an already cancelled order is not cancelled again", variant)
		o, _ = erp.Get("WEB000126")
		require.Equal(t, erpdemo.StatusShipped, o.Status, variant)

		r := jobrunner(t, db, "runs", "logs", "1")
		outputs = append(outputs, r.stdout, r.stderr)
		require.Equal(t, 0, r.code, "%s", r)
		if variant == "exec" {
			// The script's stderr lines are the run's log.
			require.Contains(t, r.stdout, "GET /orders/WEB000123 → 200")
			require.Contains(t, r.stdout, "cancelled WEB000123: ERP status Open → Cancelled")
			r = jobrunner(t, db, "runs", "logs", "2")
			require.Regexp(t, `(?m)  ERROR  ORDER_NOT_CANCELLABLE: order WEB000126 `, r.stdout)
		}

		for _, out := range outputs {
			require.NotContains(t, out, canary, variant)
		}
		stored, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Contains(t, string(stored), "WEB000126")
		require.NotContains(t, string(stored), canary, variant)
	}

	for order, h := range results["http"] {
		e := results["exec"][order]
		require.Equal(t, h.code, e.code, order)
		require.Equal(t, h.status, e.status, order)
		require.Equal(t, h.errorCode, e.errorCode, order)
		for _, k := range []string{"orderNumber", "previousErpStatus", "erpStatus", "alreadyCancelled"} {
			require.Equal(t, h.result[k], e.result[k], "%s %s", order, k)
		}
	}
	require.Equal(t, outcome{0, "succeeded", "", results["exec"]["WEB000123"].result}, results["exec"]["WEB000123"])
	require.Equal(t, "Cancelled", results["exec"]["WEB000123"].result["erpStatus"])
	require.Equal(t, true, results["exec"]["WEB000128"].result["alreadyCancelled"])
	for order, code := range map[string]string{"WEB000126": "ORDER_NOT_CANCELLABLE", "WEB000129": "STATUS_LOCKED", "NOPE000001": "ORDER_NOT_FOUND"} {
		require.Equal(t, outcome{1, "failed", code, nil}, results["exec"][order], order)
	}
	require.Equal(t, 0, results["exec"]["WEB000130"].code)
}

// TestExecOrderCancelConfigErrors: the script refuses a connection without
// a usable base URL permanently, with the http processor's configuration
// code (ERP_CONFIG) through the exec protocol's exit 3.
func TestExecOrderCancelConfigErrors(t *testing.T) {
	requirePython3(t)
	t.Chdir("..")
	startERP(t, "tok")
	t.Setenv("JOBRUNNER_ERP_URL", "not-a-url")
	db, _ := tempDB(t)
	r := jobrunner(t, db, "--definitions", "testdata/erp-switch/exec", "run", "OrderCancel", "--param", "OrderNumber=WEB000123", "--json")
	require.Equal(t, 1, r.code, "%s", r)
	run := decodeJSON[runView](t, r.stdout)
	require.Equal(t, "ERP_CONFIG", run.ErrorCode)
	require.True(t, strings.HasPrefix(run.ErrorMessage, "setting baseURL"), run.ErrorMessage)
	require.Len(t, run.Attempts, 1, "permanent: no retry")
}
