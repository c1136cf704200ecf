package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/hooks"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

type openAPI struct {
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]any `yaml:"properties"`
			AllOf      []struct {
				Ref        string         `yaml:"$ref"`
				Properties map[string]any `yaml:"properties"`
			} `yaml:"allOf"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

func loadOpenAPI(t *testing.T) openAPI {
	t.Helper()
	var doc openAPI
	require.NoError(t, yaml.Unmarshal(openAPIDoc, &doc))
	require.NotEmpty(t, doc.Paths)
	return doc
}

// documented returns "METHOD path" of every operation in the document.
func (doc openAPI) documented() []string {
	var out []string
	for path, item := range doc.Paths {
		for m := range item {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options":
				out = append(out, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

func testServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{Store: jobstest.Open(t, "sqlite"), Definitions: definitions.Builtin})
	require.NoError(t, err)
	return s
}

// TestOpenAPIMatchesRoutes fails when a route is registered but not
// documented, or documented but not registered.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	s := testServer(t)
	var registered []string
	for _, rt := range s.routes {
		registered = append(registered, rt.Method+" "+rt.Path)
	}
	sort.Strings(registered)
	require.Equal(t, registered, doc.documented(), "api/openapi.yaml and the route table disagree")

	// Every documented operation reaches a handler through Handler(): no
	// "route_not_found" and no 405.
	for _, op := range doc.documented() {
		method, path, _ := strings.Cut(op, " ")
		path = strings.NewReplacer("{name}", "Noop", "{id}", "1").Replace(path)
		req := httptest.NewRequest(method, path, nil)
		req.RemoteAddr = "127.0.0.1:40000" // no tokens: loopback is served
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		require.NotEqual(t, http.StatusMethodNotAllowed, rec.Code, op)
		require.NotContains(t, rec.Body.String(), "route_not_found", op)
	}
}

// TestOpenAPIServed checks /openapi.yaml is the checked-in document.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	s := testServer(t)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, openAPIDoc, rec.Body.Bytes())
	require.Equal(t, openAPIDoc, OpenAPI())
}

// jsonKeys returns the top-level keys v marshals to.
func jsonKeys(t *testing.T, v any) []string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (doc openAPI) props(t *testing.T, schema string) []string {
	t.Helper()
	sc, ok := doc.Components.Schemas[schema]
	require.True(t, ok, schema)
	var out []string
	for k := range sc.Properties {
		out = append(out, k)
	}
	for _, a := range sc.AllOf {
		if a.Ref != "" {
			out = append(out, doc.props(t, strings.TrimPrefix(a.Ref, "#/components/schemas/"))...)
		}
		for k := range a.Properties {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPISchemas fails when a documented object and what the API
// marshals have different fields.
func TestOpenAPISchemas(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	now := time.Now()
	id, key, owner := int64(1), "k", "o"
	run := &jobs.Run{IdempotencyKey: &key, ScheduledFor: &now, LeaseOwner: &owner, LeaseExpiresAt: &now, CancelledBy: "x",
		ParentRunID: &id, RetryOfRunID: &id, StartedAt: &now, FinishedAt: &now, ErrorCode: "E", ErrorMessage: "m"}
	require.Equal(t, doc.props(t, "Run"), jsonKeys(t, run))
	att := attemptView{Attempt: jobs.Attempt{ErrorCode: "E", ErrorMessage: "m", RetryAt: &now}}
	require.Equal(t, doc.props(t, "Attempt"), jsonKeys(t, att))
	require.Equal(t, doc.props(t, "LogLine"), jsonKeys(t, jobs.LogLine{Fields: `{"a":1}`}))
	require.Equal(t, doc.props(t, "LogPage"), jsonKeys(t, logsPage{}))
	d := "x"
	p := paramView{Prompt: "p", Description: "d", Default: &d, Values: []string{"a"}, Pattern: ".", Min: &d, Max: &d}
	require.Equal(t, doc.props(t, "Parameter"), jsonKeys(t, p))
	until := now
	pause := &jobs.Pause{Until: &until}
	jv := jobView{Description: "d", Operation: "op", Schedule: &scheduleView{Error: "e"}, UniqueBy: []string{"a"}, LastRun: &lastRunView{}, Held: &heldView{Pause: pause}}
	require.Equal(t, doc.props(t, "Job"), jsonKeys(t, jv))
	require.Equal(t, doc.props(t, "Pause"), jsonKeys(t, pause))
	require.Equal(t, doc.props(t, "Hook"), jsonKeys(t, hookView{Description: "d", Set: map[string]string{"op": "x"}, EventID: []string{"id"}, Filter: "f"}))
	require.Equal(t, doc.props(t, "HookCall"), jsonKeys(t, hooks.Call{RunID: 1, Reason: "r"}))
	require.Equal(t, doc.props(t, "HookAnswer"), jsonKeys(t, hookAnswer{}))
	require.Equal(t, doc.props(t, "Instance"), jsonKeys(t, jobs.Instance{HTTPAddr: "x"}))
	require.Equal(t, doc.props(t, "JobOverview"), jsonKeys(t, jobs.JobOverview{OldestQueued: &now}))
	require.Equal(t, doc.props(t, "Schedule"), jsonKeys(t, jv.Schedule))
	existing := true
	require.Equal(t, doc.props(t, "TriggeredRun"), jsonKeys(t, runView{Run: run, Existing: &existing, ExistingReason: "active"}))
	from := int64(1)
	st := jobs.RunStep{SkippedFromRunID: &from, StartedAt: &now, FinishedAt: &now, ErrorCode: "E", ErrorMessage: "m"}
	require.Equal(t, doc.props(t, "RunStep"), jsonKeys(t, st))
	require.Equal(t, doc.props(t, "ChildRun"), jsonKeys(t, childView{}))
	require.Equal(t, doc.props(t, "RunTrace"), jsonKeys(t, jobs.RunTrace{}))
}

// TestOpenAPIRedoclyLint lints the served document with Redocly CLI's
// recommended rules (no errors, no warnings). scripts/test installs the
// CLI and sets JOBRUNNER_REDOCLY; in CI the test never skips.
func TestOpenAPIRedoclyLint(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("JOBRUNNER_REDOCLY")
	if bin == "" {
		if p, err := exec.LookPath("redocly"); err == nil {
			bin = p
		}
	}
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Redocly CLI not found: scripts/test installs it (JOBRUNNER_REDOCLY)")
		}
		t.Skip("Redocly CLI not installed (scripts/test installs it)")
	}
	out, err := exec.Command(bin, "lint", "--extends", "recommended", "--format", "stylish", "openapi.yaml").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotRegexp(t, `\d+:\d+\s+(warning|error)`, string(out), "%s", out)
}
