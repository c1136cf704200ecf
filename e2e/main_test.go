package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// binary is the jobrunner binary TestMain builds once.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go env GOMOD: %v\n", err)
		return 2
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		fmt.Fprintln(os.Stderr, "e2e: not inside the jobrunner module")
		return 2
	}
	dir, err := os.MkdirTemp("", "jobrunner-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "jobrunner")
	build := exec.Command("go", "build", "-o", binary, "./cmd/jobrunner")
	build.Dir = filepath.Dir(gomod)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/jobrunner: %v\n", err)
		return 2
	}
	return m.Run()
}

// proc is a jobrunner process started by a test, killed at cleanup, whose
// combined output goes to a file printed when the test fails.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // Wait's result, valid once done is closed
}

// baseEnv is the environment of started processes: this process's, without
// JOBRUNNER_* variables (a developer's settings must not leak in).
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "JOBRUNNER_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// start runs the jobrunner binary with args in its own process group.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	// Own group (kill -9 reaches the process only, and cleanup its
	// children too); die with the test binary if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start(), "start %s", name)
	_ = f.Close()
	p := &proc{t: t, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.dump()
		}
	})
	return p
}

// serve starts `jobrunner serve` on dsn with the given definitions directory
// ("" for the built-in ones) and extra flags.
func serve(t *testing.T, name, dsn, defs string, env []string, flags ...string) *proc {
	t.Helper()
	args := []string{"serve", "--db", dsn, "--log-level", "debug"}
	if defs != "" {
		args = append(args, "--definitions", defs)
	}
	args = append(args, flags...)
	if env == nil {
		env = baseEnv()
	}
	return start(t, name, env, args...)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the process group and waits for the process.
func (p *proc) kill() {
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// signal sends sig to the process (not its group).
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig), "signal %s", p.name)
}

// wait waits up to d for the process to exit and returns its error.
func (p *proc) wait(d time.Duration) error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.t.Fatalf("%s did not exit within %s", p.name, d)
		return nil
	}
}

// output returns what the process has written so far.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// dump prints the process's output (its last 300 lines).
func (p *proc) dump() {
	lines := strings.Split(p.output(), "\n")
	if len(lines) > 300 {
		lines = append([]string{fmt.Sprintf("… %d lines before", len(lines)-300)}, lines[len(lines)-300:]...)
	}
	p.t.Logf("==== output of %s (pid %d) ====\n%s", p.name, p.pid(), strings.Join(lines, "\n"))
}

// waitLog waits until the process has logged a line containing s.
func (p *proc) waitLog(s string, d time.Duration) {
	p.t.Helper()
	eventually(p.t, d, 100*time.Millisecond, func() (bool, string) {
		if p.exited() {
			p.t.Fatalf("%s exited (%v) before logging %q", p.name, p.err, s)
		}
		return strings.Contains(p.output(), s), fmt.Sprintf("%s to log %q", p.name, s)
	})
}

// eventually polls cond every `every` until it holds or d has passed.
func eventually(t testing.TB, d, every time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, what := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(every)
	}
}

// freeAddr returns a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// database returns the DSN of a fresh, migrated MySQL database and a store
// on it for the test's own queries.
func database(t *testing.T) (string, *jobs.Store) {
	t.Helper()
	dsn := jobstest.DSN(t, "mysql")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := jobs.Open(ctx, dsn, jobs.OpenOptions{MaxOpenConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return dsn, s
}

// writeDefs writes yaml as the only file of a new definitions directory.
func writeDefs(t *testing.T, yaml string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "definitions")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte(yaml), 0o644))
	return dir
}

// witnessScript is the absolute path of testdata/witness.sh.
func witnessScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "witness.sh"))
	require.NoError(t, err)
	return p
}

// witnessConnection returns the YAML of an exec connection named name that
// runs witness.sh, recording into out and sleeping sleep seconds ("" none).
func witnessConnection(t *testing.T, name, out, sleep string) string {
	env := fmt.Sprintf("{OUT: %q}", out)
	if sleep != "" {
		env = fmt.Sprintf("{OUT: %q, SLEEP: %q}", out, sleep)
	}
	return fmt.Sprintf(`
  - name: %s
    type: exec
    settings:
      command: [/bin/sh, %q]
      env: %s
      killGrace: 1s
`, name, witnessScript(t), env)
}

// witnessEvent is one line of witness.sh's file.
type witnessEvent struct {
	Kind    string // start or done
	RunID   int64
	Attempt int
	PID     int
}

// readWitness parses witness.sh's file (missing: no events).
func readWitness(t *testing.T, path string) []witnessEvent {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var evs []witnessEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		require.Len(t, fields, 4, "witness line %q", sc.Text())
		id, err1 := strconv.ParseInt(fields[1], 10, 64)
		att, err2 := strconv.Atoi(fields[2])
		pid, err3 := strconv.Atoi(fields[3])
		require.True(t, err1 == nil && err2 == nil && err3 == nil, "witness line %q", sc.Text())
		evs = append(evs, witnessEvent{Kind: fields[0], RunID: id, Attempt: att, PID: pid})
	}
	require.NoError(t, sc.Err())
	return evs
}

// countWitness counts events of kind per run id.
func countWitness(evs []witnessEvent, kind string) map[int64]int {
	n := map[int64]int{}
	for _, e := range evs {
		if e.Kind == kind {
			n[e.RunID]++
		}
	}
	return n
}

// runRow is what the tests read of a run.
type runRow struct {
	ID           int64
	Job          string
	Status       string
	TriggerKind  string
	ScheduledFor *time.Time
	Attempt      int
	Snoozes      int
	LeaseOwner   *string
	StartedAt    *time.Time
	FinishedAt   *time.Time
	ErrorCode    string
}

func runs(t testing.TB, s *jobs.Store, where string, args ...any) []runRow {
	t.Helper()
	var rows []runRow
	q := "SELECT id, job, status, trigger_kind, scheduled_for, attempt, snoozes, lease_owner, started_at, finished_at, error_code FROM runs"
	if where != "" {
		q += " WHERE " + where
	}
	require.NoError(t, s.DB().Raw(q+" ORDER BY id", args...).Scan(&rows).Error)
	return rows
}

// statusCounts returns how many runs of job are in each status.
func statusCounts(t testing.TB, s *jobs.Store, job string) map[string]int {
	t.Helper()
	var rows []struct {
		Status string
		N      int
	}
	require.NoError(t, s.DB().Raw("SELECT status, COUNT(*) AS n FROM runs WHERE job = ? GROUP BY status", job).Scan(&rows).Error)
	m := map[string]int{}
	for _, r := range rows {
		m[r.Status] = r.N
	}
	return m
}

// attempts returns the run's attempt rows in order.
func attempts(t testing.TB, s *jobs.Store, runID int64) []jobs.Attempt {
	t.Helper()
	as, err := s.Attempts(context.Background(), runID)
	require.NoError(t, err)
	return as
}

// sortedKeys returns m's keys in order (for messages).
func sortedKeys[V any](m map[int64]V) []int64 {
	ks := make([]int64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	return ks
}
