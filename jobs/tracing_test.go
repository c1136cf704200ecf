package jobs_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/processors/httperp"
	"github.com/jobrunner/jobrunner/tracing"
)

// TestTracesOfARun: a run with two attempts and three ERP calls (the
// first read fails with a 500, the retry reads and cancels) gives two
// attempt spans, three ERP request spans under them, the W3C traceparent
// on every request, the trace id in the attempt's start line, and no
// secret in any attribute.
func TestTracesOfARun(t *testing.T) {
	const token = "trace-secret-CANARY-0b7e"
	rec := tracetest.NewSpanRecorder()
	tracing.Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { tracing.Install(noop.NewTracerProvider()) })

	var mu sync.Mutex
	var parents []string
	gets := 0
	erp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		parents = append(parents, r.Header.Get("Traceparent"))
		first := r.Method == http.MethodGet && gets == 0
		if r.Method == http.MethodGet {
			gets++
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case first:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"code":"DB","message":"database down"}`))
		case r.Method == http.MethodGet:
			_, _ = w.Write([]byte(`{"orderNumber":"T1","status":"Open"}`))
		default:
			_, _ = w.Write([]byte(`{"orderNumber":"T1","status":"Cancelled"}`))
		}
	}))
	t.Cleanup(erp.Close)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "j.yaml"), []byte(`
connections:
  - {name: erp, type: http, settings: {baseURL: "`+erp.URL+`"}, secrets: {token: TRACE_TOKEN}}
jobs:
  - name: OrderCancel
    connection: erp
    processor: OrderCancel
    parameters: [{name: OrderNumber, type: string, required: true}]
    retry: {maxAttempts: 3, initial: 10ms, max: 10ms}
orderStatuses:
  mappings:
    - {erpStatus: Open, commerceStatus: Submitted, allowCancellation: true}
    - {erpStatus: Cancelled, commerceStatus: Cancelled}
`), 0o644))
	reg := processors.NewRegistry()
	var set *definitions.Set
	httperp.Register(reg, httperp.Options{Statuses: func() *definitions.OrderStatusMap { return set.OrderStatuses }})
	set, err := definitions.LoadAndValidate(dir, reg)
	require.NoError(t, err)
	s := jobstest.Open(t, "sqlite")
	ex := &jobs.Executor{Store: s, Registry: reg, Definitions: func() *definitions.Set { return set },
		Getenv: func(k string) string {
			if k == "TRACE_TOKEN" {
				return token
			}
			return ""
		}}
	job, _ := set.Job("OrderCancel")
	params, err := job.ParseParams(map[string]string{"OrderNumber": "T1"})
	require.NoError(t, err)
	const triggerTrace, triggerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r, err := ex.RunInline(context.Background(), job, params, jobs.InlineOptions{TriggeredBy: "t",
		OnEnqueued: func(r *jobs.Run) { // as the API records a caller's traceparent
			require.NoError(t, s.RecordTrace(context.Background(), r.ID, 0, triggerTrace, triggerSpan))
		}})
	require.NoError(t, err)
	require.Equal(t, jobs.StatusSucceeded, r.Status)
	traces, err := s.Traces(context.Background(), r.ID)
	require.NoError(t, err)
	require.Len(t, traces, 3, "the trigger and two executions")
	require.Equal(t, triggerTrace, traces[0].TraceID)

	var attempts, requests []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		mine := false
		for _, a := range sp.Attributes() {
			if a.Key == "jobrunner.run_id" && a.Value.AsInt64() == r.ID {
				mine = true
			}
			require.NotContains(t, a.Value.String(), token, "a secret in span attribute %s", a.Key)
		}
		switch {
		case sp.Name() == tracing.SpanAttempt && mine:
			attempts = append(attempts, sp)
		case sp.Name() == tracing.SpanERPRequest:
			requests = append(requests, sp)
		}
	}
	require.Len(t, attempts, 2, "one span per attempt")
	for _, a := range attempts {
		require.Len(t, a.Links(), 1, "each attempt links to the triggering request")
		require.Equal(t, triggerTrace, a.Links()[0].SpanContext.TraceID().String())
	}
	require.Equal(t, traces[1].TraceID, attempts[0].SpanContext().TraceID().String(), "the recorded trace is the attempt's")
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, a := range attempts {
		byID[a.SpanContext().SpanID()] = a
	}
	under := map[trace.SpanID]int{}
	for _, q := range requests {
		if _, ok := byID[q.Parent().SpanID()]; ok {
			under[q.Parent().SpanID()]++
		}
	}
	counts := []int{under[attempts[0].SpanContext().SpanID()], under[attempts[1].SpanContext().SpanID()]}
	require.ElementsMatch(t, []int{1, 2}, counts, "the failed read under the first attempt, read and cancel under the second")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, parents, 3)
	for _, p := range parents {
		require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`, p, "W3C traceparent on every ERP request")
	}
	require.Contains(t, parents[0], attempts[0].SpanContext().TraceID().String())
	lines, err := s.Logs(context.Background(), r.ID, 0, 0)
	require.NoError(t, err)
	var sawTrace bool
	for _, l := range lines {
		if strings.Contains(l.Message, "started") && strings.Contains(string(l.Fields), attempts[0].SpanContext().TraceID().String()) {
			sawTrace = true
		}
	}
	require.True(t, sawTrace, "the attempt's start line carries its trace id")
}
