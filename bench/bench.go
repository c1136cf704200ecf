// Package bench owns jobrunner's throughput and latency benchmark: it
// enqueues no-op runs in batches and works them through the real path —
// batch claim with leases, executor (heartbeat, logs, outcome decision),
// group-committed outcomes with attempt records and log lines — then measures
// trigger-to-start latency on an idle queue. `jobrunner bench` prints its
// Result as JSON; the Go benchmarks in this package use it too.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/processors"
)

// JobName is the job the benchmark enqueues; its runs are deleted before
// a benchmark starts.
const JobName = "jobrunner.bench"

const benchDefs = `
connections:
  - {name: bench, type: noop} # calls nothing: no bulkhead cap
jobs:
  - name: jobrunner.bench
    description: no-op run for jobrunner bench
    connection: bench
    processor: BenchNoop
    parameters:
      - {name: OrderNumber, type: string}
    retry: {maxAttempts: 3, initial: 10ms}
    timeout: 10s
`

// Config configures Run.
type Config struct {
	Store *jobs.Store
	// Runs to drain; default 10000.
	Runs int
	// Workers executing at once; default jobs.DefaultWorkers, serve's.
	Workers int
	// Batch is the claim batch size; default min(Workers,
	// jobs.DefaultBatch), serve's.
	Batch int
	// Backlog adds this many queued runs that are not due (not before a
	// year from now) before the drain, to show the claim path does not
	// slow down or grow memory with a deep queue.
	Backlog int
	// LatencySamples is how many one-at-a-time triggers measure
	// trigger-to-start latency on an idle queue; default 200.
	LatencySamples int
	// Log receives progress lines; nil discards.
	Log *logrus.Logger
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Result is what `jobrunner bench --json` prints.
type Result struct {
	DB             string  `json:"db"`
	Runs           int     `json:"runs"`
	Workers        int     `json:"workers"`
	Batch          int     `json:"batch"`
	Backlog        int     `json:"backlog"`
	Seconds        float64 `json:"seconds"`
	RunsPerSec     float64 `json:"runs_per_sec"`
	EnqueueSeconds float64 `json:"enqueue_seconds"`
	EnqueuePerSec  float64 `json:"enqueue_per_sec"`
	StartLatencyMs Latency `json:"start_latency_ms"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
	// DrainPeakRSSMB is the peak resident set from the start of the drain
	// (after the benchmark's own enqueues) to the end of the latency
	// samples: what a worker holds with the queue that deep. 0 where the
	// peak cannot be reset (not Linux).
	DrainPeakRSSMB float64 `json:"drain_peak_rss_mb"`
	HeapAfterMB    float64 `json:"heap_after_mb"`
	Records        string  `json:"records"`
	GoVersion      string  `json:"go_version"`
	CPUs           int     `json:"cpus"`
}

// counter is the benchmark's Observer: it counts recorded outcomes.
type counter struct {
	done   atomic.Int64
	failed atomic.Int64
	all    chan struct{}
	target int64
	once   sync.Once
}

func (c *counter) AttemptFinished(_, _ string, st jobs.Status, _ time.Duration) {
	if st != jobs.StatusSucceeded {
		c.failed.Add(1)
	}
	if c.done.Add(1) == c.target {
		c.once.Do(func() { close(c.all) })
	}
}
func (c *counter) LeasesRescued(int) {}

// Run runs the benchmark against cfg.Store.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 10000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = jobs.DefaultWorkers
	}
	if cfg.Batch <= 0 {
		cfg.Batch = min(cfg.Workers, jobs.DefaultBatch)
	}
	if cfg.LatencySamples <= 0 {
		cfg.LatencySamples = 200
	}
	log := cfg.Log
	if log == nil {
		log = logrus.New()
		log.SetOutput(nopWriter{})
		log.SetLevel(logrus.WarnLevel)
	}
	set, err := definitions.LoadFS(fstest.MapFS{"bench.yaml": {Data: []byte(benchDefs)}}, ".")
	if err != nil {
		return nil, fmt.Errorf("bench: definitions: %w", err)
	}
	reg := processors.NewRegistry()
	var starts sync.Map // run id → time the processor started
	reg.Register("BenchNoop", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
		starts.Store(r.ID, time.Now())
		r.SetResult(map[string]bool{"ok": true})
		return nil
	}), processors.ForConnectionTypes("noop"))
	if err := set.Validate(reg); err != nil {
		return nil, fmt.Errorf("bench: definitions: %w", err)
	}
	job, _ := set.Job(JobName)
	s := cfg.Store
	if err := cleanup(ctx, s); err != nil {
		return nil, err
	}
	defer func() { _ = cleanup(context.WithoutCancel(ctx), s) }()

	st := &jobs.Starter{Store: s, Registry: reg, Definitions: func() *definitions.Set { return set }}
	if cfg.Backlog > 0 {
		log.Infof("bench: adding a backlog of %d runs that are not due", cfg.Backlog)
		later := time.Now().Add(365 * 24 * time.Hour)
		if err := enqueue(ctx, st, job, cfg.Backlog, later); err != nil {
			return nil, err
		}
	}

	log.Infof("bench: enqueueing %d runs", cfg.Runs)
	t0 := time.Now()
	if err := enqueue(ctx, st, job, cfg.Runs, time.Time{}); err != nil {
		return nil, err
	}
	enq := time.Since(t0)
	wholePeak := peakRSSMB()
	debug.FreeOSMemory() // the enqueues' garbage is not the drain's
	drainPeak := resetPeakRSS()

	obs := &counter{all: make(chan struct{}), target: int64(cfg.Runs)}
	ex := &jobs.Executor{Store: s, Registry: reg, Definitions: func() *definitions.Set { return set }, Log: log, Observer: obs, LeaseTTL: 30 * time.Second}
	pool := jobs.NewPool(jobs.PoolConfig{Executor: ex, Workers: cfg.Workers, BatchSize: cfg.Batch, PollInterval: 50 * time.Millisecond})
	log.Infof("bench: draining with %d workers, claim batch %d", cfg.Workers, cfg.Batch)
	t1 := time.Now()
	pool.Start(ctx)
	select {
	case <-obs.all:
	case <-ctx.Done():
		pool.Stop(context.Background())
		return nil, ctx.Err()
	}
	work := time.Since(t1)
	if f := obs.failed.Load(); f > 0 {
		pool.Stop(context.Background())
		return nil, fmt.Errorf("bench: %d of %d runs did not succeed", f, cfg.Runs)
	}

	// Idle queue: one trigger at a time, trigger-to-start latency.
	log.Infof("bench: measuring trigger-to-start latency over %d idle triggers", cfg.LatencySamples)
	lat := make([]float64, 0, cfg.LatencySamples)
	for i := 0; i < cfg.LatencySamples; i++ {
		before := time.Now()
		enqd, err := pool.Trigger(ctx, jobs.StartRequest{Definition: job, Values: definitions.Values{}, Trigger: jobs.TriggerAPI, TriggeredBy: "bench"})
		if err != nil {
			pool.Stop(context.Background())
			return nil, err
		}
		id := enqd.Run.ID
		deadline := time.Now().Add(10 * time.Second)
		for {
			if v, ok := starts.Load(id); ok {
				lat = append(lat, float64(v.(time.Time).Sub(before).Microseconds())/1000)
				break
			}
			if time.Now().After(deadline) {
				pool.Stop(context.Background())
				return nil, fmt.Errorf("bench: run %d did not start within 10s", id)
			}
			time.Sleep(200 * time.Microsecond)
		}
		for obs.done.Load() < int64(cfg.Runs+i+1) { // wait until it is recorded: idle again
			time.Sleep(200 * time.Microsecond)
		}
	}
	pool.Stop(context.Background())
	peakAfter, drainPeakMB := peakRSSMB(), 0.0
	if drainPeak {
		drainPeakMB = peakAfter
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	sort.Float64s(lat)
	return &Result{
		DB: s.DSN(), Runs: cfg.Runs, Workers: cfg.Workers, Batch: cfg.Batch, Backlog: cfg.Backlog,
		Seconds: round(work.Seconds(), 3), RunsPerSec: round(float64(cfg.Runs)/work.Seconds(), 0),
		EnqueueSeconds: round(enq.Seconds(), 3), EnqueuePerSec: round(float64(cfg.Runs)/enq.Seconds(), 0),
		StartLatencyMs: Latency{P50: pct(lat, 0.50), P99: pct(lat, 0.99), Max: pct(lat, 1)},
		PeakRSSMB:      max(wholePeak, peakAfter), HeapAfterMB: round(float64(ms.HeapInuse)/(1<<20), 1),
		DrainPeakRSSMB: drainPeakMB,
		Records:        "each run: batch claim under a lease token, executor with heartbeat, result, attempt record (its own row, or the run row for a first attempt that succeeded), group-committed fenced outcome",
		GoVersion:      runtime.Version(), CPUs: runtime.NumCPU(),
	}, nil
}

// enqueueParallel is how many batches the bench stores at once: the
// server commits concurrent transactions in groups.
const enqueueParallel = 8

// enqueue starts n runs of job through the front door (Starter.StartMany)
// in batches of 1000, enqueueParallel at a time.
func enqueue(ctx context.Context, st *jobs.Starter, job *definitions.Job, n int, notBefore time.Time) error {
	const chunk = 1000
	sem := make(chan struct{}, enqueueParallel)
	errs := make(chan error, (n+chunk-1)/chunk)
	var wg sync.WaitGroup
	for start := 0; start < n; start += chunk {
		reqs := make([]jobs.StartRequest, 0, min(chunk, n-start))
		for i := start; i < min(start+chunk, n); i++ {
			reqs = append(reqs, jobs.StartRequest{Definition: job, Values: definitions.Values{"OrderNumber": fmt.Sprintf("B%09d", i)},
				Trigger: jobs.TriggerAPI, TriggeredBy: "bench", NotBefore: notBefore})
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := st.StartMany(ctx, reqs); err != nil {
				errs <- fmt.Errorf("bench: enqueue: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when none failed
}

// cleanup deletes the benchmark's runs (and their rows) in small batches.
func cleanup(ctx context.Context, s *jobs.Store) error {
	db := s.DB().WithContext(ctx)
	for {
		var ids []int64
		if err := db.Model(&jobs.Run{}).Where("job = ?", JobName).Limit(5000).Pluck("id", &ids).Error; err != nil {
			return fmt.Errorf("bench: cleanup: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		for _, t := range []string{"run_params", "run_attempts", "run_logs", "run_steps", "run_keys", "run_ticks"} {
			if err := db.Exec("DELETE FROM "+t+" WHERE run_id IN ?", ids).Error; err != nil {
				return fmt.Errorf("bench: cleanup %s: %w", t, err)
			}
		}
		if err := db.Exec("DELETE FROM runs WHERE id IN ?", ids).Error; err != nil {
			return fmt.Errorf("bench: cleanup runs: %w", err)
		}
	}
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return round(sorted[i], 2)
}

func round(v float64, digits int) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', digits, 64), 64)
	return f
}

// peakRSSMB reads the process's peak resident set (VmHWM) on Linux; 0
// elsewhere.
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return round(kb/1024, 1)
		}
	}
	return 0
}

// resetPeakRSS resets the process's peak resident set to its current one
// (Linux: "5" to /proc/self/clear_refs) and reports whether it could.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
