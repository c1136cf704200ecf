package jobs

import (
	"time"

	"gorm.io/gorm"
)

// The run's life cycle. Every change of a run's status is written through
// the fields built in this file and nowhere else (TestOnlyLifecycleWritesStatus
// reads the package's source to prove it); each transition is one
// statement or one transaction, fenced by the lease token where a lease
// exists:
//
//	               enqueue (Enqueue, EnqueueKeyed, EnqueueBatch, Retry, links)
//	                  │
//	                  ▼
//	   ┌─────────► queued ──────────── cancel (Cancel) ───────────┐
//	   │              │                                           │
//	   │            claim (claimBatch, ClaimRun)                  │
//	   │              ▼                                           ▼
//	   │  ┌──────── running ───── finish: cancel ──────────► cancelled
//	   │  │          │  │  └────── rescue: cancel requested ───────▲
//	   │  │          │  └───────── finish: succeed ──► succeeded / succeeded_with_warnings
//	   │  │          └──────────── finish: fail, rescue: no attempts left ──► failed
//	   └──┴─ finish: retry, snooze, release; rescue: attempts left
//
// Final statuses are never left. A final run has finished_at set, its
// unique_key cleared (another run with the same uniqueBy values may start:
// it takes over the key's row in run_keys, keys.go) and no lease; a
// running run always has a lease (owner, token, expiry) that every later
// write names; a queued run has none. A run put back in
// the queue after an operator asked to cancel it is cancelled in the same
// transaction (cancelRequeued): a cancelled run never runs again.

// transition is one allowed change of a run's status.
type transition struct {
	name     string
	from, to Status // from "" is a new run
}

// transitions lists every allowed (from, to) pair, by the transition that
// makes it.
var transitions = []transition{
	{"enqueue", "", StatusQueued},
	{"claim", StatusQueued, StatusRunning},
	{"cancel", StatusQueued, StatusCancelled},
	{"finish: succeed", StatusRunning, StatusSucceeded},
	{"finish: succeed with warnings", StatusRunning, StatusSucceededWithWarnings},
	{"finish: fail", StatusRunning, StatusFailed},
	{"finish: cancel", StatusRunning, StatusCancelled},
	{"finish: retry, snooze, release", StatusRunning, StatusQueued},
	{"rescue: attempts left", StatusRunning, StatusQueued},
	{"rescue: no attempts left", StatusRunning, StatusFailed},
	{"rescue: cancel requested", StatusRunning, StatusCancelled},
}

// allowed reports whether a run may go from one status to another.
func allowed(from, to Status) bool {
	for _, t := range transitions {
		if t.from == from && t.to == to {
			return true
		}
	}
	return false
}

// enqueued makes r a new queued run (enqueue).
func enqueued(r *Run) *Run {
	r.Status = StatusQueued
	return r
}

// claimedFields are the fields of a run claimed by owner under token with
// a lease of ttl (claim: queued → running). Callers match status queued.
func (s *Store) claimedFields(owner, token string, ttl time.Duration) map[string]any {
	return map[string]any{
		"status":           StatusRunning,
		"attempt":          gorm.Expr("attempt + 1"),
		"lease_owner":      owner,
		"lease_token":      token,
		"lease_expires_at": s.now(ttl),
		"started_at":       gorm.Expr("COALESCE(started_at, "+s.greatest()+"(created_at, ?))", s.now(0)),
		"updated_at":       s.now(0),
	}
}

// claimedCopy makes r, as read before its claim, what claimedFields made
// of its row (without reading it again).
func claimedCopy(r *Run, owner, token string, now time.Time) *Run {
	r.Status = StatusRunning
	r.Attempt++
	r.LeaseOwner, r.LeaseToken = &owner, &token
	if r.StartedAt == nil {
		t := now.UTC()
		r.StartedAt = &t
	}
	return r
}

// finalFields adds to upd what ends a run in the final status to (finish,
// rescue, cancel): the status, finished_at, no unique_key and no lease.
func (s *Store) finalFields(upd map[string]any, to Status) map[string]any {
	if !to.Final() {
		panic("jobs: finalFields with status " + string(to))
	}
	upd["status"] = to
	upd["finished_at"] = s.now(0)
	upd["unique_key"] = nil
	upd["lease_owner"], upd["lease_token"], upd["lease_expires_at"] = nil, nil, nil
	if _, ok := upd["updated_at"]; !ok {
		upd["updated_at"] = s.now(0)
	}
	return upd
}

// attemptInRun reports whether c's outcome f is recorded by the run row
// alone, with no run_attempts row: a one-step run whose first attempt
// succeeded (no snooze, no retry before it). The finish then keeps
// lease_owner (the lease token, the fence, is cleared as always), and the
// row is the attempt: attempt 1 of step 0 by lease_owner, succeeded, from
// started_at to finished_at. A succeeded run with lease_owner set is
// exactly such a run: runAttempt (for Store.Attempts) and the view
// run_attempts_all (migration 0009, for Store.Finished and SQL users)
// read it so. (One row fewer per run: the insert was a
// sixth of the database's time in a drain.)
func attemptInRun(c *Claim, f Finish) bool {
	return f.Status == StatusSucceeded && f.AttemptStatus == AttemptSucceeded && f.StepIndex == 0 && f.Steps == nil &&
		c.Run.Attempt == 1 && c.Run.Snoozes == 0
}

// runAttempt returns the attempt a run row records itself (see
// attemptInRun), and false when it records none; the view
// run_attempts_all says the same in SQL.
func runAttempt(r *Run) (Attempt, bool) {
	if r.Status != StatusSucceeded || r.LeaseOwner == nil || r.StartedAt == nil || r.FinishedAt == nil {
		return Attempt{}, false
	}
	return Attempt{RunID: r.ID, Attempt: r.Attempt, Owner: *r.LeaseOwner, Status: AttemptSucceeded,
		StartedAt: r.StartedAt.UTC(), FinishedAt: r.FinishedAt.UTC()}, true
}

// requeuedFields adds to upd what puts a running run back in the queue
// (finish: retry, snooze, release; rescue with attempts left): the status
// and no lease; with notBefore set, the time it may run again (else it
// keeps its place in the queue).
func (s *Store) requeuedFields(upd map[string]any, notBefore *time.Time) map[string]any {
	upd["status"] = StatusQueued
	upd["lease_owner"], upd["lease_token"], upd["lease_expires_at"] = nil, nil, nil
	if notBefore != nil {
		upd["not_before"] = notBefore.UTC()
	}
	if _, ok := upd["updated_at"]; !ok {
		upd["updated_at"] = s.now(0)
	}
	return upd
}
