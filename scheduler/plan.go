package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/cronspec"
	"github.com/jobrunner/jobrunner/definitions"
)

// plan is one set of scheduled jobs, ready to evaluate. Reload swaps plans.
type plan struct {
	entries []*entry
	set     *definitions.Set // for pauses and maintenance windows
}

// entry is one scheduled job.
type entry struct {
	job     *definitions.Job
	spec    *cronspec.Spec
	params  definitions.Values
	misfire string
	overlap string
	// heldWhy is why the schedule was last held back ("" : it is not).
	heldWhy string

	// nextDue caches the first tick after the last one this scheduler saw
	// handled, so that an evaluation with nothing due makes no query. It
	// is only a shortcut: when a tick is due, the last tick is read from
	// the database again. Zero: unknown. Guarded by Scheduler.evalMu.
	nextDue time.Time
	// never: the spec fires no more (nextDue stays zero).
	never bool
}

// newPlan prepares the scheduled jobs of set, reporting every job that
// cannot be scheduled.
func newPlan(set *definitions.Set) (*plan, error) {
	p := &plan{set: set}
	if set == nil {
		return p, nil
	}
	var errs []error
	for _, j := range set.Jobs {
		if j.Schedule == nil {
			continue
		}
		e, err := newEntry(j)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.entries = append(p.entries, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func newEntry(j *definitions.Job) (*entry, error) {
	spec, err := parseSchedule(j)
	if err != nil {
		return nil, err
	}
	e := &entry{job: j, spec: spec, misfire: j.Schedule.Misfire, overlap: j.Concurrency.Overlap}
	switch e.misfire {
	case "":
		e.misfire = definitions.MisfireSkip
	case definitions.MisfireSkip, definitions.MisfireRunOnce:
	default:
		return nil, fmt.Errorf("scheduler: job %s: unknown misfire policy %q (want %s or %s)",
			j.Name, e.misfire, definitions.MisfireSkip, definitions.MisfireRunOnce)
	}
	switch e.overlap {
	case "":
		e.overlap = definitions.OverlapForbid
	case definitions.OverlapAllow, definitions.OverlapForbid, definitions.OverlapQueue:
	default:
		return nil, fmt.Errorf("scheduler: job %s: unknown overlap policy %q (want %s, %s or %s)",
			j.Name, e.overlap, definitions.OverlapForbid, definitions.OverlapAllow, definitions.OverlapQueue)
	}
	e.params, err = j.ParseParams(map[string]string{})
	if err != nil {
		return nil, fmt.Errorf("scheduler: job %s is scheduled but its parameters cannot be filled without an operator (%w): give every required parameter a default or make it optional", j.Name, err)
	}
	return e, nil
}

// parseSchedule parses j's cron spec in its time zone (empty: UTC).
func parseSchedule(j *definitions.Job) (*cronspec.Spec, error) {
	if j.Schedule == nil {
		return nil, fmt.Errorf("scheduler: job %s has no schedule", j.Name)
	}
	var loc *time.Location
	if tz := j.Schedule.Timezone; tz != "" {
		if tz == "Local" {
			return nil, fmt.Errorf("scheduler: job %s: time zone \"Local\" is not allowed (name an IANA zone, or leave it out for UTC)", j.Name)
		}
		l, err := time.LoadLocation(tz)
		if err != nil {
			return nil, fmt.Errorf("scheduler: job %s: time zone %q: %w", j.Name, tz, err)
		}
		loc = l
	}
	spec, err := cronspec.Parse(j.Schedule.Cron, loc)
	if err != nil {
		return nil, fmt.Errorf("scheduler: job %s: %w", j.Name, err)
	}
	return spec, nil
}

// NextTimes returns the next n fire times of job's schedule strictly after
// after, in the schedule's time zone (what `definitions list` and the API
// show). It returns fewer when the spec stops firing (see cronspec), none
// when n < 1, and an error when the job has no schedule or its spec or zone
// is invalid.
func NextTimes(job *definitions.Job, after time.Time, n int) ([]time.Time, error) {
	spec, err := parseSchedule(job)
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return []time.Time{}, nil
	}
	return spec.NextN(after, n), nil
}
