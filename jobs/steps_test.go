package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/processors"
)

// chainDefs are the definitions of the steps and links tests.
const chainDefs = `
connections:
  - name: t
    type: test
  - name: u
    type: test
jobs:
  - name: ThreeStop
    connection: t
    parameters:
      - {name: OrderNumber, type: string, required: true}
      - {name: Limit, type: int}
    retry: {maxAttempts: 1}
    steps:
      - {name: read, processor: S1, parameters: {Limit: "5", Extra: "x"}}
      - {name: cancel, processor: S2, connection: u}
      - {name: report, processor: S3}
  - name: ThreeContinue
    connection: t
    retry: {maxAttempts: 1}
    steps:
      - {name: read, processor: S1}
      - {name: cancel, processor: S2, onFailure: continue}
      - {name: report, processor: S3}
  - name: ThreeContinueStrict
    connection: t
    retry: {maxAttempts: 1}
    maxErrors: 0
    steps:
      - {name: read, processor: S1}
      - {name: cancel, processor: S2, onFailure: continue}
      - {name: report, processor: S3}
  - name: ThreeRetry
    connection: t
    retry: {maxAttempts: 3, initial: 1ms, max: 2ms}
    steps:
      - {name: read, processor: S1}
      - {name: cancel, processor: S2}
      - {name: report, processor: S3}
  - name: Cancel
    connection: t
    processor: Maybe
    parameters:
      - {name: OrderNumber, type: string, required: true}
      - {name: Fail, type: bool, default: "false"}
    retry: {maxAttempts: 1}
    links:
      - job: Sync
        on: success
        parameters: {OrderNumber: "${param.OrderNumber}", Mode: full}
      - job: Alert
        on: failure
        parameters: {Message: "cancel of ${param.OrderNumber} failed"}
      - job: Alert
        on: always
        preview: true
        parameters: {Message: "done ${param.OrderNumber}"}
  - name: Sync
    connection: t
    processor: Maybe
    parameters:
      - {name: OrderNumber, type: string, required: true}
      - {name: Mode, type: enum, values: [full, delta]}
    retry: {maxAttempts: 1}
  - name: Alert
    connection: t
    processor: Maybe
    parameters:
      - {name: Message, type: string}
    retry: {maxAttempts: 1}
`

type chainEnv struct {
	store *jobs.Store
	defs  *definitions.Set
	ex    *jobs.Executor

	mu      sync.Mutex
	calls   map[string]int
	s2Fails int // S2 fails (permanently when s2Perm) this many more times
	s2Perm  bool
	inputs  map[string][]string
	params  map[string][]string
}

func newChainEnv(t *testing.T, s *jobs.Store) *chainEnv {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte(chainDefs), 0o600))
	set, err := definitions.LoadDir(dir)
	require.NoError(t, err)
	e := &chainEnv{store: s, defs: set, calls: map[string]int{}, inputs: map[string][]string{}, params: map[string][]string{}}
	reg := processors.NewRegistry()
	add := func(name string, f func(r *processors.Run) error, opts ...processors.Option) {
		reg.Register(name, processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
			e.mu.Lock()
			e.calls[name]++
			e.inputs[name] = append(e.inputs[name], string(r.Input))
			e.params[name] = append(e.params[name], fmt.Sprintf("%s|%d|%s|%s|%d", r.Step, r.StepIndex, r.Connection.Name, r.StepParams["Extra"], r.Params.Int("Limit")))
			e.mu.Unlock()
			return f(r)
		}), append(opts, processors.ForConnectionTypes("test"))...)
	}
	add("S1", func(r *processors.Run) error {
		r.AddRead(2)
		r.Log.Info("read orders")
		r.SetResult(map[string]any{"orders": []string{"WEB1", "WEB2"}})
		return nil
	})
	add("S2", func(r *processors.Run) error {
		e.mu.Lock()
		fail := e.s2Fails > 0
		if fail {
			e.s2Fails--
		}
		perm := e.s2Perm
		e.mu.Unlock()
		if fail {
			if perm {
				return processors.Permanent("ORDER_STATE", "Cancel failed as order is in [Shipped] state")
			}
			return errors.New("ERP unavailable")
		}
		r.AddChanged(1)
		r.SetResult(map[string]any{"cancelled": 1})
		return nil
	})
	add("S3", func(r *processors.Run) error {
		r.SetResult(map[string]any{"report": true})
		return nil
	})
	add("Maybe", func(r *processors.Run) error {
		if r.Params.Bool("Fail") {
			return processors.Permanent("NOPE", "asked to fail")
		}
		return nil
	}, processors.WithPreview())
	require.NoError(t, set.Validate(reg))
	e.ex = &jobs.Executor{Store: s, Registry: reg, Definitions: func() *definitions.Set { return set }}
	return e
}

func (e *chainEnv) job(t *testing.T, name string) *definitions.Job {
	t.Helper()
	j, ok := e.defs.Job(name)
	require.True(t, ok, name)
	return j
}

func (e *chainEnv) count(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[name]
}

func (e *chainEnv) run(t *testing.T, job string, raw map[string]string, preview bool) *jobs.Run {
	t.Helper()
	j := e.job(t, job)
	v, err := j.ParseParams(raw)
	require.NoError(t, err)
	r, err := e.ex.RunInline(context.Background(), j, v, jobs.InlineOptions{TriggeredBy: "tester", Preview: preview})
	require.NoError(t, err)
	return r
}

// execute claims the queued run id and executes it until it is final.
func (e *chainEnv) execute(t *testing.T, id int64) *jobs.Run {
	t.Helper()
	ctx := context.Background()
	for {
		c, err := e.store.ClaimRun(ctx, id, "tester", time.Minute)
		require.NoError(t, err)
		_, err = e.ex.Execute(ctx, c)
		require.NoError(t, err)
		r, err := e.store.Get(ctx, id)
		require.NoError(t, err)
		if r.Status.Final() {
			return r
		}
	}
}

func steps(t *testing.T, s *jobs.Store, id int64) []jobs.RunStep {
	t.Helper()
	st, err := s.Steps(context.Background(), id)
	require.NoError(t, err)
	return st
}

func stepStatuses(rows []jobs.RunStep) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Name + ":" + r.Status
	}
	return out
}

func TestThreeStepsStopThenRetryFromFailedStep(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newChainEnv(t, s)
		e.s2Fails, e.s2Perm = 1, true

		r := e.run(t, "ThreeStop", map[string]string{"OrderNumber": "WEB000123", "Limit": "9"}, false)
		require.Equal(t, jobs.StatusFailed, r.Status)
		require.Equal(t, "ORDER_STATE", r.ErrorCode)
		require.Contains(t, r.ErrorMessage, "step 2 (cancel)")
		rows := steps(t, s, r.ID)
		require.Equal(t, []string{"read:succeeded", "cancel:failed", "report:skipped"}, stepStatuses(rows))
		require.Equal(t, 1, rows[0].Attempts)
		require.EqualValues(t, 2, rows[0].RecordsRead)
		require.JSONEq(t, `{"orders":["WEB1","WEB2"]}`, string(rows[0].Result))
		require.NotNil(t, rows[0].StartedAt)
		require.NotNil(t, rows[0].FinishedAt)
		require.Equal(t, "ORDER_STATE", rows[1].ErrorCode)
		require.Equal(t, "u", rows[1].ConnectionName, "a step may override the connection")
		require.Equal(t, 0, rows[2].Attempts)
		require.Equal(t, 0, e.count("S3"))
		// Step parameters: Limit overrides the job's value for step 1 only;
		// Extra (not a job parameter) reaches the processor as text.
		require.Equal(t, []string{"read|0|t|x|5"}, e.params["S1"])
		require.Equal(t, []string{"cancel|1|u||9"}, e.params["S2"])
		// step 1's result reached step 2 as Input
		require.JSONEq(t, `{"orders":["WEB1","WEB2"]}`, e.inputs["S2"][0])

		atts := attempts(t, &env{store: s}, r.ID)
		require.Len(t, atts, 1)
		require.Equal(t, 1, atts[0].StepIndex, "the attempt ended in step 2")
		lines, err := s.Logs(ctx, r.ID, 0, 0)
		require.NoError(t, err)
		seen := map[int]bool{}
		for _, l := range lines {
			seen[l.StepIndex] = true
		}
		require.True(t, seen[0] && seen[1], "log lines carry their step index: %v", seen)

		// Retry from the failed step: step 1 is reused, step 2 reruns with
		// step 1's recorded result, step 3 runs for the first time.
		enq, err := s.Retry(ctx, e.job(t, "ThreeStop"), r.ID, jobs.RetryOptions{Who: "op", FromFailedStep: true})
		require.NoError(t, err)
		require.True(t, enq.Created)
		require.Equal(t, r.ID, *enq.Run.RetryOfRunID)
		r2 := e.execute(t, enq.Run.ID)
		require.Equal(t, jobs.StatusSucceeded, r2.Status, r2.ErrorMessage)
		require.Equal(t, 1, e.count("S1"), "step 1 is not run again")
		require.Equal(t, 2, e.count("S2"), "step 2 runs again, once")
		require.Equal(t, 1, e.count("S3"))
		require.JSONEq(t, `{"orders":["WEB1","WEB2"]}`, e.inputs["S2"][1], "step 1's recorded result reaches step 2")
		require.JSONEq(t, `{"cancelled":1}`, e.inputs["S3"][0])
		rows2 := steps(t, s, r2.ID)
		require.Equal(t, []string{"read:reused", "cancel:succeeded", "report:succeeded"}, stepStatuses(rows2))
		require.Equal(t, r.ID, *rows2[0].SkippedFromRunID)
		require.JSONEq(t, `{"report":true}`, string(r2.Result))

		// A run whose steps all succeeded has no failed step to retry from;
		// a retry of the retry still names the run that produced the result.
		_, err = s.Retry(ctx, e.job(t, "ThreeStop"), r2.ID, jobs.RetryOptions{FromFailedStep: true})
		require.ErrorIs(t, err, jobs.ErrNoFailedStep)
	})
}

func TestThreeStepsContinue(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newChainEnv(t, s)
		e.s2Fails, e.s2Perm = 2, true

		r := e.run(t, "ThreeContinue", nil, false)
		require.Equal(t, jobs.StatusSucceededWithWarnings, r.Status, "no maxErrors: a failed step (continue) is one record error")
		require.EqualValues(t, 1, r.RecordErrors)
		require.EqualValues(t, 2, r.RecordsRead)
		require.Equal(t, []string{"read:succeeded", "cancel:failed", "report:succeeded"}, stepStatuses(steps(t, s, r.ID)))
		require.Equal(t, 1, e.count("S3"), "step 3 runs after a failed step with onFailure continue")
		require.Equal(t, "", e.inputs["S3"][0], "a failed step hands on no result")

		r = e.run(t, "ThreeContinueStrict", nil, false)
		require.Equal(t, jobs.StatusFailed, r.Status)
		require.Equal(t, "MAX_ERRORS_EXCEEDED", r.ErrorCode)
		require.Equal(t, []string{"read:succeeded", "cancel:failed", "report:succeeded"}, stepStatuses(steps(t, s, r.ID)))
	})
}

func TestStepRetryResumesAtUnfinishedStep(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newChainEnv(t, s)
		e.s2Fails = 1 // retryable once

		r := e.run(t, "ThreeRetry", nil, false)
		require.Equal(t, jobs.StatusSucceeded, r.Status, r.ErrorMessage)
		require.Equal(t, 2, r.AttemptsUsed())
		require.Equal(t, 1, e.count("S1"), "the retry resumes at step 2")
		require.Equal(t, 2, e.count("S2"))
		require.JSONEq(t, `{"orders":["WEB1","WEB2"]}`, e.inputs["S2"][1])
		rows := steps(t, s, r.ID)
		require.Equal(t, []string{"read:succeeded", "cancel:succeeded", "report:succeeded"}, stepStatuses(rows))
		require.Equal(t, []int{1, 2, 1}, []int{rows[0].Attempts, rows[1].Attempts, rows[2].Attempts})
		atts := attempts(t, &env{store: s}, r.ID)
		require.Len(t, atts, 2)
		require.Equal(t, jobs.AttemptRetry, atts[0].Status)
		require.Equal(t, 1, atts[0].StepIndex)
		require.Equal(t, 2, atts[1].StepIndex)
	})
}

func TestOneStepJobsWriteNoStepRows(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newChainEnv(t, s)
		r := e.run(t, "Sync", map[string]string{"OrderNumber": "A"}, false)
		require.Equal(t, jobs.StatusSucceeded, r.Status)
		require.Empty(t, steps(t, s, r.ID))
		_, err := s.Retry(context.Background(), e.job(t, "Sync"), r.ID, jobs.RetryOptions{FromFailedStep: true})
		require.ErrorIs(t, err, jobs.ErrNoFailedStep)
	})
}

func children(t *testing.T, s *jobs.Store, id int64) []jobs.Run {
	t.Helper()
	c, err := s.Children(context.Background(), id)
	require.NoError(t, err)
	return c
}

func TestLinkedJobs(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newChainEnv(t, s)

		t.Run("success", func(t *testing.T) {
			r := e.run(t, "Cancel", map[string]string{"OrderNumber": "WEB000123"}, false)
			require.Equal(t, jobs.StatusSucceeded, r.Status)
			kids := children(t, s, r.ID)
			require.Len(t, kids, 2)
			require.Equal(t, "Sync", kids[0].Job)
			require.JSONEq(t, `{"OrderNumber":"WEB000123","Mode":"full"}`, string(kids[0].Parameters))
			require.Equal(t, jobs.TriggerLink, kids[0].TriggerKind)
			require.Equal(t, r.ID, *kids[0].ParentRunID)
			require.Equal(t, fmt.Sprintf("link:%d:0", r.ID), *kids[0].IdempotencyKey)
			require.Equal(t, jobs.StatusQueued, kids[0].Status)
			require.Equal(t, "Alert", kids[1].Job, "on: always")
			require.JSONEq(t, `{"Message":"done WEB000123"}`, string(kids[1].Parameters))
			require.Contains(t, logText(t, &env{store: s}, r.ID), fmt.Sprintf("linked job Sync queued: run %d", kids[0].ID))
			// the chain continues: the child runs and records its parent
			c := e.execute(t, kids[0].ID)
			require.Equal(t, jobs.StatusSucceeded, c.Status)
			require.Equal(t, r.ID, *c.ParentRunID)
		})
		t.Run("failure", func(t *testing.T) {
			r := e.run(t, "Cancel", map[string]string{"OrderNumber": "WEB9", "Fail": "true"}, false)
			require.Equal(t, jobs.StatusFailed, r.Status)
			kids := children(t, s, r.ID)
			require.Len(t, kids, 2)
			require.Equal(t, "Alert", kids[0].Job)
			require.JSONEq(t, `{"Message":"cancel of WEB9 failed"}`, string(kids[0].Parameters))
			require.Equal(t, fmt.Sprintf("link:%d:1", r.ID), *kids[0].IdempotencyKey)
		})
		t.Run("preview starts only links that say preview", func(t *testing.T) {
			r := e.run(t, "Cancel", map[string]string{"OrderNumber": "WEB7"}, true)
			require.Equal(t, jobs.StatusSucceeded, r.Status)
			require.True(t, r.Preview)
			kids := children(t, s, r.ID)
			require.Len(t, kids, 1)
			require.Equal(t, "Alert", kids[0].Job)
			require.True(t, kids[0].Preview, "a preview's linked run is a preview too")
			require.Contains(t, logText(t, &env{store: s}, r.ID), "not started: this is a preview run")
		})
	})
}

// TestLinkedRunIsPartOfTheParentsFinish proves at the store level that a
// linked run exists iff its parent's outcome is recorded: the child is
// inserted in the transaction that finishes the parent, so failing that
// transaction after the child's insert stores neither, and replaying the
// finish (an ambiguous commit retried) makes no second child.
func TestLinkedRunIsPartOfTheParentsFinish(t *testing.T) {
	t.Parallel()
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%t", batch), func(t *testing.T) {
			jobstest.For(t, func(t *testing.T, s *jobs.Store) {
				ctx := context.Background()
				e := newChainEnv(t, s)
				parentJob, syncJob := e.job(t, "Cancel"), e.job(t, "Sync")
				pv, err := parentJob.ParseParams(map[string]string{"OrderNumber": "WEB1"})
				require.NoError(t, err)
				enq, err := s.Enqueue(ctx, jobs.NewRun{Job: parentJob, Params: pv, Trigger: jobs.TriggerManual})
				require.NoError(t, err)
				id := enq.Run.ID
				c, err := s.ClaimRun(ctx, id, "tester", time.Minute)
				require.NoError(t, err)
				cv, err := syncJob.ParseParams(map[string]string{"OrderNumber": "WEB1"})
				require.NoError(t, err)
				f := jobs.Finish{Status: jobs.StatusSucceeded, AttemptStatus: jobs.AttemptSucceeded,
					Links: []jobs.NewRun{{Job: syncJob, Params: cv, Trigger: jobs.TriggerLink, IdempotencyKey: fmt.Sprintf("link:%d:0", id), ParentRunID: &id}}}
				finish := func() error {
					if batch {
						return s.FinishBatch(ctx, []jobs.FinishItem{{Claim: c, Finish: f}})[0]
					}
					return s.Finish(ctx, c, f)
				}

				// A crash right after the child's insert, before COMMIT.
				var crash sync.Mutex
				crashing := true
				cb := fmt.Sprintf("test:crash-after-link-%p", s)
				require.NoError(t, s.DB().Callback().Create().After("gorm:create").Register(cb, func(db *gorm.DB) {
					crash.Lock()
					defer crash.Unlock()
					if r, ok := db.Statement.Dest.(*jobs.Run); ok && crashing && r.TriggerKind == jobs.TriggerLink && r.ID > 0 {
						_ = db.AddError(errors.New("injected crash after the child's insert"))
					}
				}))
				require.Error(t, finish())
				got, err := s.Get(ctx, id)
				require.NoError(t, err)
				require.Equal(t, jobs.StatusRunning, got.Status, "the parent's finish was rolled back")
				require.Empty(t, children(t, s, id), "and so was the child")
				var n int64
				require.NoError(t, s.DB().Model(&jobs.Run{}).Where("job = ?", "Sync").Count(&n).Error)
				require.Zero(t, n)

				crash.Lock()
				crashing = false
				crash.Unlock()
				require.NoError(t, finish())
				got, err = s.Get(ctx, id)
				require.NoError(t, err)
				require.Equal(t, jobs.StatusSucceeded, got.Status)
				require.Len(t, children(t, s, id), 1, "parent final: exactly one child")

				// Replays (the ambiguous-commit path retries the finish) are
				// fenced and make no second child.
				require.ErrorIs(t, finish(), jobs.ErrLeaseLost)
				require.ErrorIs(t, s.Finish(ctx, c, f), jobs.ErrLeaseLost)
				require.Len(t, children(t, s, id), 1)

				// Even an unfenced second insert of the same link is refused by
				// its idempotency key.
				again, err := s.Enqueue(ctx, f.Links[0])
				require.NoError(t, err)
				require.False(t, again.Created)
				require.Len(t, children(t, s, id), 1)
			})
		})
	}
}

func TestLinkedRunsFromThePool(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		e := newChainEnv(t, s)
		j := e.job(t, "Cancel")
		v, err := j.ParseParams(map[string]string{"OrderNumber": "WEB5"})
		require.NoError(t, err)
		enq, err := s.Enqueue(ctx, jobs.NewRun{Job: j, Params: v, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		p := jobs.NewPool(jobs.PoolConfig{Executor: e.ex, Workers: 4, PollInterval: 20 * time.Millisecond})
		p.Start(ctx)
		defer p.Stop(ctx)
		waitFor(t, 30*time.Second, func() bool {
			kids := children(t, s, enq.Run.ID)
			return len(kids) == 2 && kids[0].Status.Final() && kids[1].Status.Final()
		}, "the linked runs did not run")
		kids := children(t, s, enq.Run.ID)
		require.Equal(t, jobs.StatusSucceeded, kids[0].Status)
		require.Equal(t, "Sync", kids[0].Job)
	})
}

func TestPreviewOfAStepWithoutPreviewIsRefusedUpFront(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newChainEnv(t, s)
		j := e.job(t, "ThreeStop")
		v, err := j.ParseParams(map[string]string{"OrderNumber": "A"})
		require.NoError(t, err)
		_, err = e.ex.RunInline(context.Background(), j, v, jobs.InlineOptions{Preview: true})
		require.ErrorIs(t, err, processors.ErrPreviewUnsupported)
		require.Contains(t, err.Error(), "step 1 (read)")
		var n int64
		require.NoError(t, s.DB().Model(&jobs.Run{}).Count(&n).Error)
		require.Zero(t, n, "nothing stored")
		require.Zero(t, e.count("S1"))
	})
}
