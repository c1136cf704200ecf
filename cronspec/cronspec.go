// Package cronspec owns cron spec parsing and next-fire-time computation for
// jobrunner: which specs are accepted, what they mean, and in particular what
// happens on daylight saving time (DST) transition days. Every other package
// that needs "when does this job fire next" asks a *Spec.
//
// # Syntax
//
// The syntax is robfig/cron v3's, extended to accept what Vixie/ISC cron
// accepts:
//
//   - 5 fields "minute hour day-of-month month day-of-week", or 6 fields with a
//     leading seconds field. A 5-field spec fires at second 0.
//   - Month and day-of-week names (jan..dec, sun..sat) in any case.
//   - 7 means Sunday in the day-of-week field, also inside ranges and lists
//     ("5-7", "1,7", "sat-7").
//   - Descriptors in any case: @yearly, @annually, @monthly, @weekly, @daily,
//     @midnight, @hourly ("@WEEKLY" is accepted).
//   - "@every DURATION" (Go duration syntax, at least 1s). It fires at the
//     multiples of DURATION counted from the Unix epoch
//     (1970-01-01T00:00:00Z): Next(t) is the first k*DURATION strictly after
//     t. Every instance therefore agrees on the nominal tick without shared
//     state, and the ticks do not depend on when the process started.
//
// A "CRON_TZ=" or "TZ=" prefix is rejected: the time zone is a separate field
// of a job definition and is passed to Parse. A nil zone means UTC, never the
// server's local zone. All times returned are in the spec's zone.
//
// When neither day-of-month nor day-of-week is "*" or "?", a day matches if
// either field matches, as in Vixie cron (robfig/cron counts a stepped
// wildcard such as "*/2" as restricted).
//
// # Fixed-time and interval specs
//
// A spec is an INTERVAL spec if it is "@every ..." or "@hourly", or if its
// hour field starts with "*" or "?" ("*", "?", "*/2", "*/1", ...). Every
// other spec is a FIXED-TIME spec, including explicit hour lists and ranges
// such as "2", "1,13", "9-17" and "0-23", and @daily, @weekly, @monthly and
// @yearly. IsInterval reports which kind a spec is.
//
// # Daylight saving time
//
// robfig/cron alone skips a 02:00 job on the spring-forward day and runs a
// 01:00 job twice on the fall-back day. jobrunner instead behaves as
// ISC/Vixie cron does:
//
//   - Fixed-time spec, wall time inside the spring-forward gap (the local time
//     does not exist that day): the job fires ONCE, at the end of the gap. In
//     America/New_York on 2026-03-08, "0 2 * * *" and "30 2 * * *" both fire
//     at 03:00 EDT. A spec with several slots in the gap ("0,30 2 * * *"), or
//     with a slot in the gap and one at the end of the gap ("0 2,3 * * *"),
//     fires once at 03:00, never twice at the same instant.
//   - Fixed-time spec, wall time inside the repeated fall-back hour (the local
//     time occurs twice): the job fires once, at the FIRST occurrence. In
//     America/New_York on 2026-11-01, "30 1 * * *" fires at 01:30 EDT only,
//     not again at 01:30 EST.
//   - Interval specs follow real elapsed time: they fire at every instant
//     whose local wall-clock reading matches the spec. Wall times in the gap
//     never occur and repeated wall times occur twice, so "0 * * * *" fires
//     23 times on the short day and 25 times on the long day (in
//     Europe/Amsterdam on 2026-10-25 it fires at 02:00 CEST and again at
//     02:00 CET). "@every" is independent of the zone altogether.
//
// Next always returns an instant strictly after its argument, so iterating
// Next (or NextN) yields strictly increasing instants and never the same
// instant twice.
//
// A spec that matches no date within five years of the starting point (such
// as "0 0 30 2 *") makes Next return the zero time.Time, as robfig/cron does;
// NextN then stops early.
package cronspec

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// sixField parses the normalised 6-field form; descriptors and the optional
// seconds field are handled before robfig sees the spec.
var sixField = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// descriptors maps lower-cased descriptors to their 6-field equivalents
// (the same meaning robfig/cron gives them).
var descriptors = map[string]string{
	"@yearly":   "0 0 0 1 1 *",
	"@annually": "0 0 0 1 1 *",
	"@monthly":  "0 0 0 1 * *",
	"@weekly":   "0 0 0 * * 0",
	"@daily":    "0 0 0 * * *",
	"@midnight": "0 0 0 * * *",
	"@hourly":   "0 0 * * * *",
}

var fieldNames = [6]string{"seconds", "minute", "hour", "day-of-month", "month", "day-of-week"}

// Spec is a parsed cron spec bound to a time zone. It is immutable and safe
// for concurrent use.
type Spec struct {
	src      string
	loc      *time.Location
	sched    *cron.SpecSchedule // nil for @every
	every    time.Duration      // > 0 for @every
	interval bool
}

// Parse parses spec in loc (nil means UTC). It returns an error, prefixed
// "cronspec: ", naming what is wrong with the spec.
func Parse(spec string, loc *time.Location) (*Spec, error) {
	if loc == nil {
		loc = time.UTC
	}
	s := &Spec{src: spec, loc: loc}
	text := strings.TrimSpace(spec)
	if text == "" {
		return nil, errors.New("cronspec: empty spec")
	}
	upper := strings.ToUpper(text)
	if strings.HasPrefix(upper, "CRON_TZ=") || strings.HasPrefix(upper, "TZ=") {
		return nil, fmt.Errorf("cronspec: %q: time zone prefix (TZ=/CRON_TZ=) is not allowed in the spec; set the job's time zone field instead", spec)
	}

	if strings.HasPrefix(text, "@") {
		fields := strings.Fields(text)
		name := strings.ToLower(fields[0])
		if name == "@every" {
			if len(fields) != 2 {
				return nil, fmt.Errorf("cronspec: %q: @every takes exactly one duration, e.g. \"@every 90s\"", spec)
			}
			d, err := time.ParseDuration(fields[1])
			if err != nil {
				return nil, fmt.Errorf("cronspec: %q: invalid @every duration %q: %v", spec, fields[1], err)
			}
			if d < time.Second {
				return nil, fmt.Errorf("cronspec: %q: @every duration %s is below the minimum of 1s", spec, d)
			}
			s.every = d
			s.interval = true
			return s, nil
		}
		six, ok := descriptors[name]
		if !ok {
			return nil, fmt.Errorf("cronspec: %q: unknown descriptor %q (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every DURATION)", spec, fields[0])
		}
		if len(fields) != 1 {
			return nil, fmt.Errorf("cronspec: %q: descriptor %s takes no arguments", spec, fields[0])
		}
		return s.finish(strings.Fields(six))
	}

	fields := strings.Fields(text)
	switch len(fields) {
	case 5:
		fields = append([]string{"0"}, fields...)
	case 6:
	default:
		return nil, fmt.Errorf("cronspec: %q: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with leading seconds), found %d", spec, len(fields))
	}
	return s.finish(fields)
}

// finish parses the normalised six fields into s.
func (s *Spec) finish(fields []string) (*Spec, error) {
	fields[5] = sundaySeven(fields[5])
	parsed, err := sixField.Parse(strings.Join(fields, " "))
	if err != nil {
		return nil, s.fieldError(fields, err)
	}
	ss, ok := parsed.(*cron.SpecSchedule)
	if !ok { // cannot happen without the Descriptor option
		return nil, fmt.Errorf("cronspec: %q: unexpected schedule type %T", s.src, parsed)
	}
	for i, f := range fields {
		if err := checkSteps(f, fieldRanges[i]); err != nil {
			return nil, fmt.Errorf("cronspec: %q: invalid %s field %q: %v", s.src, fieldNames[i], f, err)
		}
	}
	// robfig searches five years ahead and gives up: a spec such as
	// "0 0 30 2 *" (30 February) would be accepted and never fire.
	if ss.Next(time.Now().In(s.loc)).IsZero() {
		return nil, fmt.Errorf("cronspec: %q: never fires (no time matches it within 5 years; check the day of month against the month)", s.src)
	}
	s.sched = ss
	s.interval = strings.HasPrefix(fields[2], "*") || strings.HasPrefix(fields[2], "?")
	return s, nil
}

// fieldRanges are the bounds of the six fields (seconds first).
var fieldRanges = [6][2]int{{0, 59}, {0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 6}}

// checkSteps rejects a step that does not fit the field: "*/61" in the
// minutes would fire only at minute 0, which robfig accepts silently.
func checkSteps(field string, bounds [2]int) error {
	for _, part := range strings.Split(field, ",") {
		_, step, ok := strings.Cut(part, "/")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(step)
		if err != nil {
			continue // robfig reported it
		}
		if span := bounds[1] - bounds[0]; n < 1 || n > span {
			return fmt.Errorf("step %d is outside 1..%d (the field runs %d-%d)", n, span, bounds[0], bounds[1])
		}
	}
	return nil
}

// fieldError finds which field robfig rejected, so the error names it.
func (s *Spec) fieldError(fields []string, err error) error {
	for i := range fields {
		probe := []string{"*", "*", "*", "*", "*", "*"}
		probe[i] = fields[i]
		if _, perr := sixField.Parse(strings.Join(probe, " ")); perr != nil {
			return fmt.Errorf("cronspec: %q: invalid %s field %q: %v", s.src, fieldNames[i], fields[i], perr)
		}
	}
	return fmt.Errorf("cronspec: %q: %v", s.src, err)
}

// dowNames are robfig's day-of-week names (robfig lower-cases before lookup).
var dowNames = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

func dowValue(s string) (int, bool) {
	if v, ok := dowNames[strings.ToLower(s)]; ok {
		return v, true
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 7 || strings.HasPrefix(s, "+") {
		return 0, false
	}
	return v, true
}

// sundaySeven rewrites every part of a day-of-week field that uses 7 (Vixie
// cron's second Sunday) into robfig's 0..6 form. Parts it cannot interpret
// are left unchanged for robfig to reject with its own message.
func sundaySeven(field string) string {
	parts := strings.Split(field, ",")
	for i, p := range parts {
		rangeAndStep := strings.Split(p, "/")
		if len(rangeAndStep) > 2 {
			continue
		}
		step := 1
		if len(rangeAndStep) == 2 {
			n, err := strconv.Atoi(rangeAndStep[1])
			if err != nil || n <= 0 {
				continue
			}
			step = n
		}
		lowHigh := strings.Split(rangeAndStep[0], "-")
		var lo, hi int
		switch len(lowHigh) {
		case 1:
			v, ok := dowValue(lowHigh[0])
			if !ok || v != 7 {
				continue
			}
			lo, hi = 7, 7 // "7/N" is just Sunday
		case 2:
			h, ok := dowValue(lowHigh[1])
			if !ok || h != 7 {
				continue
			}
			l, ok := dowValue(lowHigh[0])
			if !ok || l > h {
				continue
			}
			lo, hi = l, h
		default:
			continue
		}
		var vals []string
		seen := map[int]bool{}
		for v := lo; v <= hi; v += step {
			d := v % 7
			if !seen[d] {
				seen[d] = true
				vals = append(vals, strconv.Itoa(d))
			}
		}
		parts[i] = strings.Join(vals, ",")
	}
	return strings.Join(parts, ",")
}

// String returns the spec as written.
func (s *Spec) String() string { return s.src }

// Location returns the spec's time zone (UTC if Parse was given nil).
func (s *Spec) Location() *time.Location { return s.loc }

// IsInterval reports whether the spec is an interval spec (@every, @hourly,
// or an hour field starting with "*" or "?"), which follows real elapsed
// time across DST transitions. Otherwise it is a fixed-time spec; see the
// package documentation.
func (s *Spec) IsInterval() bool { return s.interval }

// Every returns the @every duration, or 0 if the spec is not "@every".
func (s *Spec) Every() time.Duration { return s.every }

// Describe returns a one-line description of the spec's kind and zone, for
// operators, e.g. `"30 2 * * *" in Europe/Amsterdam: fixed-time (...)`.
func (s *Spec) Describe() string {
	switch {
	case s.every > 0:
		return fmt.Sprintf("%q: every %s, at multiples of %s since the Unix epoch (time zone independent)", s.src, s.every, s.every)
	case s.interval:
		return fmt.Sprintf("%q in %s: interval (follows elapsed time: wall times skipped by DST do not fire, repeated ones fire twice)", s.src, s.loc)
	default:
		return fmt.Sprintf("%q in %s: fixed-time (a time skipped by DST fires once at the end of the gap; a repeated time fires once, at its first occurrence)", s.src, s.loc)
	}
}

// Next returns the first fire time strictly after t, in the spec's zone, or
// the zero time if the spec does not fire within five years.
func (s *Spec) Next(t time.Time) time.Time {
	switch {
	case s.every > 0:
		return s.nextEvery(t)
	case s.interval:
		return s.nextInterval(t)
	default:
		return s.nextFixed(t)
	}
}

// NextN returns the next n fire times after t (fewer if the spec stops
// firing; see Next).
func (s *Spec) NextN(t time.Time, n int) []time.Time {
	if n <= 0 {
		return nil
	}
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

var nsPerSec = big.NewInt(int64(time.Second))

// nextEvery returns the first multiple of s.every (from the Unix epoch)
// strictly after t. Computed with big integers so no year range overflows.
func (s *Spec) nextEvery(t time.Time) time.Time {
	ns := new(big.Int).Mul(big.NewInt(t.Unix()), nsPerSec)
	ns.Add(ns, big.NewInt(int64(t.Nanosecond())))
	d := big.NewInt(int64(s.every))
	k := new(big.Int).Div(ns, d) // Euclidean: floor for positive d
	k.Add(k, big.NewInt(1))
	k.Mul(k, d)
	sec, nsec := new(big.Int).DivMod(k, nsPerSec, new(big.Int))
	return time.Unix(sec.Int64(), nsec.Int64()).In(s.loc)
}

// nextInterval walks the zone's constant-offset periods starting at t. Within
// one period wall time is a fixed offset from real time, so robfig's
// wall-clock search in a fixed zone is exact; a match at or beyond the
// period's end belongs to the next period and is searched again there.
func (s *Spec) nextInterval(t time.Time) time.Time {
	after, probe := t, t
	limit := t.AddDate(5, 0, 1)
	for i := 0; i < 1000 && !after.After(limit); i++ {
		lt := probe.In(s.loc)
		name, off := lt.Zone()
		_, end := lt.ZoneBounds()
		n := s.sched.Next(after.In(time.FixedZone(name, off)))
		if n.IsZero() {
			return time.Time{}
		}
		if end.IsZero() || n.Before(end) {
			return n.In(s.loc)
		}
		// The match lies in a later period: search again from the period's
		// end (robfig's Next rounds end-1ns up to the whole second end),
		// with the next period's offset.
		after, probe = end.Add(-time.Nanosecond), end
	}
	return time.Time{}
}

// nextFixed enumerates matching wall-clock times (as UTC-labelled values) from
// t's wall time onwards and maps each to an instant: a unique wall time to
// itself, a repeated one to its first occurrence, one in a gap to the end of
// the gap. That map is monotone, so the first mapped instant after t is the
// answer.
func (s *Spec) nextFixed(t time.Time) time.Time {
	lt := t.In(s.loc)
	w := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), lt.Second(), lt.Nanosecond(), time.UTC)
	w = w.Add(-time.Second)
	for {
		w = s.sched.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		if x := s.wallToInstant(w); x.After(t) {
			return x.In(s.loc)
		}
	}
}

// wallToInstant maps a wall-clock time w (fields read in UTC) in s.loc to the
// first instant showing that wall time, or, if the wall time does not exist
// (DST gap), to the end of the gap.
func (s *Spec) wallToInstant(w time.Time) time.Time {
	u := w.Unix() // wall time as if UTC
	// Any instant x with wall(x) == w satisfies x = u - offset and offsets lie
	// within ±26h, so start before every possible solution.
	x := u - 26*3600
	for i := 0; i < 64; i++ {
		lt := time.Unix(x, 0).In(s.loc)
		_, off := lt.Zone()
		start, end := lt.ZoneBounds()
		cand := u - int64(off)
		if !start.IsZero() && cand < start.Unix() {
			return start // w falls in the gap that ends at start
		}
		if end.IsZero() || cand < end.Unix() {
			return time.Unix(cand, 0)
		}
		x = end.Unix()
	}
	// Pathological zone data: fall back to Go's choice.
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, s.loc)
}
