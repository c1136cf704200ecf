package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jobrunner/jobrunner/jobs"
)

// pauseRequest is the body of POST /api/v1/pauses.
type pauseRequest struct {
	Kind   jobs.PauseKind `json:"kind"`
	Name   string         `json:"name"`
	Until  *time.Time     `json:"until"`
	For    string         `json:"for"`
	Reason string         `json:"reason"`
}

// pausesView is the answer of GET /api/v1/pauses.
type pausesView struct {
	Pauses []jobs.Pause `json:"pauses"`
	// Windows are the connections inside a maintenance window now.
	Windows []windowView `json:"maintenance"`
}

type windowView struct {
	Connection string    `json:"connection"`
	Until      time.Time `json:"until"`
}

func (s *Server) listPauses(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	ps, err := s.cfg.Store.Pauses(r.Context())
	if err != nil {
		return storeError(err)
	}
	v := pausesView{Pauses: ps, Windows: []windowView{}}
	now := s.cfg.Now()
	for _, c := range s.defs().Connections {
		if hit, in := c.InMaintenance(now); in {
			v.Windows = append(v.Windows, windowView{Connection: c.Name, Until: hit.Ends})
		}
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// pauseTarget checks that the definitions have what p names.
func (s *Server) pauseTarget(kind jobs.PauseKind, name string) error {
	set := s.defs()
	switch kind {
	case jobs.PauseJob, jobs.PauseSchedule:
		j, ok := set.Job(name)
		if !ok {
			return &Error{Kind: KindNotFound, Code: "job_not_found", Message: fmt.Sprintf("no job named %q", name)}
		}
		if kind == jobs.PauseSchedule && j.Schedule == nil {
			return &Error{Kind: KindInvalid, Code: "no_schedule", Message: fmt.Sprintf("job %s has no schedule", name), Fields: map[string]string{"name": "no schedule"}}
		}
	case jobs.PauseConnection:
		if _, ok := set.Connection(name); !ok {
			return &Error{Kind: KindNotFound, Code: "connection_not_found", Message: fmt.Sprintf("no connection named %q", name)}
		}
	default:
		return &Error{Kind: KindInvalid, Code: "bad_kind", Message: "kind must be job, schedule or connection", Fields: map[string]string{"kind": "want job, schedule or connection"}}
	}
	return nil
}

func (s *Server) createPause(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	var req pauseRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if err := s.pauseTarget(req.Kind, req.Name); err != nil {
		return err
	}
	pause, err := s.newPause(req, p.who())
	if err != nil {
		return err
	}
	if err := s.savePause(r, pause); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, pause)
	return nil
}

// savePause stores p and logs who paused what (the API and the
// dashboard).
func (s *Server) savePause(r *http.Request, p jobs.Pause) error {
	if err := s.cfg.Store.Pause(r.Context(), p); err != nil {
		if errors.Is(err, jobs.ErrBadPause) {
			return &Error{Kind: KindInvalid, Code: "bad_pause", Message: err.Error()}
		}
		return storeError(err)
	}
	s.pausesChanged()
	s.log().WithField("by", p.By).Infof("%s %s paused: %s", p.Kind, p.Name, p.Reason)
	return nil
}

// pausesChanged tells this instance's workers (Config.PausesChanged).
func (s *Server) pausesChanged() {
	if s.cfg.PausesChanged != nil {
		s.cfg.PausesChanged()
	}
}

// newPause builds the pause req asks for.
func (s *Server) newPause(req pauseRequest, who string) (jobs.Pause, error) {
	p := jobs.Pause{Kind: req.Kind, Name: req.Name, Reason: req.Reason, By: who, Since: s.cfg.Now().UTC()}
	switch {
	case req.Until != nil && req.For != "":
		return p, &Error{Kind: KindInvalid, Code: "bad_pause", Message: "give until or for, not both", Fields: map[string]string{"for": "with until"}}
	case req.Until != nil:
		p.Until = req.Until
	case req.For != "":
		d, err := time.ParseDuration(req.For)
		if err != nil || d <= 0 {
			return p, &Error{Kind: KindInvalid, Code: "bad_pause", Message: "for must be a duration such as 30m or 2h", Fields: map[string]string{"for": "want a duration such as 30m"}}
		}
		t := s.cfg.Now().Add(d)
		p.Until = &t
	}
	if len(p.Reason) > 500 {
		return p, &Error{Kind: KindInvalid, Code: "bad_pause", Message: "reason is longer than 500 bytes", Fields: map[string]string{"reason": "too long"}}
	}
	return p, nil
}

func (s *Server) deletePause(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	kind, name := jobs.PauseKind(r.PathValue("kind")), r.PathValue("name")
	if !kind.Valid() {
		return &Error{Kind: KindInvalid, Code: "bad_kind", Message: "kind must be job, schedule or connection"}
	}
	ok, err := s.cfg.Store.Resume(r.Context(), kind, name)
	if err != nil {
		return storeError(err)
	}
	s.pausesChanged()
	if !ok {
		return &Error{Kind: KindNotFound, Code: "not_paused", Message: fmt.Sprintf("%s %s is not paused", kind, name)}
	}
	s.log().WithField("by", p.who()).Infof("%s %s resumed", kind, name)
	writeJSON(w, http.StatusOK, map[string]any{"resumed": true, "kind": kind, "name": name})
	return nil
}

// listInstances serves GET /api/v1/instances: the serve processes on this
// database as they last reported (live, or gone within a day).
func (s *Server) listInstances(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	ins, err := s.cfg.Store.Instances(r.Context())
	if err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"instances": ins})
	return nil
}

// overview is GET /api/v1/overview's answer and the overview page's data.
func (s *Server) overview(r *http.Request) ([]jobs.JobOverview, error) {
	set := s.defs()
	names := make([]string, 0, len(set.Jobs))
	for _, j := range set.Jobs {
		names = append(names, j.Name)
	}
	ov, err := s.cfg.Store.Overview(r.Context(), s.cfg.Now(), names)
	if err != nil {
		return nil, storeError(err)
	}
	return ov, nil
}

// getOverview serves GET /api/v1/overview: per job, the last 24 hours'
// runs by status and by hour, the failure rate, and the queue now.
func (s *Server) getOverview(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	ov, err := s.overview(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"hours": jobs.OverviewHours, "jobs": ov})
	return nil
}
