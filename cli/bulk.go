package cli

import (
	"context"
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

// filter checks the flags and returns the filter they name.
func (b *bulkFilter) filter() (jobs.Filter, error) {
	pv, err := parseKV("--param", b.params)
	if err != nil {
		return jobs.Filter{}, err
	}
	f := jobs.Filter{Job: b.job, Status: jobs.Status(b.status), ErrorCode: b.errorCode, Params: pv}
	if b.status != "" && !f.Status.Valid() {
		return f, usagef("--status %q: want one of %v", b.status, jobs.Statuses)
	}
	if b.since != "" {
		d, err := parseSince(b.since)
		if err != nil {
			return f, usagef("--since %q: want a duration such as 90m, 24h or 2d", b.since)
		}
		f.Since = time.Now().Add(-d)
	}
	if b.job == "" && b.errorCode == "" && b.since == "" && len(pv) == 0 {
		return f, usagef("name what to act on: at least one of --job, --error-code, --since, --param")
	}
	return f, nil
}

// bulk counts, and with --yes does, verb (retry or cancel) on the runs b
// matches.
func (a *app) bulk(ctx context.Context, b *bulkFilter, verb string) error {
	f, err := b.filter()
	if err != nil {
		return err
	}
	s, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	who := cliUser() + " (bulk " + verb + ")"
	var res jobs.BulkResult
	if verb == "retry" {
		set, err := a.definitions()
		if err != nil {
			return err
		}
		res, err = s.BulkRetry(ctx, set, f, who, !b.yes)
		if err != nil {
			return err
		}
	} else if res, err = s.BulkCancel(ctx, f, who, !b.yes); err != nil {
		return err
	}
	return a.printBulk(b, verb, res)
}

func (a *app) printBulk(b *bulkFilter, verb string, r jobs.BulkResult) error {
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
		RunE: func(cmd *cobra.Command, _ []string) error { return a.bulk(cmd.Context(), &b, "retry") },
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
		RunE: func(cmd *cobra.Command, _ []string) error { return a.bulk(cmd.Context(), &b, "cancel") },
	}
	b.flags(cmd, string(jobs.StatusQueued))
	return cmd
}
