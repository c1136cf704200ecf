// Package metrics owns jobrunner's Prometheus metrics: the collectors for
// runs, attempts, queue depth, scheduler lag, rescued leases and ERP
// responses, on a registry of their own (never the global one), and the
// /metrics handler that exposes them. A *Metrics implements jobs.Observer,
// so the executor and workers report to it directly; the scheduler and the
// ERP client call ObserveSchedulerLag and ObserveERPResponse.
//
// Every method is safe on a nil *Metrics (it does nothing), so callers can
// hold an optional *Metrics without checks.
//
// Metrics exposed (all prefixed jobrunner_):
//
//	runs_finished_total{job,status}          counter: runs reaching a final status
//	attempts_total{job,outcome}              counter: executions by attempt outcome
//	attempt_duration_seconds{job}            histogram: how long executions took
//	queue_depth{status}                      gauge: queued and running runs, read from the store at scrape
//	queue_depth_up                           gauge: 1 when that read succeeded, 0 otherwise
//	scheduler_lag_seconds{job}               histogram: fired − scheduled time of schedule ticks
//	leases_rescued_total                     counter: runs taken back from expired leases
//	erp_responses_total{connection,class}    counter: ERP answers by status class (2xx … 5xx, error)
//
// plus the Go runtime and process collectors of client_golang. Label values
// are job, connection and status names only: never parameters, tokens or
// secrets.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/buildinfo"
	"github.com/jobrunner/jobrunner/jobs"
)

// DefaultQueueTimeout bounds the queue-depth query of one scrape when
// Options.QueueTimeout is zero.
const DefaultQueueTimeout = 2 * time.Second

// QueueCounter counts runs by status for the queue-depth gauge.
// *jobs.Store implements it.
type QueueCounter interface {
	CountByStatus(ctx context.Context, statuses ...jobs.Status) (map[jobs.Status]int64, error)
}

// Options configure New.
type Options struct {
	// Queue is read at every scrape for jobrunner_queue_depth (queued and
	// running runs); nil leaves the queue gauges out.
	Queue QueueCounter
	// QueueTimeout bounds that read; default DefaultQueueTimeout. A scrape
	// whose read fails or times out reports jobrunner_queue_depth_up 0 and
	// no queue_depth samples.
	QueueTimeout time.Duration
	// Log receives queue read failures (at warning level); nil discards.
	Log *logrus.Logger
	// NoRuntimeMetrics leaves out the Go runtime and process collectors
	// (for tests that compare whole outputs).
	NoRuntimeMetrics bool
}

// Metrics holds jobrunner's collectors and their registry. Create it with
// New. It is safe for concurrent use.
type Metrics struct {
	reg           *prometheus.Registry
	runsFinished  *prometheus.CounterVec
	attempts      *prometheus.CounterVec
	attemptDur    *prometheus.HistogramVec
	schedulerLag  *prometheus.HistogramVec
	leasesRescued prometheus.Counter
	erpResponses  *prometheus.CounterVec
	hookCalls     *prometheus.CounterVec
	notifications *prometheus.CounterVec
}

var _ jobs.Observer = (*Metrics)(nil)

// New returns Metrics registered on a new registry of their own. It panics
// only if two of its own collectors clash, which a test rules out.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jobrunner", Name: "runs_finished_total",
			Help: "Runs that reached a final status, by job and status (succeeded, succeeded_with_warnings, failed, cancelled).",
		}, []string{"job", "status"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jobrunner", Name: "attempts_total",
			Help: "Executions of runs, by job and attempt outcome (succeeded, failed, retry, snoozed, cancelled, released, lease_expired).",
		}, []string{"job", "outcome"}),
		attemptDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "jobrunner", Name: "attempt_duration_seconds",
			Help:    "How long executions of runs took, by job.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"job"}),
		schedulerLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "jobrunner", Name: "scheduler_lag_seconds",
			Help:    "Delay between a schedule tick's nominal time and when it was fired, by job.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"job"}),
		leasesRescued: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "jobrunner", Name: "leases_rescued_total",
			Help: "Runs taken back from workers whose lease expired.",
		}),
		erpResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jobrunner", Name: "erp_responses_total",
			Help: "ERP answers by connection and HTTP status class (1xx..5xx; error: no answer, e.g. network error or timeout).",
		}, []string{"connection", "class"}),
	}
	m.hookCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobrunner_hook_calls_total",
		Help: "Inbound hook calls (POST /hooks/{name}) by hook and outcome: accepted, duplicate, filtered, unauthorized, invalid, unavailable.",
	}, []string{"hook", "outcome"})
	m.notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobrunner_notifications_total",
		Help: "Notification deliveries by channel (webhook, email), kind (failure, recovery, waiting, ...) and outcome (sent, retry, failed).",
	}, []string{"channel", "kind", "outcome"})
	m.reg.MustRegister(m.runsFinished, m.attempts, m.attemptDur, m.schedulerLag, m.leasesRescued, m.erpResponses, m.hookCalls, m.notifications)
	bi := buildinfo.Read()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "jobrunner", Name: "build_info",
		Help: "The running build: always 1, labelled with its module version, VCS revision and Go version.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(bi.Version, bi.Revision, bi.GoVersion).Set(1)
	m.reg.MustRegister(build)
	if opts.Queue != nil {
		timeout := opts.QueueTimeout
		if timeout <= 0 {
			timeout = DefaultQueueTimeout
		}
		m.reg.MustRegister(&queueCollector{
			counter: opts.Queue, timeout: timeout, log: opts.Log,
			depth: prometheus.NewDesc("jobrunner_queue_depth", "Runs waiting (queued) or executing (running), read from the database at scrape time.", []string{"status"}, nil),
			up:    prometheus.NewDesc("jobrunner_queue_depth_up", "1 when the queue depth could be read from the database at this scrape, 0 otherwise.", nil, nil),
		})
	}
	if !opts.NoRuntimeMetrics {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry returns the registry the metrics are registered on, e.g. to add
// collectors of one's own. Nil for a nil *Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler returns the /metrics handler for the registry, in the Prometheus
// text (or negotiated OpenMetrics) format. A nil *Metrics serves 404.
// It does not authenticate: wrap it (package api does).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// AttemptFinished implements jobs.Observer: it counts the execution by its
// outcome, observes its duration, and counts the run as finished when
// status is final.
func (m *Metrics) AttemptFinished(job, outcome string, status jobs.Status, took time.Duration) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(job, outcome).Inc()
	m.attemptDur.WithLabelValues(job).Observe(max(took, 0).Seconds())
	if status.Final() {
		m.runsFinished.WithLabelValues(job, string(status)).Inc()
	}
}

// LeasesRescued implements jobs.Observer: it adds n (ignored unless > 0)
// to the rescued-leases counter.
func (m *Metrics) LeasesRescued(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.leasesRescued.Add(float64(n))
}

// ObserveSchedulerLag records how late a schedule tick of job fired
// (fired − scheduled). A negative d (a tick fired early by a clock
// adjustment) is recorded as 0.
func (m *Metrics) ObserveSchedulerLag(job string, d time.Duration) {
	if m == nil {
		return
	}
	m.schedulerLag.WithLabelValues(job).Observe(max(d, 0).Seconds())
}

// ObserveERPResponse counts one answer of the ERP behind connection conn
// by its HTTP status class: code 100..599 count as "1xx".."5xx", and any
// other code (0 or negative: no answer at all, such as a network error or
// a timeout) as "error".
func (m *Metrics) ObserveERPResponse(conn string, code int) {
	if m == nil {
		return
	}
	m.erpResponses.WithLabelValues(conn, StatusClass(code)).Inc()
}

// ObserveNotification counts one notification delivery's outcome.
func (m *Metrics) ObserveNotification(channel, kind, outcome string) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(channel, kind, outcome).Inc()
}

// ObserveHookCall counts one call of a defined hook by its outcome.
func (m *Metrics) ObserveHookCall(hook, outcome string) {
	if m == nil {
		return
	}
	m.hookCalls.WithLabelValues(hook, outcome).Inc()
}

// StatusClass returns the class label of an HTTP status code: "1xx" to
// "5xx" for 100..599, otherwise "error".
func StatusClass(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return strconv.Itoa(code/100) + "xx"
}

// queueCollector reads the queue depth from the store at each scrape.
type queueCollector struct {
	counter   QueueCounter
	timeout   time.Duration
	log       *logrus.Logger
	depth, up *prometheus.Desc
}

// queueStatuses are the statuses whose counts make the queue depth.
var queueStatuses = []jobs.Status{jobs.StatusQueued, jobs.StatusRunning}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.up
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.counter.CountByStatus(ctx, queueStatuses...)
	if err != nil {
		if c.log != nil {
			c.log.WithError(err).Warn("metrics: cannot read the queue depth")
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, st := range queueStatuses {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}
