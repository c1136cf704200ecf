package erpdemo_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/erpdemo"
)

type client struct {
	t     *testing.T
	base  string
	token string
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(method, path, key, body string) answer {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	require.Equal(c.t, "application/json", resp.Header.Get("Content-Type"))
	require.NoError(c.t, json.Unmarshal(b, &a.body), string(b))
	return a
}

func newClient(t *testing.T) (*erpdemo.Server, *client) {
	s := erpdemo.New("")
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	require.NotEmpty(t, s.Token())
	return s, &client{t: t, base: srv.URL, token: s.Token()}
}

func TestStartAndAuth(t *testing.T) {
	t.Parallel()
	s, err := erpdemo.Start("127.0.0.1:0")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s.URL(), "http://127.0.0.1:"), s.URL())
	require.NotEmpty(t, s.Token())
	c := &client{t: t, base: s.URL(), token: s.Token()}
	require.Equal(t, 200, c.do("GET", "/orders/WEB000123", "", "").status)

	anon := &client{t: t, base: s.URL()}
	a := anon.do("GET", "/orders/WEB000123", "", "")
	require.Equal(t, 401, a.status)
	require.Equal(t, "UNAUTHORIZED", a.body["code"])
	wrong := &client{t: t, base: s.URL(), token: "nope"}
	require.Equal(t, 401, wrong.do("POST", "/orders/WEB000123/cancel", "", "").status)
	require.Equal(t, 0, s.CancelCalls("WEB000123"), "unauthenticated calls are not counted")

	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = http.Get(s.URL() + "/orders")
	require.Error(t, err)

	_, err = erpdemo.Start("256.0.0.1:bad")
	require.Error(t, err)
	require.Equal(t, "", erpdemo.New("x").URL())
	require.Equal(t, "x", erpdemo.New("x").Token())
	require.NotEqual(t, erpdemo.New("").Token(), erpdemo.New("").Token())
}

func TestSeededOrders(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	want := map[string]string{
		"WEB000123": "Open", "WEB000124": "Processing", "WEB000125": "PendingAuthorization",
		"WEB000126": "Shipped", "WEB000127": "Invoiced", "WEB000128": "Cancelled",
		"WEB000129": "Open", "WEB000130": "Open",
	}
	for n, st := range want {
		a := c.do("GET", "/orders/"+n, "", "")
		require.Equal(t, 200, a.status)
		require.Equal(t, n, a.body["orderNumber"])
		require.Equal(t, st, a.body["status"])
		_, err := time.Parse(time.RFC3339Nano, a.body["updatedAt"].(string))
		require.NoError(t, err)
	}
	a := c.do("GET", "/orders/WEB999999", "", "")
	require.Equal(t, 404, a.status)
	require.Equal(t, "ORDER_NOT_FOUND", a.body["code"])

	l := c.do("GET", "/orders", "", "")
	require.Len(t, l.body["orders"], len(want))
}

func TestCancelAnswers(t *testing.T) {
	t.Parallel()
	s, c := newClient(t)
	before := time.Now().UTC()

	a := c.do("POST", "/orders/WEB000123/cancel", "", `{"reason":"customerRequest"}`)
	require.Equal(t, 200, a.status)
	require.Equal(t, "Cancelled", a.body["status"])
	o, _ := s.Get("WEB000123")
	require.Equal(t, "Cancelled", o.Status)
	require.False(t, o.UpdatedAt.Before(before))
	require.Equal(t, 1, s.CancelCalls("WEB000123"))
	require.Equal(t, 1, s.CancelsApplied("WEB000123"))

	a = c.do("POST", "/orders/WEB000126/cancel", "", `{"reason":"customerRequest"}`)
	require.Equal(t, 409, a.status)
	require.JSONEq(t, `{"code":"ORDER_STATE","message":"Cancel failed as order is in [Shipped] state"}`, a.raw)
	a = c.do("POST", "/orders/WEB000127/cancel", "", "")
	require.Equal(t, 409, a.status)
	require.Equal(t, "Cancel failed as order is in [Invoiced] state", a.body["message"])

	a = c.do("POST", "/orders/WEB000129/cancel", "", "")
	require.Equal(t, 423, a.status)
	require.Equal(t, "Status of integrated orders cannot be changed", a.body["message"])

	a = c.do("POST", "/orders/WEB000128/cancel", "", "")
	require.Equal(t, 200, a.status)
	require.Equal(t, 0, s.CancelsApplied("WEB000128"))

	for range erpdemo.AuthorizationCalls {
		a = c.do("POST", "/orders/WEB000125/cancel", "", "")
		require.Equal(t, 425, a.status)
		require.Equal(t, "2", a.header.Get("Retry-After"))
	}
	require.Equal(t, 200, c.do("POST", "/orders/WEB000125/cancel", "", "").status)

	// Transient answers are not stored under the key: the same key retries.
	for range erpdemo.UnavailableCalls {
		a = c.do("POST", "/orders/WEB000130/cancel", "k130", "")
		require.Equal(t, 503, a.status)
		require.Equal(t, "1", a.header.Get("Retry-After"))
	}
	require.Equal(t, 200, c.do("POST", "/orders/WEB000130/cancel", "k130", "").status)

	require.Equal(t, 404, c.do("POST", "/orders/WEB999999/cancel", "", "").status)
	require.Equal(t, 404, c.do("POST", "/orders/WEB000123/explode", "", "").status)
	require.Equal(t, 400, c.do("POST", "/orders/WEB000124/cancel", "", "not json").status)
}

func TestOtherOps(t *testing.T) {
	t.Parallel()
	s, c := newClient(t)
	require.Equal(t, "Processing", c.do("POST", "/orders/WEB000123/validateOrder", "", "{}").body["status"])
	require.Equal(t, 409, c.do("POST", "/orders/WEB000123/validateOrder", "", "{}").status)
	require.Equal(t, "PendingAuthorization", c.do("POST", "/orders/WEB000123/invalidateOrder", "", "").body["status"])
	require.Equal(t, "Open", c.do("POST", "/orders/WEB000125/validatePaymentAuthorization", "", "").body["status"])
	require.Equal(t, 200, c.do("POST", "/orders/WEB000125/cancel", "", "").status, "authorized: no more waiting")
	require.Equal(t, 423, c.do("POST", "/orders/WEB000129/validateOrder", "", "").status)
	require.Equal(t, 0, s.CancelCalls("WEB000123"))
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s, c := newClient(t)
	first := c.do("POST", "/orders/WEB000124/cancel", "key-1", `{"reason":"customerRequest"}`)
	require.Equal(t, 200, first.status)
	s.Put(erpdemo.Order{OrderNumber: "WEB000124", Status: "Processing"}) // reopened elsewhere

	again := c.do("POST", "/orders/WEB000124/cancel", "key-1", `{"reason":"customerRequest"}`)
	require.Equal(t, 200, again.status)
	require.Equal(t, first.raw, again.raw)
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	o, _ := s.Get("WEB000124")
	require.Equal(t, "Processing", o.Status, "a replay has no effect")
	require.Equal(t, 1, s.CancelsApplied("WEB000124"))
	require.Equal(t, 2, s.CancelCalls("WEB000124"))

	// Refusals are stored too.
	r1 := c.do("POST", "/orders/WEB000126/cancel", "key-2", "")
	r2 := c.do("POST", "/orders/WEB000126/cancel", "key-2", "")
	require.Equal(t, 409, r2.status)
	require.Equal(t, r1.raw, r2.raw)

	// The same key on another request.
	a := c.do("POST", "/orders/WEB000123/cancel", "key-1", "")
	require.Equal(t, 422, a.status)
	o, _ = s.Get("WEB000123")
	require.Equal(t, "Open", o.Status)
}

func TestListUpdatedSince(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	since := time.Now().UTC()
	require.Equal(t, 200, c.do("POST", "/orders/WEB000124/cancel", "", "").status)
	a := c.do("GET", "/orders?updatedSince="+url.QueryEscape(since.Format(time.RFC3339Nano)), "", "")
	require.Equal(t, 200, a.status)
	orders := a.body["orders"].([]any)
	require.Len(t, orders, 1)
	require.Equal(t, "WEB000124", orders[0].(map[string]any)["orderNumber"])
	require.Equal(t, "Cancelled", orders[0].(map[string]any)["status"])

	all := c.do("GET", "/orders?updatedSince="+url.QueryEscape(since.Add(-24*time.Hour).Format(time.RFC3339)), "", "")
	list := all.body["orders"].([]any)
	require.Len(t, list, 8)
	require.Equal(t, "WEB000124", list[len(list)-1].(map[string]any)["orderNumber"], "oldest first")

	require.Equal(t, 400, c.do("GET", "/orders?updatedSince=yesterday", "", "").status)
}

func TestEscapedOrderNumbers(t *testing.T) {
	t.Parallel()
	s, c := newClient(t)
	s.Put(erpdemo.Order{OrderNumber: "A/B?C#D", Status: "Open"})
	a := c.do("GET", "/orders/"+url.PathEscape("A/B?C#D"), "", "")
	require.Equal(t, 200, a.status, a.raw)
	require.Equal(t, "A/B?C#D", a.body["orderNumber"])
	require.Equal(t, 200, c.do("POST", "/orders/"+url.PathEscape("A/B?C#D")+"/cancel", "", "").status)
	require.Equal(t, 1, s.CancelsApplied("A/B?C#D"))
}

func TestConcurrentCancels(t *testing.T) {
	t.Parallel()
	s, c := newClient(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", c.base+"/orders/WEB000123/cancel", nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			req.Header.Set("Idempotency-Key", string(rune('a'+i)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, s.CancelsApplied("WEB000123"))
	require.Equal(t, 20, s.CancelCalls("WEB000123"))
}

func TestDelay(t *testing.T) {
	t.Parallel()
	s, c := newClient(t)
	s.SetDelay(300 * time.Millisecond)
	start := time.Now()
	require.Equal(t, 200, c.do("POST", "/orders/WEB000123/cancel", "", "").status)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
}
