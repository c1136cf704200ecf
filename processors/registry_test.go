package processors_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

var _ definitions.Catalog = (*processors.Registry)(nil)

func nop() processors.Processor {
	return processors.ProcessorFunc(func(context.Context, *processors.Run) error { return nil })
}

// tagged returns a processor that records tag in the run's result.
func tagged(tag string) processors.Processor {
	return processors.ProcessorFunc(func(ctx context.Context, run *processors.Run) error {
		run.SetResult(tag + ":" + processors.ProcessorName(ctx))
		return nil
	})
}

func resultOf(t *testing.T, p processors.Processor) any {
	t.Helper()
	run := &processors.Run{}
	if err := p.Process(context.Background(), run); err != nil {
		t.Fatalf("Process: %v", err)
	}
	return run.Result()
}

func mustPanic(t *testing.T, contains string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", contains)
		}
		if !strings.Contains(fmt.Sprint(r), contains) {
			t.Fatalf("panic %q does not contain %q", r, contains)
		}
	}()
	f()
}

func TestRegisterDuplicatePanics(t *testing.T) {
	r := processors.NewRegistry()
	r.Register("OrderCancel", nop(), processors.ForConnectionTypes("http"))
	mustPanic(t, "duplicate", func() {
		r.Register("OrderCancel", nop(), processors.ForConnectionTypes("sftp", "http"))
	})
	// Nothing of the failed registration was kept.
	if r.Supports("OrderCancel", "sftp") {
		t.Fatal("failed registration partially applied")
	}
	// Same name on another type is fine.
	r.Register("OrderCancel", nop(), processors.ForConnectionTypes("sftp"))
	if !r.Supports("OrderCancel", "sftp") {
		t.Fatal("sftp not supported")
	}
}

func TestRegisterInvalidPanics(t *testing.T) {
	r := processors.NewRegistry()
	mustPanic(t, "empty processor name", func() { r.Register("", nop(), processors.ForConnectionTypes("x")) })
	mustPanic(t, "nil processor", func() { r.Register("A", nil, processors.ForConnectionTypes("x")) })
	mustPanic(t, "no connection type", func() { r.Register("A", nop()) })
	mustPanic(t, "no connection type", func() { r.Register("A", nop(), processors.ForConnectionTypes()) })
	mustPanic(t, "empty connection type", func() { r.Register("A", nop(), processors.ForConnectionTypes("")) })
	mustPanic(t, "reserved", func() { r.Register("*", nop(), processors.ForConnectionTypes("x")) })
	mustPanic(t, "not allowed", func() {
		r.RegisterConnectionRunner("exec", nop(), processors.ForConnectionTypes("x"))
	})
	mustPanic(t, "nil processor", func() { r.RegisterConnectionRunner("exec", nil) })
	if got := r.List(); len(got) != 0 {
		t.Fatalf("List after failures = %v", got)
	}
}

func TestRegisterSafely(t *testing.T) {
	r := processors.NewRegistry()
	if err := r.RegisterSafely("A", nop(), processors.ForConnectionTypes("x")); err != nil {
		t.Fatal(err)
	}
	err := r.RegisterSafely("A", nop(), processors.ForConnectionTypes("x"))
	if !errors.Is(err, processors.ErrDuplicate) {
		t.Fatalf("err = %v, want ErrDuplicate", err)
	}
	if err := r.RegisterConnectionRunnerSafely("exec", nop()); err != nil {
		t.Fatal(err)
	}
	err = r.RegisterConnectionRunnerSafely("exec", nop())
	if !errors.Is(err, processors.ErrDuplicate) {
		t.Fatalf("runner err = %v, want ErrDuplicate", err)
	}
	if err := r.RegisterSafely("", nop(), processors.ForConnectionTypes("x")); err == nil || errors.Is(err, processors.ErrDuplicate) {
		t.Fatalf("empty name: err = %v", err)
	}
}

func TestResolveWildcardPrecedence(t *testing.T) {
	r := processors.NewRegistry()
	r.RegisterConnectionRunner("exec", tagged("runner"))
	r.Register("Special", tagged("exact"), processors.ForConnectionTypes("exec"))

	p, err := r.Resolve("Special", "exec", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := resultOf(t, p); got != "exact:" {
		t.Fatalf("Special on exec = %v, want exact", got)
	}
	p, err = r.Resolve("Anything", "exec", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := resultOf(t, p); got != "runner:Anything" {
		t.Fatalf("Anything on exec = %v, want runner with name", got)
	}
}

func TestResolveErrors(t *testing.T) {
	r := processors.NewRegistry()
	r.Register("OrderCancel", nop(), processors.ForConnectionTypes("http", "sftp"))
	r.Register("Sync", nop(), processors.ForConnectionTypes("http"), processors.WithPreview())
	r.RegisterConnectionRunner("exec", nop())

	tests := []struct {
		name, conn string
		preview    bool
		want       error
		contains   string
	}{
		{"Nope", "http", false, processors.ErrProcessorNotFound, `"Nope"`},
		{"OrderCancel", "soap", false, processors.ErrUnsupportedConnection, "http, sftp"},
		{"OrderCancel", "http", true, processors.ErrPreviewUnsupported, "OrderCancel"},
		{"Nope", "exec", true, processors.ErrPreviewUnsupported, "exec"},
		{"Sync", "http", true, nil, ""},
		{"OrderCancel", "sftp", false, nil, ""},
		{"Nope", "exec", false, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.conn, func(t *testing.T) {
			p, err := r.Resolve(tc.name, tc.conn, tc.preview)
			if tc.want == nil {
				if err != nil || p == nil {
					t.Fatalf("Resolve = %v, %v", p, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("err %q does not contain %q", err, tc.contains)
			}
		})
	}
}

func TestCatalog(t *testing.T) {
	r := processors.NewRegistry()
	if r.HasProcessor("A") || r.HasConnectionType("http") || r.Supports("A", "http") {
		t.Fatal("empty registry claims something")
	}
	r.Register("A", nop(), processors.ForConnectionTypes("http"))
	check := func(got, want bool, what string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check(r.HasProcessor("A"), true, "HasProcessor(A)")
	check(r.HasProcessor("B"), false, "HasProcessor(B) without runner")
	check(r.HasConnectionType("http"), true, "HasConnectionType(http)")
	check(r.HasConnectionType("exec"), false, "HasConnectionType(exec)")
	check(r.Supports("A", "http"), true, "Supports(A, http)")
	check(r.Supports("A", "exec"), false, "Supports(A, exec)")

	r.RegisterConnectionRunner("exec", nop())
	check(r.HasProcessor("B"), true, "HasProcessor(B) with runner")
	check(r.HasConnectionType("exec"), true, "HasConnectionType(exec)")
	check(r.Supports("B", "exec"), true, "Supports(B, exec)")
	check(r.Supports("A", "exec"), true, "Supports(A, exec)")
	check(r.Supports("B", "http"), false, "Supports(B, http)")
}

func TestList(t *testing.T) {
	r := processors.NewRegistry()
	r.Register("Sync", nop(), processors.ForConnectionTypes("sftp", "http"), processors.WithPreview())
	r.Register("OrderCancel", nop(), processors.ForConnectionTypes("http"), processors.WithDescription(" Cancel an order "))
	r.RegisterConnectionRunner("exec", nop(), processors.WithPreview(), processors.WithDescription("external command"))
	want := []processors.Info{
		{Name: "*", ConnectionTypes: []string{"exec"}, Preview: true, Description: "external command"},
		{Name: "OrderCancel", ConnectionTypes: []string{"http"}, Description: "Cancel an order"},
		{Name: "Sync", ConnectionTypes: []string{"http", "sftp"}, Preview: true},
	}
	if got := r.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("List =\n%+v\nwant\n%+v", got, want)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	r := processors.NewRegistry()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r.Register(fmt.Sprintf("P%d", i), nop(), processors.ForConnectionTypes("http"))
		}()
		go func() {
			defer wg.Done()
			_, _ = r.Resolve(fmt.Sprintf("P%d", i), "http", false)
			_ = r.HasConnectionType("http")
			_ = r.List()
		}()
	}
	wg.Wait()
	if n := len(r.List()); n != 20 {
		t.Fatalf("List has %d entries, want 20", n)
	}
}

var defaultTestRuns atomic.Int32

func TestDefaultRegister(t *testing.T) {
	// Default outlives the test (-count=N): use a fresh name each time.
	name := fmt.Sprintf("DefaultTestProcessor%d", defaultTestRuns.Add(1))
	processors.Register(name, nop(), processors.ForConnectionTypes("default-test"))
	if !processors.Default.Supports(name, "default-test") {
		t.Fatal("not registered in Default")
	}
	mustPanic(t, "duplicate", func() {
		processors.Register(name, nop(), processors.ForConnectionTypes("default-test"))
	})
}

type wrapErr struct{ err error }

func (w wrapErr) Error() string { return "custom: " + w.err.Error() }
func (w wrapErr) Unwrap() error { return w.err }

func TestClassify(t *testing.T) {
	plain := errors.New("connection reset")
	tests := []struct {
		name string
		err  error
		want processors.Outcome
	}{
		{"nil", nil, processors.Outcome{Kind: processors.OutcomeSuccess}},
		{"permanent", processors.Permanent("ORDER_SHIPPED", "Cancel failed as order is in [Shipped] state"),
			processors.Outcome{Kind: processors.OutcomePermanent, Code: "ORDER_SHIPPED", Message: "Cancel failed as order is in [Shipped] state"}},
		{"permanent wrapped", fmt.Errorf("cancel order 42: %w", processors.Permanent("", "locked")),
			processors.Outcome{Kind: processors.OutcomePermanent, Code: "PERMANENT", Message: "locked"}},
		{"permanent custom wrapper", wrapErr{processors.Permanent("X", "y")},
			processors.Outcome{Kind: processors.OutcomePermanent, Code: "X", Message: "y"}},
		{"snooze", processors.RetryLater(30*time.Second, "awaiting authorization"),
			processors.Outcome{Kind: processors.OutcomeSnooze, Code: "RETRY_LATER", Message: "awaiting authorization", Delay: 30 * time.Second}},
		{"snooze wrapped", fmt.Errorf("erp: %w", processors.RetryLater(0, "503")),
			processors.Outcome{Kind: processors.OutcomeSnooze, Code: "RETRY_LATER", Message: "503"}},
		{"retry with delay", processors.Retry(time.Minute, plain),
			processors.Outcome{Kind: processors.OutcomeRetry, Code: "ERROR", Message: "connection reset", Delay: time.Minute}},
		{"retry wrapped", fmt.Errorf("call: %w", processors.Retry(time.Second, plain)),
			processors.Outcome{Kind: processors.OutcomeRetry, Code: "ERROR", Message: "call: connection reset", Delay: time.Second}},
		{"plain", plain, processors.Outcome{Kind: processors.OutcomeRetry, Code: "ERROR", Message: "connection reset"}},
		{"cancel", processors.Cancel("order already cancelled"),
			processors.Outcome{Kind: processors.OutcomeCancelled, Code: "CANCELLED", Message: "order already cancelled"}},
		{"context canceled", fmt.Errorf("exec: %w", context.Canceled),
			processors.Outcome{Kind: processors.OutcomeCancelled, Code: "CANCELLED", Message: "exec: context canceled"}},
		{"deadline", fmt.Errorf("exec: %w", context.DeadlineExceeded),
			processors.Outcome{Kind: processors.OutcomeTimeout, Code: "TIMEOUT", Message: "exec: context deadline exceeded"}},
		{"retry wrapping deadline is timeout", processors.Retry(time.Second, context.DeadlineExceeded),
			processors.Outcome{Kind: processors.OutcomeTimeout, Code: "TIMEOUT", Message: "context deadline exceeded"}},
		{"permanent beats context", errors.Join(context.Canceled, processors.Permanent("P", "m")),
			processors.Outcome{Kind: processors.OutcomePermanent, Code: "P", Message: "m"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := processors.Classify(tc.err); got != tc.want {
				t.Fatalf("Classify(%v) =\n%+v\nwant\n%+v", tc.err, got, tc.want)
			}
		})
	}
}

func TestOutcomeKind(t *testing.T) {
	if s := processors.OutcomeTimeout.String(); s != "timeout" {
		t.Fatalf("String = %q", s)
	}
	if !processors.Classify(context.DeadlineExceeded).Retryable() || !processors.Classify(errors.New("x")).Retryable() {
		t.Fatal("timeout/plain not retryable")
	}
	if processors.Classify(processors.Permanent("a", "b")).Retryable() || processors.Classify(processors.RetryLater(0, "")).Retryable() {
		t.Fatal("permanent/snooze retryable")
	}
}
