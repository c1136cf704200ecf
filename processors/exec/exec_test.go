package exec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/processors/exec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type line struct{ level, msg string }

type recLogger struct {
	mu    sync.Mutex
	lines []line
}

func (l *recLogger) add(level, msg string) {
	l.mu.Lock()
	l.lines = append(l.lines, line{level, msg})
	l.mu.Unlock()
}
func (l *recLogger) Debug(msg string, _ ...any) { l.add("debug", msg) }
func (l *recLogger) Info(msg string, _ ...any)  { l.add("info", msg) }
func (l *recLogger) Warn(msg string, _ ...any)  { l.add("warn", msg) }
func (l *recLogger) Error(msg string, _ ...any) { l.add("error", msg) }

func (l *recLogger) all() []line {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]line(nil), l.lines...)
}

func (l *recLogger) text() string {
	var b strings.Builder
	for _, x := range l.all() {
		fmt.Fprintf(&b, "%s %s\n", x.level, x.msg)
	}
	return b.String()
}

func script(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newRun returns a run on an exec connection running /bin/sh SCRIPT ARGS….
func newRun(t *testing.T, scriptName string, args ...string) (*processors.Run, *recLogger) {
	t.Helper()
	cmd := []any{"/bin/sh", script(t, scriptName)}
	for _, a := range args {
		cmd = append(cmd, a)
	}
	log := &recLogger{}
	return &processors.Run{
		ID:             42,
		Job:            &definitions.Job{Name: "OrderCancel", Processor: "OrderCancel"},
		Attempt:        2,
		MaxAttempts:    3,
		Params:         definitions.Values{"OrderNumber": "SO-1001", "Count": int64(3)},
		Connection:     processors.Connection{Name: "erp", Type: "exec", Settings: map[string]any{"command": cmd, "killGrace": "200ms"}},
		IdempotencyKey: "run-42",
		Log:            log,
	}, log
}

func process(ctx context.Context, run *processors.Run) error {
	return (&exec.Processor{}).Process(processors.WithProcessorName(ctx, "OrderCancel"), run)
}

func TestSuccess(t *testing.T) {
	stdinFile := filepath.Join(t.TempDir(), "stdin.json")
	run, log := newRun(t, "success.sh", stdinFile, "x; echo pwned")
	run.Input = json.RawMessage(`{"previous":1}`)
	run.Preview = true
	if err := process(context.Background(), run); err != nil {
		t.Fatalf("Process: %v\nlogs:\n%s", err, log.text())
	}
	res, ok := run.Result().(json.RawMessage)
	if !ok {
		t.Fatalf("result is %T", run.Result())
	}
	// The argument reached the script verbatim, as one argument: no shell.
	if want := `{"ok":true,"argc":1,"arg":"x; echo pwned"}`; string(res) != want {
		t.Fatalf("result = %s, want %s", res, want)
	}

	var req map[string]any
	b, err := os.ReadFile(stdinFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatalf("stdin %q: %v", b, err)
	}
	want := map[string]any{
		"runId": 42.0, "job": "OrderCancel", "processor": "OrderCancel", "step": "",
		"attempt": 2.0, "maxAttempts": 3.0,
		"parameters": map[string]any{"OrderNumber": "SO-1001", "Count": 3.0},
		"connection": map[string]any{"name": "erp", "type": "exec", "settings": map[string]any{
			"command": []any{"/bin/sh", script(t, "success.sh"), stdinFile, "x; echo pwned"}, "killGrace": "200ms"}},
		"input": map[string]any{"previous": 1.0}, "preview": true, "idempotencyKey": "run-42",
	}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("stdin =\n%v\nwant\n%v", req, want)
	}

	wantLines := []line{{"info", "hello from stderr"}, {"warn", "careful"}, {"error", "bad record 7"}, {"debug", "details"}}
	if got := log.all(); !reflect.DeepEqual(got, wantLines) {
		t.Fatalf("logs = %v, want %v", got, wantLines)
	}
	if run.Progress() != 40 || run.Counters().Read != 5 || run.Counters().Changed != 2 {
		t.Fatalf("progress %d counters %+v", run.Progress(), run.Counters())
	}
}

func TestNullInputAndEmptyStdout(t *testing.T) {
	run, _ := newRun(t, "exit.sh", "0", "")
	run.Params = nil
	if err := process(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if run.Result() != nil {
		t.Fatalf("result = %v, want nil", run.Result())
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		want   processors.Outcome
		substr string // in err.Error() when Message is not compared
	}{
		{"permanent with code", []string{"3", `{"code":"ORDER_SHIPPED","message":"Cancel failed as order is in [Shipped] state"}`, "ERROR: refused"},
			processors.Outcome{Kind: processors.OutcomePermanent, Code: "ORDER_SHIPPED", Message: "Cancel failed as order is in [Shipped] state"}, ""},
		{"permanent defaults", []string{"3", "", "ERROR: Status of integrated orders cannot be changed"},
			processors.Outcome{Kind: processors.OutcomePermanent, Code: "EXEC_PERMANENT", Message: "Status of integrated orders cannot be changed"}, ""},
		{"snooze with retryAfter", []string{"75", `{"retryAfter":"30s","message":"awaiting authorization"}`},
			processors.Outcome{Kind: processors.OutcomeSnooze, Code: "RETRY_LATER", Message: "awaiting authorization", Delay: 30 * time.Second}, ""},
		{"snooze seconds", []string{"75", `{"retryAfter":90}`, "busy"},
			processors.Outcome{Kind: processors.OutcomeSnooze, Code: "RETRY_LATER", Message: "busy", Delay: 90 * time.Second}, ""},
		{"snooze without stdout", []string{"75", "", "later please"},
			processors.Outcome{Kind: processors.OutcomeSnooze, Code: "RETRY_LATER", Message: "later please"}, ""},
		{"exit 1 retryable", []string{"1", "", "connection refused"},
			processors.Outcome{Kind: processors.OutcomeRetry, Code: "ERROR"}, "exit status 1: connection refused"},
		{"non-JSON stdout", []string{"0", "hello, not json"},
			processors.Outcome{Kind: processors.OutcomeRetry, Code: "ERROR"}, `stdout was not JSON (starts with "hello, not json")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run, log := newRun(t, "exit.sh", tc.args...)
			err := process(context.Background(), run)
			got := processors.Classify(err)
			if tc.substr != "" {
				if !strings.Contains(got.Message, tc.substr) {
					t.Fatalf("message %q does not contain %q", got.Message, tc.substr)
				}
				got.Message = ""
			}
			if got != tc.want {
				t.Fatalf("outcome =\n%+v\nwant\n%+v\nlogs:\n%s", got, tc.want, log.text())
			}
		})
	}
}

func TestHugeStdout(t *testing.T) {
	run, _ := newRun(t, "huge.sh", strconv.Itoa(2<<20))
	err := process(context.Background(), run)
	if err == nil || !strings.Contains(err.Error(), "stdout exceeded the 1048576 byte limit") {
		t.Fatalf("err = %v", err)
	}
	if k := processors.Classify(err).Kind; k != processors.OutcomeRetry {
		t.Fatalf("kind = %v", k)
	}
	// Just under a small limit is fine.
	run, _ = newRun(t, "huge.sh", "98")
	if err := (&exec.Processor{MaxStdout: 100}).Process(context.Background(), run); err != nil {
		t.Fatal(err)
	}
}

func TestStderrCaps(t *testing.T) {
	run, log := newRun(t, "flood.sh", "20")
	if err := (&exec.Processor{MaxStderrLines: 5}).Process(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	got := log.all()
	if len(got) != 6 {
		t.Fatalf("%d lines, want 5 + truncation notice:\n%s", len(got), log.text())
	}
	if n := len(got[0].msg); n > exec.MaxLineBytes+100 || !strings.HasSuffix(got[0].msg, "[line truncated]") {
		t.Fatalf("long line: %d bytes, ends %q", n, got[0].msg[len(got[0].msg)-30:])
	}
	if got[1].msg != "line 0" || got[4].msg != "line 3" {
		t.Fatalf("lines: %v", got[1:5])
	}
	if got[5].level != "warn" || !strings.Contains(got[5].msg, "stderr truncated") {
		t.Fatalf("last line %v", got[5])
	}
}

func TestSecretsOnlyInEnv(t *testing.T) {
	const canary = "canary-7f3a9c1e-secret"
	t.Setenv("JOBRUNNER_TEST_PARENT_ONLY", "parent-secret-value")
	dir := t.TempDir()
	stdinFile, envFile := filepath.Join(dir, "stdin.json"), filepath.Join(dir, "env.txt")
	run, log := newRun(t, "secrets.sh", stdinFile, envFile)
	run.Connection.Secrets = map[string]string{"api-token": canary}
	run.Connection.Settings["env"] = map[string]any{"ERP_REGION": "eu", "ERP_PORT": 8080}
	err := process(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := os.ReadFile(stdinFile)
	env, _ := os.ReadFile(envFile)
	if len(stdin) == 0 || strings.Contains(string(stdin), canary) {
		t.Fatalf("stdin %q contains the secret (or is empty)", stdin)
	}
	for _, want := range []string{"JOBRUNNER_SECRET_API_TOKEN=" + canary + "\n", "ERP_REGION=eu\n", "ERP_PORT=8080\n", "PATH="} {
		if !strings.Contains(string(env), want) {
			t.Errorf("child env lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(string(env), "parent-secret-value") {
		t.Errorf("child inherited the runner's environment:\n%s", env)
	}
	logs := log.text()
	if strings.Contains(logs, canary) || !strings.Contains(logs, "token is [REDACTED]") {
		t.Fatalf("logs not redacted:\n%s", logs)
	}
	if strings.Contains(fmt.Sprint(run.Result()), canary) {
		t.Fatal("result contains the secret")
	}
}

func TestInheritEnv(t *testing.T) {
	t.Setenv("JOBRUNNER_TEST_PROXY", "http://proxy:3128")
	dir := t.TempDir()
	run, _ := newRun(t, "secrets.sh", filepath.Join(dir, "in"), filepath.Join(dir, "env"))
	run.Connection.Settings["inheritEnv"] = []any{"JOBRUNNER_TEST_PROXY"}
	if err := process(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if !strings.Contains(string(env), "JOBRUNNER_TEST_PROXY=http://proxy:3128") {
		t.Fatalf("env lacks inherited variable:\n%s", env)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]any
		secrets  map[string]string
		substr   string
	}{
		{"no command", map[string]any{}, nil, "command is required"},
		{"string command", map[string]any{"command": "/bin/sh -c 'echo'"}, nil, "argv list"},
		{"empty command", map[string]any{"command": []any{}}, nil, "empty"},
		{"non-string arg", map[string]any{"command": []any{"/bin/true", 3}}, nil, "command[1]"},
		{"bad killGrace", map[string]any{"command": []any{"/bin/true"}, "killGrace": "soon"}, nil, "killGrace"},
		{"reserved env", map[string]any{"command": []any{"/bin/true"}, "env": map[string]any{"JOBRUNNER_SECRET_X": "y"}}, nil, "reserved"},
		{"secret clash", map[string]any{"command": []any{"/bin/true"}}, map[string]string{"a-b": "1", "a_b": "2"}, "both map"},
		{"not found", map[string]any{"command": []any{"/nonexistent/jobrunner-cmd"}}, nil, "start"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := &processors.Run{Connection: processors.Connection{Name: "c", Type: "exec", Settings: tc.settings, Secrets: tc.secrets}}
			err := process(context.Background(), run)
			o := processors.Classify(err)
			if o.Kind != processors.OutcomePermanent || o.Code != exec.CodeConfig || !strings.Contains(o.Message, tc.substr) {
				t.Fatalf("outcome %+v, want permanent EXEC_CONFIG containing %q", o, tc.substr)
			}
		})
	}
}

// gone reports whether pid no longer runs (absent or a zombie awaiting its
// reaper), waiting up to 3s.
func gone(pid int) bool {
	deadline := time.Now().Add(3 * time.Second)
	for {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && strings.HasPrefix(string(st[i+1:]), " Z") {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPIDs(t *testing.T, file string) []int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(file)
		if err == nil {
			var pids []int
			for _, f := range strings.Fields(string(b)) {
				n, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("pid file %q: %v", b, err)
				}
				pids = append(pids, n)
			}
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file never written: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTimeoutKillsGroup(t *testing.T) {
	for _, mode := range []string{"", "ignore-term"} {
		t.Run("mode="+mode, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pids")
			run, _ := newRun(t, "group.sh", pidFile, mode)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := process(ctx, run)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want deadline exceeded", err)
			}
			if o := processors.Classify(err); o.Kind != processors.OutcomeTimeout || o.Code != "TIMEOUT" {
				t.Fatalf("outcome %+v", o)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v", d)
			}
			pids := readPIDs(t, pidFile)
			if len(pids) != 2 {
				t.Fatalf("pids %v", pids)
			}
			for _, pid := range pids {
				if !gone(pid) {
					t.Fatalf("process %d still running", pid)
				}
			}
		})
	}
}

func TestCancelKillsGroup(t *testing.T) {
	defer goleak.VerifyNone(t)
	pidFile := filepath.Join(t.TempDir(), "pids")
	run, _ := newRun(t, "group.sh", pidFile, "ignore-term")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- process(ctx, run) }()
	pids := readPIDs(t, pidFile)
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || processors.Classify(err).Kind != processors.OutcomeCancelled {
		t.Fatalf("err = %v, want cancelled", err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Fatalf("process %d still running", pid)
		}
	}
}

func TestLeftoverProcessKilledOnExit(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	run, _ := newRun(t, "leftover.sh", pidFile)
	start := time.Now()
	if err := process(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
	if got := string(run.Result().(json.RawMessage)); got != `{"left":true}` {
		t.Fatalf("result %s", got)
	}
	for _, pid := range readPIDs(t, pidFile) {
		if !gone(pid) {
			t.Fatalf("leftover %d still running", pid)
		}
	}
}

func TestRegisterAndResolve(t *testing.T) {
	r := processors.NewRegistry()
	exec.Register(r)
	stdinFile := filepath.Join(t.TempDir(), "stdin.json")
	p, err := r.Resolve("AnyProcessorName", "exec", true)
	if err != nil {
		t.Fatal(err)
	}
	run, _ := newRun(t, "success.sh", stdinFile, "a")
	if err := p.Process(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(stdinFile)
	if !strings.Contains(string(b), `"processor":"AnyProcessorName"`) {
		t.Fatalf("stdin lacks the resolved processor name: %s", b)
	}
	if !r.HasProcessor("Whatever") || !r.Supports("Whatever", "exec") {
		t.Fatal("catalog does not see the exec runner")
	}
}

func TestSecretEnvName(t *testing.T) {
	for in, want := range map[string]string{"token": "JOBRUNNER_SECRET_TOKEN", "api-key.v2": "JOBRUNNER_SECRET_API_KEY_V2"} {
		if got := exec.SecretEnvName(in); got != want {
			t.Errorf("SecretEnvName(%q) = %q, want %q", in, got, want)
		}
	}
}
