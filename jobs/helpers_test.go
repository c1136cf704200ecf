package jobs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/processors"
)

// testDefs are the definitions the jobs tests run: every job runs the
// processor of its own name on connection "t" of type "test".
const testDefs = `
connections:
  - name: t
    type: test
    secrets: {token: JR_TEST_TOKEN}
    labels: [zone-a]
jobs:
  - name: Echo
    connection: t
    processor: Echo
    parameters:
      - {name: OrderNumber, type: string, required: true}
      - {name: Amount, type: decimal}
    retry: {maxAttempts: 3, initial: 1ms, max: 5ms}
    uniqueBy: [OrderNumber]
  - name: Flaky
    connection: t
    processor: Flaky
    retry: {maxAttempts: 3, initial: 1ms, max: 5ms}
  - name: Permanent
    connection: t
    processor: Permanent
    retry: {maxAttempts: 5, initial: 1ms}
  - name: Panics
    connection: t
    processor: Panics
    retry: {maxAttempts: 2, initial: 1ms}
  - name: Slow
    connection: t
    processor: Slow
    timeout: 50ms
    retry: {maxAttempts: 2, initial: 1ms}
  - name: Snoozer
    connection: t
    processor: Snoozer
    retry: {maxAttempts: 1, initial: 1ms, maxSnoozes: 2}
  - name: Blocks
    connection: t
    processor: Blocks
    timeout: 1m
    retry: {maxAttempts: 1}
  - name: Errors
    connection: t
    processor: Errors
    maxErrors: 1
  - name: Leaky
    connection: t
    processor: Leaky
    retry: {maxAttempts: 1}
  - name: LeakyResult
    connection: t
    processor: LeakyResult
  - name: Chatty
    connection: t
    processor: Chatty
  - name: Post
    connection: t
    processor: Echo
    postProcessor: After
    parameters:
      - {name: OrderNumber, type: string, required: true}
`

// canary is the test connection's secret; it must never be stored.
const canary = "s3cr3t-CANARY-7f1e"

// env is a test environment: a store, a registry with the test processors
// and an executor.
type env struct {
	store *jobs.Store
	defs  *definitions.Set
	reg   *processors.Registry
	ex    *jobs.Executor

	mu        sync.Mutex
	calls     map[string]int
	started   chan struct{}
	postInput string
}

func newEnv(t *testing.T, s *jobs.Store) *env {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte(testDefs), 0o600))
	set, err := definitions.LoadDir(dir)
	require.NoError(t, err)
	e := &env{store: s, defs: set, reg: processors.NewRegistry(), calls: map[string]int{}, started: make(chan struct{}, 10)}
	reg := func(name string, f func(ctx context.Context, r *processors.Run) error) {
		e.reg.Register(name, processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			e.mu.Lock()
			e.calls[name]++
			e.mu.Unlock()
			return f(ctx, r)
		}), processors.ForConnectionTypes("test"))
	}
	reg("Echo", func(ctx context.Context, r *processors.Run) error {
		r.Log.Info("echo", "order", r.Params.String("OrderNumber"))
		r.SetResult(map[string]any{"order": r.Params.String("OrderNumber"), "amount": r.Params["Amount"]})
		return nil
	})
	reg("After", func(ctx context.Context, r *processors.Run) error {
		e.mu.Lock()
		e.postInput = string(r.Input)
		e.mu.Unlock()
		r.SetResult(map[string]any{"post": true})
		return nil
	})
	reg("Flaky", func(ctx context.Context, r *processors.Run) error {
		if r.Attempt < 3 {
			return os.ErrDeadlineExceeded // a plain, retryable error
		}
		return nil
	})
	reg("Permanent", func(ctx context.Context, r *processors.Run) error {
		return processors.Permanent("ORDER_STATE", "Cancel failed as order is in [Shipped] state")
	})
	reg("Panics", func(ctx context.Context, r *processors.Run) error {
		var orders []string
		_ = orders[len(r.Job.Name)] // index out of range: a real bug's panic
		return nil
	})
	reg("Slow", func(ctx context.Context, r *processors.Run) error {
		<-ctx.Done()
		return ctx.Err()
	})
	reg("Snoozer", func(ctx context.Context, r *processors.Run) error {
		return processors.RetryLater(1, "order awaits manual authorization")
	})
	reg("Blocks", func(ctx context.Context, r *processors.Run) error {
		e.started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	reg("Errors", func(ctx context.Context, r *processors.Run) error {
		r.AddRead(3)
		r.RecordError("unmapped status", "order", "A")
		r.RecordError("unmapped status", "order", "B")
		return nil
	})
	reg("Leaky", func(ctx context.Context, r *processors.Run) error {
		tok := r.Connection.Secrets["token"]
		r.Log.Info("calling ERP with token " + tok)
		r.Log.Warn("header", "Authorization", "Bearer "+tok)
		return processors.Permanent("AUTH", "ERP rejected token "+tok)
	})
	reg("Chatty", func(ctx context.Context, r *processors.Run) error {
		for i := range 20001 {
			r.Log.Info("line", "i", i)
		}
		return nil
	})
	reg("LeakyResult", func(ctx context.Context, r *processors.Run) error {
		r.SetResult(map[string]string{"echo": "token " + r.Connection.Secrets["token"] + " accepted"})
		return nil
	})
	require.NoError(t, set.Validate(e.reg))
	e.ex = &jobs.Executor{
		Store:       s,
		Registry:    e.reg,
		Definitions: func() *definitions.Set { return set },
		Getenv: func(k string) string {
			if k == "JR_TEST_TOKEN" {
				return canary
			}
			return ""
		},
	}
	return e
}

func (e *env) job(t *testing.T, name string) *definitions.Job {
	t.Helper()
	j, ok := e.defs.Job(name)
	require.True(t, ok, name)
	return j
}

func (e *env) params(t *testing.T, job string, raw map[string]string) definitions.Values {
	t.Helper()
	v, err := e.job(t, job).ParseParams(raw)
	require.NoError(t, err)
	return v
}

func (e *env) count(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[name]
}

// dumpAll returns every row of every table as text, to grep for secrets.
func dumpAll(t *testing.T, s *jobs.Store) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"runs", "run_params", "run_attempts", "run_steps", "run_logs", "job_state"} {
		var rows []map[string]any
		require.NoError(t, s.DB().Table(table).Find(&rows).Error)
		for _, r := range rows {
			for k, v := range r {
				b.WriteString(k)
				b.WriteString("=")
				switch x := v.(type) {
				case []byte:
					b.Write(x)
				default:
					b.WriteString(strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(fmtAny(x), "\n", " "), "\t", " ")))
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}
