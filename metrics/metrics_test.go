package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/buildinfo"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/metrics"
)

type fakeQueue struct {
	counts map[jobs.Status]int64
	err    error
	block  bool
}

func (f *fakeQueue) CountByStatus(ctx context.Context, statuses ...jobs.Status) (map[jobs.Status]int64, error) {
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return f.counts, f.err
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	return rec.Body.String()
}

func TestObserverCounts(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Options{NoRuntimeMetrics: true})
	m.AttemptFinished("OrderCancel", jobs.AttemptRetry, jobs.StatusQueued, 2*time.Second)
	m.AttemptFinished("OrderCancel", jobs.AttemptSucceeded, jobs.StatusSucceeded, 300*time.Millisecond)
	m.AttemptFinished("OrderCancel", jobs.AttemptFailed, jobs.StatusFailed, time.Second)
	m.AttemptFinished("Noop", jobs.AttemptCancelled, jobs.StatusCancelled, -time.Second)
	m.LeasesRescued(3)
	m.LeasesRescued(0)
	m.LeasesRescued(-2)
	m.ObserveSchedulerLag("OrderStatusSync", 1500*time.Millisecond)
	m.ObserveSchedulerLag("OrderStatusSync", -time.Second)
	for _, code := range []int{200, 204, 409, 423, 503, 0, -1, 99, 600} {
		m.ObserveERPResponse("erp", code)
	}

	want := `
# HELP jobrunner_runs_finished_total Runs that reached a final status, by job and status (succeeded, succeeded_with_warnings, failed, cancelled).
# TYPE jobrunner_runs_finished_total counter
jobrunner_runs_finished_total{job="Noop",status="cancelled"} 1
jobrunner_runs_finished_total{job="OrderCancel",status="failed"} 1
jobrunner_runs_finished_total{job="OrderCancel",status="succeeded"} 1
# HELP jobrunner_attempts_total Executions of runs, by job and attempt outcome (succeeded, failed, retry, snoozed, cancelled, released, lease_expired).
# TYPE jobrunner_attempts_total counter
jobrunner_attempts_total{job="Noop",outcome="cancelled"} 1
jobrunner_attempts_total{job="OrderCancel",outcome="failed"} 1
jobrunner_attempts_total{job="OrderCancel",outcome="retry"} 1
jobrunner_attempts_total{job="OrderCancel",outcome="succeeded"} 1
# HELP jobrunner_leases_rescued_total Runs taken back from workers whose lease expired.
# TYPE jobrunner_leases_rescued_total counter
jobrunner_leases_rescued_total 3
# HELP jobrunner_erp_responses_total ERP answers by connection and HTTP status class (1xx..5xx; error: no answer, e.g. network error or timeout).
# TYPE jobrunner_erp_responses_total counter
jobrunner_erp_responses_total{class="2xx",connection="erp"} 2
jobrunner_erp_responses_total{class="4xx",connection="erp"} 2
jobrunner_erp_responses_total{class="5xx",connection="erp"} 1
jobrunner_erp_responses_total{class="error",connection="erp"} 4
`
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"jobrunner_runs_finished_total", "jobrunner_attempts_total", "jobrunner_leases_rescued_total", "jobrunner_erp_responses_total"))

	out := scrape(t, m)
	require.Contains(t, out, `jobrunner_attempt_duration_seconds_count{job="OrderCancel"} 3`)
	require.Contains(t, out, `jobrunner_attempt_duration_seconds_sum{job="OrderCancel"} 3.3`)
	require.Contains(t, out, `jobrunner_attempt_duration_seconds_bucket{job="OrderCancel",le="0.5"} 1`)
	require.Contains(t, out, `jobrunner_attempt_duration_seconds_sum{job="Noop"} 0`, "negative durations count as 0")
	require.Contains(t, out, `jobrunner_scheduler_lag_seconds_count{job="OrderStatusSync"} 2`)
	require.Contains(t, out, `jobrunner_scheduler_lag_seconds_sum{job="OrderStatusSync"} 1.5`)
	require.Contains(t, out, `jobrunner_build_info{goversion="`+runtime.Version()+`",revision="`+buildinfo.Read().Revision+`",version="`+buildinfo.Read().Version+`"} 1`)
	require.NotContains(t, out, "jobrunner_queue_depth", "no queue counter configured")
	require.NotContains(t, out, "go_goroutines", "runtime metrics were turned off")
}

func TestStatusClass(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]string{100: "1xx", 200: "2xx", 299: "2xx", 302: "3xx", 404: "4xx", 599: "5xx", 600: "error", 0: "error", -1: "error", 42: "error"} {
		require.Equal(t, want, metrics.StatusClass(code), code)
	}
}

func TestQueueDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		queue *fakeQueue
		want  string
	}{
		{"counts", &fakeQueue{counts: map[jobs.Status]int64{jobs.StatusQueued: 7, jobs.StatusRunning: 2}}, `
# HELP jobrunner_queue_depth Runs waiting (queued) or executing (running), read from the database at scrape time.
# TYPE jobrunner_queue_depth gauge
jobrunner_queue_depth{status="queued"} 7
jobrunner_queue_depth{status="running"} 2
# HELP jobrunner_queue_depth_up 1 when the queue depth could be read from the database at this scrape, 0 otherwise.
# TYPE jobrunner_queue_depth_up gauge
jobrunner_queue_depth_up 1
`},
		{"error", &fakeQueue{err: errors.New("database is closed")}, `
# HELP jobrunner_queue_depth_up 1 when the queue depth could be read from the database at this scrape, 0 otherwise.
# TYPE jobrunner_queue_depth_up gauge
jobrunner_queue_depth_up 0
`},
		{"timeout", &fakeQueue{block: true}, `
# HELP jobrunner_queue_depth_up 1 when the queue depth could be read from the database at this scrape, 0 otherwise.
# TYPE jobrunner_queue_depth_up gauge
jobrunner_queue_depth_up 0
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := metrics.New(metrics.Options{Queue: tc.queue, QueueTimeout: 50 * time.Millisecond, NoRuntimeMetrics: true})
			start := time.Now()
			require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(tc.want), "jobrunner_queue_depth", "jobrunner_queue_depth_up"))
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

// TestQueueDepthFromStore reads the gauge from real stores.
func TestQueueDepthFromStore(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		set := &definitions.Set{
			Connections: []*definitions.Connection{{Name: "c", Type: "none"}},
			Jobs:        []*definitions.Job{{Name: "A", Connection: "c", Processor: "P"}},
		}
		set.ApplyDefaults()
		for range 3 {
			_, err := s.Enqueue(ctx, jobs.NewRun{Job: set.Jobs[0], Params: definitions.Values{}, Trigger: jobs.TriggerManual})
			require.NoError(t, err)
		}
		m := metrics.New(metrics.Options{Queue: s})
		out := scrape(t, m)
		require.Contains(t, out, `jobrunner_queue_depth{status="queued"} 3`)
		require.Contains(t, out, `jobrunner_queue_depth{status="running"} 0`)
		require.Contains(t, out, "jobrunner_queue_depth_up 1")
		require.Contains(t, out, "go_goroutines", "runtime metrics are on by default")
	})
}

func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	require.NotPanics(t, func() {
		m.AttemptFinished("A", "succeeded", jobs.StatusSucceeded, time.Second)
		m.LeasesRescued(1)
		m.ObserveSchedulerLag("A", time.Second)
		m.ObserveERPResponse("erp", 200)
	})
	require.Nil(t, m.Registry())
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
	_, _ = io.Copy(io.Discard, rec.Body)
}
