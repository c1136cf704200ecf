package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/hooks"
	"github.com/jobrunner/jobrunner/jobs"
)

// MaxHookBodyBytes caps a hook call's body (platform events, such as a
// shop's order payload, are larger than API requests).
const MaxHookBodyBytes = 1 << 20

// hookAnswer is the body of a hook call that started (or found) a run.
type hookAnswer struct {
	RunID    int64  `json:"runId"`
	Job      string `json:"job"`
	Existing bool   `json:"existing"`
}

// hookCall serves POST /hooks/{name}: it checks the caller, applies the
// filter, maps the payload to the job's parameters, validates them like
// any trigger and enqueues the run (idempotent on the event id). Nothing
// is stored for a refused call; every call is counted.
func (s *Server) hookCall(w http.ResponseWriter, r *http.Request, _ principal) error {
	name := r.PathValue("name")
	h, ok := s.defs().Hook(name)
	if !ok {
		return &Error{Kind: KindNotFound, Code: "hook_not_found", Message: fmt.Sprintf("no hook %q", name)}
	}
	status, ans, outcome, reason, err := s.hook(w, r, h)
	call := hooks.Call{Time: s.cfg.Now().UTC(), Outcome: outcome, Status: status, Reason: reason}
	if ans != nil {
		call.RunID = ans.RunID
	}
	s.hookStats().Record(h.Name, call)
	s.cfg.Metrics.ObserveHookCall(h.Name, string(outcome))
	if err != nil {
		return err
	}
	if status == http.StatusNoContent {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/runs/%d", ans.RunID))
	writeJSON(w, status, ans)
	return nil
}

func (s *Server) hookStats() *hooks.Stats {
	if s.cfg.HookStats != nil {
		return s.cfg.HookStats
	}
	return s.ownHookStats
}

// hook does the work of hookCall and says how it ended.
func (s *Server) hook(w http.ResponseWriter, r *http.Request, h *definitions.Hook) (int, *hookAnswer, hooks.Outcome, string, error) {
	refuse := func(o hooks.Outcome, e *Error) (int, *hookAnswer, hooks.Outcome, string, error) {
		return e.Status(), nil, o, e.Message, e
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHookBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return refuse(hooks.Invalid, asError(err))
		}
		return refuse(hooks.Invalid, &Error{Kind: KindInvalid, Code: "bad_body", Message: "cannot read the request body", Err: err})
	}
	secret := s.getenv(h.Auth.Secret)
	if err := hooks.Verify(h, r.Header, body, secret, s.cfg.Now()); err != nil {
		if errors.Is(err, hooks.ErrNoSecret) {
			s.log().WithField("hook", h.Name).Errorf("hook %s: environment variable %s (its secret) is not set on this instance: every call is refused with 503", h.Name, h.Auth.Secret)
			return refuse(hooks.Unavailable, &Error{Kind: KindUnavailable, Code: "hook_unavailable", Message: "this hook is not configured on this instance (its secret is not set); nothing was stored, try again later"})
		}
		return refuse(hooks.Unauthorized, &Error{Kind: KindUnauthenticated, Code: "bad_signature", Message: strings.TrimPrefix(err.Error(), "hooks: ")})
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return refuse(hooks.Invalid, &Error{Kind: KindUnsupportedMedia, Code: "unsupported_media_type",
				Message: fmt.Sprintf("the body must be JSON (Content-Type: application/json), not %q", ct)})
		}
	}
	if key, dup := duplicateKey(body); dup {
		return refuse(hooks.Invalid, &Error{Kind: KindInvalid, Code: "bad_body", Message: fmt.Sprintf("invalid JSON body: key %q appears twice in one object", key)})
	}
	p, err := hooks.Decode(body)
	if err != nil {
		return refuse(hooks.Invalid, &Error{Kind: KindInvalid, Code: "bad_body", Message: strings.TrimPrefix(err.Error(), "hooks: ")})
	}
	match, err := h.Match(p.Object())
	if err != nil {
		return refuse(hooks.Invalid, &Error{Kind: KindInvalid, Code: "filter_failed", Message: "the payload does not fit the hook's filter: " + err.Error()})
	}
	if !match {
		return http.StatusNoContent, nil, hooks.Filtered, "filter " + h.Filter + " is false", nil
	}
	job, ok := s.defs().Job(h.Job)
	if !ok {
		return refuse(hooks.Unavailable, &Error{Kind: KindUnavailable, Code: "job_not_found", Message: fmt.Sprintf("the hook's job %q is not defined; nothing was stored", h.Job)})
	}
	eventID, err := hooks.EventID(h, p)
	if err != nil {
		return refuse(hooks.Invalid, &Error{Kind: KindInvalid, Code: "invalid_payload", Message: err.Error(), Fields: map[string]string{"eventId": err.Error()}})
	}
	text, bad := hooks.Params(h, p)
	params, err := parseText(job, text, bad)
	if err != nil {
		e := asError(err)
		if e.Code == "invalid_parameters" {
			e.Message = "the payload does not give valid parameters for job " + job.Name + ": see fields"
		}
		return refuse(hooks.Invalid, e)
	}
	key := ""
	if eventID != "" {
		key = hooks.IdempotencyKey(h.Name, eventID)
	}
	enq, err := s.starter().Start(r.Context(), jobs.StartRequest{Definition: job, Values: params, Trigger: jobs.TriggerHook,
		TriggeredBy: "hook:" + h.Name, IdempotencyKey: key, Trace: trace.SpanContextFromContext(r.Context())})
	if err != nil {
		e := asError(runnableError(job, err))
		o := hooks.Invalid
		if e.Status() >= 500 {
			o = hooks.Unavailable
		}
		return refuse(o, e)
	}
	if enq.Created {
		return http.StatusAccepted, &hookAnswer{RunID: enq.Run.ID, Job: job.Name}, hooks.Accepted, "", nil
	}
	return http.StatusAccepted, &hookAnswer{RunID: enq.Run.ID, Job: job.Name, Existing: true}, hooks.Duplicate, "event already delivered", nil
}

func (s *Server) getenv(k string) string {
	if s.cfg.Getenv != nil {
		return s.cfg.Getenv(k)
	}
	return ""
}

// hookView is a hook as GET /api/v1/hooks shows it.
type hookView struct {
	Name        string            `json:"name"`
	Path        string            `json:"path"`
	Job         string            `json:"job"`
	Description string            `json:"description,omitempty"`
	Auth        string            `json:"auth"`
	Parameters  map[string]string `json:"parameters"`
	Set         map[string]string `json:"set,omitempty"`
	EventID     []string          `json:"eventId,omitempty"`
	Filter      string            `json:"filter,omitempty"`
	// Ready is false when the hook's secret is not set on this instance.
	Ready    bool                    `json:"ready"`
	Counts   map[hooks.Outcome]int64 `json:"counts"`
	Accepted int64                   `json:"accepted"`
	Refused  int64                   `json:"refused"`
	Filtered int64                   `json:"filtered"`
	Last     []hooks.Call            `json:"lastCalls"`
}

func (s *Server) hookViews() []hookView {
	set := s.defs()
	out := make([]hookView, 0, len(set.Hooks))
	for _, h := range set.Hooks {
		sum := s.hookStats().Of(h.Name)
		params := h.Parameters
		if params == nil {
			params = map[string]string{}
		}
		auth := h.Auth.Type
		if h.Auth.Type == definitions.HookAuthHMAC && h.Auth.TimestampHeader != "" {
			auth += " with signed timestamp"
		}
		out = append(out, hookView{Name: h.Name, Path: "/hooks/" + h.Name, Job: h.Job, Description: h.Description, Auth: auth,
			Parameters: params, Set: h.Set, EventID: h.EventID, Filter: h.Filter, Ready: s.getenv(h.Auth.Secret) != "",
			Counts: sum.Counts, Accepted: sum.Accepted, Refused: sum.Refused, Filtered: sum.Filtered, Last: sum.Last})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// listHooks serves GET /api/v1/hooks.
func (s *Server) listHooks(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.hookViews())
	return nil
}
