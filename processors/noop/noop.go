// Package noop owns the Noop processor: a processor that does nothing but
// optionally sleep, for demos, smoke tests and benchmarks of the runner.
package noop

import (
	"context"
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/processors"
)

// Name is the processor name Noop is registered under; ConnectionType is
// the connection type it runs on.
const (
	Name           = "Noop"
	ConnectionType = "noop"
)

// Processor is the Noop processor. It sleeps for the run's integer
// parameter SleepMs milliseconds when it is > 0 (returning the wrapped
// ctx.Err() if ctx ends first), then sets the result {"ok":true}. It
// changes nothing, so it honours previews trivially.
type Processor struct{}

// Process implements [processors.Processor].
func (Processor) Process(ctx context.Context, run *processors.Run) error {
	ms, err := sleepMs(run.Params["SleepMs"])
	if err != nil {
		return processors.Permanent("BAD_PARAMETER", err.Error())
	}
	if ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("noop: sleep %dms: %w", ms, ctx.Err())
		case <-t.C:
		}
	}
	run.SetResult(map[string]any{"ok": true})
	return nil
}

func sleepMs(v any) (int64, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case float64:
		return int64(n), nil
	default:
		return 0, fmt.Errorf("noop: parameter SleepMs is %T, want an integer", v)
	}
}

// Register registers [Processor] in r as [Name] for connection type
// [ConnectionType], with preview support. It panics if already registered.
func Register(r *processors.Registry) {
	r.Register(Name, Processor{},
		processors.ForConnectionTypes(ConnectionType),
		processors.WithPreview(),
		processors.WithDescription("Does nothing; sleeps SleepMs milliseconds if set"))
	r.SetChecker(ConnectionType, processors.KnownSettings())
}
