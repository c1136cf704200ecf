package httperp

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/erpdemo"
	"github.com/jobrunner/jobrunner/platformsim"
	"github.com/jobrunner/jobrunner/processors"
)

// demo starts a demo ERP whose token is the canary.
func demo(t *testing.T) (*erpdemo.Server, string) {
	s := erpdemo.New(canary)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// attempt runs one attempt of a run: same idempotency key, next number.
func attempt(e *env, name, url string, n int, params definitions.Values, settings map[string]any) (*processors.Run, error) {
	run := e.run(url, params, settings)
	run.Attempt = n
	run.IdempotencyKey = "run-" + params.String("OrderNumber")
	return run, e.process(name, run)
}

func TestExactlyOnceAfterTimeout(t *testing.T) {
	t.Parallel()
	erp, url := demo(t)
	e := newEnv(t, Options{})

	// Attempt 1: the ERP applies the cancel but answers after the timeout.
	erp.SetDelay(time.Second)
	_, err := attempt(e, NameOrderCancel, url, 1, cancelParams("WEB000123"), map[string]any{"timeout": "200ms"})
	require.True(t, processors.Classify(err).Retryable(), "%v", err)
	o, _ := erp.Get("WEB000123")
	require.Equal(t, "Cancelled", o.Status, "the ERP did the work")

	// Attempt 2: success without a second effect.
	erp.SetDelay(0)
	run, err := attempt(e, NameOrderCancel, url, 2, cancelParams("WEB000123"), nil)
	require.NoError(t, err)
	require.True(t, run.Result().(OrderResult).AlreadyCancelled)
	require.Equal(t, 1, erp.CancelsApplied("WEB000123"))
	require.Equal(t, 1, erp.CancelCalls("WEB000123"))
	require.Contains(t, e.log.text(), "possibly by an earlier attempt of this run")
}

func TestIdempotencyKeyReplay(t *testing.T) {
	t.Parallel()
	erp, url := demo(t)
	e := newEnv(t, Options{})
	params := definitions.Values{"OrderNumber": "WEB000124", "op": "cancel"}

	// Both attempts POST (the first times out before the ERP answers, the
	// ERP status is read before it applies): the key makes it one cancel.
	erp.SetDelay(time.Second)
	_, err := attempt(e, NameOrderAction, url, 1, params, map[string]any{"timeout": "200ms"})
	require.True(t, processors.Classify(err).Retryable(), "%v", err)
	erp.SetDelay(0)
	// Put it back so the next attempt's GET sees it open: the POST's
	// idempotency key is what prevents a second effect.
	erp.Put(erpdemo.Order{OrderNumber: "WEB000124", Status: "Processing"})
	run, err := attempt(e, NameOrderAction, url, 2, params, nil)
	require.NoError(t, err)
	require.False(t, run.Result().(OrderResult).AlreadyCancelled)
	require.Equal(t, "Cancelled", run.Result().(OrderResult).ERPStatus)
	require.Equal(t, 2, erp.CancelCalls("WEB000124"))
	require.Equal(t, 1, erp.CancelsApplied("WEB000124"), "the replayed key applied nothing")
	o, _ := erp.Get("WEB000124")
	require.Equal(t, "Processing", o.Status, "the replay did not touch the order")

	// validateOrder has no read first: the replay answers the first result.
	erp.SetDelay(time.Second)
	vparams := definitions.Values{"OrderNumber": "WEB000123", "op": "validateOrder"}
	_, err = attempt(e, NameOrderAction, url, 1, vparams, map[string]any{"timeout": "200ms"})
	require.True(t, processors.Classify(err).Retryable(), "%v", err)
	erp.SetDelay(0)
	run, err = attempt(e, NameOrderAction, url, 2, vparams, nil)
	require.NoError(t, err, "a second application would be refused (already Processing)")
	require.Equal(t, "Processing", run.Result().(OrderResult).ERPStatus)
}

func TestDemoScenarios(t *testing.T) {
	t.Parallel()
	erp, url := demo(t)
	e := newEnv(t, Options{})
	var mu sync.Mutex
	outcome := func(n string, attemptNo int) processors.Outcome {
		mu.Lock()
		defer mu.Unlock()
		_, err := attempt(e, NameOrderCancel, url, attemptNo, cancelParams(n), nil)
		return processors.Classify(err)
	}

	require.Equal(t, processors.OutcomeSuccess, outcome("WEB000123", 1).Kind)
	require.Equal(t, processors.OutcomeSuccess, outcome("WEB000124", 1).Kind)
	require.Equal(t, processors.OutcomeSuccess, outcome("WEB000128", 1).Kind)
	require.Equal(t, 0, erp.CancelCalls("WEB000128"))

	o := outcome("WEB000126", 1)
	require.Equal(t, "ORDER_NOT_CANCELLABLE", o.Code)
	require.Equal(t, "order WEB000126 is Shipped (ERP status Shipped), which does not allow cancellation", o.Message)
	require.Equal(t, "ORDER_NOT_CANCELLABLE", outcome("WEB000127", 1).Code)
	require.Equal(t, 0, erp.CancelCalls("WEB000126"))

	o = outcome("WEB000129", 1)
	require.Equal(t, "STATUS_LOCKED", o.Code)
	require.Equal(t, "Status of integrated orders cannot be changed", o.Message)

	// Manual authorization pending: come back later, twice, then success.
	for i := range erpdemo.AuthorizationCalls {
		o = outcome("WEB000125", 1)
		require.Equal(t, processors.OutcomeSnooze, o.Kind, "call %d", i)
		require.Equal(t, 2*time.Second, o.Delay)
	}
	require.Equal(t, processors.OutcomeSuccess, outcome("WEB000125", 1).Kind)

	// Temporarily unavailable: 503 with Retry-After 1, then success.
	for range erpdemo.UnavailableCalls {
		o = outcome("WEB000130", 1)
		require.Equal(t, processors.OutcomeSnooze, o.Kind)
		require.Equal(t, time.Second, o.Delay)
	}
	require.Equal(t, processors.OutcomeSuccess, outcome("WEB000130", 1).Kind)
	require.Equal(t, 1, erp.CancelsApplied("WEB000130"))

	_, err := attempt(e, NameOrderCancel, url, 1, cancelParams("WEB999999"), nil)
	require.Equal(t, "ORDER_NOT_FOUND", processors.Classify(err).Code)

	// Wrong token: permanent, and the token is not echoed.
	run := e.run(url, cancelParams("WEB000123"), nil)
	run.Connection.Secrets = map[string]string{"token": "wrong"}
	require.Equal(t, "ERP_UNAUTHORIZED", processors.Classify(e.process(NameOrderCancel, run)).Code)

	// Sync against the demo, pushing to a VTEX simulator: every seeded
	// order is mapped and pushed.
	se := newEnv(t, Options{})
	shop := platformsim.NewVTEX("key", "shop-secret")
	ss := httptest.NewServer(shop)
	t.Cleanup(ss.Close)
	run = se.run(url, definitions.Values{}, nil)
	run.Job = syncJob("DemoSync", -1)
	run.Push = vtexTarget(t, se, ss.URL)
	require.NoError(t, se.process(NameOrderStatusSync, run))
	res := run.Result().(*SyncResult)
	require.Equal(t, 8, res.Read)
	require.Equal(t, 0, res.Unmapped, se.log.text())
	require.Equal(t, 8, res.Changed)
	require.Equal(t, "Shipped", shop.Status("WEB000126"))
}

func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	erp, url := demo(t)
	e := newEnv(t, Options{})
	p, err := e.reg.Resolve(NameOrderCancel, ConnectionType, false)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := e.run(url, cancelParams("WEB000123"), nil)
			run.IdempotencyKey = "run-" + string(rune('a'+i))
			err := p.Process(t.Context(), run)
			if err != nil {
				t.Errorf("run %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, erp.CancelsApplied("WEB000123"))
}

// TestBuiltinDefinitions runs the built-in OrderCancel and OrderStatusSync
// definitions against the demo ERP the way the executor does: settings
// with ${VAR} expanded, secrets resolved from the environment, defaults
// parsed from the job's parameters.
func TestBuiltinDefinitions(t *testing.T) {
	t.Parallel()
	erp, url := demo(t)
	set := definitions.Builtin()
	env := map[string]string{"JOBRUNNER_ERP_URL": url, "JOBRUNNER_ERP_TOKEN": canary}
	getenv := func(k string) string { return env[k] }
	conn, ok := set.Connection("erp")
	require.True(t, ok)
	secrets, err := conn.ResolveSecrets(getenv)
	require.NoError(t, err)
	e := newEnv(t, Options{Statuses: func() *definitions.OrderStatusMap { return set.OrderStatuses }})

	for _, tc := range []struct{ job, order, code string }{
		{"OrderCancel", "WEB000123", ""},
		{"OrderCancel", "WEB000126", "ORDER_NOT_CANCELLABLE"},
		{"OrderStatusSync", "", ""},
	} {
		job, ok := set.Job(tc.job)
		require.True(t, ok)
		params := definitions.Values{}
		for _, p := range job.Parameters {
			if p.Default != nil {
				params[p.Name] = *p.Default
			}
		}
		if tc.order != "" {
			params["OrderNumber"] = tc.order
		}
		run := &processors.Run{
			Job: job, Attempt: 1, MaxAttempts: job.Retry.MaxAttempts, Params: params, Log: e.log, IdempotencyKey: "run-" + tc.order,
			Connection: processors.Connection{Name: conn.Name, Type: conn.Type, Settings: conn.ExpandedSettings(getenv), Secrets: secrets},
		}
		if job.Push != nil { // the built-in shop connection, at a VTEX simulator
			shop, ok := set.Connection(job.Push.Connection)
			require.True(t, ok)
			sim := platformsim.NewVTEX("k", "t")
			ss := httptest.NewServer(sim)
			t.Cleanup(ss.Close)
			env["JOBRUNNER_SHOP_URL"], env["JOBRUNNER_SHOP_APP_KEY"], env["JOBRUNNER_SHOP_APP_TOKEN"] = ss.URL, "k", "t"
			sec, err := shop.ResolveSecrets(getenv)
			require.NoError(t, err)
			p, err := e.reg.Resolve(NameHTTP, ConnectionType, false)
			require.NoError(t, err)
			run.Push = &processors.Target{Connection: processors.Connection{Name: shop.Name, Type: shop.Type, Preset: shop.Preset, Settings: shop.ExpandedSettings(getenv), Secrets: sec},
				Processor: p, ProcessorName: NameHTTP, Operation: job.Push.Operation, Inputs: job.Push.Inputs}
			defer func() { require.Equal(t, "Cancelled", sim.Status("WEB000128")) }()
		}
		err := e.process(job.Processor, run)
		if tc.code == "" {
			require.NoError(t, err, tc.job)
		} else {
			require.Equal(t, tc.code, processors.Classify(err).Code)
		}
	}
	require.Equal(t, 1, erp.CancelsApplied("WEB000123"))
}
