package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/jobrunner/jobrunner/jobs"
)

// Limits of POST /api/v1/jobs/{name}/runs:batch.
const (
	MaxBatchRuns      = 10_000
	MaxBatchBodyBytes = 16 << 20
)

type batchRequest struct {
	Runs []struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
		// IdempotencyKey: absent, one derived from the job and the
		// parameters (the same entry twice makes one run).
		IdempotencyKey *string `json:"idempotencyKey"`
	} `json:"runs"`
	Preview bool `json:"preview"`
}

type batchResult struct {
	Index   int         `json:"index"`
	RunID   int64       `json:"runId,omitempty"`
	Created bool        `json:"created"`
	Reason  string      `json:"existing,omitempty"`
	Error   *entryError `json:"error,omitempty"`
}

// entryError is one entry's error, in the API's error shape.
type entryError struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

func entryErr(e *Error) *entryError {
	return &entryError{Code: e.code(), Message: e.Message, Fields: e.Fields}
}

type batchAnswer struct {
	Created  int           `json:"created"`
	Existing int           `json:"existing"`
	Failed   int           `json:"failed"`
	Results  []batchResult `json:"results"`
}

// triggerBatch serves POST /api/v1/jobs/{name}/runs:batch: each entry is
// validated like a trigger and has its own idempotency key; valid entries
// are stored in a few large transactions. One entry's error does not stop
// the others.
func (s *Server) triggerBatch(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := noQuery(r); err != nil {
		return err
	}
	j, err := s.job(r)
	if err != nil {
		return err
	}
	var req batchRequest
	if err := decodeJSONMax(w, r, &req, false, MaxBatchBodyBytes); err != nil {
		return err
	}
	if len(req.Runs) == 0 || len(req.Runs) > MaxBatchRuns {
		return &Error{Kind: KindInvalid, Code: "bad_batch", Message: fmt.Sprintf("runs must hold 1 to %d entries, not %d", MaxBatchRuns, len(req.Runs)), Fields: map[string]string{"runs": "1 to 10000 entries"}}
	}
	if len(j.Steps) > 0 {
		return &Error{Kind: KindInvalid, Code: "bad_batch", Message: "job " + j.Name + " has steps: trigger it one run at a time"}
	}
	if err := s.checkRunnable(j, req.Preview); err != nil {
		return err
	}
	ans := batchAnswer{Results: make([]batchResult, len(req.Runs))}
	var nrs []jobs.NewRun
	var idx []int
	for i, e := range req.Runs {
		ans.Results[i].Index = i
		params, err := parseParams(j, e.Parameters)
		if err != nil {
			ans.Results[i].Error = entryErr(asError(err))
			ans.Failed++
			continue
		}
		key := jobs.BulkKey(j.Name, params)
		if e.IdempotencyKey != nil {
			if err := checkIdempotencyKey(*e.IdempotencyKey); err != nil || *e.IdempotencyKey == "" {
				ans.Results[i].Error = &entryError{Code: "bad_idempotency_key", Message: "idempotencyKey must be 1 to 200 visible ASCII characters without spaces"}
				ans.Failed++
				continue
			}
			key = *e.IdempotencyKey
		}
		nrs = append(nrs, jobs.NewRun{Job: j, Params: params, Trigger: jobs.TriggerAPI, TriggeredBy: p.who() + " (batch)", IdempotencyKey: key, Preview: req.Preview})
		idx = append(idx, i)
	}
	if len(nrs) > 0 {
		res, err := s.cfg.Store.EnqueueKeyed(r.Context(), nrs)
		if err != nil {
			return storeError(err)
		}
		for k, rr := range res {
			br := &ans.Results[idx[k]]
			switch {
			case errors.Is(rr.Err, jobs.ErrIdempotencyMismatch):
				br.Error = &entryError{Code: "idempotency_mismatch", Message: rr.Err.Error()}
				ans.Failed++
			case rr.Err != nil:
				br.Error = entryErr(storeError(rr.Err))
				ans.Failed++
			case rr.Created:
				br.RunID, br.Created = rr.Run.ID, true
				ans.Created++
			default:
				br.RunID, br.Reason = rr.Run.ID, rr.Reason
				ans.Existing++
			}
		}
		if ans.Created > 0 {
			s.wake()
		}
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}
