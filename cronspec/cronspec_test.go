package cronspec

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	if s == "" {
		return time.Time{}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

func mustParse(t testing.TB, spec string, loc *time.Location) *Spec {
	t.Helper()
	s, err := Parse(spec, loc)
	require.NoError(t, err, spec)
	return s
}

// requireTimes compares instants (and that they are in the spec's zone).
func requireTimes(t *testing.T, s *Spec, want []string, got []time.Time) {
	t.Helper()
	gs := make([]string, len(got))
	for i, g := range got {
		require.Same(t, s.Location(), g.Location(), "result %d not in the spec's zone", i)
		gs[i] = g.Format(time.RFC3339Nano)
	}
	ws := make([]string, len(want))
	for i, w := range want {
		ws[i] = mustTime(t, w).In(s.Location()).Format(time.RFC3339Nano)
	}
	require.Equal(t, ws, gs)
}

// Vectors from robfig/cron v3 spec_test.go TestNext (non-DST cases, UTC,
// 6-field with seconds) and TestNextWithTz.
func TestRobfigVectors(t *testing.T) {
	t.Parallel()
	utc := "Mon Jan 2 15:04:05 2006"
	utcShort := "Mon Jan 2 15:04 2006"
	parse := func(s string) time.Time {
		for _, layout := range []string{utc, utcShort} {
			if v, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
				return v
			}
		}
		t.Fatalf("bad time %q", s)
		return time.Time{}
	}
	cases := []struct{ from, spec, want string }{
		{"Mon Jul 9 14:45 2012", "0 0/15 * * * *", "Mon Jul 9 15:00 2012"},
		{"Mon Jul 9 14:59 2012", "0 0/15 * * * *", "Mon Jul 9 15:00 2012"},
		{"Mon Jul 9 14:59:59 2012", "0 0/15 * * * *", "Mon Jul 9 15:00 2012"},
		{"Mon Jul 9 15:45 2012", "0 20-35/15 * * * *", "Mon Jul 9 16:20 2012"},
		{"Mon Jul 9 23:46 2012", "0 */15 * * * *", "Tue Jul 10 00:00 2012"},
		{"Mon Jul 9 23:45 2012", "0 20-35/15 * * * *", "Tue Jul 10 00:20 2012"},
		{"Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * * * *", "Tue Jul 10 00:20:15 2012"},
		{"Mon Jul 9 23:35:51 2012", "15/35 20-35/15 1/2 * * *", "Tue Jul 10 01:20:15 2012"},
		{"Mon Jul 9 23:35:51 2012", "15/35 20-35/15 10-12 * * *", "Tue Jul 10 10:20:15 2012"},
		{"Mon Jul 9 23:35:51 2012", "15/35 20-35/15 1/2 */2 * *", "Thu Jul 11 01:20:15 2012"},
		{"Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * 9-20 * *", "Wed Jul 10 00:20:15 2012"},
		{"Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * 9-20 Jul *", "Wed Jul 10 00:20:15 2012"},
		{"Mon Jul 9 23:35 2012", "0 0 0 9 Apr-Oct ?", "Thu Aug 9 00:00 2012"},
		{"Mon Jul 9 23:35 2012", "0 0 0 */5 Apr,Aug,Oct Mon", "Tue Aug 1 00:00 2012"},
		{"Mon Jul 9 23:35 2012", "0 0 0 */5 Oct Mon", "Mon Oct 1 00:00 2012"},
		{"Mon Jul 9 23:35 2012", "0 0 0 * Feb Mon", "Mon Feb 4 00:00 2013"},
		{"Mon Jul 9 23:35 2012", "0 0 0 * Feb Mon/2", "Fri Feb 1 00:00 2013"},
		{"Mon Dec 31 23:59:45 2012", "0 * * * * *", "Tue Jan 1 00:00:00 2013"},
		{"Mon Jul 9 23:35 2012", "0 0 0 29 Feb ?", "Mon Feb 29 00:00 2016"},
		{"Mon Jul 9 23:35 2012", "0 0 0 30 Feb ?", ""},
		{"Mon Jul 9 23:35 2012", "0 0 0 31 Apr ?", ""},
	}
	for _, c := range cases {
		t.Run(c.spec+"@"+c.from, func(t *testing.T) {
			t.Parallel()
			if c.want == "" { // never fires: refused when parsed
				_, err := Parse(c.spec, nil)
				require.ErrorContains(t, err, "never fires")
				return
			}
			s := mustParse(t, c.spec, nil)
			got := s.Next(parse(c.from))
			require.Equal(t, parse(c.want), got)
		})
	}

	ist := time.FixedZone("", 5*3600+1800)
	tz := []struct{ from, spec, want string }{
		{"2016-01-03T13:09:03+05:30", "14 14 * * *", "2016-01-03T14:14:00+05:30"},
		{"2016-01-03T04:09:03+05:30", "14 14 * * ?", "2016-01-03T14:14:00+05:30"},
		{"2016-01-03T14:09:03+05:30", "14 14 * * *", "2016-01-03T14:14:00+05:30"},
		{"2016-01-03T14:00:00+05:30", "14 14 * * ?", "2016-01-03T14:14:00+05:30"},
	}
	for _, c := range tz {
		s := mustParse(t, c.spec, ist)
		require.True(t, mustTime(t, c.want).Equal(s.Next(mustTime(t, c.from))), c.from)
	}
}

// robfig's own America/New_York DST vectors (converted from its TZ= prefix),
// with the expectations changed where jobrunner deliberately differs.
func TestRobfigDSTVectorsWithJobrunnerSemantics(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	sp := mustLoad(t, "America/Sao_Paulo")
	cases := []struct {
		loc              *time.Location
		from, spec, want string
		note             string
	}{
		// robfig: 2013-03-11T02:30 (skips the gap). jobrunner: end of gap.
		{ny, "2012-03-11T00:00:00-05:00", "0 30 2 11 Mar ?", "2012-03-11T03:00:00-04:00", "differs"},
		{ny, "2012-03-11T00:00:00-05:00", "0 0 * * * ?", "2012-03-11T01:00:00-05:00", ""},
		{ny, "2012-03-11T01:00:00-05:00", "0 0 * * * ?", "2012-03-11T03:00:00-04:00", ""},
		{ny, "2012-03-11T03:00:00-04:00", "0 0 * * * ?", "2012-03-11T04:00:00-04:00", ""},
		{ny, "2012-03-11T04:00:00-04:00", "0 0 * * * ?", "2012-03-11T05:00:00-04:00", ""},
		{ny, "2012-03-11T00:00:00-05:00", "0 0 1 * * ?", "2012-03-11T01:00:00-05:00", ""},
		{ny, "2012-03-11T01:00:00-05:00", "0 0 1 * * ?", "2012-03-12T01:00:00-04:00", ""},
		// robfig: 2012-03-12T02:00 (skipped). jobrunner: 03:00 that day.
		{ny, "2012-03-11T00:00:00-05:00", "0 0 2 * * ?", "2012-03-11T03:00:00-04:00", "differs"},
		{ny, "2012-11-04T00:00:00-04:00", "0 30 2 04 Nov ?", "2012-11-04T02:30:00-05:00", ""},
		// robfig: 01:30 EST the same day (second occurrence). jobrunner: first only.
		{ny, "2012-11-04T01:45:00-04:00", "0 30 1 04 Nov ?", "2013-11-04T01:30:00-05:00", "differs"},
		{ny, "2012-11-04T00:00:00-04:00", "0 0 * * * ?", "2012-11-04T01:00:00-04:00", ""},
		{ny, "2012-11-04T01:00:00-04:00", "0 0 * * * ?", "2012-11-04T01:00:00-05:00", ""},
		{ny, "2012-11-04T01:00:00-05:00", "0 0 * * * ?", "2012-11-04T02:00:00-05:00", ""},
		{ny, "2012-11-04T00:00:00-04:00", "0 0 1 * * ?", "2012-11-04T01:00:00-04:00", ""},
		// robfig: 01:00 EST the same day (runs twice). jobrunner: once.
		{ny, "2012-11-04T01:00:00-04:00", "0 0 1 * * ?", "2012-11-05T01:00:00-05:00", "differs"},
		{ny, "2012-11-04T01:00:00-05:00", "0 0 1 * * ?", "2012-11-05T01:00:00-05:00", ""},
		{ny, "2012-11-04T00:00:00-04:00", "0 0 2 * * ?", "2012-11-04T02:00:00-05:00", ""},
		{ny, "2012-11-04T02:00:00-05:00", "0 0 2 * * ?", "2012-11-05T02:00:00-05:00", ""},
		{ny, "2012-11-04T00:00:00-04:00", "0 0 3 * * ?", "2012-11-04T03:00:00-05:00", ""},
		{ny, "2012-11-04T03:00:00-05:00", "0 0 3 * * ?", "2012-11-05T03:00:00-05:00", ""},
		{ny, "2012-11-04T00:00:00-04:00", "0 0 3 3 * ?", "2012-12-03T03:00:00-05:00", ""},
		// robfig#157: midnight did not exist in Sao Paulo.
		{sp, "2018-10-17T05:00:00-04:00", "0 0 9 10 * ?", "2018-11-10T06:00:00-05:00", ""},
		{sp, "2018-02-14T05:00:00-05:00", "0 0 9 22 * ?", "2018-02-22T07:00:00-05:00", ""},
	}
	for _, c := range cases {
		t.Run(c.spec+"@"+c.from, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, c.spec, c.loc)
			requireTimes(t, s, []string{c.want}, []time.Time{s.Next(mustTime(t, c.from))})
		})
	}
}

// Vixie/ISC/cronie-documented DST behaviour on the 2026 transitions.
func TestDST2026(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	ams := mustLoad(t, "Europe/Amsterdam")
	apia := mustLoad(t, "Pacific/Apia")
	cases := []struct {
		name string
		loc  *time.Location
		spec string
		from string
		want []string
	}{
		// New York spring forward: 2026-03-08 02:00 EST -> 03:00 EDT.
		{"ny gap 02:30 -> 03:00 once", ny, "30 2 * * *", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"ny gap 02:00 -> 03:00", ny, "0 2 * * *", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"}},
		{"ny gap seconds field", ny, "0 30 2 * * *", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"ny two gap slots fire once", ny, "0,30 2 * * *", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"ny gap slot and 03:00 slot fire once", ny, "0 2,3 * * *", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T03:00:00-04:00"}},
		{"ny every minute of hour 2 fires once", ny, "* 2 * * *", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:01:00-04:00"}},
		{"ny fixed 01:59 unaffected", ny, "59 1 * * *", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T01:59:00-05:00", "2026-03-09T01:59:00-04:00"}},
		{"ny hourly skips 02:00", ny, "0 * * * *", "2026-03-08T00:30:00-05:00",
			[]string{"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}},
		// New York fall back: 2026-11-01 02:00 EDT -> 01:00 EST.
		{"ny fall 01:30 first occurrence", ny, "30 1 * * *", "2026-10-31T12:00:00-04:00",
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"ny fall from between occurrences", ny, "30 1 * * *", "2026-11-01T01:45:00-04:00",
			[]string{"2026-11-02T01:30:00-05:00"}},
		{"ny fall from second occurrence", ny, "30 1 * * *", "2026-11-01T01:10:00-05:00",
			[]string{"2026-11-02T01:30:00-05:00"}},
		{"ny fall 02:00 once", ny, "0 2 * * *", "2026-10-31T12:00:00-04:00",
			[]string{"2026-11-01T02:00:00-05:00", "2026-11-02T02:00:00-05:00"}},
		{"ny fall hourly repeats 01:00", ny, "0 * * * *", "2026-11-01T00:30:00-04:00",
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"}},
		{"ny fall @daily", ny, "@daily", "2026-10-31T12:00:00-04:00",
			[]string{"2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"}},
		// Amsterdam spring forward: 2026-03-29 02:00 CET -> 03:00 CEST.
		{"ams gap 02:30 -> 03:00", ams, "30 2 * * *", "2026-03-28T12:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"ams half-hourly skips gap", ams, "*/30 * * * *", "2026-03-29T01:15:00+01:00",
			[]string{"2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"}},
		// Amsterdam fall back: 2026-10-25 03:00 CEST -> 02:00 CET.
		{"ams fall 02:30 first occurrence", ams, "30 2 * * *", "2026-10-24T12:00:00+02:00",
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
		{"ams fall hourly both 02:00", ams, "0 * * * *", "2026-10-25T01:30:00+02:00",
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"}},
		{"ams fall @hourly both 02:00", ams, "@HOURLY", "2026-10-25T01:30:00+02:00",
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"}},
		{"ams fall half-hourly", ams, "*/30 * * * *", "2026-10-25T01:45:00+02:00",
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
				"2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"}},
		{"ams fall @every 1h", ams, "@every 1h", "2026-10-25T00:30:00Z",
			[]string{"2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},
		// Samoa skipped 2011-12-30 entirely (-10 -> +14): a fixed time that day
		// fires at the end of the gap, 2011-12-31 00:00.
		{"apia skipped day", apia, "30 2 * * *", "2011-12-29T12:00:00-10:00",
			[]string{"2011-12-31T00:00:00+14:00", "2011-12-31T02:30:00+14:00"}},
		{"apia skipped day hourly", apia, "0 * * * *", "2011-12-29T22:30:00-10:00",
			[]string{"2011-12-29T23:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T01:00:00+14:00"}},
		{"ams fall from second occurrence, fixed", ams, "15 2 * * *", "2026-10-25T02:05:00+01:00",
			[]string{"2026-10-26T02:15:00+01:00"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, c.spec, c.loc)
			requireTimes(t, s, c.want, s.NextN(mustTime(t, c.from), len(c.want)))
		})
	}
}

// countDay counts fires in [local midnight of day, next local midnight).
func countDay(t *testing.T, s *Spec, y int, m time.Month, d int) int {
	t.Helper()
	start := time.Date(y, m, d, 0, 0, 0, 0, s.Location())
	end := time.Date(y, m, d+1, 0, 0, 0, 0, s.Location())
	n := 0
	for x := s.Next(start.Add(-time.Nanosecond)); x.Before(end); x = s.Next(x) {
		require.False(t, x.IsZero())
		n++
	}
	return n
}

func TestFiresPerLocalDay(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	ams := mustLoad(t, "Europe/Amsterdam")
	type day struct {
		loc *time.Location
		y   int
		m   time.Month
		d   int
		n   int // hourly fires that day
	}
	days := []day{
		{ny, 2026, 3, 8, 23},
		{ny, 2026, 3, 9, 24},
		{ny, 2026, 11, 1, 25},
		{ny, 2026, 11, 2, 24},
		{ams, 2026, 3, 29, 23},
		{ams, 2026, 6, 1, 24},
		{ams, 2026, 10, 25, 25},
		{time.UTC, 2026, 3, 29, 24},
	}
	specs := []struct {
		spec string
		mult int // fires per hour
		fix  bool
	}{
		{"0 * * * *", 1, false},
		{"@hourly", 1, false},
		{"@every 1h", 1, false},
		{"0 0 * * * *", 1, false},
		{"*/30 * * * *", 2, false},
		{"30 2 * * *", 0, true},
		{"0 1 * * *", 0, true},
		{"@daily", 0, true},
	}
	for _, dd := range days {
		for _, sp := range specs {
			s := mustParse(t, sp.spec, dd.loc)
			want := dd.n * sp.mult
			if sp.fix {
				want = 1 // a fixed daily time fires exactly once on every day
			}
			require.Equal(t, want, countDay(t, s, dd.y, dd.m, dd.d), "%s in %s on %d-%02d-%02d", sp.spec, dd.loc, dd.y, dd.m, dd.d)
		}
	}
}

func TestStrictlyIncreasing(t *testing.T) {
	t.Parallel()
	zones := []string{"UTC", "America/New_York", "Europe/Amsterdam", "Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Apia"}
	specs := []string{
		"0 * * * *", "*/30 * * * *", "30 2 * * *", "0,30 1,2,3 * * *", "* 2 * * *",
		"0,30 */10 1-3 * * *", "*/20 */5 * * * *", "0 0 * * *", "@every 1h", "@every 7m", "@hourly", "15 1-3 * * *",
		"0 0 0 * * *", "0 30 0 * * *",
	}
	// Scan two days either side of every 2011 transition of each zone.
	for _, z := range zones {
		t.Run(z, func(t *testing.T) {
			t.Parallel()
			loc := mustLoad(t, z)
			var transitions []time.Time
			for x := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC); x.Year() < 2012; {
				_, end := x.In(loc).ZoneBounds()
				if end.IsZero() {
					break
				}
				transitions = append(transitions, end)
				x = end
			}
			if z != "UTC" {
				require.NotEmpty(t, transitions, z)
			} else {
				transitions = []time.Time{time.Date(2011, 6, 1, 0, 0, 0, 0, time.UTC)}
			}
			for _, sp := range specs {
				s := mustParse(t, sp, loc)
				for _, tr := range transitions {
					prev, until := tr.Add(-48*time.Hour), tr.Add(48*time.Hour)
					for prev.Before(until) {
						x := s.Next(prev)
						require.False(t, x.IsZero(), "%s %s after %v", sp, z, prev)
						require.True(t, x.After(prev), "%s %s: %v not after %v", sp, z, x, prev)
						prev = x
					}
				}
			}
		})
	}
	// Around 2026 transitions with fine-grained specs.
	for _, z := range []string{"America/New_York", "Europe/Amsterdam"} {
		loc := mustLoad(t, z)
		for _, sp := range []string{"*/10 * 1-3 * * *", "* * * * *", "0 */15 2 * * *"} {
			s := mustParse(t, sp, loc)
			for _, start := range []time.Time{
				time.Date(2026, 3, 7, 22, 0, 0, 0, time.UTC),
				time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC),
				time.Date(2026, 10, 31, 22, 0, 0, 0, time.UTC),
			} {
				got := s.NextN(start, 500)
				require.Len(t, got, 500)
				for i := 1; i < len(got); i++ {
					require.True(t, got[i].After(got[i-1]), "%s %s: %v then %v", sp, z, got[i-1], got[i])
				}
			}
		}
	}
}

func TestDayOfWeekSeven(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct{ spec, same string }{
		{"0 0 * * 7", "0 0 * * 0"},
		{"0 0 * * 7", "0 0 * * SUN"},
		{"0 0 * * 7", "@WEEKLY"},
		{"0 0 * * 5-7", "0 0 * * 5,6,0"},
		{"0 0 * * 1,7", "0 0 * * 0,1"},
		{"0 0 * * sat-7", "0 0 * * 6,0"},
		{"0 0 * * Fri-7", "0 0 * * 5,6,0"},
		{"0 0 * * 0-7", "0 0 * * 0-6"},
		{"0 0 * * 1-7/2", "0 0 * * 1,3,5,0"},
		{"0 0 * * 7-7", "0 0 * * 0"},
		{"0 0 0 * * 7", "0 0 * * 0"},
		{"0 0 * * 7,3-4", "0 0 * * 0,3,4"},
	}
	for _, c := range cases {
		a, b := mustParse(t, c.spec, nil), mustParse(t, c.same, nil)
		require.Equal(t, b.NextN(from, 20), a.NextN(from, 20), "%s vs %s", c.spec, c.same)
	}
	got := mustParse(t, "0 9 * * 7", nil).Next(from) // 2026-01-01 is a Thursday
	require.Equal(t, time.Date(2026, 1, 4, 9, 0, 0, 0, time.UTC), got)
	require.Equal(t, time.Sunday, got.Weekday())
}

func TestDescriptorsAnyCase(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 2, 17, 13, 14, 15, 0, time.UTC)
	cases := []struct{ spec, same string }{
		{"@WEEKLY", "0 0 * * 0"},
		{"@Weekly", "0 0 * * 0"},
		{"@yearly", "0 0 1 1 *"},
		{"@ANNUALLY", "0 0 1 1 *"},
		{"@Monthly", "0 0 1 * *"},
		{"@DAILY", "0 0 * * *"},
		{"@midnight", "0 0 * * *"},
		{"@MIDNIGHT", "0 0 * * *"},
		{"@HOURLY", "0 * * * *"},
		{"@EVERY 1h", "@every 1h"},
		{"  @daily  ", "0 0 * * *"},
		{"0 0 1 JAN *", "0 0 1 1 *"},
		{"0 0 1 jan *", "0 0 1 1 *"},
		{"0 0 1 Jan-MAR *", "0 0 1 1-3 *"},
		{"0 0 * * MON-fri", "0 0 * * 1-5"},
	}
	for _, c := range cases {
		a, b := mustParse(t, c.spec, nil), mustParse(t, c.same, nil)
		require.Equal(t, b.NextN(from, 10), a.NextN(from, 10), "%s vs %s", c.spec, c.same)
		require.Equal(t, b.IsInterval(), a.IsInterval(), c.spec)
	}
	require.Equal(t, "@WEEKLY", mustParse(t, "@WEEKLY", nil).String())
	require.Equal(t, time.Date(2026, 2, 22, 0, 0, 0, 0, time.UTC), mustParse(t, "@WEEKLY", nil).Next(from))
}

func TestSixFieldSeconds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		spec string
		from string
		want []string
	}{
		{"*/15 * * * * *", "2026-05-01T10:00:07Z", []string{"2026-05-01T10:00:15Z", "2026-05-01T10:00:30Z", "2026-05-01T10:00:45Z", "2026-05-01T10:01:00Z"}},
		{"30 0 12 * * *", "2026-05-01T12:00:30Z", []string{"2026-05-02T12:00:30Z"}},
		{"30 0 12 * * *", "2026-05-01T12:00:29.999Z", []string{"2026-05-01T12:00:30Z"}},
		{"0 0 12 * * *", "2026-05-01T11:00:00Z", []string{"2026-05-01T12:00:00Z"}},
		{"0 12 * * *", "2026-05-01T11:00:00Z", []string{"2026-05-01T12:00:00Z"}}, // 5 fields: second 0
		{"5,10 * * * * *", "2026-05-01T11:00:06Z", []string{"2026-05-01T11:00:10Z", "2026-05-01T11:01:05Z"}},
	}
	for _, c := range cases {
		s := mustParse(t, c.spec, nil)
		requireTimes(t, s, c.want, s.NextN(mustTime(t, c.from), len(c.want)))
	}
}

func TestLeapDay(t *testing.T) {
	t.Parallel()
	s := mustParse(t, "0 0 29 2 *", nil)
	cases := []struct {
		from string
		want []string
	}{
		{"2023-01-01T00:00:00Z", []string{"2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"2024-02-29T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"2024-03-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"}},
		{"2027-12-31T23:59:59Z", []string{"2028-02-29T00:00:00Z"}},
	}
	for _, c := range cases {
		requireTimes(t, s, c.want, s.NextN(mustTime(t, c.from), len(c.want)))
	}
	ams := mustLoad(t, "Europe/Amsterdam")
	s = mustParse(t, "0 0 29 2 *", ams)
	requireTimes(t, s, []string{"2028-02-29T00:00:00+01:00"}, s.NextN(mustTime(t, "2024-03-01T00:00:00Z"), 1))
}

func TestEveryEpochAligned(t *testing.T) {
	t.Parallel()
	ams := mustLoad(t, "Europe/Amsterdam")
	cases := []struct {
		spec string
		loc  *time.Location
		from string
		want []string
	}{
		// 86400 is a multiple of 90, so UTC midnight is a tick.
		{"@every 90s", nil, "2026-01-01T00:00:00Z", []string{"2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"}},
		{"@every 90s", nil, "2026-01-01T00:00:01Z", []string{"2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"}},
		{"@every 90s", nil, "2026-01-01T00:01:29.999999999Z", []string{"2026-01-01T00:01:30Z"}},
		{"@every 90s", nil, "2026-01-01T00:01:30Z", []string{"2026-01-01T00:03:00Z"}},
		{"@every 90s", ams, "2026-01-01T01:00:00+01:00", []string{"2026-01-01T00:01:30Z"}},
		{"@every 1m30s", nil, "2026-01-01T00:00:00Z", []string{"2026-01-01T00:01:30Z"}},
		// 1767225600 mod 18007 = 613: ticks at 04:49:54 and 09:50:01.
		{"@every 5h7s", nil, "2026-01-01T00:00:00Z", []string{"2026-01-01T04:49:54Z", "2026-01-01T09:50:01Z"}},
		{"@every 1.5s", nil, "2026-01-01T00:00:00Z", []string{"2026-01-01T00:00:01.5Z", "2026-01-01T00:00:03Z"}},
		{"@every 90s", nil, "1969-12-31T23:58:00Z", []string{"1969-12-31T23:58:30Z", "1970-01-01T00:00:00Z"}},
	}
	for _, c := range cases {
		s := mustParse(t, c.spec, c.loc)
		requireTimes(t, s, c.want, s.NextN(mustTime(t, c.from), len(c.want)))
	}
	s := mustParse(t, "@every 90s", nil)
	require.Equal(t, 90*time.Second, s.Every())
	require.True(t, s.IsInterval())
	// Two "instances" started at different moments agree on ticks.
	a := s.Next(mustTime(t, "2026-04-01T10:00:01.3Z"))
	b := s.Next(mustTime(t, "2026-04-01T10:00:44.9Z"))
	require.Equal(t, a, b)
	require.Zero(t, a.Unix()%90)
}

func TestNeverFires(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	for _, spec := range []string{"0 0 30 2 *", "0 0 31 4 *", "0 0 0 30 2 *", "0 * 30 2 *", "0 0 31 2,4,6,9,11 *"} {
		for _, loc := range []*time.Location{nil, ny} {
			start := time.Now()
			_, err := Parse(spec, loc)
			require.ErrorContains(t, err, "never fires", spec)
			require.Less(t, time.Since(start), 5*time.Second, spec)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ spec, want string }{
		{"*/61 * * * *", `invalid minute field "*/61": step 61 is outside 1..59`},
		{"0 */24 * * *", `invalid hour field "*/24": step 24 is outside 1..23`},
		{"0 0 1-31/0 * *", `invalid`},
		{"", "empty spec"},
		{"   ", "empty spec"},
		{"CRON_TZ=Europe/Amsterdam 0 * * * *", "time zone prefix"},
		{"TZ=UTC 0 * * * *", "time zone prefix"},
		{"tz=UTC 0 * * * *", "time zone prefix"},
		{"* * *", "expected 5 fields"},
		{"* * * * * * *", "found 7"},
		{"60 * * * *", "invalid minute field"},
		{"0 24 * * *", "invalid hour field"},
		{"0 0 32 * *", "invalid day-of-month field"},
		{"0 0 0 * *", "invalid day-of-month field"},
		{"0 0 * 13 *", "invalid month field"},
		{"0 0 * foo *", "invalid month field"},
		{"0 0 * * 8", "invalid day-of-week field"},
		{"0 0 * * 7-5", "invalid day-of-week field"},
		{"0 0 * * mon-7-2", "invalid day-of-week field"},
		{"61 0 0 * * *", "invalid seconds field"},
		{"*/0 * * * *", "invalid minute field"},
		{"@every", "@every takes exactly one duration"},
		{"@every 500ms", "below the minimum of 1s"},
		{"@every -5s", "below the minimum of 1s"},
		{"@every soon", "invalid @every duration"},
		{"@fortnightly", "unknown descriptor"},
		{"@daily 1", "takes no arguments"},
	}
	for _, c := range cases {
		_, err := Parse(c.spec, nil)
		require.Error(t, err, c.spec)
		require.True(t, strings.HasPrefix(err.Error(), "cronspec: "), err.Error())
		require.Contains(t, err.Error(), c.want, c.spec)
	}
}

func TestLocationAndKind(t *testing.T) {
	t.Parallel()
	s := mustParse(t, "0 9 * * *", nil)
	require.Equal(t, time.UTC, s.Location())
	got := s.Next(time.Date(2026, 6, 1, 10, 0, 0, 0, mustLoad(t, "Asia/Tokyo"))) // 01:00Z
	require.Equal(t, time.UTC, got.Location())
	require.Equal(t, time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC), got)

	cases := []struct {
		spec     string
		interval bool
	}{
		{"0 * * * *", true},
		{"*/30 * * * *", true},
		{"0 */2 * * *", true},
		{"0 ? * * *", true},
		{"0 0 * * * *", true},
		{"@hourly", true},
		{"@every 1h", true},
		{"0 2 * * *", false},
		{"0 1,13 * * *", false},
		{"0 9-17 * * *", false},
		{"0 0-23 * * *", false},
		{"* 2 * * *", false},
		{"@daily", false},
		{"@weekly", false},
		{"@monthly", false},
		{"@yearly", false},
	}
	for _, c := range cases {
		s := mustParse(t, c.spec, nil)
		require.Equal(t, c.interval, s.IsInterval(), c.spec)
		require.NotEmpty(t, s.Describe())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"0 * * * *", "30 2 * * *", "@every 90s", "@WEEKLY", "0 0 * * 5-7", "*/15 * * * * *",
		"0 0 29 2 *", "0 0 30 2 *", "CRON_TZ=UTC 0 * * * *", "1-7/2 * * * 7", "@every 1.5s", "? ? ? ? ? ?",
	} {
		f.Add(s)
	}
	zones := []*time.Location{time.UTC}
	for _, z := range []string{"America/New_York", "Europe/Amsterdam"} {
		zones = append(zones, mustLoad(f, z))
	}
	samples := []time.Time{
		time.Date(2026, 3, 8, 6, 59, 59, 500, time.UTC),
		time.Date(2026, 3, 29, 0, 59, 0, 0, time.UTC),
		time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC),
		time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	f.Fuzz(func(t *testing.T, spec string) {
		for _, loc := range zones {
			s, err := Parse(spec, loc)
			if err != nil {
				if !strings.HasPrefix(err.Error(), "cronspec: ") {
					t.Fatalf("error without prefix: %v", err)
				}
				continue
			}
			for _, from := range samples {
				n := s.Next(from)
				if !n.IsZero() && !n.After(from) {
					t.Fatalf("%q in %s: Next(%v) = %v, not after", spec, loc, from, n)
				}
			}
		}
	})
}
