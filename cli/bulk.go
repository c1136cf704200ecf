package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobrunner/jobrunner/jobs"
)

// bulkFilter is the filter of `runs bulk-retry` and `runs bulk-cancel`.
type bulkFilter struct {
	job, status, errorCode, since string
	params                        []string
	yes, asJSON                   bool
}

func (b *bulkFilter) flags(cmd *cobra.Command, defStatus string) {
	f := cmd.Flags()
	f.StringVar(&b.job, "job", "", "only runs of this job")
	f.StringVar(&b.status, "status", defStatus, "only runs with this status")
	f.StringVar(&b.errorCode, "error-code", "", "only runs that ended with this error code")
	f.StringVar(&b.since, "since", "", "only runs created within this long (90m, 24h, 2d)")
	f.StringArrayVarP(&b.params, "param", "p", nil, "only runs with parameter NAME=VALUE (repeatable)")
	f.BoolVar(&b.yes, "yes", false, "do it; without --yes only the number of matching runs is printed")
	f.BoolVar(&b.asJSON, "json", false, "print JSON")
}

// matching returns every run the filter matches, newest first.
func (a *app) matching(ctx context.Context, b *bulkFilter) ([]jobs.Run, error) {
	pv, err := parseKV("--param", b.params)
	if err != nil {
		return nil, err
	}
	f := jobs.Filter{Job: b.job, Status: jobs.Status(b.status), ErrorCode: b.errorCode, Params: pv, Limit: 1000}
	if b.status != "" && !f.Status.Valid() {
		return nil, usagef("--status %q: want one of %v", b.status, jobs.Statuses)
	}
	if b.since != "" {
		d, err := parseSince(b.since)
		if err != nil {
			return nil, usagef("--since %q: want a duration such as 90m, 24h or 2d", b.since)
		}
		f.Since = time.Now().Add(-d)
	}
	if b.job == "" && b.errorCode == "" && b.since == "" && len(pv) == 0 {
		return nil, usagef("name what to act on: at least one of --job, --error-code, --since, --param")
	}
	s, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	var out []jobs.Run
	for {
		page, err := s.List(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out, nil
		}
		f.BeforeID = page[len(page)-1].ID
	}
}

// bulkResult is what a bulk action did.
type bulkResult struct {
	Matched int `json:"matched"`
	// Done counts new retries (bulk-retry) or cancelled runs
	// (bulk-cancel); Already those retried by an earlier run of the same
	// command or already final; Active retries refused because a run with
	// the same uniqueBy values is active; Failed the errors.
	Done    int      `json:"done"`
	Already int      `json:"already"`
	Active  int      `json:"active,omitempty"`
	Failed  int      `json:"failed"`
	Errors  []string `json:"errors,omitempty"`
	DryRun  bool     `json:"dryRun"`
}

func (a *app) printBulk(b *bulkFilter, verb string, r bulkResult) error {
	if b.asJSON {
		if err := writeJSON(a.stdout, r); err != nil {
			return err
		}
	} else if r.DryRun {
		fmt.Fprintf(a.stdout, "%d runs match; run again with --yes to %s them\n", r.Matched, verb)
	} else {
		past := map[string]string{"retry": "retried", "cancel": "cancelled"}[verb]
		fmt.Fprintf(a.stdout, "%d runs matched: %d %s, %d already done, %d active for their uniqueBy, %d failed\n", r.Matched, r.Done, past, r.Already, r.Active, r.Failed)
		for _, e := range r.Errors {
			fmt.Fprintln(a.stdout, "  "+e)
		}
	}
	if r.Failed > 0 {
		return failedError{}
	}
	return nil
}

// bulkRetryCommand is `runs bulk-retry`.
func (a *app) bulkRetryCommand() *cobra.Command {
	var b bulkFilter
	cmd := &cobra.Command{
		Use:   "bulk-retry --job J [--status failed] [--error-code C] [--since 2h] [--param K=V] [--yes]",
		Short: "Retry every finished run matching a filter, once each (default status failed)",
		Long: `Retry every finished run that matches the filter (status failed unless
--status says otherwise), each exactly once: a retry carries the key
bulk-retry:<run id>, so running the command again (after a crash, or by a
colleague) retries nothing twice. Without --yes it only prints how many
runs match. Each retry is recorded as triggered by you (bulk retry).`,
		Args: wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			runs, err := a.matching(ctx, &b)
			if err != nil {
				return err
			}
			res := bulkResult{Matched: len(runs), DryRun: !b.yes}
			if !b.yes {
				return a.printBulk(&b, "retry", res)
			}
			set, err := a.definitions()
			if err != nil {
				return err
			}
			for _, r := range runs {
				job, ok := set.Job(r.Job)
				if !ok {
					res.Failed++
					res.Errors = append(res.Errors, fmt.Sprintf("run %d: job %s is no longer defined", r.ID, r.Job))
					continue
				}
				e, err := a.store.Retry(ctx, job, r.ID, jobs.RetryOptions{Who: cliUser() + " (bulk retry)", IdempotencyKey: fmt.Sprintf("bulk-retry:%d", r.ID)})
				switch {
				case errors.Is(err, jobs.ErrNotFinished):
					res.Already++
				case err != nil:
					res.Failed++
					res.Errors = append(res.Errors, fmt.Sprintf("run %d: %v", r.ID, err))
				case e.Created:
					res.Done++
				case e.Reason == "active":
					res.Active++
				default:
					res.Already++
				}
			}
			return a.printBulk(&b, "retry", res)
		},
	}
	b.flags(cmd, string(jobs.StatusFailed))
	return cmd
}

// bulkCancelCommand is `runs bulk-cancel`.
func (a *app) bulkCancelCommand() *cobra.Command {
	var b bulkFilter
	cmd := &cobra.Command{
		Use:   "bulk-cancel --job J [--status queued] [--since 2h] [--param K=V] [--yes]",
		Short: "Cancel every queued or running run matching a filter (default status queued)",
		Long: `Cancel every run that matches the filter (status queued unless --status
says otherwise; running runs are cancelled as ` + "`runs cancel`" + ` does). Without --yes
it only prints how many runs match.`,
		Args: wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			runs, err := a.matching(ctx, &b)
			if err != nil {
				return err
			}
			res := bulkResult{Matched: len(runs), DryRun: !b.yes}
			if !b.yes {
				return a.printBulk(&b, "cancel", res)
			}
			for _, r := range runs {
				_, err := a.store.Cancel(ctx, r.ID, cliUser()+" (bulk cancel)")
				switch {
				case errors.Is(err, jobs.ErrFinished):
					res.Already++
				case err != nil:
					res.Failed++
					res.Errors = append(res.Errors, fmt.Sprintf("run %d: %v", r.ID, err))
				default:
					res.Done++
				}
			}
			return a.printBulk(&b, "cancel", res)
		},
	}
	b.flags(cmd, string(jobs.StatusQueued))
	return cmd
}
