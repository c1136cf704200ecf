package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// Three instances whose clocks differ by up to 1.6s fire a per-second job
// for 30s: every nominal tick gets exactly one run, none is missing.
func TestThreeSkewedInstancesOneRunPerTick(t *testing.T) {
	t.Parallel()
	for _, cron := range []string{"@every 1s", "* * * * * *"} {
		t.Run(cron, func(t *testing.T) {
			t.Parallel()
			jobstest.For(t, func(t *testing.T, store *jobs.Store) {
				t.Parallel()
				set := defs(job("Sync", cron, "", "", definitions.OverlapAllow))
				real0 := utc("2026-05-01T12:00:00.3Z")
				var hs []*harness
				for _, skew := range []time.Duration{-800 * time.Millisecond, 0, 800 * time.Millisecond} {
					hs = append(hs, start(t, Config{Store: store, Definitions: set}, real0.Add(skew)))
				}
				for range 30 {
					nows := make([]time.Time, len(hs))
					for i, h := range hs { // all three evaluate concurrently
						nows[i] = h.tick()
					}
					for i, h := range hs {
						h.wait(nows[i])
					}
				}
				// The first instance started at 11:59:59.5 (nothing caught
				// up); the one ahead ended at 12:00:31.1.
				want := every(utc("2026-05-01T12:00:00Z"), utc("2026-05-01T12:00:31Z"), time.Second)
				require.Equal(t, want, ticks(t, store, "Sync"))

				created := 0
				for _, h := range hs {
					for _, f := range h.fires.get() {
						if f.Created {
							created++
						}
						require.True(t, f.Scheduled.Equal(f.Scheduled.Truncate(time.Second)), "nominal tick %s", f.Scheduled)
					}
				}
				require.Equal(t, len(want), created, "OnFire created=true once per tick")
				for _, r := range runs(t, store, "Sync") {
					require.Equal(t, jobs.TriggerSchedule, r.TriggerKind)
					require.Equal(t, TriggeredBy, r.TriggeredBy)
				}
			})
		})
	}
}

// The first evaluation ever starts from now: a tick a few seconds old is
// not caught up, the next one fires.
func TestFirstStartDoesNotCatchUp(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		t.Parallel()
		at := utc("2026-05-01T10:00:03.25Z")
		h := start(t, Config{Store: store, Definitions: defs(job("Sync", "@every 1m", "", definitions.MisfireRunOnce, ""))}, at)
		require.Empty(t, ticks(t, store, "Sync"))
		last, ok, err := store.LastTick(context.Background(), "Sync")
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, at.Equal(last), "baseline %s", last)
		h.advance(57)
		require.Equal(t, []time.Time{utc("2026-05-01T10:01:00Z")}, ticks(t, store, "Sync"))
		require.Equal(t, []fire{{"Sync", utc("2026-05-01T10:01:00Z"), utc("2026-05-01T10:01:00.25Z"), true}}, h.fires.get())
	})
}

// After an hour of downtime, skip records the gap and catches nothing up;
// runOnce enqueues exactly one run for the latest missed tick, recording
// how many were missed.
func TestMisfireAfterDowntime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, misfire, overlap string
		// finish the runs of before the downtime (else they stay queued)
		finish      bool
		wantCatchUp bool
	}{
		{"skip", definitions.MisfireSkip, definitions.OverlapAllow, false, false},
		{"skip forbid", definitions.MisfireSkip, definitions.OverlapForbid, true, false},
		{"runOnce", definitions.MisfireRunOnce, definitions.OverlapAllow, false, true},
		{"runOnce forbid", definitions.MisfireRunOnce, definitions.OverlapForbid, true, true},
		{"runOnce forbid with an active run", definitions.MisfireRunOnce, definitions.OverlapForbid, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jobstest.For(t, func(t *testing.T, store *jobs.Store) {
				t.Parallel()
				ctx := context.Background()
				set := defs(job("Sync", "@every 1m", "", tc.misfire, tc.overlap))
				cfg := Config{Store: store, Definitions: set, Resolution: 10 * time.Second}

				h1 := start(t, cfg, utc("2026-05-01T10:00:30.25Z"))
				h1.advance(12) // to 10:02:30.25
				before := ticks(t, store, "Sync")
				wantBefore := []time.Time{utc("2026-05-01T10:01:00Z")}
				if tc.overlap != definitions.OverlapForbid { // forbid: 10:01's run is still queued at 10:02
					wantBefore = append(wantBefore, utc("2026-05-01T10:02:00Z"))
				}
				require.Equal(t, wantBefore, before)
				require.NoError(t, h1.s.Stop())
				if tc.finish {
					for _, r := range runs(t, store, "Sync") {
						_, err := store.Cancel(ctx, r.ID, "test")
						require.NoError(t, err)
					}
				}

				// One hour later a new process starts.
				restart := utc("2026-05-01T11:02:40.25Z")
				h2 := start(t, cfg, restart)
				got := runs(t, store, "Sync")[len(before):]
				// 10:02 was handled before the downtime (enqueued, or skipped
				// by forbid): 10:03 … 11:02 are missed.
				lastBefore := utc("2026-05-01T10:02:00Z")
				missed := int64(60)

				st, err := Status(ctx, store, "Sync")
				require.NoError(t, err)
				require.NotNil(t, st.Gap, "gap recorded")
				require.Equal(t, missed, st.Gap.Count)
				require.False(t, st.Gap.AtLeast)
				require.True(t, lastBefore.Add(time.Minute).Equal(st.Gap.First), "first missed %s", st.Gap.First)
				require.True(t, utc("2026-05-01T11:02:00Z").Equal(st.Gap.Last), "last missed %s", st.Gap.Last)
				require.Equal(t, tc.misfire, st.Gap.Policy)
				require.True(t, restart.Equal(st.Gap.DetectedAt))
				require.True(t, utc("2026-05-01T11:02:00Z").Equal(*st.LastTick), "last tick %s", st.LastTick)

				if tc.wantCatchUp {
					require.Len(t, got, 1, "exactly one catch-up run")
					require.True(t, utc("2026-05-01T11:02:00Z").Equal(*got[0].ScheduledFor))
					require.Equal(t, fmt.Sprintf("scheduler (catch-up, %d missed)", missed), got[0].TriggeredBy)
					require.NotNil(t, st.Gap.CatchUp)
					require.True(t, utc("2026-05-01T11:02:00Z").Equal(*st.Gap.CatchUp))
				} else {
					require.Empty(t, got, "no catch-up run")
					require.Nil(t, st.Gap.CatchUp)
				}
				if tc.misfire == definitions.MisfireRunOnce && !tc.wantCatchUp {
					require.NotNil(t, st.Skip)
					require.True(t, st.Skip.CatchUp)
					require.Contains(t, st.Skip.Reason, "overlap forbid")
				}

				// Schedules go on as usual: the next tick fires on time.
				if tc.overlap == definitions.OverlapForbid {
					for _, r := range runs(t, store, "Sync") {
						if !r.Status.Final() {
							_, err := store.Cancel(ctx, r.ID, "test")
							require.NoError(t, err)
						}
					}
				}
				h2.advance(2) // 11:03:00.25
				all := ticks(t, store, "Sync")
				require.True(t, utc("2026-05-01T11:03:00Z").Equal(all[len(all)-1]), "next tick fired, got %v", all)
				require.Len(t, all, len(before)+len(got)+1)
			})
		})
	}
}

// A new scheduler on the same store continues from the database: it does
// not fire again what another instance fired, even with its clock behind,
// and fires the next tick.
func TestRestartResumesFromDatabase(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		t.Parallel()
		cfg := Config{Store: store, Definitions: defs(job("Sync", "@every 5s", "", definitions.MisfireRunOnce, definitions.OverlapAllow))}
		h1 := start(t, cfg, utc("2026-05-01T10:00:00.5Z"))
		h1.advance(10) // to 10:00:10.5
		require.Equal(t, every(utc("2026-05-01T10:00:05Z"), utc("2026-05-01T10:00:10Z"), 5*time.Second), ticks(t, store, "Sync"))
		require.NoError(t, h1.s.Stop())
		require.False(t, h1.s.Running())

		h2 := start(t, cfg, utc("2026-05-01T10:00:09.7Z")) // 800ms behind
		h2.advance(5)                                      // to 10:00:14.7
		require.Empty(t, h2.fires.get(), "an already fired tick is not fired again")
		h2.advance(1) // 10:00:15.7
		// Evaluated when the clock read 10:00:15.7: 700ms of lag.
		require.Equal(t, []fire{{"Sync", utc("2026-05-01T10:00:15Z"), utc("2026-05-01T10:00:15.7Z"), true}}, h2.fires.get())
		require.Equal(t, every(utc("2026-05-01T10:00:05Z"), utc("2026-05-01T10:00:15Z"), 5*time.Second), ticks(t, store, "Sync"))
	})
}

// Overlap policies with a run of the job left queued, running or finished.
func TestOverlap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		overlap string
		state   jobs.Status // of the first tick's run when the second is due
		// want: whether the 2nd and 3rd ticks are enqueued
		second, third bool
		reason        string // of the skip, when one is expected
	}{
		{definitions.OverlapForbid, jobs.StatusQueued, false, false, "overlap forbid: the job has 1 queued and 0 running run(s)"},
		{definitions.OverlapForbid, jobs.StatusRunning, false, false, "overlap forbid: the job has 0 queued and 1 running run(s)"},
		{definitions.OverlapForbid, jobs.StatusCancelled, true, false, "overlap forbid: the job has 1 queued and 0 running run(s)"},
		{definitions.OverlapQueue, jobs.StatusQueued, false, false, "overlap queue: a run is already waiting (1 queued)"},
		{definitions.OverlapQueue, jobs.StatusRunning, true, false, "overlap queue: a run is already waiting (1 queued)"},
		{definitions.OverlapQueue, jobs.StatusCancelled, true, false, "overlap queue: a run is already waiting (1 queued)"},
		{definitions.OverlapAllow, jobs.StatusQueued, true, true, ""},
		{definitions.OverlapAllow, jobs.StatusRunning, true, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.overlap+"/"+string(tc.state), func(t *testing.T) {
			t.Parallel()
			jobstest.For(t, func(t *testing.T, store *jobs.Store) {
				t.Parallel()
				ctx := context.Background()
				f := &fires{}
				s, err := New(Config{Store: store, Definitions: defs(job("Sync", "@every 1m", "", "", tc.overlap)), Log: quietLog(), OnFire: f.hook})
				require.NoError(t, err)
				require.NoError(t, s.Tick(ctx, utc("2026-05-01T10:00:30Z"))) // baseline
				require.NoError(t, s.Tick(ctx, utc("2026-05-01T10:01:00Z")))
				first := runs(t, store, "Sync")
				require.Len(t, first, 1)
				switch tc.state {
				case jobs.StatusRunning:
					_, err := store.ClaimRun(ctx, first[0].ID, "worker", time.Minute)
					require.NoError(t, err)
				case jobs.StatusCancelled:
					_, err := store.Cancel(ctx, first[0].ID, "test")
					require.NoError(t, err)
				}

				require.NoError(t, s.Tick(ctx, utc("2026-05-01T10:02:00Z")))
				require.NoError(t, s.Tick(ctx, utc("2026-05-01T10:03:00Z")))
				want := []time.Time{utc("2026-05-01T10:01:00Z")}
				if tc.second {
					want = append(want, utc("2026-05-01T10:02:00Z"))
				}
				if tc.third {
					want = append(want, utc("2026-05-01T10:03:00Z"))
				}
				require.Equal(t, want, ticks(t, store, "Sync"))
				require.Len(t, f.get(), len(want), "OnFire only for enqueued ticks")

				st, err := Status(ctx, store, "Sync")
				require.NoError(t, err)
				require.True(t, utc("2026-05-01T10:03:00Z").Equal(*st.LastTick), "skipped ticks count as handled")
				if tc.reason == "" {
					require.Nil(t, st.Skip)
					return
				}
				require.NotNil(t, st.Skip)
				require.Equal(t, tc.reason, st.Skip.Reason)
				require.False(t, st.Skip.CatchUp)
				require.True(t, utc("2026-05-01T10:03:00Z").Equal(st.Skip.Tick), "skipped %s", st.Skip.Tick)
			})
		})
	}
}

// A job whose uniqueBy parameters match an active run skips the tick.
func TestUniqueBySkipsTick(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		t.Parallel()
		ctx := context.Background()
		def := "EU"
		j := job("Sync", "@every 1m", "", "", definitions.OverlapAllow,
			definitions.Parameter{Name: "Region", Type: definitions.TypeString, Default: &def})
		j.UniqueBy = []string{"Region"}
		s, err := New(Config{Store: store, Definitions: defs(j), Log: quietLog()})
		require.NoError(t, err)
		for _, at := range []string{"2026-05-01T10:00:30Z", "2026-05-01T10:01:00Z", "2026-05-01T10:02:00Z"} {
			require.NoError(t, s.Tick(ctx, utc(at)))
		}
		rs := runs(t, store, "Sync")
		require.Len(t, rs, 1)
		require.JSONEq(t, `{"Region":"EU"}`, string(rs[0].Parameters), "defaults are the parameters")
		st, err := Status(ctx, store, "Sync")
		require.NoError(t, err)
		require.NotNil(t, st.Skip)
		require.Equal(t, fmt.Sprintf("a run with the same unique parameters is active (run %d)", rs[0].ID), st.Skip.Reason)
	})
}

// Reload adds and removes scheduled jobs; a set that cannot be scheduled
// is refused and the current one keeps running.
func TestReload(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		t.Parallel()
		ctx := context.Background()
		a := job("A", "@every 1m", "", "", definitions.OverlapAllow)
		b := job("B", "@every 1m", "", "", definitions.OverlapAllow)
		s, err := New(Config{Store: store, Definitions: defs(a), Log: quietLog()})
		require.NoError(t, err)
		tick := func(at string) { require.NoError(t, s.Tick(ctx, utc(at))) }

		tick("2026-05-01T10:00:30Z")
		require.NoError(t, s.Reload(defs(a, b)))
		tick("2026-05-01T10:01:00Z") // A fires; B starts from now
		tick("2026-05-01T10:02:00Z")
		require.NoError(t, s.Reload(defs(b)))
		tick("2026-05-01T10:03:00Z")

		bad := job("C", "@every 1m", "", "", "", definitions.Parameter{Name: "OrderNumber", Type: definitions.TypeString, Required: true})
		err = s.Reload(defs(b, bad))
		require.ErrorContains(t, err, "job C is scheduled")
		require.ErrorContains(t, err, "OrderNumber")
		tick("2026-05-01T10:04:00Z")

		require.Equal(t, every(utc("2026-05-01T10:01:00Z"), utc("2026-05-01T10:02:00Z"), time.Minute), ticks(t, store, "A"))
		require.Equal(t, every(utc("2026-05-01T10:02:00Z"), utc("2026-05-01T10:04:00Z"), time.Minute), ticks(t, store, "B"))
		require.Empty(t, ticks(t, store, "C"))
	})
}

// Through gocron on a fake clock, in Europe/Amsterdam: on the spring-forward
// day a 02:30 job fires once at 03:00 CEST and an hourly job 23 times; on the
// fall-back day the 02:30 job fires once (first occurrence) and the hourly
// job 25 times.
func TestDSTThroughScheduler(t *testing.T) {
	t.Parallel()
	ams, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	tests := []struct {
		name       string
		day        string // local midnight that starts the day, UTC
		hours      int    // the day's length
		wantDaily  string
		wantHourly int
	}{
		{"spring forward", "2026-03-28T23:00:00Z", 23, "2026-03-29T03:00:00+02:00", 23},
		{"fall back", "2026-10-24T22:00:00Z", 25, "2026-10-25T02:30:00+02:00", 25},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jobstest.For(t, func(t *testing.T, store *jobs.Store) {
				t.Parallel()
				set := defs(
					job("Daily", "30 2 * * *", "Europe/Amsterdam", "", definitions.OverlapAllow),
					job("Hourly", "0 * * * *", "Europe/Amsterdam", "", definitions.OverlapAllow),
				)
				h := start(t, Config{Store: store, Definitions: set, Resolution: time.Minute}, utc(tc.day).Add(250*time.Millisecond))
				h.advance(tc.hours * 60) // to the next local midnight
				require.Equal(t, []time.Time{utc(tc.wantDaily)}, ticks(t, store, "Daily"))
				hourly := ticks(t, store, "Hourly")
				require.Len(t, hourly, tc.wantHourly)
				require.Equal(t, every(utc(tc.day).Add(time.Hour), utc(tc.day).Add(time.Duration(tc.hours)*time.Hour), time.Hour), hourly,
					"one run per real hour")
				// Wall clock: each hour's :00, none of 02:xx on the short day.
				for _, tk := range hourly {
					require.Zero(t, tk.In(ams).Minute())
				}
				for _, f := range h.fires.get() {
					require.Equal(t, 250*time.Millisecond, f.Fired.Sub(f.Scheduled), "fired at the first evaluation after the tick")
				}
			})
		})
	}
}

// New and Reload refuse what cannot be scheduled, naming the job.
func TestNewRejects(t *testing.T) {
	t.Parallel()
	store := jobstest.Open(t, "sqlite")
	def := "x"
	tests := []struct {
		name string
		job  *definitions.Job
		want string
	}{
		{"required parameter without default",
			job("J", "@hourly", "", "", "", definitions.Parameter{Name: "OrderNumber", Type: definitions.TypeString, Required: true}),
			"job J is scheduled but its parameters cannot be filled without an operator (parameter OrderNumber: required)"},
		{"invalid default", job("J", "@hourly", "", "", "", definitions.Parameter{Name: "N", Type: definitions.TypeInt, Default: &def}),
			"job J is scheduled"},
		{"bad cron", job("J", "61 * * * *", "", "", ""), "scheduler: job J: cronspec:"},
		{"bad zone", job("J", "@hourly", "Mars/Olympus", "", ""), `job J: time zone "Mars/Olympus"`},
		{"local zone", job("J", "@hourly", "Local", "", ""), `time zone "Local" is not allowed`},
		{"bad misfire", job("J", "@hourly", "", "always", ""), `unknown misfire policy "always"`},
		{"bad overlap", job("J", "@hourly", "", "", "sometimes"), `unknown overlap policy "sometimes"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			set := &definitions.Set{Jobs: []*definitions.Job{tc.job}} // no ApplyDefaults: keep bad values
			_, err := New(Config{Store: store, Definitions: set})
			require.ErrorContains(t, err, tc.want)
			s, err := New(Config{Store: store})
			require.NoError(t, err)
			require.ErrorContains(t, s.Reload(set), tc.want)
		})
	}
	_, err := New(Config{})
	require.ErrorContains(t, err, "Store is nil")
	_, err = New(Config{Store: store, Resolution: -time.Second})
	require.ErrorContains(t, err, "negative resolution")
	// An optional parameter without default is simply absent.
	_, err = New(Config{Store: store, Definitions: defs(job("J", "@hourly", "", "", "", definitions.Parameter{Name: "N", Type: definitions.TypeInt}))})
	require.NoError(t, err)
}

func TestNextTimes(t *testing.T) {
	t.Parallel()
	from := utc("2026-03-28T23:00:00Z")
	tests := []struct {
		name string
		job  *definitions.Job
		n    int
		want []string
	}{
		{"utc default", job("J", "0 6 * * *", "", "", ""), 2, []string{"2026-03-29T06:00:00Z", "2026-03-30T06:00:00Z"}},
		{"spring gap", job("J", "30 2 * * *", "Europe/Amsterdam", "", ""), 2, []string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"hourly across the gap", job("J", "@hourly", "Europe/Amsterdam", "", ""), 3, []string{"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"}},
		{"none", job("J", "@hourly", "", "", ""), 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := NextTimes(tc.job, from, tc.n)
			require.NoError(t, err)
			var text []string
			for _, g := range got {
				text = append(text, g.Format(time.RFC3339))
			}
			require.Equal(t, tc.want, text)
		})
	}
	_, err := NextTimes(&definitions.Job{Name: "Manual"}, from, 3)
	require.ErrorContains(t, err, "job Manual has no schedule")
}

func TestClockSkew(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		t.Parallel()
		skew, err := ClockSkew(context.Background(), store)
		require.NoError(t, err)
		if store.Dialect() != "mysql" {
			require.Zero(t, skew)
			return
		}
		// The server runs on this machine: same clock, within a second.
		require.Less(t, skew.Abs(), time.Second, "skew %s", skew)
	})
}

// Three instances with skewed clocks find the same hour-long gap at the
// same moment: runOnce never becomes a storm (one catch-up run plus the
// ticks that some instance still counts as on time).
func TestRunOnceConcurrentInstances(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		t.Parallel()
		ctx := context.Background()
		base := utc("2026-05-01T11:00:00.3Z")
		for i := range 8 {
			name := fmt.Sprintf("Sync%d", i)
			set := defs(job(name, "@every 1s", "", definitions.MisfireRunOnce, definitions.OverlapAllow))
			require.NoError(t, AdvanceTick(ctx, store, name, base.Add(-time.Hour)))
			var ss []*Scheduler
			for range 3 {
				s, err := New(Config{Store: store, Definitions: set, Log: quietLog()})
				require.NoError(t, err)
				ss = append(ss, s)
			}
			errs := make(chan error, len(ss))
			gate := make(chan struct{})
			for k, s := range ss {
				go func() {
					<-gate
					errs <- s.Tick(ctx, base.Add(time.Duration(k-1)*800*time.Millisecond))
				}()
			}
			close(gate)
			for range ss {
				require.NoError(t, <-errs)
			}
			rs := runs(t, store, name)
			catchUps := 0
			for _, r := range rs {
				if r.TriggeredBy != TriggeredBy {
					catchUps++
				}
			}
			// On time for the instance at 11:00:01.1 (grace 5s): 10:59:57 … 11:00:01.
			// Alone, the instance furthest ahead (11:00:01.1, grace 5s) makes
			// one catch-up (10:59:56) and fires 10:59:57 … 11:00:01 on time:
			// 6 runs. The one furthest behind (10:59:59.5) counts 10:59:55 …
			// 10:59:59 as on time, so the cluster makes at most one catch-up
			// plus the ticks in (10:59:54.5, 11:00:01.1]: 8 runs.
			require.GreaterOrEqual(t, len(rs), 6)
			require.LessOrEqual(t, len(rs), 1+7, "no storm: %d runs", len(rs))
			require.GreaterOrEqual(t, catchUps, 1)
		}
	})
}
