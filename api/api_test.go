package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobrunner/jobrunner/api"
	"github.com/jobrunner/jobrunner/buildinfo"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/tracing"
)

func TestJobsRoutes(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s, envOptions{})
		status, m := e.doJSON(http.MethodGet, "/api/v1/jobs", viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		list := m["jobs"].([]any)
		require.Len(t, list, len(e.defs.Jobs))
		byName := map[string]map[string]any{}
		for _, j := range list {
			jm := j.(map[string]any)
			byName[jm["name"].(string)] = jm
		}
		oc := byName["OrderCancel"]
		require.Nil(t, oc["lastRun"])
		require.Nil(t, oc["schedule"])
		require.Equal(t, true, oc["preview"])
		params := oc["parameters"].([]any)
		require.Equal(t, map[string]any{"name": "OrderNumber", "type": "string", "prompt": "Order Number",
			"description": "The commerce order number, as the ERP knows it.", "required": true,
			"pattern": "[A-Za-z0-9_-][A-Za-z0-9_./-]*", "max": "64"}, params[0])
		require.Equal(t, map[string]any{"name": "Reason", "type": "enum", "prompt": "Cancellation Reason", "required": false,
			"default": "customerRequest", "values": []any{"customerRequest", "fraud", "outOfStock", "duplicateOrder"}}, params[1])

		sync := byName["OrderStatusSync"]
		require.Equal(t, true, sync["preview"])
		sched := sync["schedule"].(map[string]any)
		require.Equal(t, "*/5 * * * *", sched["cron"])
		require.Equal(t, "UTC", sched["timezone"])
		next := sched["next"].([]any)
		require.Len(t, next, api.NextFireTimes)
		var prev time.Time
		for _, n := range next {
			tm, err := time.Parse(time.RFC3339, n.(string))
			require.NoError(t, err)
			require.True(t, tm.After(time.Now().Add(-time.Second)))
			require.Zero(t, tm.Minute()%5, "fires every 5 minutes")
			require.True(t, tm.After(prev))
			prev = tm
		}

		id := e.trigger("Noop", nil)
		status, m = e.doJSON(http.MethodGet, "/api/v1/jobs/Noop", viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		last := m["lastRun"].(map[string]any)
		require.Equal(t, float64(id), last["id"])
		require.Equal(t, "queued", last["status"])

		status, m = e.doJSON(http.MethodGet, "/api/v1/jobs/Nope", viewerSecret, nil)
		require.Equal(t, http.StatusNotFound, status)
		code, _ := apiError(t, m)
		require.Equal(t, "job_not_found", code)

		status, m = e.doJSON(http.MethodGet, "/api/v1/jobs?x=1", viewerSecret, nil)
		require.Equal(t, http.StatusBadRequest, status)
		_, fields := apiError(t, m)
		require.Contains(t, fields, "x")
	})
}

func TestTrigger(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s, envOptions{})

		resp, body := e.do(http.MethodPost, "/api/v1/jobs/OrderCancel/runs", operatorSecret, map[string]any{"parameters": map[string]any{"OrderNumber": "WEB000123"}})
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
		var m map[string]any
		require.NoError(t, jsonUnmarshal(body, &m))
		require.Equal(t, "/api/v1/runs/"+fmt.Sprint(m["id"]), resp.Header.Get("Location"))
		require.Equal(t, false, m["existing"])
		require.Equal(t, "api", m["trigger"])
		require.Equal(t, "api:ops", m["triggeredBy"])
		require.Equal(t, "queued", m["status"])
		require.Equal(t, map[string]any{"OrderNumber": "WEB000123", "Reason": "customerRequest"}, m["parameters"])

		// A second OrderCancel for the same order while the first is active
		// returns the active run.
		status, m2 := e.doJSON(http.MethodPost, "/api/v1/jobs/OrderCancel/runs", operatorSecret, map[string]any{"parameters": map[string]any{"OrderNumber": "WEB000123", "Reason": "fraud"}})
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, m["id"], m2["id"])
		require.Equal(t, true, m2["existing"])
		require.Equal(t, "active", m2["existingReason"])
		require.EqualValues(t, 1, countRuns(t, s))

		// Typed values: JSON numbers reach the parsers as written.
		id := e.trigger("Typed", map[string]any{"Kind": "a"})
		run, err := s.Get(context.Background(), id)
		require.NoError(t, err)
		require.JSONEq(t, `{"Kind":"a","Flag":true}`, string(run.Parameters))

		resp, body = e.do(http.MethodPost, "/api/v1/jobs/Typed/runs", operatorSecret,
			`{"parameters":{"Amount":12345678901234567890.123456789000,"Count":9007199254740993,"Flag":false,"Day":"2026-02-28","At":"2026-03-01T10:00:00+01:00","Kind":"b","Note":null}}`)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
		require.NoError(t, jsonUnmarshal(body, &m))
		run, err = s.Get(context.Background(), int64(m["id"].(float64)))
		require.NoError(t, err)
		require.JSONEq(t, `{"Amount":"12345678901234567890.123456789000","Count":9007199254740993,"Flag":false,"Day":"2026-02-28","At":"2026-03-01T09:00:00Z","Kind":"b"}`, string(run.Parameters))
		require.EqualValues(t, 3, countRuns(t, s))
	})
}

func TestTriggerRejects(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s, envOptions{})
		big := `{"parameters":{"OrderNumber":"` + strings.Repeat("A", api.MaxBodyBytes) + `"}}`
		tests := []struct {
			name   string
			job    string
			body   string
			status int
			code   string
			fields []string
		}{
			{"missing required", "OrderCancel", `{"parameters":{}}`, 400, "invalid_parameters", []string{"OrderNumber"}},
			{"every bad field at once", "OrderCancel", `{"parameters":{"OrderNumber":"a b","Reason":"whim","Extra":"1"}}`, 400, "invalid_parameters", []string{"OrderNumber", "Reason", "Extra"}},
			{"object value", "OrderCancel", `{"parameters":{"OrderNumber":{"x":1}}}`, 400, "invalid_parameters", []string{"OrderNumber"}},
			{"array value", "OrderCancel", `{"parameters":{"OrderNumber":["WEB1"],"Reason":"whim"}}`, 400, "invalid_parameters", []string{"OrderNumber", "Reason"}},
			{"huge number for int", "Noop", `{"parameters":{"SleepMs":1e309}}`, 400, "invalid_parameters", []string{"SleepMs"}},
			{"fraction for int", "Noop", `{"parameters":{"SleepMs":1.5}}`, 400, "invalid_parameters", []string{"SleepMs"}},
			{"out of range", "Noop", `{"parameters":{"SleepMs":600001}}`, 400, "invalid_parameters", []string{"SleepMs"}},
			{"bool for int", "Noop", `{"parameters":{"SleepMs":true}}`, 400, "invalid_parameters", []string{"SleepMs"}},
			{"bad date and decimal", "Typed", `{"parameters":{"Kind":"a","Day":"2026-02-30","Amount":"1e3","Count":"12x"}}`, 400, "invalid_parameters", []string{"Day", "Amount", "Count"}},
			{"unknown top-level field", "Noop", `{"parameters":{},"priority":1}`, 400, "bad_body", nil},
			{"trailing data", "Noop", `{"parameters":{}} {}`, 400, "bad_body", nil},
			{"not JSON", "Noop", `parameters=1`, 400, "bad_body", nil},
			{"parameters not an object", "Noop", `{"parameters":[1]}`, 400, "bad_body", nil},
			{"idempotency key with space", "Noop", `{"idempotencyKey":"a b"}`, 400, "bad_idempotency_key", []string{"idempotencyKey"}},
			{"idempotency key too long", "Noop", `{"idempotencyKey":"` + strings.Repeat("k", 201) + `"}`, 400, "bad_idempotency_key", []string{"idempotencyKey"}},
			{"preview unsupported", "Blind", `{"preview":true}`, 400, "preview_unsupported", []string{"preview"}},
			{"unknown job", "Nope", `{}`, 404, "job_not_found", nil},
			{"body too large", "OrderCancel", big, 413, "too_large", nil},
			{"empty idempotency key", "Noop", `{"idempotencyKey":""}`, 400, "bad_idempotency_key", []string{"idempotencyKey"}},
			{"duplicate key", "Noop", `{"parameters":{"SleepMs":1,"SleepMs":2}}`, 400, "bad_body", nil},
			{"duplicate top-level key", "Noop", `{"preview":false,"parameters":{},"preview":true}`, 400, "bad_body", nil},
			{"dot order number", "OrderCancel", `{"parameters":{"OrderNumber":"."}}`, 400, "invalid_parameters", []string{"OrderNumber"}},
			{"dot-dot order number", "OrderCancel", `{"parameters":{"OrderNumber":".."}}`, 400, "invalid_parameters", []string{"OrderNumber"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := e.do(http.MethodPost, "/api/v1/jobs/"+tc.job+"/runs", operatorSecret, tc.body)
				require.Equal(t, tc.status, resp.StatusCode, "%s", body)
				var m map[string]any
				require.NoError(t, jsonUnmarshal(body, &m))
				code, fields := apiError(t, m)
				require.Equal(t, tc.code, code)
				keys := make([]string, 0, len(fields))
				for k := range fields {
					keys = append(keys, k)
				}
				require.ElementsMatch(t, tc.fields, keys, "%v", fields)
			})
		}
		// A body that says it is not JSON.
		req, err := http.NewRequest(http.MethodPost, e.http.URL+"/api/v1/jobs/Noop/runs", strings.NewReader(`{"parameters":{}}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Authorization", "Bearer "+operatorSecret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, "%s", b)
		var m map[string]any
		require.NoError(t, jsonUnmarshal(b, &m))
		code, _ := apiError(t, m)
		require.Equal(t, "unsupported_media_type", code)
		require.Zero(t, countRuns(t, s), "nothing is stored for a rejected trigger")

		// A malformed filter is refused, never dropped.
		status, m := e.doJSON(http.MethodGet, "/api/v1/runs?param.OrderNumber=%", viewerSecret, nil)
		require.Equal(t, http.StatusBadRequest, status, "%v", m)
		code, _ = apiError(t, m)
		require.Equal(t, "bad_query", code)
	})
}

func TestDuplicateKeyScanner(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in  string
		dup string
	}{
		{`{"a":1,"b":2}`, ""},
		{`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, ""},
		{`{"a":1,"a":2}`, "a"},
		{`{"x":{"k":"v","k":"w"}}`, "k"},
		{`[{"k":1},{"k":1,"j":[1,{"k":2}],"k":3}]`, "k"},
		{`{"a":"b","b":"a"}`, ""},
	} {
		got, ok := api.DuplicateKey([]byte(tc.in))
		require.Equal(t, tc.dup != "", ok, tc.in)
		require.Equal(t, tc.dup, got, tc.in)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s, envOptions{})
		body := map[string]any{"parameters": map[string]any{"SleepMs": 5}, "idempotencyKey": "order-42"}
		status, first := e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, body)
		require.Equal(t, http.StatusAccepted, status)
		require.Equal(t, "order-42", first["idempotencyKey"])

		status, again := e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, body)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, first["id"], again["id"])
		require.Equal(t, true, again["existing"])
		require.Equal(t, "idempotencyKey", again["existingReason"])

		// The same number written differently is the same parameters.
		status, again = e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, `{"parameters":{"SleepMs":"5"},"idempotencyKey":"order-42"}`)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, first["id"], again["id"])

		status, m := e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, map[string]any{"parameters": map[string]any{"SleepMs": 6}, "idempotencyKey": "order-42"})
		require.Equal(t, http.StatusUnprocessableEntity, status)
		code, _ := apiError(t, m)
		require.Equal(t, "idempotency_key_reused", code)
		status, _ = e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, map[string]any{"parameters": map[string]any{"SleepMs": 5}, "idempotencyKey": "order-42", "preview": true})
		require.Equal(t, http.StatusUnprocessableEntity, status, "preview is part of the request")
		require.EqualValues(t, 1, countRuns(t, s))

		// Concurrent requests with one fresh key: one run, every answer has it.
		var wg sync.WaitGroup
		ids := make([]any, 8)
		codes := make([]int, 8)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, m := e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, map[string]any{"idempotencyKey": "burst"})
				codes[i], ids[i] = c, m["id"]
			}()
		}
		wg.Wait()
		created := 0
		for i := range ids {
			require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, codes[i])
			require.Equal(t, ids[0], ids[i])
			if codes[i] == http.StatusAccepted {
				created++
			}
		}
		require.Equal(t, 1, created)
		require.EqualValues(t, 2, countRuns(t, s))
	})
}

func TestListRuns(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s, envOptions{})
		pct := e.trigger("Typed", map[string]any{"Kind": "a", "Note": "50%"})
		x50 := e.trigger("Typed", map[string]any{"Kind": "a", "Note": "50x"})
		pct5 := e.trigger("Typed", map[string]any{"Kind": "a", "Note": "5%"})
		under := e.trigger("OrderCancel", map[string]any{"OrderNumber": "A_B"})
		e.trigger("OrderCancel", map[string]any{"OrderNumber": "AxB"})
		noops := []int64{e.trigger("Noop", nil), e.trigger("Noop", nil), e.trigger("Noop", nil)}
		_, err := s.Cancel(context.Background(), noops[0], "test")
		require.NoError(t, err)

		ids := func(m map[string]any) []int64 {
			var out []int64
			for _, r := range m["runs"].([]any) {
				out = append(out, int64(r.(map[string]any)["id"].(float64)))
			}
			return out
		}
		tests := []struct {
			query string
			want  []int64
		}{
			{"param.Note=" + url.QueryEscape("50%"), []int64{pct}},
			{"param.Note=" + url.QueryEscape("5%"), []int64{pct5}},
			{"param.Note=" + url.QueryEscape("%"), nil},
			{"param.OrderNumber=A_B", []int64{under}},
			{"job=Noop&status=cancelled", []int64{noops[0]}},
			{"job=Noop&status=queued", []int64{noops[2], noops[1]}},
			{"job=Noop&trigger=api", []int64{noops[2], noops[1], noops[0]}},
			{"job=Noop&trigger=schedule", nil},
			{"job=N%25", nil},
			{"job=Typed&param.Kind=a&param.Note=50x", []int64{x50}},
			{"since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), nil},
			{"until=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), nil},
			{"job=Noop&since=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)) + "&until=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), []int64{noops[2], noops[1], noops[0]}},
		}
		for _, tc := range tests {
			status, m := e.doJSON(http.MethodGet, "/api/v1/runs?"+tc.query, viewerSecret, nil)
			require.Equal(t, http.StatusOK, status, tc.query)
			require.Equal(t, tc.want, ids(m), tc.query)
			require.NotContains(t, m, "nextCursor", tc.query)
		}

		// Cursor paging: 8 runs in pages of 3, newest first, no overlap.
		var seen []int64
		cursor := ""
		pages := 0
		for {
			q := "/api/v1/runs?limit=3"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			status, m := e.doJSON(http.MethodGet, q, viewerSecret, nil)
			require.Equal(t, http.StatusOK, status)
			pages++
			seen = append(seen, ids(m)...)
			next, ok := m["nextCursor"].(string)
			if !ok {
				break
			}
			cursor = next
		}
		require.Equal(t, 3, pages)
		require.Len(t, seen, 8)
		for i := 1; i < len(seen); i++ {
			require.Less(t, seen[i], seen[i-1])
		}

		// Limits are clamped.
		_, m := e.doJSON(http.MethodGet, "/api/v1/runs?limit=0", viewerSecret, nil)
		require.Len(t, ids(m), 1)
		_, m = e.doJSON(http.MethodGet, "/api/v1/runs?limit=-5", viewerSecret, nil)
		require.Len(t, ids(m), 1)
		_, m = e.doJSON(http.MethodGet, "/api/v1/runs?limit=1000000", viewerSecret, nil)
		require.Len(t, ids(m), 8)

		bad := []struct{ query, field string }{
			{"status=done", "status"},
			{"trigger=cron", "trigger"},
			{"since=yesterday", "since"},
			{"limit=ten", "limit"},
			{"cursor=abc", "cursor"},
			{"cursor=-1", "cursor"},
			{"orderNumber=1", "orderNumber"},
			{"job=a&job=b", "job"},
			{"param.=x", "param."},
		}
		for _, tc := range bad {
			status, m := e.doJSON(http.MethodGet, "/api/v1/runs?"+tc.query, viewerSecret, nil)
			require.Equal(t, http.StatusBadRequest, status, tc.query)
			code, fields := apiError(t, m)
			require.Equal(t, "bad_query", code)
			require.Contains(t, fields, tc.field, tc.query)
		}
	})
}

func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s, envOptions{work: true})

		// A run against the demo ERP: finished, with attempts and logs.
		id := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000123"})
		e.waitStatus(id, jobs.StatusSucceeded)
		status, m := e.doJSON(http.MethodGet, fmt.Sprintf("/api/v1/runs/%d", id), viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "succeeded", m["status"])
		atts := m["attempts"].([]any)
		require.Len(t, atts, 1)
		a := atts[0].(map[string]any)
		require.Equal(t, "succeeded", a["status"])
		require.Contains(t, a, "durationMs")
		require.Equal(t, "Cancelled", m["result"].(map[string]any)["erpStatus"])

		status, m = e.doJSON(http.MethodGet, fmt.Sprintf("/api/v1/runs/%d/logs", id), viewerSecret, nil)
		require.Equal(t, http.StatusOK, status)
		lines := m["logs"].([]any)
		require.GreaterOrEqual(t, len(lines), 2)
		require.Equal(t, true, m["complete"])
		require.Equal(t, false, m["more"])
		var all []string
		for _, l := range lines {
			all = append(all, l.(map[string]any)["message"].(string))
		}
		require.Contains(t, strings.Join(all, "\n"), "cancelled WEB000123")

		// Paged one line at a time.
		after := 0.0
		var paged []string
		for range 50 {
			_, m = e.doJSON(http.MethodGet, fmt.Sprintf("/api/v1/runs/%d/logs?limit=1&after=%d", id, int64(after)), viewerSecret, nil)
			for _, l := range m["logs"].([]any) {
				paged = append(paged, l.(map[string]any)["message"].(string))
			}
			after = m["next"].(float64)
			if m["complete"] == true {
				break
			}
		}
		require.Equal(t, all, paged)

		// Followed logs of a finished run: every line, then end.
		events := e.follow(id, 0)
		require.Equal(t, "end", events[len(events)-1].name)
		require.Equal(t, len(all), countEvents(events, "log"))

		// Cancel: finished → 409; unknown → 404; malformed id → 404.
		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/cancel", id), operatorSecret, nil)
		require.Equal(t, http.StatusConflict, status)
		code, _ := apiError(t, m)
		require.Equal(t, "run_finished", code)
		status, _ = e.doJSON(http.MethodPost, "/api/v1/runs/999999/cancel", operatorSecret, nil)
		require.Equal(t, http.StatusNotFound, status)
		status, _ = e.doJSON(http.MethodGet, "/api/v1/runs/abc", viewerSecret, nil)
		require.Equal(t, http.StatusNotFound, status)
		status, _ = e.doJSON(http.MethodGet, "/api/v1/runs/999999/logs", viewerSecret, nil)
		require.Equal(t, http.StatusNotFound, status)
		status, _ = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/cancel", id), operatorSecret, `{"why":"x"}`)
		require.Equal(t, http.StatusBadRequest, status)

		// A long run: followed while running, cancelled (202), the stream ends.
		long := e.trigger("Noop", map[string]any{"SleepMs": 60000})
		e.waitStatus(long, jobs.StatusRunning)
		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/retry", long), operatorSecret, nil)
		require.Equal(t, http.StatusConflict, status)
		code, _ = apiError(t, m)
		require.Equal(t, "run_active", code)
		streamed := make(chan []sse, 1)
		go func() { streamed <- e.follow(long, 0) }()
		time.Sleep(300 * time.Millisecond)
		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/cancel", long), operatorSecret, nil)
		require.Equal(t, http.StatusAccepted, status, "%v", m)
		require.Equal(t, true, m["cancelRequested"])
		require.Equal(t, "api:ops", m["cancelledBy"])
		run := e.waitStatus(long, jobs.StatusCancelled)
		require.Equal(t, "api:ops", run.CancelledBy)
		select {
		case events := <-streamed:
			require.Equal(t, "status", events[0].name)
			require.Contains(t, events[0].data, `"running"`)
			require.Equal(t, "end", events[len(events)-1].name)
			require.Contains(t, events[len(events)-1].data, `"cancelled"`)
		case <-time.After(20 * time.Second):
			t.Fatal("the followed log did not end when the run was cancelled")
		}

		// Retry: same parameters, linked; overrides; bad overrides.
		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/retry", long), operatorSecret, `{"parameters":{"SleepMs":1}}`)
		require.Equal(t, http.StatusAccepted, status, "%v", m)
		require.Equal(t, float64(long), m["retryOfRunId"])
		require.Equal(t, "retry", m["trigger"])
		require.Equal(t, "api:ops", m["triggeredBy"])
		require.Equal(t, map[string]any{"SleepMs": float64(1)}, m["parameters"])
		retried := int64(m["id"].(float64))
		e.waitStatus(retried, jobs.StatusSucceeded)

		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/retry", retried), operatorSecret, `{"parameters":{"SleepMs":null}}`)
		require.Equal(t, http.StatusAccepted, status, "%v", m)
		require.Equal(t, map[string]any{"SleepMs": float64(0)}, m["parameters"], "null resets to the default")

		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/retry", id), operatorSecret, nil)
		require.Equal(t, http.StatusAccepted, status)
		require.Equal(t, map[string]any{"OrderNumber": "WEB000123", "Reason": "customerRequest"}, m["parameters"])

		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/retry", retried), operatorSecret, `{"parameters":{"SleepMs":"x","Other":1}}`)
		require.Equal(t, http.StatusBadRequest, status)
		_, fields := apiError(t, m)
		require.Contains(t, fields, "SleepMs")
		require.Contains(t, fields, "Other")
		status, _ = e.doJSON(http.MethodPost, "/api/v1/runs/999999/retry", operatorSecret, nil)
		require.Equal(t, http.StatusNotFound, status)

		// A queued run is cancelled at once (200).
		e.worker.stop()
		q := e.trigger("Noop", nil)
		status, m = e.doJSON(http.MethodPost, fmt.Sprintf("/api/v1/runs/%d/cancel", q), operatorSecret, "")
		require.Equal(t, http.StatusOK, status, "%v", m)
		require.Equal(t, "cancelled", m["status"])
		require.Equal(t, "api:ops", m["cancelledBy"])
	})
}

// sse is one server-sent event.
type sse struct{ name, id, data string }

// follow reads the followed log of run id until the stream ends.
func (e *env) follow(id, after int64) []sse {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/runs/%d/logs?follow=1&after=%d", e.http.URL, id, after), nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+viewerSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	require.Equal(e.t, "text/event-stream", resp.Header.Get("Content-Type"))
	var out []sse
	var cur sse
	var raw strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		raw.WriteString(line + "\n")
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
			}
			cur = sse{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	e.record([]byte(raw.String()))
	require.NotEmpty(e.t, out)
	return out
}

func countEvents(events []sse, name string) int {
	n := 0
	for _, ev := range events {
		if ev.name == name {
			n++
		}
	}
	return n
}

func TestAuth(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		reloaded := 0
		e := newEnv(t, s, envOptions{metrics: true, reload: func(context.Context) error { reloaded++; return nil }})
		tests := []struct {
			name, method, path, secret string
			status                     int
		}{
			{"no token", "GET", "/api/v1/jobs", "", 401},
			{"unknown token", "GET", "/api/v1/jobs", "not-a-token-at-all-xyz", 401},
			{"viewer reads jobs", "GET", "/api/v1/jobs", viewerSecret, 200},
			{"viewer reads runs", "GET", "/api/v1/runs", viewerSecret, 200},
			{"viewer cannot trigger", "POST", "/api/v1/jobs/Noop/runs", viewerSecret, 403},
			{"viewer cannot cancel", "POST", "/api/v1/runs/1/cancel", viewerSecret, 403},
			{"viewer cannot retry", "POST", "/api/v1/runs/1/retry", viewerSecret, 403},
			{"operator cannot reload", "POST", "/api/v1/admin/reload", operatorSecret, 403},
			{"admin reloads", "POST", "/api/v1/admin/reload", adminSecret, 200},
			{"admin triggers", "POST", "/api/v1/jobs/Noop/runs", adminSecret, 202},
			{"metrics need a token", "GET", "/metrics", "", 401},
			{"viewer reads metrics", "GET", "/metrics", viewerSecret, 200},
			{"healthz is open", "GET", "/healthz", "", 200},
			{"readyz is open", "GET", "/readyz", "", 200},
			{"openapi is open", "GET", "/openapi.yaml", "", 200},
			{"unknown route", "GET", "/api/v1/nope", viewerSecret, 404},
			{"wrong method", "DELETE", "/api/v1/runs/1", viewerSecret, 405},
			{"wrong method on healthz", "POST", "/healthz", "", 405},
		}
		for _, tc := range tests {
			resp, body := e.do(tc.method, tc.path, tc.secret, nil)
			require.Equal(t, tc.status, resp.StatusCode, "%s: %s", tc.name, body)
			if tc.status == 401 {
				require.Equal(t, `Bearer realm="jobrunner"`, resp.Header.Get("WWW-Authenticate"))
			}
			if tc.status >= 400 {
				var m map[string]any
				require.NoError(t, jsonUnmarshal(body, &m), tc.name)
				apiError(t, m)
			}
			if tc.status == 405 {
				require.NotEmpty(t, resp.Header.Get("Allow"))
			}
		}
		require.Equal(t, 1, reloaded)
		runs, err := s.List(context.Background(), jobs.Filter{})
		require.NoError(t, err)
		require.Len(t, runs, 1)
		require.Equal(t, "api:root", runs[0].TriggeredBy)

		_, body := e.do("GET", "/metrics", viewerSecret, nil)
		require.Contains(t, string(body), `jobrunner_queue_depth{status="queued"} 1`)
	})
}

func TestReloadNotConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobstest.Open(t, "sqlite"), envOptions{})
	status, m := e.doJSON("POST", "/api/v1/admin/reload", adminSecret, nil)
	require.Equal(t, http.StatusNotImplemented, status)
	code, _ := apiError(t, m)
	require.Equal(t, "not_implemented", code)
	status, _ = e.doJSON("GET", "/metrics", viewerSecret, nil)
	require.Equal(t, http.StatusNotFound, status, "no metrics configured")
}

func TestNoTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobstest.Open(t, "sqlite"), envOptions{noTokens: true})
	// Loopback peers are the anonymous admin.
	status, m := e.doJSON("POST", "/api/v1/jobs/Noop/runs", "", nil)
	require.Equal(t, http.StatusAccepted, status)
	require.Equal(t, "api:anonymous", m["triggeredBy"])
	resp, body := e.do("GET", "/", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "No authentication")

	// Any other peer is refused, API and dashboard alike.
	for _, path := range []string{"/api/v1/jobs", "/", "/runs"} {
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "192.0.2.10:4242"
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusUnauthorized, rec.Code, path)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	fail := true
	e := newEnv(t, jobstest.Open(t, "sqlite"), envOptions{ready: func(context.Context) error {
		if fail {
			return fmt.Errorf("scheduler not running")
		}
		return nil
	}})
	resp, body := e.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "5", resp.Header.Get("Retry-After"))
	require.JSONEq(t, `{"status":"not_ready","version":"`+buildinfo.Read().Short()+`","checks":{"database":{"ok":true},"migrations":{"ok":true},"serve":{"ok":false,"message":"scheduler not running"}}}`, string(body))
	fail = false
	resp, body = e.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	resp, body = e.do("GET", "/healthz", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"status":"ok"}`, string(body))
}

// TestDatabaseUnavailable closes the store's database: every route that
// needs it answers 503 with Retry-After, and nothing was stored.
func TestDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	for _, dialect := range jobstest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dsn := jobstest.DSN(t, dialect)
			s, err := jobs.Open(context.Background(), dsn, jobs.OpenOptions{})
			require.NoError(t, err)
			check, err := jobs.Open(context.Background(), dsn, jobs.OpenOptions{NoMigrate: true})
			require.NoError(t, err)
			t.Cleanup(func() { _ = check.Close() })
			e := newEnv(t, s, envOptions{})
			require.NoError(t, s.Close())

			tests := []struct{ method, path, secret, body string }{
				{"POST", "/api/v1/jobs/OrderCancel/runs", operatorSecret, `{"parameters":{"OrderNumber":"WEB000123"},"idempotencyKey":"k1"}`},
				{"POST", "/api/v1/jobs/Noop/runs", operatorSecret, `{}`},
				{"GET", "/api/v1/jobs", viewerSecret, ""},
				{"GET", "/api/v1/jobs/Noop", viewerSecret, ""},
				{"GET", "/api/v1/runs", viewerSecret, ""},
				{"GET", "/api/v1/runs/1", viewerSecret, ""},
				{"GET", "/api/v1/runs/1/logs", viewerSecret, ""},
				{"POST", "/api/v1/runs/1/cancel", operatorSecret, ""},
				{"POST", "/api/v1/runs/1/retry", operatorSecret, ""},
				{"GET", "/readyz", "", ""},
			}
			for _, tc := range tests {
				resp, body := e.do(tc.method, tc.path, tc.secret, tc.body)
				require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s %s: %s", tc.method, tc.path, body)
				require.Equal(t, "5", resp.Header.Get("Retry-After"), tc.path)
				require.NotContains(t, string(body), "sql:", "raw database errors are not shown")
			}
			// The dashboard's pages say 503 with Retry-After too.
			b := e.browser()
			b.login(viewerSecret)
			for _, path := range []string{"/runs", "/runs/1"} {
				resp, err := b.client.Get(e.http.URL + path)
				require.NoError(t, err)
				_ = resp.Body.Close()
				require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, path)
				require.Equal(t, "5", resp.Header.Get("Retry-After"), path)
			}
			// Parameter errors are still reported without the database.
			resp, _ := e.do("POST", "/api/v1/jobs/OrderCancel/runs", operatorSecret, `{}`)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			require.Zero(t, countRuns(t, check), "nothing was accepted")
		})
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	tok, err := api.ParseTokens("a:viewer:" + viewerSecret)
	require.NoError(t, err)
	tests := []struct {
		addr   string
		tokens []api.Token
		ok     bool
	}{
		{"127.0.0.1:8080", nil, true},
		{"[::1]:8080", nil, true},
		{"localhost:8080", nil, true},
		{"127.0.0.2:80", nil, true},
		{":8080", nil, false},
		{"0.0.0.0:8080", nil, false},
		{"192.0.2.1:8080", nil, false},
		{"example.com:8080", nil, false},
		{"nonsense", nil, false},
		{":8080", tok, true},
		{"0.0.0.0:8080", tok, true},
	}
	for _, tc := range tests {
		err := api.CheckListen(tc.addr, tc.tokens)
		if tc.ok {
			require.NoError(t, err, tc.addr)
		} else {
			require.Error(t, err, tc.addr)
		}
	}
}

func TestParseTokens(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-value-abcdef123"
	toks, err := api.ParseTokens(" ci:viewer:" + secret + " , ops:OPERATOR:with:colons:0123456789,, root:admin:" + adminSecret)
	require.NoError(t, err)
	require.Len(t, toks, 3)
	require.Equal(t, "ci:viewer", toks[0].String())
	require.Equal(t, api.RoleOperator, toks[1].Role)
	require.Equal(t, "root:admin", toks[2].String())
	require.NotContains(t, fmt.Sprintf("%v %+v %#v %s", toks, toks, toks, toks), secret)

	none, err := api.ParseTokens("")
	require.NoError(t, err)
	require.Empty(t, none)

	bad := []string{
		"ci:viewer",            // no secret
		"ci:owner:" + secret,   // unknown role
		"ci:viewer:short",      // too short
		"c i:viewer:" + secret, // bad name
		"ci:viewer:" + secret + ",ci:admin:" + adminSecret, // duplicate name
		"a:viewer:" + secret + ",b:admin:" + secret,        // duplicate secret
		"ci:viewer:" + secret + " tail",                    // white space in secret
		secret,                                             // a bare secret
	}
	for _, in := range bad {
		_, err := api.ParseTokens(in)
		require.Error(t, err, in)
		require.NotContains(t, err.Error(), secret, "errors never echo a secret")
		require.NotContains(t, err.Error(), adminSecret)
	}
}

// TestTriggerRecordsTheCallersTrace: with traces on (a propagator
// installed), a trigger's W3C traceparent is recorded as the run's
// attempt-0 trace, which GET /runs/{id} shows and attempts link to.
func TestTriggerRecordsTheCallersTrace(t *testing.T) {
	tracing.Install(noop.NewTracerProvider())
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) })
	e := newEnv(t, jobstest.Open(t, "sqlite"), envOptions{})
	req, err := http.NewRequest(http.MethodPost, e.http.URL+"/api/v1/jobs/Noop/runs", strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+operatorSecret)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
	var m map[string]any
	require.NoError(t, jsonUnmarshal(b, &m))
	id := int64(m["id"].(float64))
	status, run := e.doJSON(http.MethodGet, fmt.Sprintf("/api/v1/runs/%d", id), viewerSecret, nil)
	require.Equal(t, http.StatusOK, status)
	traces := run["traces"].([]any)
	require.Len(t, traces, 1)
	tr := traces[0].(map[string]any)
	require.Equal(t, float64(0), tr["attempt"])
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", tr["traceId"])
	require.Equal(t, "00f067aa0ba902b7", tr["spanId"])
}

func TestTriggerAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobstest.Open(t, "sqlite"), envOptions{})
	at := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	status, m := e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, map[string]any{"runAt": at.Format(time.RFC3339)})
	require.Equal(t, http.StatusAccepted, status, "%v", m)
	r, err := e.store.Get(context.Background(), int64(m["id"].(float64)))
	require.NoError(t, err)
	require.True(t, r.NotBefore.Equal(at), "not_before %s, want %s", r.NotBefore, at)
	status, m = e.doJSON(http.MethodPost, "/api/v1/jobs/Noop/runs", operatorSecret, `{"runAt":"tomorrow"}`)
	require.Equal(t, http.StatusBadRequest, status, "%v", m)
}

func TestBulkRetryShowsTheCountFirst(t *testing.T) {
	t.Parallel()
	s := jobstest.Open(t, "sqlite")
	e := newEnv(t, s, envOptions{})
	job, ok := e.defs.Job("Noop")
	require.True(t, ok)
	params, err := job.ParseParams(nil)
	require.NoError(t, err)
	for range 3 {
		enq, err := s.Enqueue(context.Background(), jobs.NewRun{Job: job, Params: params, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		c, err := s.ClaimRun(context.Background(), enq.Run.ID, "w", time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Finish(context.Background(), c, jobs.Finish{Status: jobs.StatusFailed, AttemptStatus: jobs.AttemptFailed, ErrorCode: "BOOM"}))
	}
	status, m := e.doJSON(http.MethodPost, "/api/v1/runs/bulk-retry", operatorSecret, map[string]any{"job": "Noop", "errorCode": "BOOM"})
	require.Equal(t, http.StatusOK, status, "%v", m)
	require.Equal(t, float64(3), m["matched"])
	require.Equal(t, true, m["dryRun"])
	status, m = e.doJSON(http.MethodPost, "/api/v1/runs/bulk-retry", operatorSecret, map[string]any{"job": "Noop", "confirm": 2})
	require.Equal(t, http.StatusConflict, status, "%v", m)
	code, _ := apiError(t, m)
	require.Equal(t, "count_changed", code)
	status, m = e.doJSON(http.MethodPost, "/api/v1/runs/bulk-retry", operatorSecret, map[string]any{"job": "Noop", "confirm": 3})
	require.Equal(t, http.StatusOK, status, "%v", m)
	require.Equal(t, float64(3), m["done"])
	status, m = e.doJSON(http.MethodPost, "/api/v1/runs/bulk-retry", operatorSecret, map[string]any{"job": "Noop", "confirm": 3})
	require.Equal(t, http.StatusOK, status, "%v", m)
	require.Equal(t, float64(0), m["done"], "each run is retried once")
	require.Equal(t, float64(3), m["already"])
	status, m = e.doJSON(http.MethodPost, "/api/v1/runs/bulk-cancel", viewerSecret, map[string]any{"job": "Noop"})
	require.Equal(t, http.StatusForbidden, status, "%v", m)
	status, m = e.doJSON(http.MethodPost, "/api/v1/runs/bulk-cancel", operatorSecret, map[string]any{"job": "Noop", "confirm": 3})
	require.Equal(t, http.StatusOK, status, "%v", m)
	require.Equal(t, float64(3), m["done"], "the three queued retries are cancelled")
	status, m = e.doJSON(http.MethodPost, "/api/v1/runs/bulk-retry", operatorSecret, map[string]any{})
	require.Equal(t, http.StatusBadRequest, status, "%v", m)
}
