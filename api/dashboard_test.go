package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// browser is a cookie-keeping HTTP client for dashboard pages.
type browser struct {
	e      *env
	client *http.Client
	csrf   string // the last page's CSRF token
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	return &browser{e: e, client: &http.Client{Jar: jar}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// page fetches a page (following redirects) and returns the final status,
// URL path and body.
func (b *browser) page(method, path string, form url.Values, header ...string) (int, string, string) {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.http.URL+path, body)
	require.NoError(b.e.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.client.Do(req)
	require.NoError(b.e.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(b.e.t, err)
	b.e.record(data)
	if m := csrfRE.FindSubmatch(data); m != nil {
		b.csrf = string(m[1])
	}
	return resp.StatusCode, resp.Request.URL.RequestURI(), string(data)
}

func (b *browser) login(secret string) {
	b.e.t.Helper()
	status, path, _ := b.page("GET", "/login", nil)
	require.Equal(b.e.t, http.StatusOK, status)
	require.Equal(b.e.t, "/login", path)
	status, path, body := b.page("POST", "/login", url.Values{"csrf": {b.csrf}, "token": {secret}, "next": {"/"}})
	require.Equal(b.e.t, http.StatusOK, status, body)
	require.Equal(b.e.t, "/", path)
}

func (b *browser) post(path string, form url.Values, header ...string) (int, string, string) {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	return b.page("POST", path, form, header...)
}

func TestDashboardLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobstest.Open(t, "sqlite"), envOptions{demo: true})
	b := e.browser()

	status, path, body := b.page("GET", "/runs?job=Noop", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "/login?next=%2Fruns%3Fjob%3DNoop", path, "pages redirect to the login page")
	require.Contains(t, body, `name="token"`)

	// A login POST without the login cookie (cross-site) is refused.
	other := e.browser()
	status, _, _ = other.page("POST", "/login", url.Values{"csrf": {b.csrf}, "token": {operatorSecret}})
	require.Equal(t, http.StatusForbidden, status)

	status, _, body = b.page("POST", "/login", url.Values{"csrf": {b.csrf}, "token": {"wrong-token-0123456789"}})
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body, "Unknown token.")
	require.NotContains(t, body, "wrong-token-0123456789")

	// Log in directly (no redirect following) to see the cookie.
	noFollow := &http.Client{Jar: b.client.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"csrf": {b.csrf}, "token": {operatorSecret}, "next": {"/runs?job=Noop"}}
	req, err := http.NewRequest("POST", e.http.URL+"/login", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noFollow.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/runs?job=Noop", resp.Header.Get("Location"))
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "jobrunner_session" {
			sess = c
		}
	}
	require.NotNil(t, sess)
	require.True(t, sess.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, sess.SameSite)
	require.NotContains(t, sess.Value, operatorSecret)
	require.Len(t, sess.Value, 64)

	status, path, body = b.page("GET", "/", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "/", path)
	require.Contains(t, body, "DEMO ERP")
	require.Contains(t, body, "ops · operator")
	require.NotContains(t, body, "No authentication")
	require.NotContains(t, body, operatorSecret)

	// Open redirects are refused.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		c := e.browser()
		c.page("GET", "/login", nil)
		_, path, _ := c.page("POST", "/login", url.Values{"csrf": {c.csrf}, "token": {viewerSecret}, "next": {next}})
		require.Equal(t, "/", path, next)
	}

	// Logging out ends the session.
	status, path, _ = b.post("/logout", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "/login", path)
	_, path, _ = b.page("GET", "/", nil)
	require.Equal(t, "/login?next=%2F", path)
}

func TestDashboardRunNow(t *testing.T) {
	t.Parallel()
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		e := newEnv(t, s, envOptions{})
		b := e.browser()
		b.login(operatorSecret)
		_, _, body := b.page("GET", "/", nil)
		for _, want := range []string{
			`action="/jobs/OrderCancel/run"`,
			`<label for="f-OrderCancel-OrderNumber">Order Number <abbr title="required" class="req">*</abbr>`,
			`<select name="p.Reason" id="f-OrderCancel-Reason">`,
			`<option value="customerRequest" selected>`,
			`type="number" name="p.SleepMs" id="f-Noop-SleepMs" value="0" min="0" max="600000"`,
			`type="date" name="p.Day"`,
			`type="datetime-local" name="p.At"`,
			`<input type="checkbox" name="p.Flag" value="true" id="f-Typed-Flag" checked>`,
			`name="preview" value="true"`,
			`<code>*/5 * * * *</code> (UTC), next `,
		} {
			require.Contains(t, body, want)
		}

		// CSRF and Origin are checked before anything else.
		status, _, _ := b.post("/jobs/Noop/run", url.Values{"csrf": {"forged"}})
		require.Equal(t, http.StatusForbidden, status)
		status, _, _ = b.post("/jobs/Noop/run", nil, "Origin", "http://evil.example")
		require.Equal(t, http.StatusForbidden, status)
		status, _, _ = b.post("/jobs/Noop/run", url.Values{"p.SleepMs": {strings.Repeat("9", 70<<10)}})
		require.Equal(t, http.StatusRequestEntityTooLarge, status)
		require.Zero(t, countRuns(t, s))

		// Invalid parameters: 400, the form again with inline errors.
		status, _, body = b.post("/jobs/OrderCancel/run", url.Values{"p.OrderNumber": {"no spaces allowed"}, "p.Reason": {"whim"}, "idem": {"i1"}})
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, body, `data-field-error="OrderNumber"`)
		require.Contains(t, body, `data-field-error="Reason"`)
		require.Contains(t, body, `value="no spaces allowed"`, "submitted values are kept")
		require.Zero(t, countRuns(t, s))

		status, path, body := b.post("/jobs/OrderCancel/run", url.Values{"p.OrderNumber": {"WEB000123"}, "p.Reason": {"fraud"}, "idem": {"i2"}})
		require.Equal(t, http.StatusOK, status)
		require.Regexp(t, `^/runs/\d+$`, path)
		require.Contains(t, body, "WEB000123")
		require.Contains(t, body, "api by dashboard:ops")
		require.Contains(t, body, `id="cancel-run"`)
		runPath := path

		// The same form submitted again: the same run.
		_, path, body = b.post("/jobs/OrderCancel/run", url.Values{"p.OrderNumber": {"WEB000123"}, "p.Reason": {"fraud"}, "idem": {"i2"}})
		require.Equal(t, runPath+"?existing=idempotencyKey", path)
		require.Contains(t, body, "already submitted")
		// Another form for the same order while it is active: the active run.
		_, path, body = b.post("/jobs/OrderCancel/run", url.Values{"p.OrderNumber": {"WEB000123"}, "idem": {"i3"}})
		require.Equal(t, runPath+"?existing=active", path)
		require.Contains(t, body, "already queued or running")
		require.EqualValues(t, 1, countRuns(t, s))

		// Typed: an unchecked checkbox is false, datetime-local is UTC.
		_, path, _ = b.post("/jobs/Typed/run", url.Values{"p.Kind": {"b"}, "p.Flag": {"false"}, "p.At": {"2026-03-01T10:00"}, "p.Day": {"2026-02-28"}, "p.Amount": {"0.10"}, "idem": {"i4"}})
		var id int64
		_, err := fmt.Sscanf(path, "/runs/%d", &id)
		require.NoError(t, err)
		run, err := s.Get(context.Background(), id)
		require.NoError(t, err)
		require.JSONEq(t, `{"Kind":"b","Flag":false,"At":"2026-03-01T10:00:00Z","Day":"2026-02-28","Amount":"0.10"}`, string(run.Parameters))

		// Runs page: filters by job, status and any parameter.
		_, _, body = b.page("GET", "/runs?param=OrderNumber&value=WEB000123", nil)
		require.Contains(t, body, `href="`+runPath+`"`)
		require.NotContains(t, body, fmt.Sprintf(`href="/runs/%d"`, id))
		require.Contains(t, body, `data-active="true"`)
		_, _, body = b.page("GET", "/runs?job=Typed&status=queued", nil)
		require.Contains(t, body, fmt.Sprintf(`href="/runs/%d"`, id))
		require.Contains(t, body, `class="status st-queued"`)
		status, _, body = b.page("GET", "/runs?status=bogus", nil)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, body, "unknown status")

		// Cancel from the run page (queued: at once).
		_, path, body = b.post(runPath+"/cancel", nil)
		require.Equal(t, runPath, path)
		require.Contains(t, body, `data-status="cancelled"`)
		require.Contains(t, body, "dashboard:ops")
		require.Contains(t, body, `id="retry-run"`)
		status, _, _ = b.post(runPath+"/cancel", nil)
		require.Equal(t, http.StatusConflict, status)

		// Retry with other parameters: invalid → inline errors; valid → new run.
		status, _, body = b.post(runPath+"/retry", url.Values{"override": {"1"}, "p.OrderNumber": {"bad order"}})
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, body, `data-field-error="OrderNumber"`)
		_, path, body = b.post(runPath+"/retry", url.Values{"override": {"1"}, "p.OrderNumber": {"WEB000124"}, "p.Reason": {"outOfStock"}})
		require.Regexp(t, `^/runs/\d+$`, path)
		require.Contains(t, body, "retry by dashboard:ops")
		require.Contains(t, body, "WEB000124")
		require.Contains(t, body, `href="`+runPath+`"`, "links the retried run")

		// Logs page and the live feed of the script.
		_, _, body = b.page("GET", path+"/logs", nil)
		require.Contains(t, body, "No log lines")
		require.Contains(t, body, "data-live-run")
		status, _, body = b.page("GET", path+"/live?after=0", nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, `"status":"queued"`)
		require.Contains(t, body, `"final":false`)

		status, _, _ = b.page("GET", "/runs/999999", nil)
		require.Equal(t, http.StatusNotFound, status)
		status, _, _ = b.page("GET", "/no/such/page", nil)
		require.Equal(t, http.StatusNotFound, status)
	})
}

func TestDashboardViewer(t *testing.T) {
	t.Parallel()
	s := jobstest.Open(t, "sqlite")
	e := newEnv(t, s, envOptions{})
	id := e.trigger("Noop", nil)
	b := e.browser()
	b.login(viewerSecret)
	_, _, body := b.page("GET", "/", nil)
	require.NotContains(t, body, "Run now")
	require.Contains(t, body, "can view runs but not start them")
	_, _, body = b.page("GET", fmt.Sprintf("/runs/%d", id), nil)
	require.NotContains(t, body, `id="cancel-run"`)
	status, _, _ := b.post("/jobs/Noop/run", nil)
	require.Equal(t, http.StatusForbidden, status)
	status, _, _ = b.post(fmt.Sprintf("/runs/%d/cancel", id), nil)
	require.Equal(t, http.StatusForbidden, status)
	require.EqualValues(t, 1, countRuns(t, s))
}

func TestDashboardRunAt(t *testing.T) {
	t.Parallel()
	s := jobstest.Open(t, "sqlite")
	e := newEnv(t, s, envOptions{})
	b := e.browser()
	b.login(operatorSecret)
	_, _, body := b.page("GET", "/", nil)
	require.Contains(t, body, `name="runAt"`)
	status, path, _ := b.post("/jobs/Noop/run", url.Values{"runAt": {"2099-01-02T02:00"}})
	require.Equal(t, http.StatusOK, status)
	require.True(t, strings.HasPrefix(path, "/runs/"), path)
	id, err := strconv.ParseInt(strings.TrimPrefix(path, "/runs/"), 10, 64)
	require.NoError(t, err)
	r, err := s.Get(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, "2099-01-02T02:00:00Z", r.NotBefore.UTC().Format(time.RFC3339))
	status, _, body = b.post("/jobs/Noop/run", url.Values{"runAt": {"soon"}})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "Run at: want a date and time")
}

func TestDashboardBulkRetry(t *testing.T) {
	t.Parallel()
	s := jobstest.Open(t, "sqlite")
	e := newEnv(t, s, envOptions{})
	job, _ := e.defs.Job("Noop")
	params, err := job.ParseParams(nil)
	require.NoError(t, err)
	for range 3 {
		enq, err := s.Enqueue(context.Background(), jobs.NewRun{Job: job, Params: params, Trigger: jobs.TriggerAPI})
		require.NoError(t, err)
		c, err := s.ClaimRun(context.Background(), enq.Run.ID, "w", time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Finish(context.Background(), c, jobs.Finish{Status: jobs.StatusFailed, AttemptStatus: jobs.AttemptFailed, ErrorCode: "BOOM"}))
	}
	viewer := e.browser()
	viewer.login(viewerSecret)
	_, _, body := viewer.page("GET", "/runs?job=Noop&status=failed", nil)
	require.NotContains(t, body, `id="bulk-retry"`, "viewers are not offered a bulk retry")

	b := e.browser()
	b.login(operatorSecret)
	_, _, body = b.page("GET", "/runs?job=Noop&status=failed", nil)
	require.Contains(t, body, "Retry 3 runs")
	m := regexp.MustCompile(`name="query" value="([^"]*)"`).FindStringSubmatch(body)
	require.NotNil(t, m)
	query := strings.ReplaceAll(m[1], "&amp;", "&")
	status, _, body := b.post("/runs/bulk-retry", url.Values{"query": {query}, "confirm": {"2"}})
	require.Equal(t, http.StatusConflict, status, "a stale count is refused")
	require.Contains(t, body, "3 runs match now, not the 2 confirmed")
	status, path, body := b.post("/runs/bulk-retry", url.Values{"query": {query}, "confirm": {"3"}})
	require.Equal(t, http.StatusOK, status)
	require.True(t, strings.HasPrefix(path, "/runs?"), path)
	require.Contains(t, body, "Retried 3 runs (0 had been retried by an earlier bulk retry).")
	retries, err := s.List(context.Background(), jobs.Filter{Trigger: jobs.TriggerRetry})
	require.NoError(t, err)
	require.Len(t, retries, 3)
	for _, r := range retries {
		require.Equal(t, "dashboard:ops (bulk retry)", r.TriggeredBy)
	}
}
