package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/cronspec"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
)

// maxCount bounds how many missed ticks are counted one by one; a larger
// gap is recorded as "at least maxCount" (Gap.AtLeast).
const maxCount = 100_000

// evalJob evaluates one scheduled job as of now (start: this scheduler's
// clock when the evaluation began, for the lag reported to OnFire).
func (s *Scheduler) evalJob(ctx context.Context, e *entry, now, start time.Time) error {
	if e.never || (!e.nextDue.IsZero() && now.Before(e.nextDue)) {
		return nil
	}
	name := e.job.Name
	last, ok, err := s.store.LastTick(ctx, name)
	if err != nil {
		e.nextDue = time.Time{}
		return fmt.Errorf("scheduler: job %s: %w", name, err)
	}
	if !ok {
		// First evaluation ever: start from now, catch nothing up.
		if err := AdvanceTick(ctx, s.store, name, now); err != nil {
			return fmt.Errorf("scheduler: job %s: %w", name, err)
		}
		s.setNext(e, now)
		s.jobLog(e).WithField("next", s.local(e, e.nextDue)).
			Info("scheduler: first evaluation of this schedule: it fires from now on, nothing is caught up")
		return nil
	}
	if !last.Before(now) {
		s.setNext(e, last)
		return nil
	}
	handled := last
	if boundary := now.Add(-s.grace); boundary.After(last) {
		if latest, ok := latestTick(e.spec, last, boundary); ok {
			if err := s.misfire(ctx, e, last, latest, now, start); err != nil {
				e.nextDue = time.Time{}
				return err
			}
			handled = latest
		}
	}
	var fireErr error
	for t := e.spec.Next(handled); !t.IsZero() && !t.After(now); t = e.spec.Next(t) {
		if _, fireErr = s.fire(ctx, e, t, now, start, nil); fireErr != nil {
			break
		}
		handled = t
	}
	if handled.After(last) {
		if err := AdvanceTick(ctx, s.store, name, handled); err != nil {
			fireErr = errors.Join(fireErr, fmt.Errorf("scheduler: job %s: %w", name, err))
		}
	}
	if fireErr != nil {
		e.nextDue = time.Time{} // read the database again next time
		return fireErr
	}
	s.setNext(e, handled)
	return nil
}

// holdJob notes (once per reason) that a held job's schedule fires
// nothing now.
func (s *Scheduler) holdJob(e *entry, h jobs.Held, now time.Time) {
	why := h.Why()
	if e.heldWhy == why {
		return
	}
	e.heldWhy = why
	s.jobLog(e).WithField("reason", why).Info("scheduler: schedule held back; ticks in the meantime follow the misfire policy when it ends")
}

// released notes that a held job's schedule runs again.
func (s *Scheduler) released(e *entry) {
	if e.heldWhy != "" {
		e.heldWhy = ""
		e.nextDue = time.Time{} // read the last tick again: the gap is a misfire
		s.jobLog(e).Info("scheduler: schedule no longer held back")
	}
}

// setNext caches the first tick after t.
func (s *Scheduler) setNext(e *entry, t time.Time) {
	e.nextDue = e.spec.Next(t)
	e.never = e.nextDue.IsZero()
}

// catchUp says that a fire is the runOnce catch-up of a gap.
type catchUp struct {
	missed  string    // count as text, "100000+" when only a lower bound
	after   time.Time // the last tick handled before the gap
	skipped *bool     // set to whether the overlap policy skipped it
}

// misfire handles the ticks in (last, latest], all older than MisfireGrace,
// under the job's misfire policy, and records the gap.
func (s *Scheduler) misfire(ctx context.Context, e *entry, last, latest, now, start time.Time) error {
	name := e.job.Name
	count, atLeast := countTicks(e.spec, last, latest)
	gap := Gap{
		Count: count, AtLeast: atLeast,
		First: e.spec.Next(last).UTC(), Last: latest.UTC(),
		Policy: e.misfire, DetectedAt: now.UTC(),
	}
	missed := strconv.FormatInt(count, 10)
	if atLeast {
		missed += "+"
	}
	log := s.jobLog(e).WithFields(logrus.Fields{
		"missed": missed, "first": s.local(e, gap.First), "last": s.local(e, gap.Last), "misfire": e.misfire,
	})
	if e.misfire == definitions.MisfireRunOnce {
		skipped := false
		res, err := s.fire(ctx, e, latest, now, start, &catchUp{missed: missed, after: last, skipped: &skipped})
		if err != nil {
			return err
		}
		if !skipped {
			t := latest.UTC()
			gap.CatchUp = &t
			log.WithField("created", res).Warn("scheduler: missed ticks after downtime; one catch-up run for the latest (misfire policy runOnce)")
		} else {
			log.Warn("scheduler: missed ticks after downtime; the catch-up run was skipped by the overlap policy")
		}
	} else {
		log.Warn("scheduler: missed ticks after downtime, not caught up (misfire policy skip)")
	}
	if err := s.putState(ctx, name, jobs.StateMissedTicks, gap); err != nil {
		return err
	}
	return nil
}

// fire enqueues the run of tick unless the overlap policy skips it. created
// reports whether this call created the run.
func (s *Scheduler) fire(ctx context.Context, e *entry, tick, now, start time.Time, cu *catchUp) (created bool, err error) {
	name := e.job.Name
	log := s.jobLog(e).WithField("tick", s.local(e, tick))
	reason, err := s.overlapReason(ctx, e, tick)
	if err != nil {
		return false, err
	}
	if reason != "" {
		return false, s.skip(ctx, e, tick, now, reason, cu)
	}
	nr := jobs.StartRequest{
		Definition: e.job, Values: e.params, Trigger: jobs.TriggerSchedule,
		TriggeredBy: TriggeredBy, ScheduledFor: &tick,
	}
	if cu != nil {
		nr.TriggeredBy = "scheduler (catch-up, " + cu.missed + " missed)"
		// Instances that see the same gap from the same last tick may pick
		// different latest ticks (their clocks differ): the key makes their
		// catch-ups one run.
		nr.IdempotencyKey = "scheduler:catch-up:" + name + ":" + cu.after.UTC().Format(jobs.TickFormat)
	}
	// The front door; a tick is stored whether or not this instance can
	// run it (an instance that can will), and OnFire wakes the workers.
	res, err := (&jobs.Starter{Store: s.store}).Start(ctx, nr)
	if errors.Is(err, jobs.ErrIdempotencyMismatch) {
		log.WithError(err).Warn("scheduler: catch-up already enqueued by another instance (with other parameters)")
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("scheduler: job %s: enqueue tick %s: %w", name, tick.UTC().Format(time.RFC3339Nano), err)
	}
	fired := now.Add(s.clock.Since(start))
	log = log.WithField("run", res.Run.ID)
	switch {
	case res.Created:
		log.WithField("lag", fired.Sub(tick)).Info("scheduler: tick enqueued")
	case res.Reason == "active":
		// The job's uniqueBy parameters match an active run.
		return false, s.skip(ctx, e, tick, now, fmt.Sprintf("a run with the same unique parameters is active (run %d)", res.Run.ID), cu)
	default:
		log.WithField("reason", res.Reason).Debug("scheduler: tick already enqueued by another instance")
	}
	if s.onFire != nil {
		s.onFire(name, tick, fired, res.Created)
	}
	return res.Created, nil
}

// overlapReason returns why the overlap policy skips tick, "" to fire it.
func (s *Scheduler) overlapReason(ctx context.Context, e *entry, tick time.Time) (string, error) {
	if e.overlap == definitions.OverlapAllow {
		return "", nil
	}
	queued, running, err := s.store.ActiveRuns(ctx, e.job.Name, tick)
	if err != nil {
		return "", fmt.Errorf("scheduler: job %s: %w", e.job.Name, err)
	}
	switch {
	case e.overlap == definitions.OverlapForbid && queued+running > 0:
		return fmt.Sprintf("overlap forbid: the job has %d queued and %d running run(s)", queued, running), nil
	case e.overlap == definitions.OverlapQueue && queued > 0:
		return fmt.Sprintf("overlap queue: a run is already waiting (%d queued)", queued), nil
	}
	return "", nil
}

// skip records a tick that was not enqueued and why.
func (s *Scheduler) skip(ctx context.Context, e *entry, tick, now time.Time, reason string, cu *catchUp) error {
	sk := Skip{Tick: tick.UTC(), Reason: reason, At: now.UTC(), CatchUp: cu != nil}
	if cu != nil && cu.skipped != nil {
		*cu.skipped = true
	}
	s.jobLog(e).WithFields(logrus.Fields{"tick": s.local(e, tick), "reason": reason, "catchUp": cu != nil}).
		Info("scheduler: tick skipped")
	return s.putState(ctx, e.job.Name, jobs.StateLastSkip, sk)
}

func (s *Scheduler) putState(ctx context.Context, job, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("scheduler: job %s: encode %s: %w", job, name, err)
	}
	if err := s.store.SetJobState(ctx, job, name, string(data)); err != nil {
		return fmt.Errorf("scheduler: job %s: %w", job, err)
	}
	return nil
}

func (s *Scheduler) jobLog(e *entry) *logrus.Entry {
	return s.log.WithFields(logrus.Fields{"job": e.job.Name, "schedule": e.spec.String()})
}

// local formats t in the job's time zone for logs.
func (s *Scheduler) local(e *entry, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.In(e.spec.Location()).Format(time.RFC3339Nano)
}

// latestTick returns the latest tick of spec in (after, through].
func latestTick(spec *cronspec.Spec, after, through time.Time) (time.Time, bool) {
	first := spec.Next(after)
	if first.IsZero() || first.After(through) {
		return time.Time{}, false
	}
	if every := spec.Every(); every > 0 {
		// @every ticks are the multiples of every since the Unix epoch.
		n := through.UnixNano() / int64(every)
		return time.Unix(0, n*int64(every)).In(spec.Location()), true
	}
	// Next is non-decreasing in its argument: find the latest lo with
	// Next(lo) <= through by bisection (about 60 steps for any gap).
	lo, hi := after, through
	for hi.Sub(lo) > 1 {
		mid := lo.Add(hi.Sub(lo) / 2)
		if n := spec.Next(mid); !n.IsZero() && !n.After(through) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return spec.Next(lo), true
}

// countTicks counts the ticks of spec in (after, through]; atLeast is set
// when it stopped at maxCount.
func countTicks(spec *cronspec.Spec, after, through time.Time) (n int64, atLeast bool) {
	if every := spec.Every(); every > 0 {
		d := int64(every)
		return through.UnixNano()/d - after.UnixNano()/d, false
	}
	for t := spec.Next(after); !t.IsZero() && !t.After(through); t = spec.Next(t) {
		if n == maxCount {
			return n, true
		}
		n++
	}
	return n, false
}
