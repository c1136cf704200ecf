package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/cli"
	"github.com/jobrunner/jobrunner/erpdemo"
)

// result is what one cli.Main call did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// jobrunner calls cli.Main with args and buffers for its output.
func jobrunner(t *testing.T, args ...string) result {
	t.Helper()
	return jobrunnerWith(t, cli.Options{}, args...)
}

func jobrunnerWith(t *testing.T, opts cli.Options, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	opts.Stdout, opts.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Main(ctx, args, opts)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// tempDB returns a --db flag for a new SQLite file and the file's path.
func tempDB(t *testing.T) (flag, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "x.db")
	return "--db=sqlite:" + path, path
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(s), &v), "not JSON:\n%s", s)
	return v
}

// runView is the part of `run --json`, `runs show --json` and `runs list
// --json` output the tests read.
type runView struct {
	ID           int64          `json:"id"`
	Job          string         `json:"job"`
	Status       string         `json:"status"`
	Trigger      string         `json:"trigger"`
	TriggeredBy  string         `json:"triggeredBy"`
	Parameters   map[string]any `json:"parameters"`
	Result       map[string]any `json:"result"`
	ErrorCode    string         `json:"errorCode"`
	ErrorMessage string         `json:"errorMessage"`
	MaxAttempts  int            `json:"maxAttempts"`
	Snoozes      int            `json:"snoozes"`
	Executions   int            `json:"executions"`
	Attempts     []attemptView  `json:"attempts"`
}

type attemptView struct {
	Attempt   int    `json:"attempt"`
	Status    string `json:"status"`
	ErrorCode string `json:"errorCode"`
}

type logView struct {
	Attempt int               `json:"attempt"`
	Level   string            `json:"level"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields"`
}

func ids(runs []runView) []int64 {
	out := make([]int64, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

// requireOneLineError checks a usage error: exit 2, nothing on stdout, one
// line on stderr containing every want.
func requireOneLineError(t *testing.T, r result, want ...string) {
	t.Helper()
	require.Equal(t, 2, r.code, "%s", r)
	require.Empty(t, r.stdout)
	require.True(t, strings.HasPrefix(r.stderr, "jobrunner: "), "%s", r)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
	require.True(t, strings.HasSuffix(r.stderr, "\n"))
	for _, w := range want {
		require.Contains(t, r.stderr, w)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown job", []string{"run", "NoSuchJob"}, []string{`unknown job "NoSuchJob"`}},
		{"no job", []string{"run"}, []string{"accepts 1 arg"}},
		{"param without =", []string{"run", "Noop", "--param", "SleepMs"}, []string{`--param "SleepMs": want NAME=VALUE`}},
		{"param without name", []string{"run", "Noop", "-p", "=5"}, []string{`"=5"`, "NAME=VALUE"}},
		{"param twice", []string{"run", "Noop", "-p", "SleepMs=1", "-p", "SleepMs=2"}, []string{"SleepMs given twice"}},
		{"int type", []string{"run", "Noop", "--param", "SleepMs=1.5"}, []string{"parameter SleepMs", "expected int", `"1.5"`}},
		{"int overflow", []string{"run", "Noop", "--param", "SleepMs=99999999999999999999"}, []string{"parameter SleepMs", "expected int", "out of range"}},
		{"int below min", []string{"run", "Noop", "--param", "SleepMs=-1"}, []string{"parameter SleepMs"}},
		{"enum case", []string{"run", "OrderCancel", "--param", "OrderNumber=WEB000123", "--param", "Reason=Fraud"},
			[]string{"parameter Reason", "expected enum", `did you mean "fraud"`}},
		{"required", []string{"run", "OrderCancel"}, []string{"parameter OrderNumber: required"}},
		{"pattern", []string{"run", "OrderCancel", "--param", "OrderNumber=WEB 123; DROP TABLE runs"}, []string{"parameter OrderNumber"}},
		{"enum required", []string{"run", "OrderAction", "--param", "OrderNumber=WEB000123"}, []string{"parameter op: required"}},
		{"enum value", []string{"run", "OrderAction", "--param", "OrderNumber=WEB000123", "--param", "op=ship"}, []string{"parameter op", "expected enum"}},
		{"unknown parameter", []string{"run", "Noop", "--param", "Nope=1"}, []string{"parameter Nope", "unknown parameter"}},
		{"unknown flag", []string{"run", "Noop", "--bogus"}, []string{"unknown flag: --bogus"}},
		{"unknown global flag", []string{"--bogus", "runs", "list"}, []string{"unknown flag: --bogus"}},
		{"bad db scheme", []string{"--db", "postgres://u@h/db", "runs", "list"}, []string{"bad database DSN"}},
		{"empty sqlite path", []string{"--db", "sqlite:", "runs", "list"}, []string{"bad database DSN"}},
		{"bad status", []string{"runs", "list", "--status", "done"}, []string{`--status "done"`}},
		{"bad limit", []string{"runs", "list", "--limit", "1001"}, []string{"--limit 1001"}},
		{"bad run id", []string{"runs", "show", "abc"}, []string{`run id "abc"`}},
		{"bad cron", []string{"schedule", "next", "61 * * * *"}, []string{"61"}},
		{"bad tz", []string{"schedule", "next", "0 2 * * *", "--tz", "Mars/Olympus"}, []string{`--tz "Mars/Olympus"`}},
		{"bad from", []string{"schedule", "next", "0 2 * * *", "--from", "yesterday"}, []string{`--from "yesterday"`}},
		{"bad count", []string{"schedule", "next", "0 2 * * *", "--count", "0"}, []string{"--count 0"}},
		{"bad log level", []string{"--log-level", "loud", "definitions", "list"}, []string{"--log-level"}},
		{"bad log format", []string{"--log-format", "xml", "definitions", "list"}, []string{"--log-format"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, path := tempDB(t)
			r := jobrunner(t, append([]string{db}, tc.args...)...)
			requireOneLineError(t, r, tc.want...)
			if _, err := os.Stat(path); err == nil {
				// If the database was opened at all, nothing was recorded.
				list := jobrunner(t, db, "runs", "list", "--json")
				require.Equal(t, 0, list.code, "%s", list)
				require.Empty(t, decodeJSON[[]runView](t, list.stdout), "bad input records no run")
			}
		})
	}
}

// TestUnknownCommandsExit2 pins that an unknown command is bad usage (exit
// 2), at the top level and under a command group.
func TestUnknownCommandsExit2(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"bogus"}, {"runs", "bogus"}, {"definitions", "bogus"}, {"schedule", "bogus"}} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			r := jobrunner(t, args...)
			require.Equal(t, 2, r.code, "%s", r)
			require.Contains(t, r.stderr, `unknown command "bogus"`)
		})
	}
}

func TestScheduleNextExactOutput(t *testing.T) {
	t.Parallel()
	// Flags after SPEC; 2026-03-29 is the spring-forward day in Amsterdam:
	// 02:00 does not exist and the fixed-time spec fires at 03:00 CEST.
	r := jobrunner(t, "schedule", "next", "0 2 * * *", "--tz", "Europe/Amsterdam", "--from", "2026-03-28T00:00:00Z", "--count", "3")
	require.Equal(t, 0, r.code, "%s", r)
	require.Equal(t, "2026-03-28T02:00:00+01:00\n2026-03-29T03:00:00+02:00\n2026-03-30T02:00:00+02:00\n", r.stdout)
	require.Empty(t, r.stderr)

	// Flags before SPEC give the same; the default zone is UTC, not local.
	r = jobrunner(t, "schedule", "next", "--count", "2", "--from", "2026-03-28T00:00:00Z", "0 2 * * *")
	require.Equal(t, 0, r.code, "%s", r)
	require.Equal(t, "2026-03-28T02:00:00Z\n2026-03-29T02:00:00Z\n", r.stdout)
}

func TestDefinitionsValidate(t *testing.T) {
	t.Parallel()
	r := jobrunner(t, "definitions", "validate")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "built-in examples: 4 jobs, 3 connections, 2 hooks: OK")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte(`connections:
  - name: erp
    type: http
    settings: {baseURL: "http://127.0.0.1:9"}
jobs:
  - name: A
    connection: erp
    processor: OrderCancel
    colour: blue
    schedule:
      cron: "61 * * * *"
    parameters:
      - name: N
        type: int
        default: abc
  - name: B
    connection: nowhere
    processor: Noop
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "more.yaml"), []byte(`jobs:
  - name: A
    connection: erp
    processor: OrderCancel
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a definition"), 0o644))

	r = jobrunner(t, "definitions", "validate", "--definitions", dir)
	require.Equal(t, 2, r.code, "%s", r)
	require.Empty(t, r.stdout)
	// Every problem at once, each with file:line and the field path.
	require.Equal(t, "jobrunner: definitions in "+dir+`:
jobs.yaml:9: jobs[0].colour: unknown field "colour"
jobs.yaml:11: jobs[0].schedule.cron: invalid cron spec: "61 * * * *": invalid minute field "61": end of range (61) above maximum (59): 61
jobs.yaml:15: jobs[0].parameters[0].default: invalid default: expected int, got "abc"
jobs.yaml:17: jobs[1].connection: unknown connection "nowhere"
more.yaml:2: jobs[0].name: duplicate job name "A" (first defined at jobs.yaml:6)
`, r.stderr)

	// The same definitions cannot be run either: exit 2, nothing recorded.
	db, _ := tempDB(t)
	r = jobrunner(t, db, "--definitions", dir, "run", "B")
	require.Equal(t, 2, r.code, "%s", r)
	require.Contains(t, r.stderr, "jobs.yaml:17:")

	r = jobrunner(t, "definitions", "validate", "--definitions", filepath.Join(dir, "missing"))
	require.Equal(t, 2, r.code, "%s", r)
}

func TestDefinitionsListJSON(t *testing.T) {
	t.Parallel()
	r := jobrunner(t, "definitions", "list", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	type param struct {
		Name     string   `json:"name"`
		Type     string   `json:"type"`
		Prompt   string   `json:"prompt"`
		Required bool     `json:"required"`
		Default  *string  `json:"default"`
		Values   []string `json:"values"`
	}
	jobsList := decodeJSON[[]struct {
		Name       string  `json:"name"`
		Connection string  `json:"connection"`
		Processor  string  `json:"processor"`
		Parameters []param `json:"parameters"`
		Schedule   *struct {
			Cron, Timezone string
			Next           []string
		} `json:"schedule"`
		Source struct {
			File string `json:"file"`
			Line int    `json:"line"`
		} `json:"source"`
		Version  string   `json:"version"`
		UniqueBy []string `json:"uniqueBy"`
	}](t, r.stdout)
	byName := map[string]int{}
	for i, j := range jobsList {
		byName[j.Name] = i
		require.Len(t, j.Version, 16, j.Name)
		require.Positive(t, j.Source.Line, j.Name)
	}
	require.Len(t, byName, 4)
	require.Contains(t, byName, "OrderCancel")
	require.Contains(t, byName, "OrderAction")
	require.Contains(t, byName, "OrderStatusSync")
	require.Contains(t, byName, "Noop")

	oc := jobsList[byName["OrderCancel"]]
	require.Equal(t, "erp", oc.Connection)
	require.Equal(t, []string{"OrderNumber"}, oc.UniqueBy)
	require.Equal(t, param{Name: "OrderNumber", Type: "string", Prompt: "Order Number", Required: true}, oc.Parameters[0])
	require.Nil(t, oc.Schedule)

	oa := jobsList[byName["OrderAction"]]
	require.Equal(t, "OrderAction", oa.Processor)
	require.Equal(t, param{Name: "op", Type: "enum", Prompt: "Operation", Required: true,
		Values: []string{"cancel", "validateOrder", "validatePaymentAuthorization", "invalidateOrder"}}, oa.Parameters[1])
	require.Equal(t, "customerRequest", *oa.Parameters[2].Default)

	sync := jobsList[byName["OrderStatusSync"]]
	require.NotNil(t, sync.Schedule)
	require.Equal(t, "*/5 * * * *", sync.Schedule.Cron)
	require.Len(t, sync.Schedule.Next, 3)
	var prev time.Time
	for _, s := range sync.Schedule.Next {
		tm, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		require.Zero(t, tm.Minute()%5, s)
		require.True(t, tm.After(prev))
		prev = tm
	}

	r = jobrunner(t, "definitions", "list")
	require.Equal(t, 0, r.code, "%s", r)
	require.Regexp(t, `(?m)^JOB\s+PROCESSOR\s+CONNECTION\s+PARAMETERS\s+SCHEDULE\s+NEXT$`, r.stdout)
	require.Regexp(t, `(?m)^OrderCancel\s+OrderCancel\s+erp\s+OrderNumber:string! Reason:enum\s+-\s+-$`, r.stdout)
}

// TestRunsWithoutERP covers run, runs list/show/logs/cancel with the Noop
// job: no environment needed.
func TestRunsWithoutERP(t *testing.T) {
	t.Parallel()
	db, _ := tempDB(t)

	r := jobrunner(t, db, "run", "Noop", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	first := decodeJSON[runView](t, r.stdout)
	require.Equal(t, "succeeded", first.Status)
	require.Equal(t, "manual", first.Trigger)
	require.True(t, strings.HasPrefix(first.TriggeredBy, "cli"), first.TriggeredBy)
	require.Equal(t, map[string]any{"SleepMs": float64(0)}, first.Parameters)
	require.Len(t, first.Attempts, 1)

	r = jobrunner(t, db, "run", "Noop", "-p", "SleepMs=20")
	require.Equal(t, 0, r.code, "%s", r)
	require.Regexp(t, `^run 2  Noop  SUCCEEDED\n`, r.stdout)
	require.Contains(t, r.stdout, "  logs:        jobrunner runs logs 2\n")
	require.Contains(t, r.stderr, "run recorded", "the process log goes to stderr")

	r = jobrunner(t, db, "runs", "list", "--json", "--param", "SleepMs=20")
	require.Equal(t, 0, r.code, "%s", r)
	require.Equal(t, []int64{2}, ids(decodeJSON[[]runView](t, r.stdout)))

	r = jobrunner(t, db, "runs", "list", "--json", "--job", "Noop", "--status", "succeeded")
	require.Equal(t, 0, r.code, "%s", r)
	require.Equal(t, []int64{2, 1}, ids(decodeJSON[[]runView](t, r.stdout)), "newest first")

	r = jobrunner(t, db, "runs", "list", "--json", "--status", "failed")
	require.Equal(t, 0, r.code, "%s", r)
	require.Equal(t, "[]\n", r.stdout, "an empty list is [], not null")

	r = jobrunner(t, db, "runs", "show", "1", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	shown := decodeJSON[runView](t, r.stdout)
	require.Equal(t, first.ID, shown.ID)
	require.Equal(t, []attemptView{{Attempt: 1, Status: "succeeded"}}, shown.Attempts)

	r = jobrunner(t, db, "runs", "logs", "1")
	require.Equal(t, 0, r.code, "%s", r)
	require.Regexp(t, `(?m)^\S+  #1  INFO   attempt 1 of \d+ started`, r.stdout)

	// A finished run cannot be cancelled: exit 1, and it stays succeeded.
	r = jobrunner(t, db, "runs", "cancel", "1")
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stderr, "run 1 already finished (succeeded)")
	r = jobrunner(t, db, "runs", "show", "1", "--json")
	require.Equal(t, "succeeded", decodeJSON[runView](t, r.stdout).Status)

	// An unknown run: the command failed (exit 1), not bad usage.
	for _, args := range [][]string{{"runs", "show", "99"}, {"runs", "logs", "99"}, {"runs", "cancel", "99"}} {
		r = jobrunner(t, append([]string{db}, args...)...)
		require.Equal(t, 1, r.code, "%v: %s", args, r)
		require.Contains(t, r.stderr, "not found", "%v", args)
	}
}

// TestDSNPasswordNeverPrinted: a MySQL DSN's password appears in no output,
// whether the DSN is malformed (exit 2) or the server cannot be reached
// (exit 1).
func TestDSNPasswordNeverPrinted(t *testing.T) {
	t.Parallel()
	const pw = "Pw-CANARY-9f31"
	for _, tc := range []struct {
		dsn  string
		code int
	}{
		{"mysql://jr:" + pw + "@127.0.0.1:notaport/jobs", 2},
		{"mysql://jr:" + pw + "@127.0.0.1:1/jobs", 1},    // nothing listens on port 1
		{"mysql:jr:" + pw + "@tcp(127.0.0.1:1)/jobs", 2}, // go-sql-driver syntax, not a URL
		// An unknown driver option is only found when connecting: exit 1
		// today (bad input would be 2); what matters here is the password.
		{"mysql://jr:" + pw + "@127.0.0.1:1/jobs?tls=nonsense", -1},
	} {
		for _, args := range [][]string{{"runs", "list"}, {"migrate"}, {"run", "Noop"}} {
			r := jobrunner(t, append([]string{"--db", tc.dsn}, args...)...)
			if tc.code >= 0 {
				require.Equal(t, tc.code, r.code, "%s %v: %s", tc.dsn, args, r)
			} else {
				require.NotZero(t, r.code, "%s %v: %s", tc.dsn, args, r)
			}
			require.NotEmpty(t, r.stderr)
			require.NotContains(t, r.stdout+r.stderr, pw, "%s %v", tc.dsn, args)
		}
	}
}

// startERP serves a demo ERP that wants token and points the built-in erp
// connection at it. It sets the process environment: callers must not be
// parallel.
func startERP(t *testing.T, token string) *erpdemo.Server {
	t.Helper()
	erp := erpdemo.New(token)
	srv := httptest.NewServer(erp.Handler())
	t.Cleanup(srv.Close)
	t.Setenv("JOBRUNNER_ERP_URL", srv.URL)
	t.Setenv("JOBRUNNER_ERP_TOKEN", token)
	return erp
}

// TestOrderJobsAgainstERP runs the built-in OrderCancel and OrderAction
// jobs against a demo ERP over real HTTP, then reads them back with every
// runs command, and checks that the ERP token (a canary) appears in no
// output, text or JSON, process log text or JSON, and in no byte of the
// SQLite files.
func TestOrderJobsAgainstERP(t *testing.T) {
	const canary = "tok-CANARY-7e2b4d1a"
	erp := startERP(t, canary)
	erp.Put(erpdemo.Order{OrderNumber: "WEB000200", Status: erpdemo.StatusOpen})
	db, path := tempDB(t)
	var outputs []string
	jr := func(args ...string) result {
		t.Helper()
		r := jobrunner(t, append([]string{db, "--log-level", "debug"}, args...)...)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}

	// 1: success.
	r := jr("run", "OrderCancel", "--param", "OrderNumber=WEB000123", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	ok := decodeJSON[runView](t, r.stdout)
	require.Equal(t, "succeeded", ok.Status)
	require.Equal(t, map[string]any{"OrderNumber": "WEB000123", "Reason": "customerRequest"}, ok.Parameters)
	require.Equal(t, "Cancelled", ok.Result["erpStatus"])
	require.Equal(t, "Open", ok.Result["previousErpStatus"])
	o, _ := erp.Get("WEB000123")
	require.Equal(t, erpdemo.StatusCancelled, o.Status)
	require.Equal(t, 1, erp.CancelsApplied("WEB000123"))

	// 2: the ERP's state forbids it: exit 1, permanent, one attempt, cancel never sent.
	r = jr("run", "OrderCancel", "--param", "OrderNumber=WEB000126", "--param", "Reason=fraud")
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stdout, "FAILED")
	require.Contains(t, r.stdout, "error:       ORDER_NOT_CANCELLABLE: ")
	require.Zero(t, erp.CancelCalls("WEB000126"))

	// 3: locked by another system: the ERP's 423, exit 1.
	r = jr("--log-format", "json", "run", "OrderCancel", "--param", "OrderNumber=WEB000129", "--json")
	require.Equal(t, 1, r.code, "%s", r)
	locked := decodeJSON[runView](t, r.stdout)
	require.Equal(t, "STATUS_LOCKED", locked.ErrorCode)
	require.Equal(t, "Status of integrated orders cannot be changed", locked.ErrorMessage)

	// 4: OrderAction with an op: one processor, several operations.
	r = jr("run", "OrderAction", "--param", "OrderNumber=WEB000200", "--param", "op=validateOrder", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	action := decodeJSON[runView](t, r.stdout)
	require.Equal(t, "validateOrder", action.Result["op"])
	o, _ = erp.Get("WEB000200")
	require.Equal(t, erpdemo.StatusProcessing, o.Status)

	// 5: uniqueBy does not block a second run once the first has finished.
	r = jr("run", "OrderCancel", "--param", "OrderNumber=WEB000123", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	require.Equal(t, true, decodeJSON[runView](t, r.stdout).Result["alreadyCancelled"])

	// runs list filters.
	list := func(args ...string) []int64 {
		t.Helper()
		r := jr(append([]string{"runs", "list", "--json"}, args...)...)
		require.Equal(t, 0, r.code, "%s", r)
		return ids(decodeJSON[[]runView](t, r.stdout))
	}
	require.Equal(t, []int64{5, 4, 3, 2, 1}, list())
	require.Equal(t, []int64{5, 1}, list("--param", "OrderNumber=WEB000123"))
	require.Equal(t, []int64{2}, list("--param", "OrderNumber=WEB000126"))
	require.Equal(t, []int64{2}, list("--param", "OrderNumber=WEB000126", "--param", "Reason=fraud"))
	require.Empty(t, list("--param", "OrderNumber=WEB000126", "--param", "Reason=customerRequest"))
	require.Empty(t, list("--param", "OrderNumber=web000126"), "parameter filters match exactly")
	require.Equal(t, []int64{3, 2}, list("--status", "failed"))
	require.Equal(t, []int64{4}, list("--job", "OrderAction"))
	require.Equal(t, []int64{5, 1}, list("--job", "OrderCancel", "--status", "succeeded"))
	require.Equal(t, []int64{2}, list("--job", "OrderCancel", "--status", "failed", "--param", "OrderNumber=WEB000126"))
	require.Equal(t, []int64{5, 4}, list("--limit", "2"))
	require.Equal(t, []int64{3, 2}, list("--before", "4", "--limit", "2"))

	r = jr("runs", "list")
	require.Equal(t, 0, r.code, "%s", r)
	require.Regexp(t, `(?m)^2\s+OrderCancel\s+failed\s+1/5\s+manual\s.*ORDER_NOT_CANCELLABLE$`, r.stdout)

	// runs show: attempts present, with the permanent failure's code.
	r = jr("runs", "show", "2", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	failed := decodeJSON[runView](t, r.stdout)
	require.Equal(t, "failed", failed.Status)
	require.Equal(t, "ORDER_NOT_CANCELLABLE", failed.ErrorCode)
	require.Equal(t, []attemptView{{Attempt: 1, Status: "failed", ErrorCode: "ORDER_NOT_CANCELLABLE"}}, failed.Attempts)
	r = jr("runs", "show", "2")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "  attempts:    1 of 5\n")
	require.Regexp(t, `(?m)^    #1 failed .* ORDER_NOT_CANCELLABLE: `, r.stdout)

	// runs logs: the ERP calls, text and JSON.
	r = jr("runs", "logs", "1")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "cancelled WEB000123: ERP status Open → Cancelled")
	r = jr("runs", "logs", "1", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	var sawPost bool
	for _, l := range decodeJSON[[]logView](t, r.stdout) {
		require.Equal(t, 1, l.Attempt)
		if strings.Contains(l.Message+l.Fields["method"]+l.Fields["path"], "POST") {
			sawPost = true
		}
	}
	require.True(t, sawPost, "the cancel POST is logged:\n%s", r.stdout)

	// A finished run cannot be cancelled.
	r = jr("runs", "cancel", "2")
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stderr, "already finished (failed)")

	// The canary token: nowhere in what was printed or stored.
	for _, out := range outputs {
		require.NotContains(t, out, canary)
	}
	files, err := filepath.Glob(path + "*") // the database and any -wal/-journal file
	require.NoError(t, err)
	var stored []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		stored = append(stored, b...)
	}
	require.Contains(t, string(stored), "WEB000126", "the grep below reads the stored runs")
	require.Contains(t, string(stored), "Status of integrated orders cannot be changed")
	require.NotContains(t, string(stored), canary)
}

// TestRunDemo: `run --demo` starts the demo ERP and says so.
func TestRunDemo(t *testing.T) {
	// --demo sets JOBRUNNER_ERP_URL/TOKEN in the process environment: have
	// t.Setenv restore them afterwards.
	t.Setenv("JOBRUNNER_ERP_URL", "")
	t.Setenv("JOBRUNNER_ERP_TOKEN", "")
	db, _ := tempDB(t)
	r := jobrunner(t, db, "run", "--demo", "OrderCancel", "--param", "OrderNumber=WEB000124", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stderr, "DEMO ERP")
	run := decodeJSON[runView](t, r.stdout)
	require.Equal(t, "Processing", run.Result["previousErpStatus"])
	require.Equal(t, "Cancelled", run.Result["erpStatus"])

	r = jobrunner(t, db, "run", "--demo", "OrderCancel", "--param", "OrderNumber=WEB000127")
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stdout, "ORDER_NOT_CANCELLABLE")
}
