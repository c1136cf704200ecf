package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobrunner/jobrunner/bench"
	"github.com/jobrunner/jobrunner/jobs"
)

// noWorkerAfter is how long `trigger --wait` waits for a queued run
// before checking that any worker ever used the database (a variable for
// tests).
var noWorkerAfter = 10 * time.Second

func (a *app) triggerCommand() *cobra.Command {
	var (
		params  []string
		idem    string
		preview bool
		wait    bool
		timeout time.Duration
		asJSON  bool
		at      string
		file    string
	)
	cmd := &cobra.Command{
		Use:   "trigger JOB [--param NAME=VALUE]... [--wait] | trigger JOB --from-file orders.csv",
		Short: "Queue a run for the workers of `jobrunner serve`",
		Long: `Queue a run for the workers of a running ` + "`jobrunner serve`" + ` (any instance on
the same database). With --idempotency-key, a second trigger with the same
key returns the existing run. With --wait, wait until the run finishes and
exit 0 on success, 1 on failure. With --at, the run waits until then (a
one-off run at a time; RFC 3339 with an offset).`,
		Args: wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var notBefore time.Time
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usagef("--at %q: want RFC 3339 with an offset, e.g. 2026-12-02T02:00:00+01:00", at)
				}
				notBefore = t
			}
			if file != "" {
				if len(params) > 0 || idem != "" || wait {
					return usagef("--from-file takes the parameters (and keys) from the file: drop --param, --idempotency-key and --wait")
				}
				return a.triggerFromFile(ctx, args[0], file, preview, asJSON, notBefore)
			}
			job, values, err := a.prepareRun(args[0], params, preview)
			if err != nil {
				return err
			}
			s, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			st := &jobs.Starter{Store: s, Definitions: a.defs.Load} // prepared (and checked) above
			enq, err := st.Start(ctx, jobs.StartRequest{Definition: job, Values: values, Trigger: jobs.TriggerManual, TriggeredBy: cliUser(),
				IdempotencyKey: idem, Preview: preview, NotBefore: notBefore})
			if errors.Is(err, jobs.ErrIdempotencyMismatch) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			r := enq.Run
			if !asJSON {
				switch {
				case enq.Created && !notBefore.IsZero() && notBefore.After(time.Now()):
					fmt.Fprintf(a.stdout, "run %d queued for %s\n", r.ID, notBefore.Format(time.RFC3339))
				case enq.Created:
					fmt.Fprintf(a.stdout, "run %d queued\n", r.ID)
				case enq.Reason == "active":
					fmt.Fprintf(a.stdout, "run %d is already active for these parameters (%s)\n", r.ID, r.Status)
				default:
					fmt.Fprintf(a.stdout, "run %d already exists for this idempotency key (%s)\n", r.ID, r.Status)
				}
			}
			if !wait {
				if asJSON {
					return writeJSON(a.stdout, struct {
						*jobs.Run
						Created bool `json:"created"`
					}{r, enq.Created})
				}
				return nil
			}
			wctx := ctx
			if timeout > 0 {
				var cancel context.CancelFunc
				wctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			fmt.Fprintf(a.stderr, "waiting for run %d on %s (a jobrunner serve on this database runs it)\n", r.ID, s.DSN())
			began := time.Now()
			checked := false
			for !r.Status.Final() {
				select {
				case <-wctx.Done():
					return failedError{fmt.Sprintf("run %d is still %s; see: jobrunner runs show %d", r.ID, r.Status, r.ID)}
				case <-time.After(200 * time.Millisecond):
				}
				if !checked && r.Status == jobs.StatusQueued && time.Since(began) > noWorkerAfter {
					checked = true
					ever, err := s.EverStarted(ctx)
					if err == nil && !ever {
						return failedError{fmt.Sprintf("run %d is still queued: no worker has ever run anything on %s. Start `jobrunner serve` on this database "+
							"(--db or JOBRUNNER_DB; the default is jobrunner.db in the working directory), or use `jobrunner run` to run the job in this process; the run stays queued",
							r.ID, s.DSN())}
					}
				}
				if r, err = s.Get(ctx, r.ID); err != nil {
					return err
				}
			}
			if err := a.printRun(cmd, r, asJSON); err != nil {
				return err
			}
			if r.Status == jobs.StatusSucceeded || r.Status == jobs.StatusSucceededWithWarnings {
				return nil
			}
			return failedError{}
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&params, "param", "p", nil, "parameter NAME=VALUE (repeatable)")
	f.StringVar(&idem, "idempotency-key", "", "return the existing run of this key instead of queueing another")
	f.BoolVar(&preview, "preview", false, "preview: the processor must not change the ERP")
	f.BoolVar(&wait, "wait", false, "wait until the run finishes; exit 0 on success, 1 otherwise")
	f.DurationVar(&timeout, "timeout", 0, "with --wait, give up waiting after this long (the run goes on)")
	f.StringVar(&at, "at", "", "run at this time (RFC 3339 with an offset); default now")
	f.StringVar(&file, "from-file", "", "queue one run per line of this CSV (header: parameter names) or JSON Lines file (.jsonl); each line is validated and has its own idempotency key (column or field idempotencyKey, else one derived from its parameters), so running the file again queues nothing twice")
	f.BoolVar(&asJSON, "json", false, "print the run as JSON")
	return cmd
}

func (a *app) runsRetryCommand() *cobra.Command {
	var (
		params         []string
		asJSON         bool
		fromFailedStep bool
	)
	cmd := &cobra.Command{
		Use:   "retry ID [--param NAME=VALUE]... [--from-failed-step]",
		Short: "Queue a new run repeating a finished run (same parameters unless overridden)",
		Long: `Queue a new run repeating a finished run, linked to it (retry of). With
--from-failed-step (multi-step jobs), the new run reuses the recorded
results of the steps that succeeded before the first step that did not,
and starts at that step; the reused steps show as "reused" with the run
whose result they hand on.`,
		Args: wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			set, err := a.definitions()
			if err != nil {
				return err
			}
			s, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			orig, err := s.Get(ctx, id)
			if err != nil {
				return notFound(err)
			}
			job, ok := set.Job(orig.Job)
			if !ok {
				return failedError{fmt.Sprintf("run %d is a run of %s, which is no longer defined", id, orig.Job)}
			}
			var values map[string]any
			if len(params) > 0 {
				raw := map[string]string{}
				old, err := job.DecodeParams([]byte(orig.Parameters))
				if err == nil {
					for k, v := range old.Text() {
						raw[k] = v
					}
				}
				over, err := parseKV("--param", params)
				if err != nil {
					return err
				}
				for k, v := range over {
					raw[k] = v
				}
				vals, err := job.ParseParams(raw)
				if err != nil {
					return usageError{err}
				}
				values = vals
			}
			if _, _, err := a.executor().Resolve(job, orig.Preview); err != nil {
				return usageError{err}
			}
			enq, err := s.Retry(ctx, job, id, jobs.RetryOptions{Params: values, Who: cliUser(), FromFailedStep: fromFailedStep})
			if errors.Is(err, jobs.ErrNotFinished) {
				return failedError{fmt.Sprintf("run %d has not finished; cancel it first or wait", id)}
			}
			if errors.Is(err, jobs.ErrNoFailedStep) || errors.Is(err, jobs.ErrStepsChanged) {
				return failedError{err.Error()}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, enq.Run)
			}
			if enq.Created {
				from := ""
				if fromFailedStep {
					from = " from its failed step"
				}
				fmt.Fprintf(a.stdout, "run %d queued (retry of run %d%s); `jobrunner serve` workers will run it\n", enq.Run.ID, id, from)
			} else {
				fmt.Fprintf(a.stdout, "run %d is already active for these parameters (%s)\n", enq.Run.ID, enq.Run.Status)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "override a parameter NAME=VALUE (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the new run as JSON")
	cmd.Flags().BoolVar(&fromFailedStep, "from-failed-step", false, "reuse the steps that succeeded and start at the first that did not (multi-step jobs)")
	return cmd
}

func (a *app) benchCommand() *cobra.Command {
	var (
		cfg    bench.Config
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "bench [--runs N] [--workers W] [--batch B] [--backlog N] --json",
		Short: "Measure throughput and trigger-to-start latency through the real claim → execute → record path",
		Long: `Enqueue --runs no-op runs in batches, work them all through the real path
(batch claim with leases, executor, attempt rows, log lines, group-committed
outcomes) with --workers, then trigger runs one at a time on the idle queue
to measure trigger-to-start latency. The benchmark's own runs (job
jobrunner.bench) are deleted before and after. Prints one JSON object with
--json.`,
		Args: wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Runs < 1 || cfg.Workers < 1 || cfg.Batch < 0 || cfg.Backlog < 0 {
				return usagef("--runs and --workers must be positive, --batch and --backlog not negative")
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			cfg.Store = s
			if !asJSON {
				cfg.Log = a.log
			}
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, res)
			}
			fmt.Fprintf(a.stdout, "%d runs in %.2fs: %.0f runs/s (enqueue %.0f/s), idle trigger-to-start p50 %.2f ms p99 %.2f ms, peak RSS %.1f MB (%.1f MB during the drain)\n",
				res.Runs, res.Seconds, res.RunsPerSec, res.EnqueuePerSec, res.StartLatencyMs.P50, res.StartLatencyMs.P99, res.PeakRSSMB, res.DrainPeakRSSMB)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Runs, "runs", 10000, "runs to drain")
	f.IntVar(&cfg.Workers, "workers", jobs.DefaultWorkers, "runs executing at once (default: serve's)")
	f.IntVar(&cfg.Batch, "batch", 0, "runs claimed per query (default min(workers, 256))")
	f.IntVar(&cfg.Backlog, "backlog", 0, "extra queued runs that are not due, to show a deep queue costs nothing")
	f.IntVar(&cfg.LatencySamples, "latency-samples", 200, "idle triggers to measure trigger-to-start latency")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
