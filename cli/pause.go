package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobrunner/jobrunner/jobs"
)

// pauseCommand is `pause KIND NAME`.
func (a *app) pauseCommand() *cobra.Command {
	var until, forD, reason string
	cmd := &cobra.Command{
		Use:   "pause job|schedule|connection NAME [--for 2h | --until RFC3339] [--reason TEXT]",
		Short: "Hold back a job, a schedule or a connection until resumed (or a time)",
		Long: `Hold back a job (its schedule fires nothing, its queued runs are not
claimed), a job's schedule only, or a connection (every run that would call
it stays queued, no attempt used). Every instance respects it within one
poll interval; running runs finish. A schedule's ticks while held follow the
job's misfire policy when it ends. Recorded with who and why; replaces an
earlier pause of the same thing. Ends with ` + "`jobrunner resume`" + ` or at --until / after --for.`,
		Args: wrapArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := jobs.PauseKind(args[0])
			if !kind.Valid() {
				return usagef("unknown kind %q: want job, schedule or connection", args[0])
			}
			p := jobs.Pause{Kind: kind, Name: args[1], Reason: reason, By: cliUser()}
			switch {
			case until != "" && forD != "":
				return usagef("give --until or --for, not both")
			case until != "":
				t, err := time.Parse(time.RFC3339, until)
				if err != nil {
					return usagef("--until %q: want an RFC 3339 time such as 2026-12-24T06:00:00Z", until)
				}
				p.Until = &t
			case forD != "":
				d, err := parseSince(forD)
				if err != nil || d <= 0 {
					return usagef("--for %q: want a duration such as 30m, 2h or 1d", forD)
				}
				t := time.Now().Add(d)
				p.Until = &t
			}
			if err := a.checkPauseTarget(p); err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			if err := s.Pause(cmd.Context(), p); err != nil {
				return usageError{err}
			}
			end := "until resumed"
			if p.Until != nil {
				end = "until " + p.Until.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(a.stdout, "%s %s paused %s\n", kind, p.Name, end)
			return nil
		},
	}
	cmd.Flags().StringVar(&until, "until", "", "end the pause at this time (RFC 3339)")
	cmd.Flags().StringVar(&forD, "for", "", "end the pause after this long (30m, 2h, 1d)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown wherever the thing appears)")
	return cmd
}

// checkPauseTarget refuses to pause what the definitions do not have.
func (a *app) checkPauseTarget(p jobs.Pause) error {
	set, err := a.definitions()
	if err != nil {
		return err
	}
	switch p.Kind {
	case jobs.PauseJob:
		if _, ok := set.Job(p.Name); !ok {
			return usagef("unknown job %q (see: jobrunner definitions list)", p.Name)
		}
	case jobs.PauseSchedule:
		j, ok := set.Job(p.Name)
		if !ok {
			return usagef("unknown job %q (see: jobrunner definitions list)", p.Name)
		}
		if j.Schedule == nil {
			return usagef("job %s has no schedule", p.Name)
		}
	case jobs.PauseConnection:
		if _, ok := set.Connection(p.Name); !ok {
			return usagef("unknown connection %q", p.Name)
		}
	}
	return nil
}

// resumeCommand is `resume KIND NAME`.
func (a *app) resumeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "resume job|schedule|connection NAME",
		Short: "End a pause",
		Args:  wrapArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := jobs.PauseKind(args[0])
			if !kind.Valid() {
				return usagef("unknown kind %q: want job, schedule or connection", args[0])
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			ok, err := s.Resume(cmd.Context(), kind, args[1])
			if err != nil {
				return err
			}
			if !ok {
				return usagef("%s %s is not paused", kind, args[1])
			}
			a.log.WithField("by", cliUser()).Infof("%s %s resumed", kind, args[1])
			fmt.Fprintf(a.stdout, "%s %s resumed\n", kind, args[1])
			return nil
		},
	}
}

// pausesCommand is `pauses`.
func (a *app) pausesCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pauses [--json]",
		Short: "List what is paused now (pauses, the circuit breaker's, maintenance windows)",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			ps, err := s.Pauses(cmd.Context())
			if err != nil {
				return err
			}
			set, err := a.definitions()
			if err != nil {
				return err
			}
			now := time.Now()
			for _, c := range set.Connections {
				if hit, in := c.InMaintenance(now); in {
					u := hit.Ends
					ps = append(ps, jobs.Pause{Kind: jobs.PauseConnection, Name: c.Name, Until: &u, By: "maintenance window", Reason: "defined on the connection"})
				}
			}
			if asJSON {
				return writeJSON(a.stdout, ps)
			}
			if len(ps) == 0 {
				fmt.Fprintln(a.stdout, "nothing is paused")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tNAME\tUNTIL\tBY\tSINCE\tREASON")
			for _, p := range ps {
				until := "resumed"
				if p.Until != nil {
					until = p.Until.UTC().Format(time.RFC3339)
				}
				since := ""
				if !p.Since.IsZero() {
					since = p.Since.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Kind, p.Name, until, p.By, since, strings.ReplaceAll(p.Reason, "\n", " "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
