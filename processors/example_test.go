package processors_test

import (
	"context"
	"fmt"

	"github.com/jobrunner/jobrunner/processors"
)

// A custom processor registered for a custom connection type, then resolved
// the way the runner does for a job whose connection has that type.
func ExampleRegistry_Resolve() {
	reg := processors.NewRegistry()
	reg.Register("OrderExport", processors.ProcessorFunc(func(ctx context.Context, run *processors.Run) error {
		run.SetResult(map[string]any{"exported": run.Params["OrderNumber"], "via": run.Connection.Type})
		return nil
	}), processors.ForConnectionTypes("sftp"), processors.WithDescription("Export an order file"))

	p, err := reg.Resolve("OrderExport", "sftp", false)
	if err != nil {
		fmt.Println(err)
		return
	}
	run := &processors.Run{
		Params:     map[string]any{"OrderNumber": "SO-1001"},
		Connection: processors.Connection{Name: "warehouse", Type: "sftp"},
	}
	err = p.Process(context.Background(), run)
	fmt.Println(run.Result(), processors.Classify(err).Kind)

	_, err = reg.Resolve("OrderExport", "http", false)
	fmt.Println(err)
	// Output:
	// map[exported:SO-1001 via:sftp] success
	// resolve processor "OrderExport": processors: processor does not support connection type "http" (it supports: sftp)
}
