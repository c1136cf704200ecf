package definitions_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/jobrunner/jobrunner/definitions"
)

// catalog is what a program would get from its processors registry.
type catalog struct{}

func (catalog) HasProcessor(name string) bool          { return name == "OrderCancel" }
func (catalog) HasConnectionType(connType string) bool { return connType == "http" }
func (catalog) Supports(name, connType string) bool {
	return name == "OrderCancel" && connType == "http"
}

func Example() {
	dir, err := os.MkdirTemp("", "definitions")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	yaml := `connections:
  - name: erp
    type: http
    settings: {baseURL: "${JOBRUNNER_ERP_URL}"}
    secrets: {token: JOBRUNNER_ERP_TOKEN}
jobs:
  - name: OrderCancel
    connection: erp
    processor: OrderCancel
    parameters:
      - {name: OrderNumber, type: string, required: true, prompt: Order Number}
      - {name: Reason, type: enum, values: [customerRequest, fraud], default: customerRequest}
`
	if err := os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte(yaml), 0o644); err != nil {
		panic(err)
	}

	set, err := definitions.LoadDir(dir)
	if err != nil {
		fmt.Println(err) // definitions.Problems, one "file:line: path: message" per line
		return
	}
	if err := set.Validate(catalog{}); err != nil {
		fmt.Println(err)
		return
	}
	job, _ := set.Job("OrderCancel")

	params, err := job.ParseParams(map[string]string{"OrderNumber": "SO-1001"})
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _ := params.MarshalJSON()
	fmt.Println(string(data))

	_, err = job.ParseParams(map[string]string{"Reason": "Fraud"})
	fmt.Println(err)
	// Output:
	// {"OrderNumber":"SO-1001","Reason":"customerRequest"}
	// parameter OrderNumber: required; parameter Reason: expected enum (one of customerRequest, fraud), got "Fraud" (did you mean "fraud"?)
}
