package scheduler

import (
	"context"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor bounds every wait on another goroutine; it is a failure timeout,
// never a way to let time pass (the clocks are fake).
const waitFor = 20 * time.Second

// job returns a scheduled job definition (no connection or processor: the
// scheduler only enqueues).
func job(name, cron, tz, misfire, overlap string, params ...definitions.Parameter) *definitions.Job {
	return &definitions.Job{
		Name:        name,
		Connection:  "erp",
		Processor:   "noop",
		Parameters:  params,
		Schedule:    &definitions.Schedule{Cron: cron, Timezone: tz, Misfire: misfire},
		Concurrency: definitions.Concurrency{Overlap: overlap},
	}
}

// defs returns a Set of js with defaults applied.
func defs(js ...*definitions.Job) *definitions.Set {
	s := &definitions.Set{Jobs: js}
	s.ApplyDefaults()
	return s
}

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// fire is one OnFire call.
type fire struct {
	Job       string
	Scheduled time.Time
	Fired     time.Time
	Created   bool
}

// fires records OnFire calls.
type fires struct {
	mu  sync.Mutex
	all []fire
}

func (f *fires) hook(job string, scheduled, fired time.Time, created bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = append(f.all, fire{job, scheduled.UTC(), fired.UTC(), created})
}

func (f *fires) get() []fire {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fire(nil), f.all...)
}

// harness is a started Scheduler on a fake clock, advanced one
// Resolution at a time, each step waiting for gocron's evaluation.
//
// Start harness clocks off the Resolution grid (e.g. at 10:00:30.25 for a
// 10s Resolution): when the fake clock lands exactly on gocron's next run
// time and gocron's bookkeeping lags behind the test, gocron v2.21.2 re-arms
// a zero-length timer and fires the job again and again at the same instant
// (a real clock never lands on the nanosecond).
type harness struct {
	t     *testing.T
	s     *Scheduler
	clock *clockwork.FakeClock
	res   time.Duration
	fires *fires

	mu      sync.Mutex
	last    time.Time     // latest evaluation done
	changed chan struct{} // closed when last changes
}

// start creates and starts a scheduler at clock time at. cfg.Store and
// cfg.Definitions must be set; the clock, log and OnFire are the harness's.
// The scheduler is stopped when the test ends (and may be stopped earlier).
func start(t *testing.T, cfg Config, at time.Time) *harness {
	t.Helper()
	h := &harness{t: t, clock: clockwork.NewFakeClockAt(at), fires: &fires{}, changed: make(chan struct{})}
	cfg.Clock, cfg.OnFire = h.clock, h.fires.hook
	if cfg.Log == nil {
		cfg.Log = quietLog()
	}
	s, err := New(cfg)
	require.NoError(t, err)
	s.afterEval = h.evaluated
	h.s, h.res = s, s.res
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	h.wait(at) // Start's own evaluation
	require.True(t, s.Running())
	return h
}

// evaluated is the scheduler's afterEval hook; it never blocks.
func (h *harness) evaluated(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.After(h.last) {
		h.last = now
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

// wait waits for the evaluation at now.
func (h *harness) wait(now time.Time) {
	h.t.Helper()
	timeout := time.After(waitFor)
	for {
		h.mu.Lock()
		last, changed := h.last, h.changed
		h.mu.Unlock()
		if !last.Before(now) {
			require.Truef(h.t, last.Equal(now), "evaluation at %s, want %s", last, now)
			return
		}
		select {
		case <-changed:
		case <-timeout:
			h.t.Fatalf("no evaluation at %s (last %s)", now, last)
		}
	}
}

// tick moves the clock one Resolution on, once gocron has armed its timer,
// and returns the new time; call wait with it.
func (h *harness) tick() time.Time {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(h.t, h.clock.BlockUntilContext(ctx, 1), "gocron never armed its timer")
	h.clock.Advance(h.res)
	return h.clock.Now()
}

// advance steps the clock n Resolutions, one evaluation each.
func (h *harness) advance(n int) {
	h.t.Helper()
	for range n {
		h.wait(h.tick())
	}
}

// ticks returns the scheduled_for of job's runs, oldest first.
func ticks(t *testing.T, s *jobs.Store, job string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, r := range runs(t, s, job) {
		require.NotNil(t, r.ScheduledFor, "run %d", r.ID)
		out = append(out, r.ScheduledFor.UTC())
	}
	return out
}

// runs returns job's runs, oldest tick first.
func runs(t *testing.T, s *jobs.Store, job string) []jobs.Run {
	t.Helper()
	rs, err := s.List(context.Background(), jobs.Filter{Job: job, Limit: 1000})
	require.NoError(t, err)
	sort.Slice(rs, func(i, j int) bool { return rs[i].ScheduledFor.Before(*rs[j].ScheduledFor) })
	return rs
}

// every returns the instants from first to last (inclusive) step apart.
func every(first, last time.Time, step time.Duration) []time.Time {
	var out []time.Time
	for t := first; !t.After(last); t = t.Add(step) {
		out = append(out, t.UTC())
	}
	return out
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}
