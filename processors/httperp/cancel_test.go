package httperp

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

func cancelParams(n string) definitions.Values {
	return definitions.Values{"OrderNumber": n, "Reason": "customerRequest"}
}

func TestCancelSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Open")
	run := e.run(f.srv.URL, cancelParams("WEB000123"), map[string]any{"headers": map[string]any{"X-Tenant": "eu"}})
	require.NoError(t, e.process(NameOrderCancel, run))

	require.Equal(t, OrderResult{OrderNumber: "WEB000123", PreviousERPStatus: "Open", ERPStatus: "Cancelled", CommerceStatus: "Cancelled"}, run.Result())
	require.Len(t, f.getPosts(), 1)
	h := f.getPosts()[0]
	require.Equal(t, "Bearer "+canary, h.Get("Authorization"))
	require.Equal(t, "k:cancel", h.Get("Idempotency-Key"))
	require.Equal(t, "jobrunner", h.Get("User-Agent"))
	require.Equal(t, "eu", h.Get("X-Tenant"))
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.JSONEq(t, `{"reason":"customerRequest"}`, f.getBodies()[0])
	require.Equal(t, "jobrunner", f.getGets()[0].Get("User-Agent"))
	require.Empty(t, f.getGets()[0].Get("Idempotency-Key"))
	require.Equal(t, []string{"/orders/WEB000123", "/orders/WEB000123/cancel"}, f.getPaths())

	// One line per ERP call, with method, path, status and duration.
	require.Equal(t, 2, e.log.count("ERP call"))
	require.Contains(t, e.log.text(), "method POST path /orders/WEB000123/cancel status 200 durationMs")
	c := run.Counters()
	require.Equal(t, int64(1), c.Read)
	require.Equal(t, int64(1), c.Changed)
}

func TestCancelPostAnswers(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		name      string
		status    int
		header    map[string]string
		body      string // JSON unless ctype is set
		ctype     string
		kind      processors.OutcomeKind
		code      string // outcome code (permanent) or message prefix (retry)
		msg       string // substring of the outcome message
		delayMin  time.Duration
		delayMax  time.Duration
		exactBody bool
	}{
		{name: "404", status: 404, body: `{"code":"NOPE","message":"no such order"}`, kind: processors.OutcomePermanent, code: "ORDER_NOT_FOUND", msg: "order WEB000123 not found"},
		{name: "409 verbatim", status: 409, body: `{"code":"ORDER_STATE","message":"Cancel failed as order is in [Shipped] state"}`, kind: processors.OutcomePermanent, code: "ORDER_STATE", msg: "Cancel failed as order is in [Shipped] state", exactBody: true},
		{name: "409 no body", status: 409, ctype: "text/plain", body: "conflict", kind: processors.OutcomePermanent, code: "ERP_CONFLICT", msg: "409 Conflict"},
		{name: "409 echoing the token", status: 409, body: `{"code":"ORDER_STATE","message":"refused for Bearer ` + canary + `"}`, kind: processors.OutcomePermanent, code: "ORDER_STATE", msg: "[REDACTED]"},
		{name: "423", status: 423, body: `{"code":"X","message":"Status of integrated orders cannot be changed"}`, kind: processors.OutcomePermanent, code: "STATUS_LOCKED", msg: "Status of integrated orders cannot be changed", exactBody: true},
		{name: "425 seconds", status: 425, header: map[string]string{"Retry-After": "2"}, kind: processors.OutcomeSnooze, code: "HTTP_425", msg: "425 Too Early", delayMin: 2 * time.Second, delayMax: 2 * time.Second},
		{name: "429 seconds", status: 429, header: map[string]string{"Retry-After": "7"}, kind: processors.OutcomeSnooze, code: "HTTP_429", msg: "429", delayMin: 7 * time.Second, delayMax: 7 * time.Second},
		{name: "503 http date", status: 503, header: map[string]string{"Retry-After": date}, kind: processors.OutcomeSnooze, code: "HTTP_503", msg: "503", delayMin: 25 * time.Second, delayMax: 30 * time.Second},
		{name: "503 no retry-after", status: 503, kind: processors.OutcomeSnooze, code: "HTTP_503", msg: "503"},
		{name: "503 capped", status: 503, header: map[string]string{"Retry-After": "86400"}, kind: processors.OutcomeSnooze, code: "HTTP_503", delayMin: MaxRetryAfter, delayMax: MaxRetryAfter},
		{name: "503 past date", status: 503, header: map[string]string{"Retry-After": "Mon, 02 Jan 2006 15:04:05 GMT"}, kind: processors.OutcomeSnooze, code: "HTTP_503"},
		{name: "503 garbage", status: 503, header: map[string]string{"Retry-After": "soon"}, kind: processors.OutcomeSnooze, code: "HTTP_503"},
		{name: "500", status: 500, body: `{"code":"BOOM","message":"database down"}`, kind: processors.OutcomeRetry, code: "BOOM", msg: "500 Internal Server Error: database down"},
		{name: "502 html", status: 502, ctype: "text/html", body: "<html>bad gateway</html>", kind: processors.OutcomeRetry, code: "ERP_UNAVAILABLE", msg: "502"},
		{name: "401", status: 401, kind: processors.OutcomePermanent, code: "ERP_UNAUTHORIZED", msg: "401"},
		{name: "400", status: 400, body: `{"code":"BAD_REASON","message":"unknown reason"}`, kind: processors.OutcomePermanent, code: "BAD_REASON", msg: "unknown reason"},
		{name: "302", status: 302, header: map[string]string{"Location": "http://elsewhere.invalid/"}, kind: processors.OutcomePermanent, code: "ERP_CONFIG", msg: "redirects are not followed"},
		{name: "200 not json", status: 200, ctype: "text/html", body: "<html>ok</html>", kind: processors.OutcomeRetry, code: "ERP_BAD_RESPONSE", msg: "200 OK with content type text/html"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			f := newFakeERP(t, "Open")
			f.setPost(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				ct := tc.ctype
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			run := e.run(f.srv.URL, cancelParams("WEB000123"), nil)
			err := e.process(NameOrderCancel, run)
			require.Error(t, err)
			o := processors.Classify(err)
			require.Equal(t, tc.kind, o.Kind, "outcome of %v", err)
			if tc.kind == processors.OutcomeRetry {
				require.Equal(t, tc.code, o.Code, o.Message)
				var he *Error
				require.ErrorAs(t, err, &he)
				require.Equal(t, tc.code, he.Code)
			} else {
				require.Equal(t, tc.code, o.Code, o.Message)
			}
			require.Contains(t, o.Message, tc.msg)
			if tc.exactBody {
				var m map[string]string
				require.NoError(t, json.Unmarshal([]byte(tc.body), &m))
				require.Equal(t, m["message"], o.Message, "ERP message kept verbatim")
			}
			require.GreaterOrEqual(t, o.Delay, tc.delayMin)
			require.LessOrEqual(t, o.Delay, tc.delayMax)
			require.Equal(t, 1, f.postCount())
		})
	}
}

func TestGetAnswers(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 20<<20)
	cases := []struct {
		name    string
		handler http.HandlerFunc
		kind    processors.OutcomeKind
		code    string
		msg     string
	}{
		{name: "404", handler: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 404, map[string]string{"code": "X"}) },
			kind: processors.OutcomePermanent, code: "ORDER_NOT_FOUND", msg: "order WEB000123 not found in the ERP"},
		{name: "invalid json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status": Open}`))
		}, kind: processors.OutcomeRetry, code: "ERP_BAD_RESPONSE", msg: "200 OK with content type application/json: invalid JSON"},
		{name: "truncated json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write([]byte(`{"orderNumber":"WEB000123","sta`))
		}, kind: processors.OutcomeRetry, code: "ERP_BAD_RESPONSE", msg: "invalid JSON"},
		{name: "wrong content type", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>" + strings.Repeat("login page ", 500) + "</html>"))
		}, kind: processors.OutcomeRetry, code: "ERP_BAD_RESPONSE", msg: "200 OK with content type text/html, want application/json"},
		{name: "no content type", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			_, _ = w.Write([]byte(`{"status":"Open"}`))
		}, kind: processors.OutcomeRetry, code: "ERP_BAD_RESPONSE", msg: "content type none"},
		{name: "no status", handler: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"orderNumber": "x"}) },
			kind: processors.OutcomeRetry, code: "ERP_BAD_RESPONSE", msg: "no order status"},
		{name: "20 MB with length", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(len(big)+2))
			_, _ = w.Write([]byte(`"` + big + `"`))
		}, kind: processors.OutcomeRetry, code: "ERP_BAD_RESPONSE", msg: "response body larger than 1 MiB"},
		{name: "20 MB chunked", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for i := 0; i < 20; i++ {
				_, _ = w.Write([]byte(big[:1<<20]))
				w.(http.Flusher).Flush()
			}
		}, kind: processors.OutcomeRetry, code: "ERP_BAD_RESPONSE", msg: "response body larger than 1 MiB"},
		{name: "503 on read", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(503)
		}, kind: processors.OutcomeSnooze, code: "HTTP_503", msg: "GET /orders/WEB000123 with 503"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			f := newFakeERP(t, "Open")
			f.setGet(tc.handler)
			run := e.run(f.srv.URL, cancelParams("WEB000123"), nil)
			err := e.process(NameOrderCancel, run)
			require.Error(t, err)
			o := processors.Classify(err)
			require.Equal(t, tc.kind, o.Kind, "outcome of %v", err)
			if tc.kind == processors.OutcomeRetry {
				require.Equal(t, tc.code, o.Code, o.Message)
			} else {
				require.Equal(t, tc.code, o.Code)
			}
			require.Contains(t, o.Message, tc.msg)
			require.Less(t, len(o.Message), 600, "message quotes at most ~200 bytes of the body: %s", o.Message)
			require.Equal(t, 0, f.postCount(), "no cancel after a failed read")
		})
	}
}

func TestSlowERP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Open")
	f.setGet(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	run := e.run(f.srv.URL, cancelParams("WEB000123"), map[string]any{"timeout": "150ms"})
	start := time.Now()
	err := e.process(NameOrderCancel, run)
	require.Less(t, time.Since(start), 2*time.Second)
	o := processors.Classify(err)
	require.True(t, o.Retryable(), "outcome %v: %v", o.Kind, err)
	require.Equal(t, "ERP_UNAVAILABLE", o.Code)
	require.Contains(t, o.Message, "GET /orders/WEB000123: no answer within 150ms (timeout)")
	require.Equal(t, 1, e.log.count("ERP call failed"))
}

func TestRunContextCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Open")
	f.setGet(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	run := e.run(f.srv.URL, cancelParams("WEB000123"), nil)
	p, err := e.reg.Resolve(NameOrderCancel, ConnectionType, false)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err = p.Process(ctx, run)
	require.Equal(t, processors.OutcomeCancelled, processors.Classify(err).Kind, "%v", err)

	// A done context: no ERP call at all.
	n := len(f.getPaths())
	err = p.Process(ctx, run)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, f.getPaths(), n)
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	e := newEnv(t, Options{})
	run := e.run("http://"+addr, cancelParams("WEB000123"), nil)
	err = e.process(NameOrderCancel, run)
	o := processors.Classify(err)
	require.Equal(t, processors.OutcomeRetry, o.Kind, "%v", err)
	require.Equal(t, "ERP_UNAVAILABLE", o.Code)
	require.True(t, strings.HasPrefix(o.Message, "GET /orders/WEB000123:"), o.Message)
	require.Contains(t, o.Message, "refused")
}

func TestAlreadyCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Cancelled")
	run := e.run(f.srv.URL, cancelParams("WEB000128"), nil)
	require.NoError(t, e.process(NameOrderCancel, run))
	require.Equal(t, OrderResult{OrderNumber: "WEB000128", PreviousERPStatus: "Cancelled", ERPStatus: "Cancelled", CommerceStatus: "Cancelled", AlreadyCancelled: true}, run.Result())
	require.Equal(t, 0, f.postCount())
	b, err := json.Marshal(run.Result())
	require.NoError(t, err)
	require.Contains(t, string(b), `"alreadyCancelled":true`)
}

func TestNotCancellable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ erp, commerce string }{{"Shipped", "Shipped"}, {"Invoiced", "Complete"}} {
		e := newEnv(t, Options{})
		f := newFakeERP(t, tc.erp)
		err := e.process(NameOrderCancel, e.run(f.srv.URL, cancelParams("WEB000126"), nil))
		o := processors.Classify(err)
		require.Equal(t, processors.OutcomePermanent, o.Kind)
		require.Equal(t, "ORDER_NOT_CANCELLABLE", o.Code)
		require.Equal(t, fmt.Sprintf("order WEB000126 is %s (ERP status %s), which does not allow cancellation", tc.commerce, tc.erp), o.Message)
		require.Equal(t, 0, f.postCount(), "refused before any POST")
	}
}

func TestCancellableByListOrFlag(t *testing.T) {
	t.Parallel()
	// PendingAuthorization is cancellable per the mapping: the cancel goes out.
	e := newEnv(t, Options{})
	f := newFakeERP(t, "PendingAuthorization")
	require.NoError(t, e.process(NameOrderCancel, e.run(f.srv.URL, cancelParams("WEB000125"), nil)))
	require.Equal(t, 1, f.postCount())

	// Cancellable through cancellableStatuses alone.
	m := &definitions.OrderStatusMap{
		Mappings:            []definitions.StatusMapping{{ERPStatus: "Open", CommerceStatus: "Submitted"}},
		CancellableStatuses: []string{"Submitted"},
	}
	e = newEnv(t, Options{Statuses: func() *definitions.OrderStatusMap { return m }})
	f = newFakeERP(t, "Open")
	require.NoError(t, e.process(NameOrderCancel, e.run(f.srv.URL, cancelParams("WEB000123"), nil)))
	require.Equal(t, 1, f.postCount())
}

func TestUnmappedAndNoMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Backordered")
	o := processors.Classify(e.process(NameOrderCancel, e.run(f.srv.URL, cancelParams("WEB000123"), nil)))
	require.Equal(t, processors.OutcomePermanent, o.Kind)
	require.Equal(t, "UNMAPPED_STATUS", o.Code)
	require.Contains(t, o.Message, `"Backordered"`)

	e = newEnv(t, Options{Statuses: func() *definitions.OrderStatusMap { return nil }})
	o = processors.Classify(e.process(NameOrderCancel, e.run(f.srv.URL, cancelParams("WEB000123"), nil)))
	require.Equal(t, "ERP_CONFIG", o.Code)
	require.Equal(t, 0, f.postCount())
}

func TestPreviewMakesNoPost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Open")
	run := e.run(f.srv.URL, cancelParams("WEB000123"), nil)
	run.Preview = true
	require.NoError(t, e.process(NameOrderCancel, run))
	require.Equal(t, 0, f.postCount())
	require.Contains(t, e.log.text(), "would cancel WEB000123: ERP status Open → Submitted, cancellable")
	require.Equal(t, OrderResult{OrderNumber: "WEB000123", PreviousERPStatus: "Open", ERPStatus: "Open", CommerceStatus: "Submitted", Preview: true, WouldSend: true}, run.Result())

	// OrderAction previews too, for every op.
	for _, op := range Ops {
		run := e.run(f.srv.URL, definitions.Values{"OrderNumber": "WEB000123", "op": op}, nil)
		run.Preview = true
		require.NoError(t, e.process(NameOrderAction, run))
	}
	require.Equal(t, 0, f.postCount())
	require.Contains(t, e.log.text(), "would validateOrder WEB000123: ERP status Open")

	// A refusal shows in the preview as it would in the real run.
	f2 := newFakeERP(t, "Shipped")
	run = e.run(f2.srv.URL, cancelParams("WEB000126"), nil)
	run.Preview = true
	require.Equal(t, "ORDER_NOT_CANCELLABLE", processors.Classify(e.process(NameOrderCancel, run)).Code)
}

func TestPathEscaping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Open")
	require.NoError(t, e.process(NameOrderCancel, e.run(f.srv.URL+"/api/", cancelParams("A/B?C#D %E"), nil)))
	require.Equal(t, []string{"/api/orders/A%2FB%3FC%23D%20%25E", "/api/orders/A%2FB%3FC%23D%20%25E/cancel"}, f.getPaths())

	for _, bad := range []string{"", "..", ".", "a\nb"} {
		o := processors.Classify(e.process(NameOrderCancel, e.run(f.srv.URL, cancelParams(bad), nil)))
		require.Equal(t, "INVALID_PARAMETER", o.Code, "order number %q", bad)
	}
	require.Len(t, f.getPaths(), 2)
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		user, pass, _ = r.BasicAuth()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		// A hostile ERP echoing the Authorization header back.
		w.WriteHeader(500)
		_, _ = fmt.Fprintf(w, `{"message":"bad auth %s"}`, r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, Options{})
	run := e.run(srv.URL, cancelParams("WEB000123"), map[string]any{"auth": "basic"})
	run.Connection.Secrets = map[string]string{"username": "svc", "password": canary}
	err := e.process(NameOrderCancel, run)
	require.Error(t, err)
	require.Contains(t, err.Error(), "bad auth Basic [REDACTED]")
	mu.Lock()
	require.Equal(t, "svc", user)
	require.Equal(t, canary, pass)
	mu.Unlock()
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]any{
		"no baseURL":       {"baseURL": ""},
		"ftp":              {"baseURL": "ftp://erp.example/"},
		"credentials":      {"baseURL": "http://u:" + canary + "@erp.example/"},
		"query":            {"baseURL": "http://erp.example/?a=1"},
		"bad timeout":      {"timeout": "ten seconds"},
		"negative timeout": {"timeout": "-1s"},
		"bad auth":         {"auth": "digest"},
		"basic no user":    {"auth": "basic"},
		"auth header":      {"headers": map[string]any{"Authorization": "Bearer x"}},
		"bad header":       {"headers": map[string]any{"X-A": "a\r\nX-B: b"}},
		"tls unknown":      {"tls": map[string]any{"verify": false}},
		"ca missing":       {"tls": map[string]any{"caFile": "/nonexistent/ca.pem"}},
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			run := e.run("http://127.0.0.1:1", cancelParams("WEB000123"), s)
			o := processors.Classify(e.process(NameOrderCancel, run))
			require.Equal(t, processors.OutcomePermanent, o.Kind, o.Message)
			require.Equal(t, "ERP_CONFIG", o.Code, o.Message)
			require.Contains(t, o.Message, "connection erp: setting")
		})
	}
}

func TestOrderAction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Open")
	f.setPost(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"orderNumber": "WEB000123", "status": "Processing"})
	})
	run := e.run(f.srv.URL, definitions.Values{"OrderNumber": "WEB000123", "op": "validateOrder"}, nil)
	require.NoError(t, e.process(NameOrderAction, run))
	require.Equal(t, []string{"/orders/WEB000123/validateOrder"}, f.getPaths())
	require.Equal(t, "k:validateOrder", f.getPosts()[0].Get("Idempotency-Key"))
	require.Equal(t, OrderResult{OrderNumber: "WEB000123", Op: "validateOrder", ERPStatus: "Processing", CommerceStatus: "Processing"}, run.Result())

	// Same classification as cancel.
	f.setPost(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 409, map[string]string{"code": "ORDER_STATE", "message": "Validate failed as order is in [Shipped] state"})
	})
	o := processors.Classify(e.process(NameOrderAction, e.run(f.srv.URL, definitions.Values{"OrderNumber": "WEB000123", "op": "invalidateOrder"}, nil)))
	require.Equal(t, "ORDER_STATE", o.Code)

	// cancel delegates to OrderCancel's logic: read, check, then POST.
	f2 := newFakeERP(t, "Shipped")
	o = processors.Classify(e.process(NameOrderAction, e.run(f2.srv.URL, definitions.Values{"OrderNumber": "WEB000126", "op": "cancel"}, nil)))
	require.Equal(t, "ORDER_NOT_CANCELLABLE", o.Code)
	require.Equal(t, 0, f2.postCount())

	o = processors.Classify(e.process(NameOrderAction, e.run(f.srv.URL, definitions.Values{"OrderNumber": "WEB000123", "op": "delete"}, nil)))
	require.Equal(t, "INVALID_PARAMETER", o.Code)
}

func TestBeforeSideEffectStopsPost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	f := newFakeERP(t, "Open")
	run := e.run(f.srv.URL, cancelParams("WEB000123"), nil)
	lost := errors.New("lease lost")
	run.Guard = func(context.Context) error { return lost }
	require.ErrorIs(t, e.process(NameOrderCancel, run), lost)
	require.Equal(t, 0, f.postCount())
}

func TestClientPerConnection(t *testing.T) {
	t.Parallel()
	b := &base{clients: &clientCache{}, specs: &specCache{}, tokens: &tokenCache{}}
	conn := processors.Connection{Name: "erp", Settings: map[string]any{"baseURL": "http://erp.example"}}
	get := func(c processors.Connection) any {
		e, err := b.newERP(&processors.Run{Connection: c})
		require.NoError(t, err)
		return e.client
	}
	c1 := get(conn)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.Same(t, c1, get(conn))
		}()
	}
	wg.Wait()
	require.NotSame(t, c1, get(processors.Connection{Name: "erp", Settings: map[string]any{"baseURL": "http://erp.example", "timeout": "3s"}}))
	require.NotSame(t, c1, get(processors.Connection{Name: "erp2", Settings: map[string]any{"baseURL": "http://erp.example"}}))
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	require.Equal(t, 5*time.Second, retryAfter(h("5"), now))
	require.Equal(t, 90*time.Second, retryAfter(h(now.Add(90*time.Second).Format(http.TimeFormat)), now))
	require.Equal(t, MaxRetryAfter, retryAfter(h(now.Add(time.Hour).Format(http.TimeFormat)), now))
	require.Equal(t, MaxRetryAfter, retryAfter(h("999999999999999999999"), now))
	require.Zero(t, retryAfter(h("-3"), now))
	require.Zero(t, retryAfter(http.Header{}, now))
	require.Zero(t, retryAfter(h(now.Add(-time.Hour).Format(http.TimeFormat)), now))
}

func TestTLSSettings(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"orderNumber": "WEB000128", "status": "Cancelled"})
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, Options{})

	// Unknown CA: a failed attempt, retried.
	o := processors.Classify(e.process(NameOrderCancel, e.run(srv.URL, cancelParams("WEB000128"), nil)))
	require.Equal(t, processors.OutcomeRetry, o.Kind, o.Message)
	require.Contains(t, o.Message, "certificate")

	require.NoError(t, e.process(NameOrderCancel, e.run(srv.URL, cancelParams("WEB000128"),
		map[string]any{"tls": map[string]any{"insecureSkipVerify": true}})))

	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(ca, pemBytes, 0o600))
	require.NoError(t, e.process(NameOrderCancel, e.run(srv.URL, cancelParams("WEB000128"),
		map[string]any{"tls": map[string]any{"caFile": ca}})))
}
