package api

import (
	"context"
	"net/http"
	"time"

	"github.com/jobrunner/jobrunner/cronspec"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
)

// NextFireTimes is how many next fire times a scheduled job shows.
const NextFireTimes = 3

// jobView is a job definition as the API and the dashboard show it.
type jobView struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Connection  string `json:"connection"`
	Processor   string `json:"processor"`
	// Operation is the connection operation the http processor runs.
	Operation  string        `json:"operation,omitempty"`
	Parameters []paramView   `json:"parameters"`
	Schedule   *scheduleView `json:"schedule,omitempty"`
	UniqueBy   []string      `json:"uniqueBy,omitempty"`
	// Preview says whether the job's processor supports preview runs.
	Preview bool         `json:"preview"`
	LastRun *lastRunView `json:"lastRun"`
	// Held says what holds the job back now (a pause of the job, its
	// schedule or a connection it calls, a maintenance window); nil: nothing.
	Held *heldView `json:"held,omitempty"`
}

// heldView is what holds a job back.
type heldView struct {
	// Runs: queued runs are not claimed; Schedule: ticks fire nothing.
	Runs     bool   `json:"runs"`
	Schedule bool   `json:"schedule"`
	Reason   string `json:"reason"`
	// Pause is the job's own pause (job or schedule kind), which can be
	// resumed from here; nil when a connection holds it.
	Pause *jobs.Pause `json:"pause,omitempty"`
}

type paramView struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Prompt      string   `json:"prompt,omitempty"`
	Description string   `json:"description,omitempty"`
	Required    bool     `json:"required"`
	Default     *string  `json:"default,omitempty"`
	Values      []string `json:"values,omitempty"`
	Pattern     string   `json:"pattern,omitempty"`
	Min         *string  `json:"min,omitempty"`
	Max         *string  `json:"max,omitempty"`
}

type scheduleView struct {
	Cron     string      `json:"cron"`
	Timezone string      `json:"timezone"`
	Misfire  string      `json:"misfire"`
	Next     []time.Time `json:"next"`
	// Error is set when the spec cannot be evaluated (it was validated on
	// load, so only a missing time zone database causes it).
	Error string `json:"error,omitempty"`
}

type lastRunView struct {
	ID         int64       `json:"id"`
	Status     jobs.Status `json:"status"`
	CreatedAt  time.Time   `json:"createdAt"`
	FinishedAt *time.Time  `json:"finishedAt,omitempty"`
	ErrorCode  string      `json:"errorCode,omitempty"`
}

// heldJobs returns what holds each job back now (empty when the pauses
// cannot be read: the caller shows the jobs all the same).
func (s *Server) heldJobs(ctx context.Context) map[string]jobs.Held {
	ps, err := s.cfg.Store.Pauses(ctx)
	if err != nil {
		s.log().WithError(err).Warn("api: cannot read pauses")
		return nil
	}
	return jobs.HeldJobs(s.defs(), ps, s.cfg.Now())
}

// viewJob describes j; last is its newest run, if any; held what holds it
// back (see heldJobs).
func (s *Server) viewJob(j *definitions.Job, last *jobs.Run, now time.Time, held map[string]jobs.Held) jobView {
	v := jobView{Name: j.Name, Description: j.Description, Connection: j.Connection, Processor: j.Processor, Operation: j.Operation,
		UniqueBy: j.UniqueBy, Parameters: []paramView{}, Preview: s.supportsPreview(j)}
	for _, p := range j.Parameters {
		v.Parameters = append(v.Parameters, paramView{Name: p.Name, Type: string(p.Type), Prompt: p.Prompt,
			Description: p.Description, Required: p.Required, Default: p.Default, Values: p.Values,
			Pattern: p.Pattern, Min: p.Min, Max: p.Max})
	}
	if sc := j.Schedule; sc != nil {
		sv := &scheduleView{Cron: sc.Cron, Timezone: sc.Timezone, Misfire: sc.Misfire, Next: []time.Time{}}
		if sv.Timezone == "" {
			sv.Timezone = "UTC"
		}
		loc, err := time.LoadLocation(sv.Timezone)
		var spec *cronspec.Spec
		if err == nil {
			spec, err = cronspec.Parse(sc.Cron, loc)
		}
		if err != nil {
			sv.Error = err.Error()
		} else {
			sv.Next = spec.NextN(now, NextFireTimes)
		}
		v.Schedule = sv
	}
	if last != nil {
		v.LastRun = &lastRunView{ID: last.ID, Status: last.Status, CreatedAt: last.CreatedAt, FinishedAt: last.FinishedAt, ErrorCode: last.ErrorCode}
	}
	if h, ok := held[j.Name]; ok && h.Ticks() {
		v.Held = &heldView{Runs: h.Runs(), Schedule: h.Ticks() && j.Schedule != nil, Reason: h.Why()}
		if h.Job != nil {
			v.Held.Pause = h.Job
		} else if h.Schedule != nil {
			v.Held.Pause = h.Schedule
		}
	}
	return v
}

// supportsPreview reports whether j's processor resolves for previews.
func (s *Server) supportsPreview(j *definitions.Job) bool {
	if s.cfg.Registry == nil {
		return false
	}
	return s.canRun(j, true) == nil
}

// jobViews describes every job with its last run.
func (s *Server) jobViews(ctx context.Context) ([]jobView, error) {
	set := s.defs()
	names := make([]string, 0, len(set.Jobs))
	for _, j := range set.Jobs {
		names = append(names, j.Name)
	}
	latest, err := s.cfg.Store.LatestByJob(ctx, names)
	if err != nil {
		return nil, storeError(err)
	}
	now := s.cfg.Now()
	held := s.heldJobs(ctx)
	out := make([]jobView, 0, len(set.Jobs))
	for _, j := range set.Jobs {
		var last *jobs.Run
		if r, ok := latest[j.Name]; ok {
			last = &r
		}
		out = append(out, s.viewJob(j, last, now, held))
	}
	return out, nil
}

// job returns the job named by the request's {name}, or a 404.
func (s *Server) job(r *http.Request) (*definitions.Job, error) {
	name := r.PathValue("name")
	j, ok := s.defs().Job(name)
	if !ok {
		return nil, errorf(KindNotFound, "job_not_found", "no job named %q", name)
	}
	return j, nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	views, err := s.jobViews(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": views})
	return nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	j, err := s.job(r)
	if err != nil {
		return err
	}
	latest, err := s.cfg.Store.LatestByJob(r.Context(), []string{j.Name})
	if err != nil {
		return storeError(err)
	}
	var last *jobs.Run
	if run, ok := latest[j.Name]; ok {
		last = &run
	}
	writeJSON(w, http.StatusOK, s.viewJob(j, last, s.cfg.Now(), s.heldJobs(r.Context())))
	return nil
}

// noQuery rejects query parameters on routes that take none.
func noQuery(r *http.Request) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	fields := map[string]string{}
	q, err := query(r)
	if err != nil {
		return err
	}
	for k := range q {
		fields[k] = "unknown query parameter"
	}
	return &Error{Kind: KindInvalid, Code: "bad_query", Message: "this route takes no query parameters", Fields: fields}
}
