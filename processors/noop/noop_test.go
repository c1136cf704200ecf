package noop_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/processors/noop"
)

func TestNoop(t *testing.T) {
	r := processors.NewRegistry()
	noop.Register(r)
	p, err := r.Resolve("Noop", "noop", true)
	if err != nil {
		t.Fatal(err)
	}
	run := &processors.Run{Params: map[string]any{"SleepMs": int64(10)}}
	start := time.Now()
	if err := p.Process(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 10*time.Millisecond {
		t.Fatal("did not sleep")
	}
	if !reflect.DeepEqual(run.Result(), map[string]any{"ok": true}) {
		t.Fatalf("result = %v", run.Result())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = p.Process(ctx, &processors.Run{Params: map[string]any{"SleepMs": 10000}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline", err)
	}

	err = p.Process(context.Background(), &processors.Run{Params: map[string]any{"SleepMs": "x"}})
	if processors.Classify(err).Kind != processors.OutcomePermanent {
		t.Fatalf("err = %v, want permanent", err)
	}
}
