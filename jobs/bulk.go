package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jobrunner/jobrunner/definitions"
)

// BulkResult is what a bulk retry or cancel did.
type BulkResult struct {
	// Matched counts the runs the filter matched.
	Matched int `json:"matched"`
	// Done counts new retries (BulkRetry) or cancelled runs (BulkCancel);
	// Already those retried by an earlier bulk retry or already final;
	// Active retries refused because a run with the same uniqueBy values
	// is active; Failed the errors, listed in Errors (at most 100).
	Done    int      `json:"done"`
	Already int      `json:"already"`
	Active  int      `json:"active,omitempty"`
	Failed  int      `json:"failed"`
	Errors  []string `json:"errors,omitempty"`
	// DryRun is true when nothing was done (the count only).
	DryRun bool `json:"dryRun"`
}

func (r *BulkResult) fail(format string, args ...any) {
	r.Failed++
	if len(r.Errors) < 100 {
		r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
	}
}

// Matching returns every run f matches (ignoring f.Limit and f.BeforeID),
// newest first.
func (s *Store) Matching(ctx context.Context, f Filter) ([]Run, error) {
	f.Limit, f.BeforeID = 1000, 0
	var out []Run
	for {
		page, err := s.List(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out, nil
		}
		f.BeforeID = page[len(page)-1].ID
	}
}

// BulkRetry retries every finished run that f matches, each exactly once:
// a retry carries the idempotency key "bulk-retry:<run id>", so a second
// BulkRetry (a crash, a colleague) retries nothing twice. With dryRun it
// only counts. who is recorded as the retries' triggered_by.
func (s *Store) BulkRetry(ctx context.Context, set *definitions.Set, f Filter, who string, dryRun bool) (BulkResult, error) {
	runs, err := s.Matching(ctx, f)
	if err != nil {
		return BulkResult{}, err
	}
	res := BulkResult{Matched: len(runs), DryRun: dryRun}
	if dryRun {
		return res, nil
	}
	for _, r := range runs {
		job, ok := set.Job(r.Job)
		if !ok {
			res.fail("run %d: job %s is no longer defined", r.ID, r.Job)
			continue
		}
		e, err := s.Retry(ctx, job, r.ID, RetryOptions{Who: who, IdempotencyKey: fmt.Sprintf("bulk-retry:%d", r.ID)})
		switch {
		case errors.Is(err, ErrNotFinished):
			res.Already++
		case err != nil:
			res.fail("run %d: %v", r.ID, err)
		case e.Created:
			res.Done++
		case e.Reason == "active":
			res.Active++
		default:
			res.Already++
		}
	}
	return res, nil
}

// BulkCancel cancels every run f matches that is queued or running (as
// Cancel does); final runs count as Already. With dryRun it only counts.
func (s *Store) BulkCancel(ctx context.Context, f Filter, who string, dryRun bool) (BulkResult, error) {
	runs, err := s.Matching(ctx, f)
	if err != nil {
		return BulkResult{}, err
	}
	res := BulkResult{Matched: len(runs), DryRun: dryRun}
	if dryRun {
		return res, nil
	}
	for _, r := range runs {
		_, err := s.Cancel(ctx, r.ID, who)
		switch {
		case errors.Is(err, ErrFinished):
			res.Already++
		case err != nil:
			res.fail("run %d: %v", r.ID, err)
		default:
			res.Done++
		}
	}
	return res, nil
}
