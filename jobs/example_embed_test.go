package jobs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing/fstest"
	"time"

	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/processors"
)

// Embedding jobrunner in a program of your own: register a processor,
// start a run inside your own database transaction (it exists only if
// your change commits), and let a pool execute it.
func Example_embedding() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "jobrunner-example-")
	defer os.RemoveAll(dir)
	store, err := jobs.Open(ctx, "sqlite:"+filepath.Join(dir, "jobs.db"), jobs.OpenOptions{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	// A processor of your own, for connections of your own type.
	greeted := make(chan string, 1)
	reg := processors.NewRegistry()
	reg.Register("Greet", processors.ProcessorFunc(func(ctx context.Context, r *processors.Run) error {
		greeted <- "hello " + r.Params.String("Name")
		return nil
	}), processors.ForConnectionTypes("greeter"))

	set, err := definitions.LoadFS(fstest.MapFS{"jobs.yaml": {Data: []byte(`
connections:
  - {name: front-desk, type: greeter}
jobs:
  - name: Greet
    connection: front-desk
    processor: Greet
    parameters:
      - {name: Name, type: string, required: true}
`)}}, ".")
	if err != nil {
		panic(err)
	}
	if err := set.Validate(reg); err != nil {
		panic(err)
	}

	ex := &jobs.Executor{Store: store, Registry: reg, Definitions: func() *definitions.Set { return set }}
	pool := jobs.NewPool(jobs.PoolConfig{Executor: ex, Workers: 2})
	pool.Start(ctx)
	defer pool.Stop(ctx)

	// The run is stored in the same transaction as your own writes.
	err = store.DB().Transaction(func(tx *gorm.DB) error {
		// ... your own changes through tx ...
		_, err := ex.Starter().StartTx(ctx, tx, jobs.StartRequest{Job: "Greet", Text: map[string]string{"Name": "Ada"}})
		return err
	})
	if err != nil {
		panic(err)
	}
	pool.Wake() // committed: start it now rather than at the next poll

	select {
	case msg := <-greeted:
		fmt.Println(msg)
	case <-time.After(30 * time.Second):
		fmt.Println("not run")
	}
	// Output: hello Ada
}
