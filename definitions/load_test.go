package definitions

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/broken/*/want.txt from the current output")

// fakeCatalog knows OrderCancel, OrderAction and OrderStatusSync on http,
// Noop on noop.
type fakeCatalog struct{}

var fakeProcessors = map[string][]string{
	"OrderCancel":     {"http"},
	"OrderAction":     {"http"},
	"OrderStatusSync": {"http"},
	"http":            {"http"},
	"Noop":            {"noop"},
}

func (fakeCatalog) HasProcessor(name string) bool { _, ok := fakeProcessors[name]; return ok }

func (fakeCatalog) HasConnectionType(t string) bool { return t == "http" || t == "noop" || t == "exec" }

func (fakeCatalog) Supports(name, t string) bool {
	for _, x := range fakeProcessors[name] {
		if x == t {
			return true
		}
	}
	return false
}

// loadAndValidate returns every problem of a directory, load and
// validation together, sorted by file and line.
func loadAndValidate(t *testing.T, dir string) Problems {
	t.Helper()
	set, err := LoadDir(dir)
	var all Problems
	if err != nil {
		var ps Problems
		require.True(t, errors.As(err, &ps), "not Problems: %v", err)
		all = append(all, ps...)
	}
	require.NotNil(t, set)
	if err := set.Validate(fakeCatalog{}); err != nil {
		var ps Problems
		require.True(t, errors.As(err, &ps), "not Problems: %v", err)
		all = append(all, ps...)
	}
	sortProblems(all)
	return all
}

func TestBrokenCorpus(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob("testdata/broken/*")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			probs := loadAndValidate(t, dir)
			require.NotEmpty(t, probs, "a broken case must have problems")
			got := probs.Error() + "\n"
			wantFile := filepath.Join(dir, "want.txt")
			if *update {
				require.NoError(t, os.WriteFile(wantFile, []byte(got), 0o644))
			}
			want, err := os.ReadFile(wantFile)
			require.NoError(t, err)
			require.Equal(t, string(want), got)
		})
	}
}

func TestSeveralMistakesReportedAtOnce(t *testing.T) {
	t.Parallel()
	probs := loadAndValidate(t, "testdata/broken/several_mistakes")
	require.GreaterOrEqual(t, len(probs), 8)
	for _, p := range probs {
		require.Equal(t, "jobs.yaml", p.File)
		require.Positive(t, p.Line)
	}
}

func TestBuiltin(t *testing.T) {
	t.Parallel()
	s := Builtin()
	require.NoError(t, s.Validate(fakeCatalog{}))

	oc, ok := s.Job("OrderCancel")
	require.True(t, ok)
	require.Equal(t, "erp", oc.Connection)
	require.Equal(t, JobTypeExecution, oc.Type)
	require.Equal(t, 5, oc.Retry.MaxAttempts)
	require.Equal(t, 2*time.Second, oc.Retry.Initial.D())
	require.Equal(t, time.Minute, oc.Retry.Max.D())
	require.Equal(t, 2.0, oc.Retry.Multiplier)
	require.Equal(t, 30*time.Second, oc.Timeout.D())
	require.Equal(t, []string{"OrderNumber"}, oc.UniqueBy)
	require.Equal(t, OverlapAllow, oc.Concurrency.Overlap)
	require.Equal(t, -1, oc.MaxErrors)
	require.Len(t, oc.Version, 16)
	require.Equal(t, "Order Number", oc.Param("OrderNumber").Prompt)
	require.True(t, oc.Param("OrderNumber").Required)
	require.Equal(t, "Cancellation Reason", oc.Param("Reason").Prompt)

	oa, ok := s.Job("OrderAction")
	require.True(t, ok)
	require.Equal(t, "erp", oa.Connection)
	require.Equal(t, "OrderAction", oa.Processor)
	require.Equal(t, []string{"OrderNumber"}, oa.UniqueBy)
	ocNum, oaNum := oc.Param("OrderNumber"), oa.Param("OrderNumber")
	require.Equal(t, "Order Number", oaNum.Prompt)
	require.True(t, oaNum.Required)
	require.Equal(t, ocNum.Type, oaNum.Type)
	require.Equal(t, ocNum.Pattern, oaNum.Pattern, "OrderNumber has the same pattern as OrderCancel's")
	require.Equal(t, ocNum.Max, oaNum.Max)
	op := oa.Param("op")
	require.Equal(t, TypeEnum, op.Type)
	require.True(t, op.Required)
	require.Equal(t, "Operation", op.Prompt)
	require.Equal(t, []string{"cancel", "validateOrder", "validatePaymentAuthorization", "invalidateOrder"}, op.Values)
	require.False(t, oa.Param("Reason").Required)
	require.Equal(t, oc.Param("Reason").Values, oa.Param("Reason").Values)
	_, opErr := oa.ParseParams(map[string]string{"OrderNumber": "WEB000123"})
	require.ErrorContains(t, opErr, "parameter op: required")
	oaValues, opErr := oa.ParseParams(map[string]string{"OrderNumber": "WEB000123", "op": "validateOrder"})
	require.NoError(t, opErr)
	require.Equal(t, Values{"OrderNumber": "WEB000123", "op": "validateOrder", "Reason": "customerRequest"}, oaValues)

	sync, ok := s.Job("OrderStatusSync")
	require.True(t, ok)
	require.NotNil(t, sync.Schedule)
	require.Equal(t, "*/5 * * * *", sync.Schedule.Cron)
	require.Equal(t, MisfireRunOnce, sync.Schedule.Misfire)
	require.Equal(t, OverlapForbid, sync.Concurrency.Overlap)
	require.Equal(t, 10, sync.MaxErrors)
	for _, p := range sync.Parameters {
		require.False(t, p.Required)
	}

	noop, ok := s.Job("Noop")
	require.True(t, ok)
	c, ok := s.Connection(noop.Connection)
	require.True(t, ok)
	require.Equal(t, "noop", c.Type)
	v, err := noop.ParseParams(nil)
	require.NoError(t, err)
	require.Equal(t, Values{"SleepMs": int64(0)}, v)

	erp, ok := s.Connection("erp")
	require.True(t, ok)
	require.Equal(t, "${JOBRUNNER_ERP_URL}", erp.Settings["baseURL"])
	require.Equal(t, map[string]string{"token": "JOBRUNNER_ERP_TOKEN"}, erp.Secrets)

	m := s.OrderStatuses
	require.NotNil(t, m)
	sm, ok := m.Lookup("PendingAuthorization")
	require.True(t, ok)
	require.Equal(t, "On Hold", sm.CommerceStatus)
	require.True(t, sm.AllowCancellation)
	sm, ok = m.Lookup("Shipped")
	require.True(t, ok)
	require.False(t, sm.AllowCancellation)
	_, ok = m.Lookup("shipped")
	require.False(t, ok)
	require.True(t, m.Cancellable("On Hold"))
	require.False(t, m.Cancellable("Shipped"))

	// A fresh Set each call, same versions.
	require.NotSame(t, s, Builtin())
	oc2, _ := Builtin().Job("OrderCancel")
	require.Equal(t, oc.Version, oc2.Version)
}

func TestVersionChangesWithContent(t *testing.T) {
	t.Parallel()
	base := `connections: [{name: erp, type: http, settings: {baseURL: "http://a"}}]
jobs: [{name: J, connection: erp, processor: OrderCancel, timeout: 30s}]
`
	version := func(src string) string {
		s, err := LoadFS(fstest.MapFS{"j.yaml": {Data: []byte(src)}}, ".")
		require.NoError(t, err)
		return s.Jobs[0].Version
	}
	v := version(base)
	require.Equal(t, v, version("# comment\n"+base), "comments do not change the version")
	require.Equal(t, v, version(strings.Replace(base, "timeout: 30s", "timeout: 30s, retry: {maxAttempts: 3}", 1)), "an explicit default does not change the version")
	require.NotEqual(t, v, version(strings.Replace(base, "30s", "31s", 1)))
	require.NotEqual(t, v, version(strings.Replace(base, "http://a", "http://b", 1)), "the connection is part of the version")
}

func TestLoadDirErrors(t *testing.T) {
	t.Parallel()
	_, err := LoadDir("testdata/does-not-exist")
	require.ErrorContains(t, err, "loading definitions from testdata/does-not-exist")

	_, err = LoadDir(t.TempDir())
	require.ErrorContains(t, err, "no *.yaml or *.yml files")
}

func TestLoadEmptyAndCommentOnlyFiles(t *testing.T) {
	t.Parallel()
	s, err := LoadFS(fstest.MapFS{
		"a.yaml": {Data: nil},
		"b.yml":  {Data: []byte("# nothing here\n")},
		"c.yaml": {Data: []byte("~\n")},
		"d.txt":  {Data: []byte("not yaml: [")},
	}, ".")
	require.NoError(t, err)
	require.Empty(t, s.Jobs)
	require.NoError(t, s.Validate(fakeCatalog{}))
}

func TestLoadKeepsScalarText(t *testing.T) {
	t.Parallel()
	src := `jobs:
  - name: J
    connection: erp
    processor: OrderCancel
    parameters:
      - {name: Amount, type: decimal, min: 0.10, max: 99999999999999999999.99, default: 12.50}
      - {name: Flag, type: bool, default: yes}
      - {name: N, type: int, default: 0x10}
    settings: {anything: {nested: [1, 2.5, true, null, text]}}
connections: [{name: erp, type: http}]
`
	s, err := LoadFS(fstest.MapFS{"j.yaml": {Data: []byte(src)}}, ".")
	require.NoError(t, err)
	j := s.Jobs[0]
	require.Equal(t, "0.10", *j.Param("Amount").Min)
	require.Equal(t, "99999999999999999999.99", *j.Param("Amount").Max)
	require.Equal(t, "12.50", *j.Param("Amount").Default)
	require.Equal(t, "yes", *j.Param("Flag").Default)
	require.Equal(t, map[string]any{"nested": []any{int64(1), 2.5, true, nil, "text"}}, j.Settings["anything"])

	err = s.Validate(fakeCatalog{})
	require.EqualError(t, err, `j.yaml:8: jobs[0].parameters[2].default: invalid default: expected int, got "0x10"`)
}

func TestValidateHandBuiltSet(t *testing.T) {
	t.Parallel()
	s := &Set{
		Connections: []*Connection{{Name: "local", Type: "noop"}},
		Jobs:        []*Job{{Name: "Noop", Connection: "local", Processor: "Noop"}},
	}
	require.Error(t, s.Validate(fakeCatalog{}), "defaults not applied: retry and timeout are zero")
	s.ApplyDefaults()
	require.NoError(t, s.Validate(fakeCatalog{}))
	require.NoError(t, s.Validate(nil))
	j := s.Jobs[0]
	require.Equal(t, DefaultTimeout, j.Timeout)
	require.Equal(t, -1, j.MaxWarnings)
	require.Len(t, j.Version, 16)
	v := j.Version
	s.ApplyDefaults()
	require.Equal(t, v, j.Version, "idempotent")

	s.Jobs = append(s.Jobs, &Job{Name: "Noop", Connection: "nope", Processor: "Noop"})
	s.ApplyDefaults()
	require.EqualError(t, s.Validate(fakeCatalog{}), `: jobs[1].name: duplicate job name "Noop" (first defined at :0)
: jobs[1].connection: unknown connection "nope"`)
}

func TestConnectionSecretsAndSettings(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ERP_URL": "http://erp:8080", "ERP_TOKEN": "s3cr3t", "HOST": "h"}
	getenv := func(k string) string { return env[k] }
	c := &Connection{
		Name: "erp",
		Settings: map[string]any{
			"baseURL": "${ERP_URL}/api",
			"nested":  map[string]any{"list": []any{"${HOST}:${PORT}", 5}},
			"literal": "$HOST ${not a var} ${",
		},
		Secrets: map[string]string{"token": "ERP_TOKEN"},
	}
	got := c.ExpandedSettings(getenv)
	require.Equal(t, map[string]any{
		"baseURL": "http://erp:8080/api",
		"nested":  map[string]any{"list": []any{"h:", 5}},
		"literal": "$HOST ${not a var} ${",
	}, got)
	require.Equal(t, "${ERP_URL}/api", c.Settings["baseURL"], "the original is untouched")

	secrets, err := c.ResolveSecrets(getenv)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"token": "s3cr3t"}, secrets)

	c.Secrets["password"] = "ERP_PASSWORD"
	env["ERP_TOKEN"] = ""
	_, err = c.ResolveSecrets(getenv)
	require.EqualError(t, err, "connection erp: secret password: environment variable ERP_PASSWORD is not set or empty\n"+
		"connection erp: secret token: environment variable ERP_TOKEN is not set or empty")
	require.NotContains(t, err.Error(), "s3cr3t")
}

func TestProblemError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Pos{"jobs.yaml", 12}, "jobs[0].type", "bad"}, "jobs.yaml:12: jobs[0].type: bad"},
		{Problem{Pos{"jobs.yaml", 0}, "", "bad"}, "jobs.yaml: bad"},
		{Problem{Pos{"jobs.yaml", 3}, "", "bad"}, "jobs.yaml:3: bad"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.p.Error())
	}
	require.Equal(t, "a:1: x\nb:2: y", Problems{{Pos{"a", 1}, "", "x"}, {Pos{"b", 2}, "", "y"}}.Error())
}

func TestLoadAndValidate(t *testing.T) {
	t.Parallel()
	s, err := LoadAndValidate("", fakeCatalog{})
	require.NoError(t, err)
	_, ok := s.Job("Noop")
	require.True(t, ok)

	s, err = LoadAndValidate("testdata/broken/several_mistakes", fakeCatalog{})
	require.Nil(t, s)
	want, rerr := os.ReadFile("testdata/broken/several_mistakes/want.txt")
	require.NoError(t, rerr)
	require.EqualError(t, err, strings.TrimSuffix(string(want), "\n"))

	_, err = LoadAndValidate("testdata/nope", fakeCatalog{})
	require.ErrorContains(t, err, "loading definitions from testdata/nope")
}

func TestSyntaxErrorsNameTheProblemLine(t *testing.T) {
	t.Parallel()
	cases := []struct{ yaml, want string }{
		{"jobs:\n  - name: A\n    connection: b\n   processor: x\n", "bad.yaml:4: YAML syntax error: did not find expected '-' indicator (in the block that starts at line 1)"},
		{"jobs:\n  - name: A\n    connection: b\n    - processor\n  - name: B\n", "bad.yaml:4: YAML syntax error: did not find expected key (in the block that starts at line 1)"},
		{"jobs:\n  - name: A\n    connection: b\n    processor: x: y\n", "bad.yaml:4: YAML syntax error: mapping values are not allowed in this context"},
	}
	for _, tc := range cases {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(tc.yaml), 0o644))
		_, err := LoadDir(dir)
		require.Error(t, err)
		require.Equal(t, tc.want, err.Error())
	}
}

func TestHugeFileRefusedBeforeReading(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "huge.yaml"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(50<<20)) // sparse: 50 MB that costs nothing to make
	require.NoError(t, f.Close())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = LoadDir(dir)
	runtime.ReadMemStats(&after)
	require.ErrorContains(t, err, "huge.yaml: file is larger than 4194304 bytes (52428800 bytes)")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "the file was not read")
}

func TestConnectionRateLimitAndLabels(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{"jobs.yaml": {Data: []byte(`connections:
  - name: erp
    type: http
    rateLimit: 20
    labels: [eu, erp-primary]
  - name: slow
    type: http
    rateLimit: 0.5
jobs: []
`)}}
	set, err := LoadFS(fsys, ".")
	require.NoError(t, err)
	erp, _ := set.Connection("erp")
	require.Equal(t, 20.0, erp.RateLimit)
	require.Equal(t, []string{"eu", "erp-primary"}, erp.Labels)
	slow, _ := set.Connection("slow")
	require.Equal(t, 0.5, slow.RateLimit, "below one request per second is allowed")
	require.Empty(t, slow.Labels)
}
