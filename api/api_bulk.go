package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/jobrunner/jobrunner/jobs"
)

// bulkRequest is the body of POST /api/v1/runs/bulk-retry and
// /api/v1/runs/bulk-cancel: a filter, and the count the caller saw.
type bulkRequest struct {
	Job          string            `json:"job"`
	Status       string            `json:"status"`
	ErrorCode    string            `json:"errorCode"`
	CreatedAfter *time.Time        `json:"createdAfter"`
	Parameters   map[string]string `json:"parameters"`
	// Confirm is the number of matching runs the caller was shown; absent:
	// only count (a dry run). A different count is a 409: the set changed.
	Confirm *int `json:"confirm"`
}

func (s *Server) bulkRetry(w http.ResponseWriter, r *http.Request, p principal) error {
	return s.bulk(w, r, p, "retry", jobs.StatusFailed)
}

func (s *Server) bulkCancel(w http.ResponseWriter, r *http.Request, p principal) error {
	return s.bulk(w, r, p, "cancel", jobs.StatusQueued)
}

// bulk counts, and with the right confirmation acts on, the runs a
// filter matches: the count is shown before anything is done.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request, p principal, verb string, defStatus jobs.Status) error {
	if err := noQuery(r); err != nil {
		return err
	}
	var req bulkRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	f := jobs.Filter{Job: req.Job, Status: jobs.Status(req.Status), ErrorCode: req.ErrorCode, Params: req.Parameters}
	if f.Status == "" {
		f.Status = defStatus
	}
	if !f.Status.Valid() {
		return &Error{Kind: KindInvalid, Code: "bad_body", Message: fmt.Sprintf("unknown status %q", req.Status), Fields: map[string]string{"status": "unknown status"}}
	}
	if req.CreatedAfter != nil {
		f.Since = *req.CreatedAfter
	}
	if f.Job == "" && f.ErrorCode == "" && f.Since.IsZero() && len(f.Params) == 0 {
		return errorf(KindInvalid, "filter_required", "name what to act on: at least one of job, errorCode, createdAfter, parameters")
	}
	count := func() (jobs.BulkResult, error) {
		if verb == "retry" {
			return s.cfg.Store.BulkRetry(r.Context(), s.defs(), f, "", true)
		}
		return s.cfg.Store.BulkCancel(r.Context(), f, "", true)
	}
	dry, err := count()
	if err != nil {
		return storeError(err)
	}
	if req.Confirm == nil {
		writeJSON(w, http.StatusOK, dry)
		return nil
	}
	if *req.Confirm != dry.Matched {
		return &Error{Kind: KindConflict, Code: "count_changed",
			Message: fmt.Sprintf("%d runs match now, not the %d confirmed: look again and confirm the new count", dry.Matched, *req.Confirm)}
	}
	who := p.who() + " (bulk " + verb + ")"
	var res jobs.BulkResult
	if verb == "retry" {
		res, err = s.cfg.Store.BulkRetry(r.Context(), s.defs(), f, who, false)
	} else {
		res, err = s.cfg.Store.BulkCancel(r.Context(), f, who, false)
	}
	if err != nil {
		return storeError(err)
	}
	s.log().WithField("by", who).WithField("matched", res.Matched).WithField("done", res.Done).Infof("bulk %s", verb)
	if res.Done > 0 && verb == "retry" {
		s.wake()
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
