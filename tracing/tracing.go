// Package tracing owns jobrunner's OpenTelemetry traces: turning them on
// from the standard OTEL_* environment variables (off unless configured),
// the tracer every package uses, and the names and attributes of
// jobrunner's spans: one per run attempt, one per step of a multi-step
// run, one per ERP request (whose W3C traceparent header is sent).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobrunner/jobrunner/buildinfo"
)

// Name is the instrumentation scope of jobrunner's spans.
const Name = "github.com/jobrunner/jobrunner"

// Span names.
const (
	SpanAttempt    = "jobrunner.attempt"     // one execution of a run
	SpanStep       = "jobrunner.step"        // one step of a multi-step run
	SpanERPRequest = "jobrunner.erp.request" // one HTTP request to a connection
)

// Tracer returns the tracer of jobrunner's spans (a no-op one until Setup
// or a program installs a TracerProvider).
func Tracer() trace.Tracer { return otel.Tracer(Name) }

// Enabled reports whether the environment asks for traces: an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT) or
// OTEL_TRACES_EXPORTER=otlp, and not OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none.
func Enabled() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" ||
		strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "otlp")
}

// Setup installs an OTLP/HTTP trace exporter configured by the OTEL_*
// variables (endpoint, headers, timeout, OTEL_SERVICE_NAME, sampler …) and
// the W3C trace-context propagator, when Enabled. It returns a shutdown
// that flushes the spans; when traces are off it installs nothing and the
// shutdown does nothing.
func Setup(ctx context.Context) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if !Enabled() {
		return noop, nil
	}
	if p := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
		return noop, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL=%s: only http/protobuf is supported", p)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return noop, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceVersion(buildinfo.Read().Version)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		res = resource.Default()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Install(tp)
	return tp.Shutdown, nil
}

// Install makes tp the provider of jobrunner's spans and installs the W3C
// trace-context propagator (tests install an in-memory recorder).
func Install(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
}

// TraceID returns the trace id of ctx's span ("" when it is not sampled
// or there is none).
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
