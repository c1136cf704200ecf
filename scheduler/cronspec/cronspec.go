// Package cronspec owns cron spec parsing and next-fire-time computation:
// robfig/cron v3 syntax extended as Vixie cron accepts (7 as Sunday,
// descriptors in any case, optional seconds) and with defined daylight
// saving time behaviour.
package cronspec

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec is a parsed cron spec bound to a time zone.
type Spec struct {
	src      string
	loc      *time.Location
	schedule cron.Schedule
}

// Parse parses spec in loc (nil means UTC). It returns an error naming what
// is wrong with the spec.
func Parse(spec string, loc *time.Location) (*Spec, error) {
	if loc == nil {
		loc = time.UTC
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("cronspec: parse %q: %w", spec, err)
	}
	return &Spec{src: spec, loc: loc, schedule: s}, nil
}

// String returns the spec as written.
func (s *Spec) String() string { return s.src }

// Next returns the first fire time strictly after t, in the spec's zone.
func (s *Spec) Next(t time.Time) time.Time { return s.schedule.Next(t.In(s.loc)) }

// NextN returns the next n fire times after t.
func (s *Spec) NextN(t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for i := 0; i < n; i++ {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}
