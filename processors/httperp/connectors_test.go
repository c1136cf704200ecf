package httperp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/platformsim"
	"github.com/jobrunner/jobrunner/processors"
)

const (
	sfID, sfSecret = "sf-id-CANARY-1", "sf-secret-CANARY-2"
	occKey         = "occ-key-CANARY-3"
	vKey, vToken   = "vtex-key-CANARY-4", "vtex-token-CANARY-5"
)

var connCanaries = []string{sfID, sfSecret, occKey, vKey, vToken, "-access-"}

// opRun is a run of the generic processor.
func opRun(lg *fakeLogger, conn processors.Connection, op string, params definitions.Values) *processors.Run {
	return &processors.Run{ID: 7, Attempt: 1, MaxAttempts: 3, Params: params, Connection: conn, Operation: op,
		Log: lg, IdempotencyKey: "jobrunner-test-run-7"}
}

func sfccConn(url string) processors.Connection {
	return processors.Connection{Name: "sfcc", Type: ConnectionType, Preset: PresetSalesforceB2C,
		Settings: map[string]any{"baseURL": url, "tokenURL": url + platformsim.SalesforceTokenPath, "timeout": "3s"},
		Secrets:  map[string]string{"clientID": sfID, "clientSecret": sfSecret}}
}

func occConn(url string) processors.Connection {
	return processors.Connection{Name: "occ", Type: ConnectionType, Preset: PresetOracleCommerce,
		Settings: map[string]any{"baseURL": url, "timeout": "3s"}, Secrets: map[string]string{"applicationKey": occKey}}
}

func vtexConn(url string) processors.Connection {
	return processors.Connection{Name: "vtex", Type: ConnectionType, Preset: PresetVTEX,
		Settings: map[string]any{"baseURL": url, "connectorName": "acme", "connectorEndpoint": "https://acme.example/vtex", "timeout": "3s"},
		Secrets:  map[string]string{"appKey": vKey, "appToken": vToken}}
}

// runOp runs the generic processor once and checks that no secret or
// access token reached the log, the error or the result.
func runOp(t *testing.T, reg *processors.Registry, run *processors.Run) error {
	t.Helper()
	p, err := reg.Resolve(NameHTTP, ConnectionType, run.Preview)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	perr := p.Process(ctx, run)
	lg := run.Log.(*fakeLogger)
	res, jerr := json.Marshal(run.Result())
	require.NoError(t, jerr)
	for _, c := range connCanaries {
		require.NotContains(t, lg.text(), c, "secret in logs")
		require.NotContains(t, string(res), c, "secret in result")
		if perr != nil {
			require.NotContains(t, perr.Error(), c, "secret in error")
		}
	}
	return perr
}

func newReg() *processors.Registry {
	reg := processors.NewRegistry()
	Register(reg, Options{})
	return reg
}

func TestOAuthOneTokenForParallelRuns(t *testing.T) {
	t.Parallel()
	sim := platformsim.NewSalesforce(sfID, sfSecret)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	reg := newReg()
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range 50 {
		wg.Go(func() {
			run := opRun(&fakeLogger{}, sfccConn(srv.URL), "updateOrderStatus", definitions.Values{"orderNo": "o" + string(rune('a'+i%26)), "status": "cancelled"})
			p, _ := reg.Resolve(NameHTTP, ConnectionType, false)
			errs[i] = p.Process(context.Background(), run)
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, sim.TokensIssued(), "50 parallel runs share one token")
	require.Equal(t, 1, sim.Count(platformsim.SalesforceTokenPath))
	require.Equal(t, 51, sim.Total())
}

func TestOAuthExpiredTokenRefreshedOnce(t *testing.T) {
	t.Parallel()
	sim := platformsim.NewSalesforce(sfID, sfSecret)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	reg := newReg()
	params := definitions.Values{"orderNo": "1", "status": "new"}
	require.NoError(t, runOp(t, reg, opRun(&fakeLogger{}, sfccConn(srv.URL), "updateOrderStatus", params)))
	sim.ExpireTokens()
	lg := &fakeLogger{}
	require.NoError(t, runOp(t, reg, opRun(lg, sfccConn(srv.URL), "updateOrderStatus", params)))
	require.Equal(t, 2, sim.TokensIssued(), "one refresh")
	require.Equal(t, 3, sim.Count("/s/-/dw/data/v23_2/sites/RefArch/orders/1/status"), "first run, the refused call, the retry")
	require.Equal(t, 1, lg.count("access token refused (401)"))

	// A token refused even after the refresh: one refresh, then a
	// permanent ERP_UNAUTHORIZED (no loop).
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			writeJSON(w, 200, map[string]any{"access_token": "tok-access-x", "expires_in": 3600})
			return
		}
		writeJSON(w, 401, map[string]any{"fault": map[string]any{"type": "InvalidAccessTokenException", "message": "no"}})
	}))
	t.Cleanup(bad.Close)
	c := sfccConn(bad.URL)
	c.Settings["tokenURL"] = bad.URL + "/token"
	err := runOp(t, reg, opRun(&fakeLogger{}, c, "updateOrderStatus", params))
	o := processors.Classify(err)
	require.Equal(t, processors.OutcomePermanent, o.Kind, "%v", err)
	require.Equal(t, "ERP_UNAUTHORIZED", o.Code)
}

func TestOAuthTokenRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	sim := platformsim.NewSalesforce(sfID, sfSecret)
	sim.SetTokenTTL(TokenRefreshMargin - time.Second) // always inside the margin
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	reg := newReg()
	for range 3 {
		require.NoError(t, runOp(t, reg, opRun(&fakeLogger{}, sfccConn(srv.URL), "updateOrderStatus", definitions.Values{"orderNo": "1", "status": "new"})))
	}
	require.Equal(t, 3, sim.TokensIssued(), "a token about to expire is replaced before use")
	require.Equal(t, 3, sim.Count("/s/-/dw/data/v23_2/sites/RefArch/orders/1/status"), "and never refused")
}

func TestOAuthTokenEndpointDownComesBackLater(t *testing.T) {
	t.Parallel()
	sim := platformsim.NewSalesforce(sfID, sfSecret)
	sim.SetTokenEndpointDown(true)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	reg := newReg()
	err := runOp(t, reg, opRun(&fakeLogger{}, sfccConn(srv.URL), "updateOrderStatus", definitions.Values{"orderNo": "1", "status": "new"}))
	o := processors.Classify(err)
	require.Equal(t, processors.OutcomeSnooze, o.Kind, "%v", err)
	require.Equal(t, CodeAuthUnavailable, o.Code)
	require.Contains(t, o.Message, "503")
	require.Zero(t, sim.Count("/s/-/dw/data/v23_2/sites/RefArch/orders/1/status"), "no call without a token")

	// Unreachable token endpoint: the same.
	c := sfccConn(srv.URL)
	c.Settings["tokenURL"] = "http://127.0.0.1:1/token"
	o = processors.Classify(runOp(t, reg, opRun(&fakeLogger{}, c, "updateOrderStatus", definitions.Values{"orderNo": "1", "status": "new"})))
	require.Equal(t, processors.OutcomeSnooze, o.Kind)
	require.Equal(t, CodeAuthUnavailable, o.Code)

	// Wrong credentials: permanent, and the secret is not in the message.
	c = sfccConn(srv.URL)
	sim.SetTokenEndpointDown(false)
	c.Secrets = map[string]string{"clientID": sfID, "clientSecret": sfSecret + "-wrong"}
	o = processors.Classify(runOp(t, reg, opRun(&fakeLogger{}, c, "updateOrderStatus", definitions.Values{"orderNo": "1", "status": "new"})))
	require.Equal(t, processors.OutcomePermanent, o.Kind)
	require.Equal(t, CodeUnauthorized, o.Code)
	require.Contains(t, o.Message, "invalid_client")
}

func TestOracleLoginShared(t *testing.T) {
	t.Parallel()
	sim := platformsim.NewOracle(occKey)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	reg := newReg()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			run := opRun(&fakeLogger{}, occConn(srv.URL), "handleOrderActions", definitions.Values{"id": "o1", "op": "cancel"})
			p, _ := reg.Resolve(NameHTTP, ConnectionType, false)
			require.NoError(t, p.Process(context.Background(), run))
		})
	}
	wg.Wait()
	require.Equal(t, 1, sim.Count("/ccagent/v1/login"))
	sim.ExpireTokens()
	require.NoError(t, runOp(t, reg, opRun(&fakeLogger{}, occConn(srv.URL), "handleOrderActions", definitions.Values{"id": "o1", "op": "cancel"})))
	require.Equal(t, 2, sim.Count("/ccagent/v1/login"))

	// A wrong application key: the login refuses it, permanently.
	c := occConn(srv.URL)
	c.Secrets = map[string]string{"applicationKey": occKey + "x"}
	o := processors.Classify(runOp(t, reg, opRun(&fakeLogger{}, c, "handleOrderActions", definitions.Values{"id": "o1", "op": "cancel"})))
	require.Equal(t, processors.OutcomePermanent, o.Kind)
	require.Equal(t, CodeUnauthorized, o.Code)
}

func TestHostileAnswers(t *testing.T) {
	t.Parallel()
	vsim, osim := platformsim.NewVTEX(vKey, vToken), platformsim.NewOracle(occKey)
	vsrv, osrv := httptest.NewServer(vsim), httptest.NewServer(osim)
	t.Cleanup(vsrv.Close)
	t.Cleanup(osrv.Close)
	reg := newReg()
	cases := []struct {
		name, id string
		oracle   bool
		kind     processors.OutcomeKind
		code     string
		msg      string
	}{
		{"HTML error page", "hostile-html", false, processors.OutcomeRetry, CodeUnavailable, "502 Bad Gateway"},
		{"HTML with 200", "hostile-200html", false, processors.OutcomeRetry, CodeBadResponse, "content type text/html"},
		{"empty body", "hostile-empty", false, processors.OutcomeRetry, CodeBadResponse, "an empty body"},
		{"10 MB body", "hostile-10mb", false, processors.OutcomeRetry, CodeBadResponse, "larger than 1 MiB"},
		{"200 success:false", "hostile-false", false, processors.OutcomePermanent, CodeRejected, "success is false"},
		{"oracle HTML with 200", "hostile-200html", true, processors.OutcomeRetry, CodeBadResponse, "want a JSON answer"},
		{"oracle empty body", "hostile-empty", true, processors.OutcomeRetry, CodeBadResponse, "an empty body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var run *processors.Run
			if tc.oracle {
				run = opRun(&fakeLogger{}, occConn(osrv.URL), "handleOrderActions", definitions.Values{"id": tc.id, "op": "cancel"})
			} else {
				run = opRun(&fakeLogger{}, vtexConn(vsrv.URL), "updateOrderStatus", definitions.Values{"marketplaceOrderId": tc.id, "marketplaceOrderStatus": "APPROVED"})
			}
			err := runOp(t, reg, run)
			o := processors.Classify(err)
			require.Equal(t, tc.kind, o.Kind, "%v", err)
			require.Equal(t, tc.code, o.Code, o.Message)
			require.Contains(t, o.Message, tc.msg)
		})
	}

	// A JSON path that is absent: the run succeeds with a warning and the
	// field is null in the result.
	c := occConn(osrv.URL)
	c.Operations = map[string]any{"handleOrderActions": map[string]any{"result": map[string]any{"state": "order.state"}}}
	lg := &fakeLogger{}
	run := opRun(lg, c, "handleOrderActions", definitions.Values{"id": "o5", "op": "cancel"})
	require.NoError(t, runOp(t, reg, run))
	require.Equal(t, int64(1), run.Counters().Warnings)
	b, _ := json.Marshal(run.Result())
	require.Contains(t, string(b), `"state":null`)
	require.Contains(t, string(b), `"missingFields":["state (order.state)"]`)
}

func TestOperationRequestBuilding(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []*http.Request
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r)
		bodies = append(bodies, string(b))
		mu.Unlock()
		writeJSON(w, 200, map[string]any{"ok": true, "id": 12345678901234567})
	}))
	t.Cleanup(srv.Close)
	conn := processors.Connection{Name: "custom", Type: ConnectionType, Preset: PresetNone,
		Settings: map[string]any{"baseURL": srv.URL + "/api", "tenant": "eu 1", "auth": map[string]any{"type": "apiKey", "headers": map[string]any{"X-Api-Key": "key"}}},
		Secrets:  map[string]string{"key": vKey},
		Operations: map[string]any{"push": map[string]any{
			"method": "POST", "path": "/t/{tenant}/orders/{id}", "query": map[string]any{"dry": "{dry}"},
			"inputs":  map[string]any{"id": "required", "amount": "required", "qty": "required", "dry": "optional", "note": "optional"},
			"headers": map[string]any{"X-Note": "{note}", "X-Upper": `{{upper .id}}`},
			"body":    map[string]any{"amount": "{amount}", "qty": "{qty}", "note": "{note}", "label": "order {id} x{qty}", "fixed": int64(1)},
			"result":  map[string]any{"id": "id"},
		}}}
	reg := newReg()
	run := opRun(&fakeLogger{}, conn, "push", definitions.Values{"id": "a/b c", "amount": decimal.RequireFromString("12.50"), "qty": int64(3)})
	require.NoError(t, runOp(t, reg, run))
	require.Len(t, got, 1)
	r := got[0]
	require.Equal(t, "/api/t/eu%201/orders/a%2Fb%20c", r.URL.EscapedPath(), "inputs and settings path-escaped")
	require.Empty(t, r.URL.RawQuery, "an absent optional input sends no query parameter")
	require.Empty(t, r.Header.Get("X-Note"))
	require.Equal(t, "A/B C", r.Header.Get("X-Upper"))
	require.Equal(t, vKey, r.Header.Get("X-Api-Key"))
	require.Equal(t, "jobrunner-test-run-7:push", r.Header.Get("Idempotency-Key"))
	require.Equal(t, `{"amount":12.50,"fixed":1,"label":"order a/b c x3","qty":3}`, bodies[0], "decimals exact, ints numbers, absent inputs omitted")
	b, _ := json.Marshal(run.Result())
	require.Contains(t, string(b), `"result":{"id":12345678901234567}`, "numbers kept exactly")

	// A preview of a changing operation sends nothing and says what it would send.
	prev := opRun(&fakeLogger{}, conn, "push", definitions.Values{"id": "9", "amount": decimal.RequireFromString("1"), "qty": int64(1)})
	prev.Preview = true
	require.NoError(t, runOp(t, reg, prev))
	require.Len(t, got, 1, "nothing sent")
	b, _ = json.Marshal(prev.Result())
	require.Contains(t, string(b), `"wouldSend":{"method":"POST","path":"/t/eu%201/orders/9","body":{"amount":1,"fixed":1,"label":"order 9 x1","qty":1}}`)
	require.NotContains(t, string(b), vKey)
}

func TestCheckerReportsPresetProblems(t *testing.T) {
	t.Parallel()
	ch := checker{}
	probs := ch.CheckConnection(&definitions.Connection{Name: "v", Type: "http", Preset: PresetVTEX, Settings: map[string]any{"baseURL": "http://x"},
		Secrets: map[string]string{"appKey": "K"}})
	require.Len(t, probs, 1)
	require.Equal(t, "settings.auth.headers.X-VTEX-API-AppToken", probs[0].Key)
	require.Contains(t, probs[0].Message, `secret "appToken"`)
	require.Empty(t, ch.CheckConnection(&definitions.Connection{Name: "v", Type: "http", Preset: PresetSalesforceB2C,
		Settings: map[string]any{"baseURL": "${X}", "tokenURL": "${Y}"}, Secrets: map[string]string{"clientID": "A", "clientSecret": "B"}}))
	for _, name := range Presets() {
		require.NotPanics(t, func() { _, _ = compileSpec(name, nil, nil, nil) })
	}
	require.True(t, strings.Contains(strings.Join(Presets(), ","), PresetOracleCommerce))
}

func TestSecretsOnlyInHeaders(t *testing.T) {
	t.Parallel()
	ch := checker{}
	probs := ch.CheckConnection(&definitions.Connection{Name: "c", Type: "http", Preset: PresetNone, Settings: map[string]any{"baseURL": "http://x"},
		Secrets: map[string]string{"k": "K"},
		Operations: map[string]any{"op": map[string]any{"method": "POST", "path": `/x/{{secret "k"}}`,
			"headers": map[string]any{"X-K": `{{secret "k"}}`}, "body": map[string]any{"k": `{{secret "k"}}`}}}})
	require.Len(t, probs, 2, "%v", probs)
	keys := []string{probs[0].Key, probs[1].Key}
	require.ElementsMatch(t, []string{"operations.op.body.k", "operations.op.path"}, keys)
	require.Contains(t, probs[1].Message, "secrets may only be sent in headers")
}

func TestWrongRouteIsAConfigErrorNotAMissingOrder(t *testing.T) {
	t.Parallel()
	// Any server that is not the ERP (a wrong baseURL): 404 with its own page.
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	e := newEnv(t, Options{})
	err := e.process(NameOrderCancel, e.run(srv.URL+"/wrong", cancelParams("WEB000123"), nil))
	o := processors.Classify(err)
	require.Equal(t, processors.OutcomePermanent, o.Kind, "%v", err)
	require.Equal(t, CodeConfig, o.Code, o.Message)
	require.Contains(t, o.Message, srv.URL+"/wrong/orders/WEB000123 answered 404 without the platform's error body")
	require.Contains(t, o.Message, "check the connection's baseURL")
}

func TestJobTimeoutIsNamed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, Options{})
	run := e.run(srv.URL, cancelParams("WEB000123"), nil)
	run.Job = &definitions.Job{Name: "OrderCancel", Timeout: definitions.Duration(100 * time.Millisecond)}
	p, err := e.reg.Resolve(NameOrderCancel, ConnectionType, false)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	o := processors.Classify(p.Process(ctx, run))
	require.Equal(t, processors.OutcomeTimeout, o.Kind)
	require.Equal(t, processors.CodeTimeout, o.Code)
	require.Equal(t, "the job's 100ms timeout elapsed during GET /orders/WEB000123", o.Message)
}

func TestUnknownSettingsAreErrors(t *testing.T) {
	t.Parallel()
	probs := checker{}.CheckConnection(&definitions.Connection{Name: "erp", Type: "http",
		Settings: map[string]any{"baseURL": "http://x", "timout": "5s", "retries": int64(3)}})
	require.Len(t, probs, 2, "%v", probs)
	require.Equal(t, "settings.retries", probs[0].Key)
	require.Equal(t, "settings.timout", probs[1].Key)
	require.Contains(t, probs[1].Message, `(did you mean "timeout"?)`)
	// A setting an operation refers to, and a preset's, are known.
	require.Empty(t, checker{}.CheckConnection(&definitions.Connection{Name: "v", Type: "http", Preset: PresetVTEX,
		Settings:   map[string]any{"baseURL": "http://x", "connectorName": "a", "tenant": "eu"},
		Operations: map[string]any{"x": map[string]any{"method": "GET", "path": "/t/{tenant}"}},
		Secrets:    map[string]string{"appKey": "A", "appToken": "B"}}))
}
