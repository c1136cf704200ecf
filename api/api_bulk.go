package api

import (
	"context"
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
	res, err := s.runBulk(r.Context(), verb, f, req.Confirm, p.who()+" (bulk "+verb+")")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// runBulk counts the runs f matches and, when confirm is that count, acts
// on them (verb retry or cancel) as who; with confirm nil it only counts.
// A different count is a 409 count_changed: the set changed since the
// caller looked.
func (s *Server) runBulk(ctx context.Context, verb string, f jobs.Filter, confirm *int, who string) (jobs.BulkResult, error) {
	act := func(dry bool) (jobs.BulkResult, error) {
		if verb == "retry" {
			return s.cfg.Store.BulkRetry(ctx, s.defs(), f, who, dry)
		}
		return s.cfg.Store.BulkCancel(ctx, f, who, dry)
	}
	dry, err := act(true)
	if err != nil {
		return dry, storeError(err)
	}
	if confirm == nil {
		return dry, nil
	}
	if *confirm != dry.Matched {
		return dry, &Error{Kind: KindConflict, Code: "count_changed",
			Message: fmt.Sprintf("%d runs match now, not the %d confirmed: look again and confirm the new count", dry.Matched, *confirm)}
	}
	res, err := act(false)
	if err != nil {
		return res, storeError(err)
	}
	s.log().WithField("by", who).WithField("matched", res.Matched).WithField("done", res.Done).Infof("bulk %s", verb)
	if res.Done > 0 && verb == "retry" {
		s.wake()
	}
	return res, nil
}
