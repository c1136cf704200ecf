package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/notify"
	"github.com/jobrunner/jobrunner/processors"
)

// List and log paging limits.
const (
	DefaultRunsLimit = 50
	MaxRunsLimit     = 500
	DefaultLogsLimit = 1000
	MaxLogsLimit     = 5000
	// MaxIdempotencyKey is the longest idempotency key accepted (the
	// database column's width).
	MaxIdempotencyKey = 200
	// MaxParamFilters caps param.NAME filters in one runs query.
	MaxParamFilters = 10
)

// followPoll is how often a followed log checks for new lines.
var followPoll = 250 * time.Millisecond

// followKeepAlive is how often a followed log sends a comment line to keep
// proxies from closing an idle stream.
const followKeepAlive = 15 * time.Second

// runView is a run with the fields the API adds: whether an existing run
// was returned instead of a new one (and why), and its attempts.
type runView struct {
	*jobs.Run
	Existing       *bool         `json:"existing,omitempty"`
	ExistingReason string        `json:"existingReason,omitempty"`
	Attempts       []attemptView `json:"attempts,omitempty"`
	// Steps are a multi-step run's steps (GET /runs/{id}); Children the
	// runs its links started.
	Steps    []jobs.RunStep `json:"steps,omitempty"`
	Children []childView    `json:"children,omitempty"`
	// Traces are the OpenTelemetry traces of the run's attempts (attempt 0:
	// the triggering request), when traces are on.
	Traces []jobs.RunTrace `json:"traces,omitempty"`
	// Notifications are the run's notifications (sent, pending, failed),
	// GET /runs/{id} only.
	Notifications []notify.Notification `json:"notifications,omitempty"`
}

// childView is a run started by another run's link.
type childView struct {
	ID      int64       `json:"id"`
	Job     string      `json:"job"`
	Status  jobs.Status `json:"status"`
	Preview bool        `json:"preview"`
}

func childViews(runs []jobs.Run) []childView {
	out := make([]childView, 0, len(runs))
	for _, r := range runs {
		out = append(out, childView{ID: r.ID, Job: r.Job, Status: r.Status, Preview: r.Preview})
	}
	return out
}

type attemptView struct {
	jobs.Attempt
	DurationMs int64 `json:"durationMs"`
}

func attemptViews(as []jobs.Attempt) []attemptView {
	out := make([]attemptView, 0, len(as))
	for _, a := range as {
		out = append(out, attemptView{Attempt: a, DurationMs: a.Duration().Milliseconds()})
	}
	return out
}

// triggerRequest is the body of POST /api/v1/jobs/{name}/runs.
type triggerRequest struct {
	Parameters map[string]json.RawMessage `json:"parameters"`
	// IdempotencyKey is a pointer so that an empty key (a client bug: it
	// would mean "no key") is refused rather than ignored.
	IdempotencyKey *string `json:"idempotencyKey"`
	Preview        bool    `json:"preview"`
	// RunAt delays the run until then (a one-off run at a time); absent:
	// now.
	RunAt *time.Time `json:"runAt"`
}

// retryRequest is the body of POST /api/v1/runs/{id}/retry.
type retryRequest struct {
	Parameters map[string]json.RawMessage `json:"parameters"`
	// FromFailedStep reuses the steps that succeeded and starts the new
	// run at the first that did not (multi-step jobs).
	FromFailedStep bool `json:"fromFailedStep"`
}

// checkIdempotencyKey validates a key: at most MaxIdempotencyKey visible
// ASCII characters.
func checkIdempotencyKey(k string) error {
	if len(k) > MaxIdempotencyKey {
		return &Error{Kind: KindInvalid, Code: "bad_idempotency_key", Message: fmt.Sprintf("idempotencyKey is longer than %d characters", MaxIdempotencyKey),
			Fields: map[string]string{"idempotencyKey": "too long"}}
	}
	for i := 0; i < len(k); i++ {
		if k[i] < '!' || k[i] > '~' {
			return &Error{Kind: KindInvalid, Code: "bad_idempotency_key", Message: "idempotencyKey must be visible ASCII characters without spaces",
				Fields: map[string]string{"idempotencyKey": "visible ASCII only"}}
		}
	}
	return nil
}

// starter is the front door through which the API, the dashboard and
// hooks start runs (jobs.Starter), waking this instance's workers.
func (s *Server) starter() *jobs.Starter {
	return &jobs.Starter{Store: s.cfg.Store, Registry: s.cfg.Registry, Definitions: s.defs, Wake: s.wake, Log: s.log()}
}

// canRun reports whether this binary can run j (or preview it).
func (s *Server) canRun(j *definitions.Job, preview bool) error {
	_, _, err := s.starter().Prepare(jobs.StartRequest{Definition: j, Values: definitions.Values{}, Preview: preview})
	return err
}

// checkRunnable refuses, before anything is stored, a run whose processor
// (any step's) cannot run here (or cannot preview).
func (s *Server) checkRunnable(j *definitions.Job, preview bool) error {
	return runnableError(j, s.canRun(j, preview))
}

// runnableError maps the front door's refusal of j to the API's error.
func runnableError(j *definitions.Job, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, processors.ErrPreviewUnsupported):
		return &Error{Kind: KindInvalid, Code: "preview_unsupported", Message: fmt.Sprintf("job %s does not support preview runs", j.Name),
			Fields: map[string]string{"preview": "not supported by this job"}, Err: err}
	case errors.Is(err, jobs.ErrNotRunnable):
		return &Error{Kind: KindConflict, Code: "job_not_runnable", Message: fmt.Sprintf("job %s cannot run here: its processor is not available", j.Name), Err: err}
	}
	return storeError(err)
}

// enqueue starts a run triggered through the API or the dashboard (to
// start at at; zero: now) through the front door, which wakes the workers
// when a new run was created and links the caller's trace to it.
func (s *Server) enqueue(ctx context.Context, j *definitions.Job, params definitions.Values, key string, preview bool, p principal, at time.Time) (*jobs.Enqueued, error) {
	if err := checkIdempotencyKey(key); err != nil {
		return nil, err
	}
	e, err := s.starter().Start(ctx, jobs.StartRequest{Definition: j, Values: params, Trigger: jobs.TriggerAPI,
		TriggeredBy: p.who(), IdempotencyKey: key, Preview: preview, NotBefore: at,
		// The caller's trace (W3C traceparent, extracted by apiHandler
		// when traces are on): the run's attempts link to it.
		Trace: trace.SpanContextFromContext(ctx)})
	if err != nil {
		return nil, runnableError(j, err)
	}
	return e, nil
}

// writeEnqueued answers a trigger or retry: 202 with the new run, or 200
// with the existing run returned instead (same idempotency key, or an
// active run with the same uniqueBy parameters), marked "existing": true.
func writeEnqueued(w http.ResponseWriter, e *jobs.Enqueued) {
	existing := !e.Created
	v := runView{Run: e.Run, Existing: &existing, ExistingReason: e.Reason}
	w.Header().Set("Location", "/api/v1/runs/"+strconv.FormatInt(e.Run.ID, 10))
	if e.Created {
		writeJSON(w, http.StatusAccepted, v)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) triggerRun(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	j, err := s.job(r)
	if err != nil {
		return err
	}
	var req triggerRequest
	if err := decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	params, err := parseParams(j, req.Parameters)
	if err != nil {
		return err
	}
	key := ""
	if req.IdempotencyKey != nil {
		if *req.IdempotencyKey == "" {
			return &Error{Kind: KindInvalid, Code: "bad_idempotency_key", Message: "idempotencyKey is empty: leave it out to trigger without a key",
				Fields: map[string]string{"idempotencyKey": "empty"}}
		}
		key = *req.IdempotencyKey
	}
	var at time.Time
	if req.RunAt != nil {
		at = *req.RunAt
	}
	e, err := s.enqueue(r.Context(), j, params, key, req.Preview, p, at)
	if err != nil {
		return err
	}
	writeEnqueued(w, e)
	return nil
}

// runFilter parses the query of GET /api/v1/runs (and the dashboard's
// runs page): every filter matches literally; unknown keys, repeated keys
// and malformed values are 400 with one entry per field.
func runFilter(q url.Values) (jobs.Filter, error) {
	f := jobs.Filter{Limit: DefaultRunsLimit}
	fields := map[string]string{}
	for key, vals := range q {
		if len(vals) != 1 {
			fields[key] = "given more than once"
			continue
		}
		v := vals[0]
		switch {
		case key == "job":
			f.Job = v
		case key == "status":
			if v != "" && !jobs.Status(v).Valid() {
				fields[key] = fmt.Sprintf("unknown status %q", v)
			}
			f.Status = jobs.Status(v)
		case key == "trigger":
			switch t := jobs.Trigger(v); t {
			case "", jobs.TriggerManual, jobs.TriggerAPI, jobs.TriggerSchedule, jobs.TriggerRetry, jobs.TriggerLink, jobs.TriggerHook:
				f.Trigger = t
			default:
				fields[key] = fmt.Sprintf("unknown trigger %q", v)
			}
		case key == "since" || key == "until":
			if v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fields[key] = "want an RFC 3339 time, e.g. 2026-01-02T15:04:05Z"
				continue
			}
			if key == "since" {
				f.Since = t
			} else {
				f.Until = t
			}
		case key == "limit":
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				fields[key] = "want an integer"
				continue
			}
			f.Limit = min(max(n, 1), MaxRunsLimit)
		case key == "cursor":
			if v == "" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				fields[key] = "not a cursor returned by this API"
				continue
			}
			f.BeforeID = n
		case strings.HasPrefix(key, "param."):
			name := strings.TrimPrefix(key, "param.")
			if name == "" {
				fields[key] = "want param.NAME=VALUE"
				continue
			}
			if f.Params == nil {
				f.Params = map[string]string{}
			}
			f.Params[name] = v
		default:
			fields[key] = "unknown filter"
		}
	}
	if len(f.Params) > MaxParamFilters {
		fields["param"] = fmt.Sprintf("at most %d parameter filters", MaxParamFilters)
	}
	if len(fields) > 0 {
		return f, &Error{Kind: KindInvalid, Code: "bad_query", Message: "invalid filters: see fields", Fields: fields}
	}
	return f, nil
}

// listPage runs f and returns the page plus the cursor of the next page
// ("" when this is the last).
func (s *Server) listPage(ctx context.Context, f jobs.Filter) ([]jobs.Run, string, error) {
	limit := f.Limit
	f.Limit = limit + 1
	runs, err := s.cfg.Store.List(ctx, f)
	if err != nil {
		return nil, "", storeError(err)
	}
	next := ""
	if len(runs) > limit {
		runs = runs[:limit]
		next = strconv.FormatInt(runs[limit-1].ID, 10)
	}
	if runs == nil {
		runs = []jobs.Run{}
	}
	return runs, next, nil
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request, _ principal) error {
	q, err := query(r)
	if err != nil {
		return err
	}
	f, err := runFilter(q)
	if err != nil {
		return err
	}
	runs, next, err := s.listPage(r.Context(), f)
	if err != nil {
		return err
	}
	body := map[string]any{"runs": runs}
	if next != "" {
		body["nextCursor"] = next
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// runID parses the request's {id}; a malformed id is 404 like an unknown
// one.
func runID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(KindNotFound, "run_not_found", "no run with that id")
	}
	return id, nil
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	id, err := runID(r)
	if err != nil {
		return err
	}
	run, err := s.cfg.Store.Get(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	atts, err := s.cfg.Store.Attempts(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	steps, err := s.cfg.Store.Steps(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	kids, err := s.cfg.Store.Children(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	traces, err := s.cfg.Store.Traces(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	nts, err := notify.ForRun(r.Context(), s.cfg.Store.DB(), id)
	if err != nil {
		return storeError(err)
	}
	v := runView{Run: run, Attempts: attemptViews(atts), Steps: steps, Children: childViews(kids), Traces: traces, Notifications: nts}
	if v.Attempts == nil {
		v.Attempts = []attemptView{}
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// logsQuery is the parsed query of a logs request.
type logsQuery struct {
	after  int64
	limit  int
	follow bool
}

func parseLogsQuery(q url.Values) (logsQuery, error) {
	lq := logsQuery{limit: DefaultLogsLimit}
	fields := map[string]string{}
	for key, vals := range q {
		if len(vals) != 1 {
			fields[key] = "given more than once"
			continue
		}
		v := vals[0]
		switch key {
		case "after":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				fields[key] = "want a log line id (>= 0)"
			}
			lq.after = n
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil {
				fields[key] = "want an integer"
			}
			lq.limit = min(max(n, 1), MaxLogsLimit)
		case "follow":
			b, err := strconv.ParseBool(v)
			if err != nil {
				fields[key] = "want 1 or 0"
			}
			lq.follow = b
		default:
			fields[key] = "unknown query parameter"
		}
	}
	if len(fields) > 0 {
		return lq, &Error{Kind: KindInvalid, Code: "bad_query", Message: "invalid query: see fields", Fields: fields}
	}
	return lq, nil
}

// logsPage is the answer of GET /api/v1/runs/{id}/logs.
type logsPage struct {
	RunID  int64          `json:"runId"`
	Status jobs.Status    `json:"status"`
	Logs   []jobs.LogLine `json:"logs"`
	// Next is the "after" of the next page: the last line's id, or the
	// request's after when there was none.
	Next int64 `json:"next"`
	// More is true when the page is full: ask again at once.
	More bool `json:"more"`
	// Complete is true when the run is final and every line was read: no
	// line will ever follow Next.
	Complete bool `json:"complete"`
}

// readLogs reads one page of a run's logs. The run is read first: a run
// already final has all its lines stored (the final transaction writes
// them), so an empty page after it means complete.
func (s *Server) readLogs(ctx context.Context, id, after int64, limit int) (*jobs.Run, logsPage, error) {
	run, err := s.cfg.Store.Get(ctx, id)
	if err != nil {
		return nil, logsPage{}, storeError(err)
	}
	lines, err := s.cfg.Store.Logs(ctx, id, after, limit)
	if err != nil {
		return nil, logsPage{}, storeError(err)
	}
	if lines == nil {
		lines = []jobs.LogLine{}
	}
	pg := logsPage{RunID: id, Status: run.Status, Logs: lines, Next: after, More: len(lines) >= limit}
	if len(lines) > 0 {
		pg.Next = lines[len(lines)-1].ID
	}
	pg.Complete = run.Status.Final() && !pg.More
	return run, pg, nil
}

func (s *Server) runLogs(w http.ResponseWriter, r *http.Request, _ principal) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	q, err := query(r)
	if err != nil {
		return err
	}
	lq, err := parseLogsQuery(q)
	if err != nil {
		return err
	}
	if lq.follow {
		return s.followLogs(w, r, id, lq)
	}
	_, pg, err := s.readLogs(r.Context(), id, lq.after, lq.limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pg)
	return nil
}

// followLogs streams a run's log lines as server-sent events until the run
// is final and every line was sent, or the client goes away:
//
//	event: log     id: <line id>   data: <log line JSON>
//	event: status  data: {"status","progress",...} whenever the status or progress changes
//	event: end     data: {"status"} once the run is final and all lines were sent
//	event: error   data: <error JSON> when the database fails mid-stream
//
// The "id:" of each line lets a client resume with Last-Event-ID (which
// overrides ?after=). Errors before the stream starts (unknown run) are
// ordinary JSON errors.
func (s *Server) followLogs(w http.ResponseWriter, r *http.Request, id int64, lq logsQuery) error {
	ctx := r.Context()
	after := lq.after
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			after = n
		}
	}
	run, pg, err := s.readLogs(ctx, id, after, lq.limit)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	type statusEvent struct {
		Status          jobs.Status `json:"status"`
		Progress        int         `json:"progress"`
		RecordsRead     int64       `json:"recordsRead"`
		RecordsChanged  int64       `json:"recordsChanged"`
		CancelRequested bool        `json:"cancelRequested"`
	}
	var last statusEvent
	event := func(name string, lineID int64, v any) error {
		data, _ := json.Marshal(v)
		var b strings.Builder
		if lineID > 0 {
			fmt.Fprintf(&b, "id: %d\n", lineID)
		}
		fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", name, data)
		_, err := w.Write([]byte(b.String()))
		return err
	}
	keepAlive := time.Now()
	for {
		for _, l := range pg.Logs {
			if err := event("log", l.ID, l); err != nil {
				return nil // the client went away
			}
		}
		after = pg.Next
		st := statusEvent{Status: run.Status, Progress: run.Progress, RecordsRead: run.RecordsRead, RecordsChanged: run.RecordsChanged, CancelRequested: run.CancelRequested}
		if st != last {
			if err := event("status", 0, st); err != nil {
				return nil
			}
			last = st
		}
		if pg.Complete {
			_ = event("end", 0, map[string]any{"status": run.Status})
			_ = rc.Flush()
			return nil
		}
		if time.Since(keepAlive) > followKeepAlive {
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return nil
			}
			keepAlive = time.Now()
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		if !pg.More {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(followPoll):
			}
		}
		run, pg, err = s.readLogs(ctx, id, after, lq.limit)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e := asError(err)
			_ = event("error", 0, errorBody{Error: errorDetail{Code: e.code(), Message: e.Message}})
			_ = rc.Flush()
			return nil
		}
	}
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	id, err := runID(r)
	if err != nil {
		return err
	}
	var body struct{}
	if err := decodeJSON(w, r, &body, true); err != nil {
		return err
	}
	run, err := s.cfg.Store.Cancel(r.Context(), id, p.who())
	if err != nil {
		return storeError(err)
	}
	if run.Status == jobs.StatusCancelled {
		writeJSON(w, http.StatusOK, runView{Run: run})
		return nil
	}
	// Running: cancellation was requested; the worker holding the run
	// stops it and records it cancelled.
	writeJSON(w, http.StatusAccepted, runView{Run: run})
	return nil
}

// retryParams returns the parameters of a retry of run: nil (the run's
// own) without overrides; otherwise the run's parameters with overrides
// applied (null removes one, so its default applies), parsed and
// validated under the current definition.
func retryParams(j *definitions.Job, run *jobs.Run, overrides map[string]json.RawMessage) (definitions.Values, error) {
	orig, err := j.DecodeParams([]byte(run.Parameters))
	if err != nil {
		return nil, &Error{Kind: KindConflict, Code: "parameters_outdated",
			Message: fmt.Sprintf("the run's parameters no longer fit job %s: pass all parameters to retry it", j.Name), Err: err}
	}
	if overrides == nil {
		return nil, nil
	}
	text := orig.Text()
	over, bad := paramsText(overrides)
	for name := range overrides {
		if _, isBad := bad[name]; isBad {
			continue
		}
		if v, ok := over[name]; ok {
			text[name] = v
		} else {
			delete(text, name) // null: back to the default
		}
	}
	return parseText(j, text, bad)
}

func (s *Server) retryRun(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	id, err := runID(r)
	if err != nil {
		return err
	}
	var req retryRequest
	if err := decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	e, err := s.retry(r.Context(), id, req.Parameters, req.FromFailedStep, p)
	if err != nil {
		return err
	}
	writeEnqueued(w, e)
	return nil
}

// retry enqueues a retry of run id (see retryParams for overrides), from
// its failed step when fromFailedStep is set.
func (s *Server) retry(ctx context.Context, id int64, overrides map[string]json.RawMessage, fromFailedStep bool, p principal) (*jobs.Enqueued, error) {
	run, err := s.cfg.Store.Get(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	if !run.Status.Final() {
		return nil, asError(fmt.Errorf("run %d is %s: %w", id, run.Status, jobs.ErrNotFinished))
	}
	j, ok := s.defs().Job(run.Job)
	if !ok {
		return nil, errorf(KindConflict, "job_not_defined", "job %s is no longer defined", run.Job)
	}
	params, err := retryParams(j, run, overrides)
	if err != nil {
		return nil, err
	}
	if err := s.checkRunnable(j, run.Preview); err != nil {
		return nil, err
	}
	e, err := s.cfg.Store.Retry(ctx, j, id, jobs.RetryOptions{Params: params, Who: p.who(), FromFailedStep: fromFailedStep})
	switch {
	case errors.Is(err, jobs.ErrNoFailedStep) || errors.Is(err, jobs.ErrStepsChanged):
		return nil, &Error{Kind: KindConflict, Code: "no_failed_step", Message: strings.TrimPrefix(err.Error(), "jobs: "), Err: err}
	case err != nil:
		return nil, storeError(err)
	}
	if e.Created {
		s.wake()
	}
	return e, nil
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	var body struct{}
	if err := decodeJSON(w, r, &body, true); err != nil {
		return err
	}
	if s.cfg.Reload == nil {
		return errorf(KindNotImplemented, "", "reloading definitions is not available in this server")
	}
	if err := s.cfg.Reload(r.Context()); err != nil {
		return &Error{Kind: KindInvalid, Code: "reload_failed", Message: "definitions were not reloaded: " + err.Error(), Err: err}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "jobs": len(s.defs().Jobs)})
	return nil
}
