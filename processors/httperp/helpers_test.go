package httperp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

const canary = "CANARY-tok-5f1e2d9c"

// fakeLogger captures log lines.
type fakeLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *fakeLogger) add(level, msg string, kv ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+msg+" "+strings.TrimSpace(fmt.Sprintln(kv...)))
}
func (l *fakeLogger) Debug(msg string, kv ...any) { l.add("DEBUG", msg, kv...) }
func (l *fakeLogger) Info(msg string, kv ...any)  { l.add("INFO", msg, kv...) }
func (l *fakeLogger) Warn(msg string, kv ...any)  { l.add("WARN", msg, kv...) }
func (l *fakeLogger) Error(msg string, kv ...any) { l.add("ERROR", msg, kv...) }

func (l *fakeLogger) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *fakeLogger) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// statusMap is the example mapping of the built-in definitions.
func statusMap() *definitions.OrderStatusMap {
	return &definitions.OrderStatusMap{
		Mappings: []definitions.StatusMapping{
			{ERPStatus: "Open", CommerceStatus: "Submitted", AllowCancellation: true},
			{ERPStatus: "Processing", CommerceStatus: "Processing", AllowCancellation: true},
			{ERPStatus: "PendingAuthorization", CommerceStatus: "On Hold", AllowCancellation: true},
			{ERPStatus: "Shipped", CommerceStatus: "Shipped"},
			{ERPStatus: "Invoiced", CommerceStatus: "Complete"},
			{ERPStatus: "Cancelled", CommerceStatus: "Cancelled"},
		},
		CancellableStatuses: []string{"Submitted", "Processing", "On Hold"},
	}
}

// env is one test's registry and log.
type env struct {
	t   *testing.T
	reg *processors.Registry
	log *fakeLogger
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.Statuses == nil {
		m := statusMap()
		opts.Statuses = func() *definitions.OrderStatusMap { return m }
	}
	reg := processors.NewRegistry()
	Register(reg, opts)
	return &env{t: t, reg: reg, log: &fakeLogger{}}
}

// run builds a run against baseURL with the canary token.
func (e *env) run(baseURL string, params definitions.Values, settings map[string]any) *processors.Run {
	s := map[string]any{"baseURL": baseURL, "timeout": "2s"}
	for k, v := range settings {
		s[k] = v
	}
	return &processors.Run{
		ID:             1,
		Attempt:        1,
		MaxAttempts:    3,
		Params:         params,
		Connection:     processors.Connection{Name: "erp", Type: ConnectionType, Settings: s, Secrets: map[string]string{"token": canary}},
		Log:            e.log,
		IdempotencyKey: "k",
	}
}

// process resolves name and runs it; it checks that the canary never
// appears in logs, the error or the result.
func (e *env) process(name string, run *processors.Run) error {
	e.t.Helper()
	p, err := e.reg.Resolve(name, ConnectionType, run.Preview)
	require.NoError(e.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	perr := p.Process(ctx, run)
	e.noCanary(run, perr)
	return perr
}

func (e *env) noCanary(run *processors.Run, err error) {
	e.t.Helper()
	require.NotContains(e.t, e.log.text(), canary, "token in logs")
	if err != nil {
		require.NotContains(e.t, err.Error(), canary, "token in error")
		o := processors.Classify(err)
		require.NotContains(e.t, o.Message, canary, "token in outcome")
	}
	b, jerr := json.Marshal(run.Result())
	require.NoError(e.t, jerr)
	require.NotContains(e.t, string(b), canary, "token in result")
}

// fakeERP is a scripted ERP recording what it receives.
type fakeERP struct {
	mu       sync.Mutex
	posts    []http.Header
	bodies   []string
	gets     []http.Header
	paths    []string
	status   string // order status answered by GET
	onGet    http.HandlerFunc
	onPost   http.HandlerFunc
	srv      *httptest.Server
	getCount int
}

func newFakeERP(t *testing.T, status string) *fakeERP {
	f := &fakeERP{status: status}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeERP) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.EscapedPath())
	onGet, onPost, status := f.onGet, f.onPost, f.status
	if r.Method == http.MethodPost {
		f.posts = append(f.posts, r.Header.Clone())
		f.bodies = append(f.bodies, readAll(r))
	} else {
		f.gets = append(f.gets, r.Header.Clone())
		f.getCount++
	}
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+canary {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodGet && onGet != nil:
		onGet(w, r)
	case r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]string{"orderNumber": "x", "status": status})
	case onPost != nil:
		onPost(w, r)
	default:
		writeJSON(w, 200, map[string]string{"orderNumber": "x", "status": "Cancelled"})
	}
}

func (f *fakeERP) postCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.posts)
}

func readAll(r *http.Request) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeERP) getPaths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

func (f *fakeERP) getPosts() []http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]http.Header(nil), f.posts...)
}

func (f *fakeERP) getGets() []http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]http.Header(nil), f.gets...)
}

func (f *fakeERP) getBodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

func (f *fakeERP) setGet(h http.HandlerFunc) {
	f.mu.Lock()
	f.onGet = h
	f.mu.Unlock()
}

func (f *fakeERP) setPost(h http.HandlerFunc) {
	f.mu.Lock()
	f.onPost = h
	f.mu.Unlock()
}
