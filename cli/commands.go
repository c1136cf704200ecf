package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobrunner/jobrunner/cronspec"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/migrations"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.noMigrate = true
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			applied, err := migrations.Apply(cmd.Context(), s.DB(), s.Dialect())
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintf(a.stdout, "%s: schema is up to date (version %d)\n", s.DSN(), migrations.Latest())
				return nil
			}
			fmt.Fprintf(a.stdout, "%s: applied migrations %v (now version %d)\n", s.DSN(), applied, migrations.Latest())
			return nil
		},
	}
}

// parseSince reads a look-back: a Go duration (90m, 24h) or whole days
// (2d).
func parseSince(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 3650 {
			return 0, fmt.Errorf("invalid number of days %q", n)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	return d, err
}

// jobView is a definition as `definitions list --json` shows it.
type jobView struct {
	Name        string             `json:"name"`
	Description string             `json:"description,omitempty"`
	Connection  string             `json:"connection"`
	Processor   string             `json:"processor"`
	Operation   string             `json:"operation,omitempty"`
	Inputs      map[string]string  `json:"inputs,omitempty"`
	Parameters  []paramView        `json:"parameters"`
	Schedule    *scheduleView      `json:"schedule,omitempty"`
	Source      definitions.Pos    `json:"source"`
	Version     string             `json:"version"`
	Retry       retryView          `json:"retry"`
	UniqueBy    []string           `json:"uniqueBy,omitempty"`
	Timeout     string             `json:"timeout"`
	Steps       []definitions.Step `json:"steps,omitempty"`
	Links       []definitions.Link `json:"links,omitempty"`
}

type paramView struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Prompt   string   `json:"prompt,omitempty"`
	Required bool     `json:"required"`
	Default  *string  `json:"default,omitempty"`
	Values   []string `json:"values,omitempty"`
}

type scheduleView struct {
	Cron     string   `json:"cron"`
	Timezone string   `json:"timezone"`
	Misfire  string   `json:"misfire"`
	Next     []string `json:"next"`
}

type retryView struct {
	MaxAttempts int    `json:"maxAttempts"`
	Initial     string `json:"initial"`
	Max         string `json:"max"`
}

func viewJob(j *definitions.Job, now time.Time) jobView {
	v := jobView{Name: j.Name, Description: j.Description, Connection: j.Connection, Processor: j.Processor, Operation: j.Operation, Inputs: j.Inputs,
		Source: j.Pos, Version: j.Version, UniqueBy: j.UniqueBy, Timeout: j.Timeout.D().String(), Steps: j.Steps, Links: j.Links,
		Retry:      retryView{MaxAttempts: j.Retry.MaxAttempts, Initial: j.Retry.Initial.D().String(), Max: j.Retry.Max.D().String()},
		Parameters: []paramView{}}
	for _, p := range j.Parameters {
		v.Parameters = append(v.Parameters, paramView{Name: p.Name, Type: string(p.Type), Prompt: p.Prompt, Required: p.Required, Default: p.Default, Values: p.Values})
	}
	if s := j.Schedule; s != nil {
		sv := &scheduleView{Cron: s.Cron, Timezone: s.Timezone, Misfire: s.Misfire, Next: []string{}}
		if sv.Timezone == "" {
			sv.Timezone = "UTC"
		}
		if loc, err := time.LoadLocation(sv.Timezone); err == nil {
			if spec, err := cronspec.Parse(s.Cron, loc); err == nil {
				for _, t := range spec.NextN(now, 3) {
					sv.Next = append(sv.Next, t.Format(time.RFC3339))
				}
			}
		}
		v.Schedule = sv
	}
	return v
}

func (a *app) definitionsCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "definitions", Short: "List or validate job definitions"})
	var asJSON, validateJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List job definitions with their parameters and next fire times",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := a.definitions()
			if err != nil {
				return err
			}
			now := time.Now()
			views := make([]jobView, 0, len(set.Jobs))
			for _, j := range set.Jobs {
				views = append(views, viewJob(j, now))
			}
			if asJSON {
				return writeJSON(a.stdout, views)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tPROCESSOR\tCONNECTION\tPARAMETERS\tSCHEDULE\tNEXT")
			for _, v := range views {
				var ps []string
				for _, p := range v.Parameters {
					s := p.Name + ":" + p.Type
					if p.Required {
						s += "!"
					}
					ps = append(ps, s)
				}
				sched, next := "-", "-"
				if v.Schedule != nil {
					sched = v.Schedule.Cron + " " + v.Schedule.Timezone
					if len(v.Schedule.Next) > 0 {
						next = v.Schedule.Next[0]
					}
				}
				proc := v.Processor
				if v.Operation != "" {
					proc += ":" + v.Operation
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, proc, v.Connection, strings.Join(ps, " "), sched, next)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Validate job definitions; print every problem with file:line",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := a.definitions()
			where := a.defsFlag
			if where == "" {
				where = "built-in examples"
			}
			if validateJSON {
				v := struct {
					Source      string               `json:"source"`
					OK          bool                 `json:"ok"`
					Jobs        int                  `json:"jobs"`
					Connections int                  `json:"connections"`
					Problems    definitions.Problems `json:"problems"`
				}{Source: where, OK: err == nil, Problems: definitions.Problems{}}
				if set != nil {
					v.Jobs, v.Connections = len(set.Jobs), len(set.Connections)
				}
				if err != nil {
					var probs definitions.Problems
					if !errors.As(err, &probs) {
						return err // not a definitions problem (unreadable directory …)
					}
					v.Problems = probs
				}
				if jerr := writeJSON(a.stdout, v); jerr != nil {
					return jerr
				}
				if err != nil {
					return usagef("definitions in %s: %d problems", where, len(v.Problems))
				}
				return nil
			}
			if err != nil {
				return err
			}
			hooks := ""
			if len(set.Hooks) > 0 {
				hooks = fmt.Sprintf(", %d hooks", len(set.Hooks))
			}
			fmt.Fprintf(a.stdout, "%s: %d jobs, %d connections%s: OK\n", where, len(set.Jobs), len(set.Connections), hooks)
			return nil
		},
	}
	validate.Flags().BoolVar(&validateJSON, "json", false, "print {source, ok, jobs, connections, problems: [{file, line, path, message}]}")
	cmd.AddCommand(list, validate, a.reloadCommand())
	return cmd
}

func (a *app) runCommand() *cobra.Command {
	var (
		params  []string
		preview bool
		idem    string
		asJSON  bool
		demo    bool
	)
	cmd := &cobra.Command{
		Use:   "run JOB [--param NAME=VALUE]...",
		Short: "Run a job now in this process, record the run and print its outcome",
		Long: `Run a job now in this process. Parameters are checked against the job's
typed parameters before anything is recorded. Retries wait their backoff
here; Ctrl-C cancels the run and records it cancelled.

Exit status: 0 the run succeeded, 1 it failed or was cancelled, 2 bad input.`,
		Args: wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if demo {
				stopDemo, err := a.startDemoERP()
				if err != nil {
					return err
				}
				defer stopDemo()
			}
			job, values, err := a.prepareRun(args[0], params, preview)
			if err != nil {
				return err
			}
			if err := a.checkSecrets(job, demo); err != nil {
				return err
			}
			ex := a.executor()
			if _, err := a.openStore(ctx); err != nil {
				return err
			}
			ex.Store = a.store
			run, err := ex.RunInline(ctx, job, values, jobs.InlineOptions{
				TriggeredBy: cliUser(), IdempotencyKey: idem, Preview: preview,
				OnEnqueued: func(r *jobs.Run) {
					a.log.WithFields(map[string]any{"run_id": r.ID, "job": r.Job}).Info("run recorded")
				},
			})
			if err != nil {
				if errors.Is(err, jobs.ErrAlreadyActive) && run != nil {
					return failedError{fmt.Sprintf("%v; see: jobrunner runs show %d", err, run.ID)}
				}
				return err
			}
			if err := a.printRun(cmd, run, asJSON); err != nil {
				return err
			}
			if run.Status == jobs.StatusSucceeded || run.Status == jobs.StatusSucceededWithWarnings {
				return nil
			}
			return failedError{}
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&params, "param", "p", nil, "parameter NAME=VALUE (repeatable)")
	f.BoolVar(&preview, "preview", false, "preview: the processor must not change the ERP")
	f.StringVar(&idem, "idempotency-key", "", "return the existing run of this key instead of running again")
	f.BoolVar(&asJSON, "json", false, "print the run as JSON")
	f.BoolVar(&demo, "demo", false, "start the built-in demo ERP on a loopback port and point the erp connection at it")
	return cmd
}

// printRun prints a run with its attempts (and, in text, the hint to its
// logs).
func (a *app) printRun(cmd *cobra.Command, r *jobs.Run, asJSON bool) error {
	attempts, err := a.store.Attempts(cmd.Context(), r.ID)
	if err != nil {
		return err
	}
	steps, err := a.store.Steps(cmd.Context(), r.ID)
	if err != nil {
		return err
	}
	children, err := a.store.Children(cmd.Context(), r.ID)
	if err != nil {
		return err
	}
	traces, err := a.store.Traces(cmd.Context(), r.ID)
	if err != nil {
		return err
	}
	if asJSON {
		type childView struct {
			ID      int64       `json:"id"`
			Job     string      `json:"job"`
			Status  jobs.Status `json:"status"`
			Preview bool        `json:"preview"`
		}
		kids := make([]childView, 0, len(children))
		for _, c := range children {
			kids = append(kids, childView{c.ID, c.Job, c.Status, c.Preview})
		}
		return writeJSON(a.stdout, struct {
			*jobs.Run
			Attempts []jobs.Attempt  `json:"attempts"`
			Steps    []jobs.RunStep  `json:"steps,omitempty"`
			Children []childView     `json:"children"`
			Traces   []jobs.RunTrace `json:"traces,omitempty"`
		}{r, attempts, steps, kids, traces})
	}
	w := a.stdout
	title := fmt.Sprintf("run %d  %s  %s", r.ID, r.Job, strings.ToUpper(string(r.Status)))
	if r.Preview {
		title += "  [PREVIEW]"
	}
	fmt.Fprintln(w, title)
	fmt.Fprintf(w, "  parameters:  %s\n", string(r.Parameters))
	by := r.TriggeredBy
	if by == "" {
		by = "-"
	}
	fmt.Fprintf(w, "  trigger:     %s by %s\n", r.TriggerKind, by)
	if r.ParentRunID != nil {
		fmt.Fprintf(w, "  parent:      run %d (started by its link)\n", *r.ParentRunID)
	}
	if r.RetryOfRunID != nil {
		fmt.Fprintf(w, "  retry of:    run %d\n", *r.RetryOfRunID)
	}
	if r.Preview {
		fmt.Fprintf(w, "  preview:     yes (the ERP was not changed)\n")
	}
	fmt.Fprintf(w, "  attempts:    %d of %d", r.AttemptsUsed(), r.MaxAttempts)
	if r.Snoozes > 0 {
		fmt.Fprintf(w, " (+%d snoozed)", r.Snoozes)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  created:     %s\n", r.CreatedAt.Format(time.RFC3339Nano))
	if r.StartedAt != nil {
		fmt.Fprintf(w, "  started:     %s\n", r.StartedAt.Format(time.RFC3339Nano))
	}
	if r.FinishedAt != nil {
		fmt.Fprintf(w, "  finished:    %s\n", r.FinishedAt.Format(time.RFC3339Nano))
	}
	if r.Status == jobs.StatusQueued && r.Attempt > 0 {
		fmt.Fprintf(w, "  next try:    %s\n", r.NotBefore.Format(time.RFC3339Nano))
	}
	if r.Waiting() {
		fmt.Fprintf(w, "  waiting:     snoozed %d times on %s since %s; next check %s\n", r.Snoozes, r.ErrorCode,
			r.CreatedAt.Format(time.RFC3339), r.NotBefore.Format(time.RFC3339))
	}
	if r.RecordsRead+r.RecordsChanged+r.RecordErrors+r.RecordWarnings > 0 {
		fmt.Fprintf(w, "  records:     read %d, changed %d, errors %d, warnings %d\n", r.RecordsRead, r.RecordsChanged, r.RecordErrors, r.RecordWarnings)
	}
	if r.ErrorCode != "" || r.ErrorMessage != "" {
		fmt.Fprintf(w, "  error:       %s: %s\n", r.ErrorCode, r.ErrorMessage)
	}
	if r.Result != "" {
		fmt.Fprintf(w, "  result:      %s\n", string(r.Result))
	}
	for _, t := range traces {
		what := fmt.Sprintf("execution %d", t.Attempt)
		if t.Attempt == 0 {
			what = "trigger"
		}
		fmt.Fprintf(w, "  trace:       %s (%s)\n", t.TraceID, what)
	}
	if len(steps) > 0 {
		fmt.Fprintf(w, "  steps:\n")
		for _, st := range steps {
			line := fmt.Sprintf("    %d. %-16s %-10s %-9s attempts %d  read %d, changed %d, errors %d, warnings %d", st.StepIndex+1, st.Name,
				st.Processor, st.Status, st.Attempts, st.RecordsRead, st.RecordsChanged, st.RecordErrors, st.RecordWarnings)
			if st.StartedAt != nil && st.FinishedAt != nil {
				line += fmt.Sprintf("  %s", st.FinishedAt.Sub(*st.StartedAt).Round(time.Millisecond))
			}
			if st.SkippedFromRunID != nil {
				line += fmt.Sprintf("  (result of run %d)", *st.SkippedFromRunID)
			}
			if st.ErrorCode != "" || st.ErrorMessage != "" {
				line += "  " + st.ErrorCode + ": " + st.ErrorMessage
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(children) > 0 {
		fmt.Fprintf(w, "  linked runs:\n")
		for _, c := range children {
			pv := ""
			if c.Preview {
				pv = " (preview)"
			}
			fmt.Fprintf(w, "    run %d  %s  %s%s\n", c.ID, c.Job, c.Status, pv)
		}
	}
	if len(attempts) > 0 {
		fmt.Fprintf(w, "  attempt log:\n")
	}
	for _, at := range attempts {
		line := fmt.Sprintf("    #%d %-13s %8s  by %s", at.Attempt, at.Status, at.Duration().Round(time.Millisecond), at.Owner)
		if len(steps) > 0 {
			line += fmt.Sprintf("  (ended in step %d)", at.StepIndex+1)
		}
		if at.ErrorCode != "" {
			line += "  " + at.ErrorCode + ": " + at.ErrorMessage
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "  logs:        jobrunner runs logs %d\n", r.ID)
	return nil
}

func (a *app) runsCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "runs", Short: "List, show, read the logs of and cancel runs"})
	var (
		asJSON               bool
		job, status, trigger string
		params               []string
		limit                int
		before               int64
		since                string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pv, err := parseKV("--param", params)
			if err != nil {
				return err
			}
			f := jobs.Filter{Job: job, Status: jobs.Status(status), Trigger: jobs.Trigger(trigger), Params: pv, Limit: limit, BeforeID: before}
			if status != "" && !f.Status.Valid() {
				return usagef("--status %q: want one of %v", status, jobs.Statuses)
			}
			if since != "" {
				d, err := parseSince(since)
				if err != nil {
					return usagef("--since %q: want a duration such as 90m, 24h or 2d", since)
				}
				f.Since = time.Now().Add(-d)
			}
			if limit < 1 || limit > 1000 {
				return usagef("--limit %d: want 1..1000", limit)
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			runs, err := s.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				if runs == nil {
					runs = []jobs.Run{}
				}
				return writeJSON(a.stdout, runs)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tJOB\tSTATUS\tATTEMPTS\tTRIGGER\tCREATED\tPARAMETERS\tERROR\tFLAGS")
			for _, r := range runs {
				errText := r.ErrorCode
				var flags []string
				if r.Preview {
					flags = append(flags, "preview")
				}
				if r.ParentRunID != nil {
					flags = append(flags, fmt.Sprintf("parent=%d", *r.ParentRunID))
				}
				if r.RetryOfRunID != nil {
					flags = append(flags, fmt.Sprintf("retry-of=%d", *r.RetryOfRunID))
				}
				if r.Waiting() {
					flags = append(flags, "waiting:"+r.ErrorCode)
				}
				line := fmt.Sprintf("%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s", r.ID, r.Job, r.Status, r.AttemptsUsed(), r.MaxAttempts,
					r.TriggerKind, r.CreatedAt.Format("2006-01-02 15:04:05"), truncate(string(r.Parameters), 60), errText)
				if len(flags) > 0 { // preview, parent=ID (linked run), retry-of=ID
					line += "\t" + strings.Join(flags, ",")
				}
				fmt.Fprintln(tw, line)
			}
			return tw.Flush()
		},
	}
	lf := list.Flags()
	lf.StringVar(&job, "job", "", "only runs of this job")
	lf.StringVar(&status, "status", "", "only runs in this status")
	lf.StringVar(&trigger, "trigger", "", "only runs with this trigger (manual, api, schedule, retry, link)")
	lf.StringArrayVar(&params, "param", nil, "only runs whose parameter NAME has exactly VALUE (NAME=VALUE, repeatable)")
	lf.IntVar(&limit, "limit", 50, "at most this many runs (1..1000)")
	lf.Int64Var(&before, "before", 0, "only runs with an id below this (paging)")
	lf.StringVar(&since, "since", "", "only runs created within this duration (e.g. 24h)")
	lf.BoolVar(&asJSON, "json", false, "print JSON")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a run: parameters, trigger, attempts, outcome, result",
		Args:  wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, r, err := a.runArg(cmd, args[0])
			if err != nil {
				return err
			}
			return a.printRun(cmd, r, showJSON)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")

	var logsJSON bool
	logs := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a run's log lines",
		Args:  wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, r, err := a.runArg(cmd, args[0])
			if err != nil {
				return err
			}
			id := r.ID
			var all []jobs.LogLine
			var after int64
			for {
				lines, err := s.Logs(cmd.Context(), id, after, 5000)
				if err != nil {
					return err
				}
				all = append(all, lines...)
				if len(lines) < 5000 {
					break
				}
				after = lines[len(lines)-1].ID
			}
			if logsJSON {
				if all == nil {
					all = []jobs.LogLine{}
				}
				return writeJSON(a.stdout, all)
			}
			for _, l := range all {
				fmt.Fprintf(a.stdout, "%s  #%d  %-5s  %s%s\n", l.Ts.Format("2006-01-02T15:04:05.000Z07:00"), l.Attempt, strings.ToUpper(l.Level), l.Message, fieldsText(l.Fields))
			}
			return nil
		},
	}
	logs.Flags().BoolVar(&logsJSON, "json", false, "print JSON")

	var who string
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a queued or running run (also one running on another instance)",
		Args:  wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			if who == "" {
				who = cliUser()
			}
			r, err := s.Cancel(cmd.Context(), id, who)
			if errors.Is(err, jobs.ErrFinished) {
				return failedError{fmt.Sprintf("run %d already finished (%s); nothing to cancel", id, r.Status)}
			}
			if err != nil {
				return notFound(err)
			}
			if r.Status == jobs.StatusCancelled {
				fmt.Fprintf(a.stdout, "run %d cancelled\n", id)
			} else {
				fmt.Fprintf(a.stdout, "run %d is running: cancel requested; its worker stops it within a heartbeat\n", id)
			}
			return nil
		},
	}
	cancel.Flags().StringVar(&who, "as", "", "who cancels (default: the OS user)")
	cmd.AddCommand(list, show, logs, cancel, a.runsRetryCommand(), a.bulkRetryCommand(), a.bulkCancelCommand())
	return cmd
}

func fieldsText(f jobs.JSONText) string {
	if f == "" {
		return ""
	}
	var m map[string]string
	if json.Unmarshal([]byte(f), &m) != nil || len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := m[k]
		if strings.ContainsAny(v, " \n\t\"") {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	return b.String()
}

func notFound(err error) error {
	if errors.Is(err, jobs.ErrNotFound) {
		return failedError{err.Error()}
	}
	return err
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("run id %q: want a positive number", s)
	}
	return id, nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (a *app) scheduleCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "schedule", Short: "Check cron specs"})
	var (
		tz, from string
		count    int
	)
	next := &cobra.Command{
		Use:   "next SPEC",
		Short: "Print the next fire times of a cron spec, RFC3339 with offset, one per line",
		Long: `Print the next fire times of a cron spec (5 fields, 6 with leading seconds,
@daily-style descriptors in any case, @every DURATION), in --tz (default
UTC), after --from (default now). Flags may follow SPEC; quote the spec.`,
		Args: wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			loc := time.UTC
			if tz != "" {
				l, err := time.LoadLocation(tz)
				if err != nil {
					return usagef("--tz %q: unknown time zone", tz)
				}
				loc = l
			}
			start := time.Now()
			if from != "" {
				t, err := time.Parse(time.RFC3339, from)
				if err != nil {
					return usagef("--from %q: want RFC3339 such as 2026-03-29T00:00:00+01:00", from)
				}
				start = t
			}
			if count < 1 || count > 1000 {
				return usagef("--count %d: want 1..1000", count)
			}
			spec, err := cronspec.Parse(args[0], loc)
			if err != nil {
				return usageError{err}
			}
			for _, t := range spec.NextN(start, count) {
				fmt.Fprintln(a.stdout, t.Format(time.RFC3339))
			}
			return nil
		},
	}
	f := next.Flags()
	f.StringVar(&tz, "tz", "", "IANA time zone (default UTC)")
	f.StringVar(&from, "from", "", "start after this RFC3339 time (default now)")
	f.IntVar(&count, "count", 5, "how many fire times (1..1000)")
	cmd.AddCommand(next)
	return cmd
}

// reloadCommand asks a running serve to reload its definitions.
func (a *app) reloadCommand() *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Ask a running `jobrunner serve` to reload its definitions (POST /api/v1/admin/reload)",
		Long: `Ask a running serve to reload its definitions, as SIGHUP does. A bad file
keeps the old set running; the answer lists every problem. The bearer token
(admin role) is read from JOBRUNNER_API_TOKEN.`,
		Args: wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := url.Parse(server)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--server %q: want http(s)://host:port", server)
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, strings.TrimSuffix(server, "/")+"/api/v1/admin/reload", nil)
			if err != nil {
				return usageError{err}
			}
			if tok := os.Getenv("JOBRUNNER_API_TOKEN"); tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				return fmt.Errorf("reload: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if resp.StatusCode/100 == 2 {
				fmt.Fprintf(a.stdout, "definitions reloaded on %s\n", u.Host)
				return nil
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
				return failedError{fmt.Sprintf("reload refused (%d %s): %s", resp.StatusCode, e.Error.Code, e.Error.Message)}
			}
			return failedError{fmt.Sprintf("reload refused: %s", resp.Status)}
		},
	}
	cmd.Flags().StringVar(&server, "server", "http://127.0.0.1:8080", "address of the serve instance")
	return cmd
}

// prepareRun finds the job, parses its parameters from NAME=VALUE flags and
// checks that it can run here (for preview too) — everything `run` and
// `trigger` refuse before anything is stored (usage errors, exit 2).
func (a *app) prepareRun(name string, params []string, preview bool) (*definitions.Job, definitions.Values, error) {
	if _, err := a.definitions(); err != nil {
		return nil, nil, err
	}
	raw, err := parseKV("--param", params)
	if err != nil {
		return nil, nil, err
	}
	job, values, err := a.executor().Starter().Prepare(jobs.StartRequest{Job: name, Text: raw, Preview: preview})
	switch {
	case errors.Is(err, jobs.ErrUnknownJob):
		return nil, nil, usagef("unknown job %q (see: jobrunner definitions list)", name)
	case err != nil:
		return nil, nil, usageError{err}
	}
	return job, values, nil
}

// runArg parses a run id argument and loads the run (exit 2 for a bad id,
// 1 for an unknown one).
func (a *app) runArg(cmd *cobra.Command, arg string) (*jobs.Store, *jobs.Run, error) {
	id, err := parseID(arg)
	if err != nil {
		return nil, nil, err
	}
	s, err := a.openStore(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	r, err := s.Get(cmd.Context(), id)
	if err != nil {
		return nil, nil, notFound(err)
	}
	return s, r, nil
}

// checkSecrets refuses, before anything is recorded, a run in this process
// whose connections' secrets are not set here (`run` executes the job
// itself; `trigger` leaves that to serve, whose environment counts).
func (a *app) checkSecrets(job *definitions.Job, demo bool) error {
	set := a.defs.Load()
	for _, st := range job.RunSteps() {
		conn, ok := set.Connection(st.Connection)
		if !ok {
			continue
		}
		if _, err := conn.ResolveSecrets(a.getenv); err != nil {
			hint := ""
			if !demo && conn.Name == "erp" {
				hint = " (or add --demo to run against the built-in demo ERP)"
			}
			return usageError{fmt.Errorf("%w%s", err, hint)}
		}
	}
	return nil
}
