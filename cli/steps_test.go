package cli_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/cli"
	"github.com/jobrunner/jobrunner/processors"
)

func TestPreviewRefusedBeforeAnythingIsStored(t *testing.T) {
	t.Parallel()
	db, _ := tempDB(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte("connections:\n  - {name: t, type: blind}\njobs:\n  - {name: Blind, connection: t, processor: Blind}\n"), 0o644))
	opts := cli.Options{Register: func(r *processors.Registry) {
		r.Register("Blind", processors.ProcessorFunc(func(context.Context, *processors.Run) error { return nil }), processors.ForConnectionTypes("blind"))
	}}
	for _, args := range [][]string{
		{"run", "Blind", "--preview"},
		{"trigger", "Blind", "--preview"},
	} {
		r := jobrunnerWith(t, opts, append([]string{db, "--definitions", dir}, args...)...)
		requireOneLineError(t, r, "Blind", "does not support preview")
	}
	r := jobrunner(t, db, "runs", "list", "--json")
	require.Equal(t, 0, r.code, "%s", r)
	require.Equal(t, "[]\n", r.stdout, "nothing was stored")

	// A preview of a job that supports it is marked as such.
	r = jobrunner(t, db, "run", "Noop", "--preview")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "[PREVIEW]")
	r = jobrunner(t, db, "runs", "list")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "FLAGS")
	require.Contains(t, r.stdout, "preview")
}

const multiDefs = `
connections:
  - {name: t, type: steptest}
jobs:
  - name: Multi
    connection: t
    retry: {maxAttempts: 1}
    steps:
      - {name: read, processor: Read}
      - {name: write, processor: Write}
      - {name: report, processor: Read}
`

func TestRunsRetryFromFailedStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte(multiDefs), 0o600))
	var writeFails atomic.Bool
	writeFails.Store(true)
	opts := cli.Options{Register: func(r *processors.Registry) {
		r.Register("Read", processors.ProcessorFunc(func(ctx context.Context, run *processors.Run) error {
			run.SetResult(map[string]any{"step": run.Step})
			return nil
		}), processors.ForConnectionTypes("steptest"))
		r.Register("Write", processors.ProcessorFunc(func(ctx context.Context, run *processors.Run) error {
			if writeFails.Load() {
				return processors.Permanent("LOCKED", "Status of integrated orders cannot be changed")
			}
			return nil
		}), processors.ForConnectionTypes("steptest"))
	}}
	db, _ := tempDB(t)
	r := jobrunnerWith(t, opts, db, "--definitions", dir, "run", "Multi", "--json")
	require.Equal(t, 1, r.code, "%s", r)
	type step struct {
		Name             string `json:"name"`
		Status           string `json:"status"`
		SkippedFromRunID int64  `json:"skippedFromRunId"`
	}
	type shown struct {
		ID           int64  `json:"id"`
		Status       string `json:"status"`
		RetryOfRunID int64  `json:"retryOfRunId"`
		Steps        []step `json:"steps"`
	}
	run := decodeJSON[shown](t, r.stdout)
	require.Equal(t, "failed", run.Status)
	require.Equal(t, []step{{"read", "succeeded", 0}, {"write", "failed", 0}, {"report", "skipped", 0}}, run.Steps)

	r = jobrunnerWith(t, opts, db, "--definitions", dir, "runs", "show", fmt.Sprint(run.ID))
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "steps:")
	require.Contains(t, r.stdout, "LOCKED: Status of integrated orders cannot be changed")
	require.Regexp(t, `3\. report\s+Read\s+skipped`, r.stdout)

	r = jobrunnerWith(t, opts, db, "--definitions", dir, "runs", "retry", fmt.Sprint(run.ID), "--from-failed-step")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, fmt.Sprintf("(retry of run %d from its failed step)", run.ID))
	var retry int64
	_, err := fmt.Sscanf(r.stdout, "run %d queued", &retry)
	require.NoError(t, err)

	r = jobrunnerWith(t, opts, db, "--definitions", dir, "runs", "show", fmt.Sprint(retry), "--json")
	require.Equal(t, 0, r.code, "%s", r)
	again := decodeJSON[shown](t, r.stdout)
	require.Equal(t, run.ID, again.RetryOfRunID)
	require.Equal(t, []step{{"read", "reused", run.ID}}, again.Steps, "the queued retry starts with step 1 reused")
	r = jobrunnerWith(t, opts, db, "--definitions", dir, "runs", "show", fmt.Sprint(retry))
	require.Contains(t, r.stdout, fmt.Sprintf("retry of:    run %d", run.ID))
	require.Contains(t, r.stdout, fmt.Sprintf("(result of run %d)", run.ID))

	// A retry of a one-step job from its failed step is refused.
	r = jobrunner(t, db, "run", "Noop")
	require.Equal(t, 0, r.code, "%s", r)
	var noop int64
	r2 := jobrunner(t, db, "runs", "list", "--json", "--job", "Noop")
	for _, line := range strings.Split(r2.stdout, "\n") {
		if strings.Contains(line, `"id"`) {
			_, _ = fmt.Sscanf(strings.TrimSpace(line), `"id": %d,`, &noop)
			break
		}
	}
	require.NotZero(t, noop)
	r = jobrunner(t, db, "runs", "retry", fmt.Sprint(noop), "--from-failed-step")
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stderr, "no failed step")
}
