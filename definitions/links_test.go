package definitions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func linkProblems(t *testing.T, yaml string) []string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte(yaml), 0o600))
	var out []string
	for _, p := range loadAndValidate(t, dir) {
		out = append(out, strings.TrimPrefix(p.Error(), dir+string(filepath.Separator)))
	}
	return out
}

const linkBase = `
connections:
  - {name: erp, type: http}
jobs:
  - name: OrderStatusSync
    connection: erp
    processor: OrderStatusSync
    parameters:
      - {name: OrderNumber, type: string, required: true}
      - {name: Since, type: date}
      - {name: Mode, type: enum, values: [full, delta]}
`

func TestLinksValid(t *testing.T) {
	require.Empty(t, linkProblems(t, linkBase+`
  - name: OrderCancel
    connection: erp
    processor: OrderCancel
    parameters:
      - {name: OrderNumber, type: string, required: true}
    links:
      - job: OrderStatusSync
        parameters: {OrderNumber: "${param.OrderNumber}", Mode: full, Since: "2026-01-02"}
      - job: OrderStatusSync
        on: failure
        parameters: {OrderNumber: "WEB-${param.OrderNumber}"}
`))
	set, err := LoadDir(writeDir(t, linkBase+`
  - name: OrderCancel
    connection: erp
    processor: OrderCancel
    parameters:
      - {name: OrderNumber, type: string, required: true}
    links:
      - job: OrderStatusSync
        parameters: {OrderNumber: "${param.OrderNumber}"}
`))
	require.NoError(t, err)
	j, _ := set.Job("OrderCancel")
	require.Equal(t, LinkOnSuccess, j.Links[0].On, "on defaults to success")
	require.Equal(t, map[string]string{"OrderNumber": "WEB1"}, j.Links[0].Expand(map[string]string{"OrderNumber": "WEB1"}))
	require.True(t, j.Links[0].Matches("succeeded_with_warnings"))
	require.False(t, j.Links[0].Matches("failed"))
	require.False(t, Link{On: LinkOnAlways}.Matches("cancelled"))
}

func writeDir(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.yaml"), []byte(yaml), 0o600))
	return dir
}

func TestLinkProblems(t *testing.T) {
	got := linkProblems(t, linkBase+`
  - name: OrderCancel
    connection: erp
    processor: OrderCancel
    parameters:
      - {name: OrderNumber, type: string, required: true}
      - {name: Count, type: int}
    links:
      - job: OrderStatusSinc
      - job: OrderStatusSync
        on: sometimes
        parameters:
          OrderNumber: "${param.OrderNo}"
          Mode: weekly
          Since: "not a date"
          Colour: red
      - job: OrderStatusSync
        parameters: {OrderNumber: "${param.OrderNumber}", Since: "${param.Count}"}
      - job: OrderStatusSync
        parameters: {Mode: delta}
`)
	want := []string{
		`jobs.yaml:20: jobs[1].links[0].job: unknown job "OrderStatusSinc" (did you mean "OrderStatusSync"?)`,
		`jobs.yaml:22: jobs[1].links[1].on: unknown link condition "sometimes" (want success, failure or always)`,
		`jobs.yaml:24: jobs[1].links[1].parameters.OrderNumber: ${param.OrderNo}: job OrderCancel has no parameter "OrderNo"`,
		`jobs.yaml:25: jobs[1].links[1].parameters.Mode: value "weekly" does not fit OrderStatusSync's parameter Mode:`,
		`jobs.yaml:26: jobs[1].links[1].parameters.Since: value "not a date" does not fit OrderStatusSync's parameter Since:`,
		`jobs.yaml:27: jobs[1].links[1].parameters.Colour: job OrderStatusSync has no parameter "Colour"`,
		`jobs.yaml:29: jobs[1].links[2].parameters.Since: ${param.Count} is a int parameter; OrderStatusSync's Since is date and may not accept its values`,
		`jobs.yaml:30: jobs[1].links[3].parameters: job OrderStatusSync requires parameter OrderNumber: map it (e.g. OrderNumber: "${param.OrderNumber}")`,
	}
	require.Len(t, got, len(want), strings.Join(got, "\n"))
	for i := range want {
		require.True(t, strings.HasPrefix(got[i], want[i]), "got  %s\nwant %s", got[i], want[i])
	}
}

func TestLinkCycles(t *testing.T) {
	got := linkProblems(t, `
connections:
  - {name: erp, type: http}
jobs:
  - name: OrderCancel
    connection: erp
    processor: OrderCancel
    links:
      - job: OrderStatusSync
  - name: OrderStatusSync
    connection: erp
    processor: OrderStatusSync
    links:
      - job: OrderAction
        on: failure
  - name: OrderAction
    connection: erp
    processor: OrderAction
    links:
      - job: OrderCancel
        on: always
  - name: Self
    connection: erp
    processor: OrderAction
    links:
      - job: Self
`)
	require.Equal(t, []string{
		"jobs.yaml:20: jobs[2].links[0].job: links form a cycle: OrderCancel → OrderStatusSync → OrderAction → OrderCancel",
		"jobs.yaml:26: jobs[3].links[0].job: links form a cycle: Self → Self",
	}, got)
}

func TestStepParameterProblems(t *testing.T) {
	got := linkProblems(t, `
connections:
  - {name: erp, type: http}
jobs:
  - name: Multi
    connection: erp
    parameters:
      - {name: Limit, type: int}
    steps:
      - {name: a, processor: OrderStatusSync, parameters: {Limit: lots, Other: fine}}
`)
	require.Len(t, got, 1)
	require.Contains(t, got[0], `jobs[0].steps[0].parameters.Limit: value "lots" does not fit job parameter Limit`)
}
