package bench_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/bench"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// TestBenchWorksEveryRun runs a small benchmark on both stores: every run
// goes through the real path and succeeds, and the figures are filled in.
// (Speed targets live in BenchmarkDrain and `jobrunner bench`, never here.)
func TestBenchWorksEveryRun(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ctx := context.Background()
		r, err := bench.Run(ctx, bench.Config{Store: s, Runs: 1000, Workers: 64, Batch: 50, Backlog: 200, LatencySamples: 20})
		require.NoError(t, err)
		require.Equal(t, 1000, r.Runs)
		require.Positive(t, r.RunsPerSec)
		require.Positive(t, r.StartLatencyMs.P50)
		require.Positive(t, r.PeakRSSMB)
		var n int64
		require.NoError(t, s.DB().Model(&jobs.Run{}).Where("job = ?", bench.JobName).Count(&n).Error)
		require.Zero(t, n, "the benchmark removes its runs")
		t.Logf("%s: %.0f runs/s, enqueue %.0f/s, idle start p50 %.2fms p99 %.2fms", s.Dialect(), r.RunsPerSec, r.EnqueuePerSec, r.StartLatencyMs.P50, r.StartLatencyMs.P99)
	})
}

// BenchmarkDrain reports runs/s through claim → execute → record on MySQL
// (JOBRUNNER_TEST_MYSQL_DSN): go test -bench Drain -benchtime 1x ./bench
func BenchmarkDrain(b *testing.B) {
	s := jobstest.Open(b, "mysql")
	for i := 0; i < b.N; i++ {
		r, err := bench.Run(context.Background(), bench.Config{Store: s, Runs: 50000, Workers: 1000, Batch: 500, LatencySamples: 5})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.RunsPerSec, "runs/s")
		b.ReportMetric(r.EnqueuePerSec, "enqueues/s")
		b.ReportMetric(r.StartLatencyMs.P99, "p99-start-ms")
	}
}
