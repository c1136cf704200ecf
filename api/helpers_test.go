package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/api"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/erpdemo"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/metrics"
	"github.com/jobrunner/jobrunner/platformsim"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/processors/httperp"
	"github.com/jobrunner/jobrunner/processors/noop"
)

// Test token secrets, by role.
const (
	viewerSecret   = "viewer-secret-0123456789"
	operatorSecret = "operator-secret-0123456789"
	adminSecret    = "admin-secret-0123456789"
	// defaultERPToken is the demo ERP's token unless a test sets another.
	defaultERPToken = "erp-token-0123456789abcdef"
)

// typedDefs adds a job with a parameter of every type to the built-in
// examples (it runs the Noop processor, which ignores them).
const typedDefs = `
jobs:
  - name: Typed
    connection: local
    processor: Noop
    parameters:
      - {name: Amount, type: decimal}
      - {name: Count, type: int}
      - {name: Flag, type: bool, default: "true"}
      - {name: Day, type: date}
      - {name: At, type: datetime}
      - {name: Kind, type: enum, values: [a, b], required: true}
      - {name: Note, type: string, max: 20}
  - name: Blind
    connection: local
    processor: Blind
  - name: Multi
    connection: local
    parameters:
      - {name: SleepMs, type: int}
    links:
      - job: Noop
        parameters: {SleepMs: "${param.SleepMs}"}
    steps:
      - {name: first, processor: Noop}
      - {name: second, processor: Noop}
`

// envOptions tune newEnv.
type envOptions struct {
	// work runs queued runs (see worker) when the server wakes it.
	work bool
	// pool, with work, runs them in a real jobs.Pool (pauses, bulkheads)
	// instead of the test worker.
	pool bool
	// tokens overrides the default viewer/operator/admin tokens; noTokens
	// configures none.
	tokens   string
	noTokens bool
	// erpToken is the demo ERP's bearer token (default defaultERPToken).
	erpToken string
	reload   func(ctx context.Context) error
	ready    func(ctx context.Context) error
	metrics  bool
	demo     bool
	// builtinOnly leaves the Typed test job out (screenshots).
	builtinOnly bool
	// log receives the server's and the executor's log lines.
	log *logrus.Logger
}

// env is a server on a real store with the built-in definitions (plus
// Typed), a demo ERP, and optionally a worker.
type env struct {
	t       *testing.T
	store   *jobs.Store
	defs    *definitions.Set
	reg     *processors.Registry
	erp     *erpdemo.Server
	srv     *api.Server
	http    *httptest.Server
	metrics *metrics.Metrics
	worker  *worker

	mu     sync.Mutex
	bodies [][]byte // every response body read through do
}

// HookSecret is the secret of the built-in hooks in these tests.
const HookSecret = "CANARY-hook-secret-3f9a"

// ShopCanary is the demo shop's app token: it must never appear anywhere.
const ShopCanary = "CANARY-shop-token-77c1e9"

func testDefinitions(t testing.TB, reg *processors.Registry) *definitions.Set {
	t.Helper()
	set := definitions.Builtin()
	extra, err := definitions.LoadFS(fstest.MapFS{"typed.yaml": {Data: []byte(typedDefs)}}, ".")
	require.NoError(t, err)
	set.Jobs = append(set.Jobs, extra.Jobs...)
	set.ApplyDefaults()
	require.NoError(t, set.Validate(reg))
	return set
}

func newEnv(t *testing.T, store *jobs.Store, opts envOptions) *env {
	t.Helper()
	e := &env{t: t, store: store, reg: processors.NewRegistry()}
	noop.Register(e.reg)
	e.reg.Register("Blind", processors.ProcessorFunc(func(context.Context, *processors.Run) error { return nil }),
		processors.ForConnectionTypes(noop.ConnectionType), processors.WithDescription("cannot preview"))
	httperp.Register(e.reg, httperp.Options{
		Statuses: func() *definitions.OrderStatusMap { return e.defs.OrderStatuses },
		Sync:     store,
	})
	e.defs = testDefinitions(t, e.reg)
	if opts.builtinOnly {
		e.defs = definitions.Builtin()
		require.NoError(t, e.defs.Validate(e.reg))
	}

	erpToken := opts.erpToken
	if erpToken == "" {
		erpToken = defaultERPToken
	}
	e.erp = erpdemo.New(erpToken)
	erpHTTP := httptest.NewServer(e.erp.Handler())
	t.Cleanup(erpHTTP.Close)

	tokens := opts.tokens
	if tokens == "" && !opts.noTokens {
		tokens = "viewer:viewer:" + viewerSecret + ",ops:operator:" + operatorSecret + ",root:admin:" + adminSecret
	}
	parsed, err := api.ParseTokens(tokens)
	require.NoError(t, err)
	if opts.metrics {
		e.metrics = metrics.New(metrics.Options{Queue: store})
	}
	cfg := api.Config{
		Store:       store,
		Definitions: func() *definitions.Set { return e.defs },
		Registry:    e.reg,
		Tokens:      parsed,
		Metrics:     e.metrics,
		Demo:        opts.demo,
		Reload:      opts.reload,
		Ready:       opts.ready,
		Log:         opts.log,
		Getenv: func(k string) string {
			return map[string]string{"JOBRUNNER_HOOK_SECRET": HookSecret, "JOBRUNNER_VTEX_HOOK_TOKEN": HookSecret}[k]
		},
	}
	if opts.work {
		shop := httptest.NewServer(platformsim.NewVTEX("shop-key", ShopCanary))
		t.Cleanup(shop.Close)
		getenv := map[string]string{"JOBRUNNER_ERP_URL": erpHTTP.URL, "JOBRUNNER_ERP_TOKEN": erpToken,
			"JOBRUNNER_SHOP_URL": shop.URL, "JOBRUNNER_SHOP_APP_KEY": "shop-key", "JOBRUNNER_SHOP_APP_TOKEN": ShopCanary}
		ex := &jobs.Executor{
			Store:       store,
			Registry:    e.reg,
			Definitions: func() *definitions.Set { return e.defs },
			Owner:       "apitest",
			LeaseTTL:    1500 * time.Millisecond,
			Getenv:      func(k string) string { return getenv[k] },
			Log:         opts.log,
			// A test that closes the database must not wait 10 minutes
			// for an outcome to be stored.
			RecordTimeout: 2 * time.Second,
		}
		if opts.pool {
			pool := jobs.NewPool(jobs.PoolConfig{Executor: ex, Workers: 4, PollInterval: 200 * time.Millisecond})
			pool.Start(context.Background())
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				pool.Stop(ctx)
			})
			cfg.Wake, cfg.PausesChanged = pool.Wake, pool.PausesChanged
		} else {
			e.worker = newWorker(t, ex, e.metrics)
			cfg.Wake = e.worker.Wake
		}
	}
	e.srv, err = api.New(cfg)
	require.NoError(t, err)
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.http.Close)
	return e
}

// do sends a request with the bearer secret (none when ""), a JSON body
// (a string is sent as is, anything else is marshalled), and returns the
// answer and its body.
func (e *env) do(method, path, secret string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	require.NoError(e.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	e.record(data)
	return resp, data
}

func (e *env) record(b []byte) {
	e.mu.Lock()
	e.bodies = append(e.bodies, b)
	e.mu.Unlock()
}

// doJSON is do that also decodes the answer into a generic map.
func (e *env) doJSON(method, path, secret string, body any) (int, map[string]any) {
	e.t.Helper()
	resp, data := e.do(method, path, secret, body)
	var m map[string]any
	require.NoError(e.t, json.Unmarshal(data, &m), "body: %s", data)
	return resp.StatusCode, m
}

// apiError returns the error object of an error answer.
func apiError(t *testing.T, m map[string]any) (code string, fields map[string]any) {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	require.True(t, ok, "not an error answer: %v", m)
	require.NotEmpty(t, e["message"])
	f, _ := e["fields"].(map[string]any)
	return e["code"].(string), f
}

// trigger starts a run of job as the operator and returns its id.
func (e *env) trigger(job string, params map[string]any) int64 {
	e.t.Helper()
	status, m := e.doJSON(http.MethodPost, "/api/v1/jobs/"+job+"/runs", operatorSecret, map[string]any{"parameters": params})
	require.Equal(e.t, http.StatusAccepted, status, "%v", m)
	return int64(m["id"].(float64))
}

// waitStatus waits until run id has status want (at most 30 s).
func (e *env) waitStatus(id int64, want jobs.Status) *jobs.Run {
	e.t.Helper()
	var run *jobs.Run
	require.Eventually(e.t, func() bool {
		var err error
		run, err = e.store.Get(context.Background(), id)
		require.NoError(e.t, err)
		return run.Status == want
	}, 30*time.Second, 20*time.Millisecond, "run %d never became %s", id, want)
	return run
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// countRuns counts every run in the store.
func countRuns(t *testing.T, s *jobs.Store) int64 {
	t.Helper()
	var n int64
	require.NoError(t, s.DB().Model(&jobs.Run{}).Count(&n).Error)
	return n
}

// worker executes queued runs in the test, as the workers of serve do:
// the server's Wake hook starts it; it claims due runs with
// Store.ClaimRun and executes each with the Executor on its own goroutine.
type worker struct {
	ex     *jobs.Executor
	obs    jobs.Observer
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	wake   chan struct{}
	wg     sync.WaitGroup
}

func newWorker(t *testing.T, ex *jobs.Executor, m *metrics.Metrics) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{ex: ex, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
	if m != nil {
		w.obs = m
	}
	t.Cleanup(func() {
		cancel()
		w.wg.Wait()
	})
	return w
}

// stop stops executing (in-flight executions are cancelled) and waits.
func (w *worker) stop() {
	w.cancel()
	w.wg.Wait()
}

// Wake starts the worker's loop on first use and nudges it.
func (w *worker) Wake() {
	w.once.Do(func() {
		w.wg.Add(1)
		go w.loop()
	})
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) loop() {
	defer w.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.wake:
		case <-tick.C:
		}
		runs, err := w.ex.Store.List(w.ctx, jobs.Filter{Status: jobs.StatusQueued, Limit: 100})
		if err != nil {
			continue
		}
		for _, r := range runs {
			if r.NotBefore.After(time.Now()) {
				continue
			}
			c, err := w.ex.Store.ClaimRun(w.ctx, r.ID, w.ex.Owner, w.ex.LeaseTTL)
			if err != nil {
				continue
			}
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				start := time.Now()
				f, err := w.ex.Execute(w.ctx, c)
				if err == nil && w.obs != nil {
					w.obs.AttemptFinished(c.Run.Job, f.AttemptStatus, f.Status, time.Since(start))
				}
			}()
		}
	}
}
