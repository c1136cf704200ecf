package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/hooks"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// hookPost sends body to /hooks/name with the given headers.
func (e *env) hookPost(name string, body []byte, header map[string]string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.http.URL+"/hooks/"+name, bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var m map[string]any
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	e.record(buf.Bytes())
	if buf.Len() > 0 {
		require.NoError(e.t, json.Unmarshal(buf.Bytes(), &m), "body %s", buf.String())
	}
	return resp.StatusCode, m, resp.Header
}

// signed returns the headers of the built-in order-cancelled hook for
// body, signed at ts with secret.
func signed(t *testing.T, e *env, body []byte, secret string, ts time.Time) map[string]string {
	t.Helper()
	h, ok := e.defs.Hook("order-cancelled")
	require.True(t, ok)
	return map[string]string{"X-Timestamp": strconv.FormatInt(ts.Unix(), 10), "X-Signature": hooks.Sign(h, secret, body, ts.Unix())}
}

func cancelEvent(id, order, status string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"status":%q,"order":{"number":%q,"total":12.5}}`, id, status, order))
}

func TestHookSignaturesAndMapping(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		e := newEnv(t, store, envOptions{metrics: true})
		now := time.Now()
		body := cancelEvent("evt-1", "WEB000123", "canceled")

		// Refused calls store nothing.
		for _, tc := range []struct {
			name   string
			header map[string]string
			code   string
		}{
			{"no signature", map[string]string{"X-Timestamp": strconv.FormatInt(now.Unix(), 10)}, "bad_signature"},
			{"wrong secret", signed(t, e, body, "not-the-secret", now), "bad_signature"},
			{"replayed (old timestamp)", signed(t, e, body, HookSecret, now.Add(-10*time.Minute)), "bad_signature"},
			{"timestamp in the future", signed(t, e, body, HookSecret, now.Add(10*time.Minute)), "bad_signature"},
			{"body changed after signing", signed(t, e, cancelEvent("evt-1", "WEB000124", "canceled"), HookSecret, now), "bad_signature"},
		} {
			status, m, hdr := e.hookPost("order-cancelled", body, tc.header)
			require.Equal(t, http.StatusUnauthorized, status, tc.name)
			code, _ := apiError(t, m)
			require.Equal(t, tc.code, code, tc.name)
			require.NotEmpty(t, hdr.Get("WWW-Authenticate"), tc.name)
		}
		require.Zero(t, countRuns(t, store), "nothing is stored for a refused call")

		// A good call starts OrderCancel with the order number; answered 202.
		status, m, hdr := e.hookPost("order-cancelled", body, signed(t, e, body, HookSecret, now))
		require.Equal(t, http.StatusAccepted, status, "%v", m)
		id := int64(m["runId"].(float64))
		require.Equal(t, "OrderCancel", m["job"])
		require.Equal(t, false, m["existing"])
		require.Equal(t, fmt.Sprintf("/api/v1/runs/%d", id), hdr.Get("Location"))
		run, err := store.Get(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, jobs.TriggerHook, run.TriggerKind)
		require.Equal(t, "hook:order-cancelled", run.TriggeredBy)
		require.JSONEq(t, `{"OrderNumber":"WEB000123","Reason":"customerRequest"}`, string(run.Parameters))

		// The same event again: the same run, no second one.
		status, m, _ = e.hookPost("order-cancelled", body, signed(t, e, body, HookSecret, now))
		require.Equal(t, http.StatusAccepted, status)
		require.Equal(t, float64(id), m["runId"])
		require.Equal(t, true, m["existing"])

		// Filtered: 204, nothing stored.
		other := cancelEvent("evt-2", "WEB000124", "paid")
		status, _, _ = e.hookPost("order-cancelled", other, signed(t, e, other, HookSecret, now))
		require.Equal(t, http.StatusNoContent, status)

		// A payload missing the mapped field, or giving a bad value: 400 with the field.
		missing := []byte(`{"id":"evt-3","status":"canceled","order":{}}`)
		status, m, _ = e.hookPost("order-cancelled", missing, signed(t, e, missing, HookSecret, now))
		require.Equal(t, http.StatusBadRequest, status)
		code, fields := apiError(t, m)
		require.Equal(t, "invalid_parameters", code)
		require.Contains(t, fields["OrderNumber"], "payload field order.number is missing")
		bad := cancelEvent("evt-4", "has spaces!", "canceled")
		status, m, _ = e.hookPost("order-cancelled", bad, signed(t, e, bad, HookSecret, now))
		require.Equal(t, http.StatusBadRequest, status)
		_, fields = apiError(t, m)
		require.Contains(t, fields, "OrderNumber")
		noEvent := []byte(`{"status":"canceled","order":{"number":"WEB000125"}}`)
		status, m, _ = e.hookPost("order-cancelled", noEvent, signed(t, e, noEvent, HookSecret, now))
		require.Equal(t, http.StatusBadRequest, status)
		_, fields = apiError(t, m)
		require.Contains(t, fields["eventId"], "payload field id (the event id) is missing")
		notJSON := []byte(`[1,2]`)
		status, _, _ = e.hookPost("order-cancelled", notJSON, signed(t, e, notJSON, HookSecret, now))
		require.Equal(t, http.StatusBadRequest, status)
		status, _, _ = e.hookPost("no-such-hook", body, nil)
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, int64(1), countRuns(t, store))

		// The VTEX hook: a header token, a fixed op, an event id of three fields.
		vtex := []byte(`{"Domain":"Marketplace","OrderId":"WEB000125","State":"payment-approved","LastState":"payment-pending","LastChange":"2026-12-01T10:00:00Z","CurrentChange":"2026-12-01T10:05:00Z","Origin":{"Account":"acme","Key":"vtexappkey-acme"}}`)
		status, _, _ = e.hookPost("vtex-order", vtex, map[string]string{"X-VTEX-Hook-Token": "wrong"})
		require.Equal(t, http.StatusUnauthorized, status)
		status, m, _ = e.hookPost("vtex-order", vtex, map[string]string{"X-VTEX-Hook-Token": HookSecret})
		require.Equal(t, http.StatusAccepted, status, "%v", m)
		run, err = store.Get(t.Context(), int64(m["runId"].(float64)))
		require.NoError(t, err)
		require.Equal(t, "OrderAction", run.Job)
		require.JSONEq(t, `{"OrderNumber":"WEB000125","op":"validatePaymentAuthorization","Reason":"customerRequest"}`, string(run.Parameters))
		status, _, _ = e.hookPost("vtex-order", bytes.Replace(vtex, []byte(`"payment-approved"`), []byte(`"invoiced"`), 1), map[string]string{"X-VTEX-Hook-Token": HookSecret})
		require.Equal(t, http.StatusNoContent, status)

		// Listed with counts and last calls; counted in metrics; no secret anywhere.
		code2, list := e.doJSONList(http.MethodGet, "/api/v1/hooks", viewerSecret)
		require.Equal(t, http.StatusOK, code2)
		require.Len(t, list, 2)
		oc := list[0]
		require.Equal(t, "order-cancelled", oc["name"])
		require.Equal(t, "/hooks/order-cancelled", oc["path"])
		require.Equal(t, true, oc["ready"])
		require.Equal(t, float64(2), oc["accepted"]) // the run and its duplicate
		require.Equal(t, float64(9), oc["refused"])  // 5 unauthorized, 4 invalid
		require.Equal(t, float64(1), oc["filtered"])
		last := oc["lastCalls"].([]any)
		require.Equal(t, "invalid", last[0].(map[string]any)["outcome"])
		_, metricsBody := e.do(http.MethodGet, "/metrics", viewerSecret, nil)
		require.Contains(t, string(metricsBody), `jobrunner_hook_calls_total{hook="order-cancelled",outcome="unauthorized"} 5`)
		require.Contains(t, string(metricsBody), `jobrunner_hook_calls_total{hook="order-cancelled",outcome="duplicate"} 1`)
		// The dashboard's hooks page shows the same.
		b := e.browser()
		b.login(viewerSecret)
		code3, _, page := b.page(http.MethodGet, "/hooks", nil)
		require.Equal(t, http.StatusOK, code3)
		require.Contains(t, page, "POST /hooks/order-cancelled")
		require.Contains(t, page, "2 accepted · 9 refused · 1 filtered")
		require.Contains(t, page, fmt.Sprintf(`href="/runs/%d"`, id))
		require.NotContains(t, page, HookSecret)
		e.noSecretInBodies(HookSecret)
	})
}

// doJSONList is doJSON for an answer that is a JSON list.
func (e *env) doJSONList(method, path, secret string) (int, []map[string]any) {
	e.t.Helper()
	resp, body := e.do(method, path, secret, nil)
	var out []map[string]any
	require.NoError(e.t, json.Unmarshal(body, &out), "%s", body)
	return resp.StatusCode, out
}

// noSecretInBodies checks that no answer read so far contains secret.
func (e *env) noSecretInBodies(secret string) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.bodies {
		require.NotContains(e.t, string(b), secret)
	}
}

func TestHookSameEventConcurrentlyStartsOneRun(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, store *jobs.Store) {
		e := newEnv(t, store, envOptions{})
		body := cancelEvent("evt-dup", "WEB000123", "canceled")
		hdr := signed(t, e, body, HookSecret, time.Now())
		var wg sync.WaitGroup
		ids := make([]float64, 100)
		statuses := make([]int, 100)
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/hooks/order-cancelled", bytes.NewReader(body))
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				statuses[i] = resp.StatusCode
				if v, ok := m["runId"].(float64); ok {
					ids[i] = v
				}
			}()
		}
		wg.Wait()
		for i := range 100 {
			require.Equal(t, http.StatusAccepted, statuses[i], "call %d", i)
			require.Equal(t, ids[0], ids[i], "call %d", i)
		}
		require.Equal(t, int64(1), countRuns(t, store))
	})
}

func TestHookDefinitionErrorsHaveLines(t *testing.T) {
	t.Parallel()
	set, err := definitions.LoadFS(mapFS("hooks.yaml", `
connections:
  - {name: local, type: noop}
jobs:
  - name: J
    connection: local
    processor: Noop
    parameters:
      - {name: OrderNumber, type: string, required: true}
hooks:
  - name: a
    job: Nope
    auth: {type: hmac, secret: "sk_live_123 not a name"}
  - name: b
    job: J
    auth: {type: bearer, secret: TOKEN, prefix: "x"}
    parameters: {Order: order.number}
    filter: 'status =='
  - name: c
    job: J
    auth: {type: header, secret: T}
    parameters: {OrderNumber: "a..b"}
`), ".")
	require.NoError(t, err)
	set.ApplyDefaults()
	err = set.Validate(nil)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`hooks.yaml:12: hooks[0].job: unknown job "Nope"`,
		`hooks.yaml:13: hooks[0].auth.secret: "sk_live_123 not a name" is not an environment variable name`,
		`hooks.yaml:16: hooks[1].auth.prefix: only type hmac reads prefix`,
		`hooks.yaml:17: hooks[1].parameters.Order: job J has no parameter "Order"`,
		`hooks.yaml:17: hooks[1].parameters: job J needs parameter OrderNumber, which the hook does not map`,
		`hooks.yaml:18: hooks[1].filter: invalid filter:`,
		`hooks.yaml:21: hooks[2].auth.header: required for type header`,
		`hooks.yaml:22: hooks[2].parameters.OrderNumber: invalid payload path "a..b"`,
	} {
		require.Contains(t, msg, want)
	}
	require.Equal(t, 8, strings.Count(msg, "hooks.yaml:"), msg)
}

func mapFS(name, data string) fstest.MapFS { return fstest.MapFS{name: {Data: []byte(data)}} }
