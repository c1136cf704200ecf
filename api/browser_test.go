package api_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/erpdemo"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// chromiumPath is Debian's chromium, which scripts/test installs.
const chromiumPath = "/usr/bin/chromium"

var screenshots = flag.Bool("screenshots", false, "write dashboard screenshots to docs/screenshots (also JOBRUNNER_SCREENSHOTS=1)")

// screenshotDir is where the README's screenshots live, from this package.
var screenshotDir = filepath.Join("..", "docs", "screenshots")

// TestBrowser drives real headless Chromium through the dashboard: log in,
// trigger OrderCancel for an order of the demo ERP, watch the run finish
// live, open its logs, then start a long Noop and cancel it from its page.
// It skips only when Chromium is missing outside CI.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (scripts/test installs Debian's chromium): %v", chromiumPath, err)
		}
		t.Skipf("skipping the browser test: %s is not installed (apt-get install chromium); in CI this fails", chromiumPath)
	}
	s := jobstest.Open(t, "sqlite")
	e := newEnv(t, s, envOptions{work: true, pool: true, demo: true, builtinOnly: true})
	// Some history for the runs page.
	failed := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000129"})
	e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000126"})
	e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000124", "Reason": "outOfStock"})
	e.trigger("Noop", map[string]any{"SleepMs": 50})
	e.waitStatus(failed, jobs.StatusFailed)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	// Start the browser on ctx itself: a browser started by a step's
	// shorter-lived context would end with that step.
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	base := e.http.URL
	shots := *screenshots || os.Getenv("JOBRUNNER_SCREENSHOTS") == "1"
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		stepCtx, cancel := context.WithTimeout(ctx, 45*time.Second)
		defer cancel()
		if err := chromedp.Do(stepCtx, steps...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v\nat %s, the page reads:\n%s", what, err, loc, body)
		}
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		require.NoError(t, err, sel)
		return s
	}
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(ctx, chromedp.Location())
		require.NoError(t, err)
		return loc
	}
	shot := func(name string) {
		t.Helper()
		if !shots {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(screenshotDir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(screenshotDir, name), png, 0o644))
	}
	runID := func(u string) int64 {
		t.Helper()
		var id int64
		_, err := fmt.Sscanf(u[strings.LastIndex(u, "/runs/"):], "/runs/%d", &id)
		require.NoError(t, err, u)
		return id
	}

	// Log in: the dashboard redirects to the login page first.
	do("open the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	require.Contains(t, location(), "/login")
	do("log in",
		chromedp.SendKeys(chromedp.ID("token"), operatorSecret),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-OrderCancel form.run-form`)),
	)
	jobsHTML, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	require.NoError(t, err)
	require.Contains(t, jobsHTML, "DEMO ERP")
	require.NotContains(t, jobsHTML, operatorSecret)
	shot("jobs.png")

	// Trigger OrderCancel for an open order of the demo ERP, and watch it
	// finish: the page updates itself (the test does not reload it).
	do("trigger OrderCancel",
		chromedp.SetValue(chromedp.ID("f-OrderCancel-OrderNumber"), "WEB000123"),
		chromedp.SetValue(chromedp.ID("f-OrderCancel-Reason"), "fraud"),
		chromedp.Click(chromedp.CSS(`#job-OrderCancel button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("run-status")),
	)
	runURL := location()
	require.Regexp(t, `/runs/\d+$`, runURL)
	do("watch the run finish", chromedp.WaitVisible(chromedp.CSS(`#run-status [data-status="succeeded"]`)))
	require.Contains(t, text("pre.result"), `"erpStatus": "Cancelled"`)
	require.Contains(t, text("dl.facts"), "api by dashboard:ops")
	order, ok := e.erp.Get("WEB000123")
	require.True(t, ok)
	require.Equal(t, "Cancelled", order.Status, "the ERP was told")
	require.Equal(t, jobs.StatusSucceeded, e.waitStatus(runID(runURL), jobs.StatusSucceeded).Status)

	// Open its logs.
	do("open the logs", chromedp.Click(chromedp.ID("all-logs")), chromedp.WaitVisible(chromedp.CSS(`#log-lines tr`)))
	logText := text("#log-lines")
	require.Contains(t, logText, "cancelled WEB000123")
	require.Contains(t, logText, "ERP call")

	// The runs page and a failed run's page (ERP error code and message).
	do("runs page", chromedp.Navigate(base+"/runs"), chromedp.WaitVisible(chromedp.ID("runs-table")))
	runsText := text("#runs-table")
	require.Contains(t, runsText, "WEB000123")
	require.Contains(t, runsText, "succeeded")
	shot("runs.png")
	do("failed run page", chromedp.Navigate(fmt.Sprintf("%s/runs/%d", base, failed)), chromedp.WaitVisible(chromedp.ID("run-error-message")))
	erpErr := text(".erp-error")
	require.Contains(t, erpErr, "STATUS_LOCKED")
	require.Contains(t, erpErr, "Status of integrated orders cannot be changed")
	shot("run.png")
	do("phone width", chromedp.EmulateViewport(390, 844))
	shot("run-phone.png")
	do("desktop width", chromedp.EmulateViewport(1280, 900))

	// A long-running run, cancelled from its page while it runs.
	do("start a long run",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("f-Noop-SleepMs")),
		chromedp.SetValue(chromedp.ID("f-Noop-SleepMs"), "60000"),
		chromedp.Click(chromedp.CSS(`#job-Noop button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#run-status [data-status="running"]`)),
	)
	longURL := location()
	do("cancel it",
		chromedp.Click(chromedp.ID("cancel-run")),
		chromedp.WaitVisible(chromedp.CSS(`#run-status [data-status="cancelled"]`)),
	)
	r, err := s.Get(context.Background(), runID(longURL))
	require.NoError(t, err)
	require.Equal(t, jobs.StatusCancelled, r.Status)
	require.Equal(t, "dashboard:ops", r.CancelledBy)
	require.NotNil(t, r.StartedAt, "it was running when cancelled")
	require.Less(t, r.FinishedAt.Sub(*r.StartedAt), 50*time.Second, "cancelled long before its 60 s sleep")

	// The overview: a row per job with its hourly chart and failure rate.
	do("overview", chromedp.Navigate(base+"/overview"), chromedp.WaitVisible(chromedp.CSS(`#ov-OrderCancel svg rect`)))
	ov := text("#ov-OrderCancel")
	require.Contains(t, ov, "50.0 %", "2 of the 4 finished OrderCancel runs failed (WEB000129 and WEB000124 are not cancellable)")
	shot("overview.png")

	// Pause the erp connection from the jobs page: the connection and the
	// job it holds say so, a run triggered meanwhile waits queued, and it
	// runs once the connection is resumed.
	do("pause the erp connection",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#conn-erp input[name=reason]`)),
		chromedp.SetValue(chromedp.CSS(`#conn-erp input[name=reason]`), "ERP upgrade"),
		chromedp.Click(chromedp.CSS(`#conn-erp button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#conn-erp .badge.failed`)),
	)
	require.Contains(t, text("#conn-erp"), "paused by dashboard:ops")
	require.Contains(t, text("#conn-erp"), "ERP upgrade")
	require.Contains(t, text("#job-OrderCancel"), "ERP upgrade", "the job says what holds it")
	shot("paused.png")
	e.erp.Put(erpdemo.Order{OrderNumber: "WEB000777", Status: erpdemo.StatusOpen})
	held := e.trigger("OrderCancel", map[string]any{"OrderNumber": "WEB000777"})
	time.Sleep(1500 * time.Millisecond) // beyond one poll (not an assertion)
	hr, err := s.Get(context.Background(), held)
	require.NoError(t, err)
	require.Equal(t, jobs.StatusQueued, hr.Status, "nothing is sent to a paused connection")
	do("resume it",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#conn-erp form[action="/resume"] button`)),
		chromedp.Click(chromedp.CSS(`#conn-erp form[action="/resume"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#conn-erp form[action="/pause"]`)),
	)
	require.Equal(t, jobs.StatusSucceeded, e.waitStatus(held, jobs.StatusSucceeded).Status, "the held run ran after the resume")

	// Bulk retry of the failed OrderCancel runs from the runs page.
	do("failed runs of OrderCancel",
		chromedp.Navigate(base+"/runs?job=OrderCancel&status=failed"),
		chromedp.WaitVisible(chromedp.CSS(`#bulk-retry button[type=submit]`)),
	)
	require.Contains(t, text("#bulk-retry"), "Retry 2 runs")
	do("retry them",
		chromedp.Click(chromedp.CSS(`#bulk-retry button[type=submit]`)),
		// The page after the redirect says what was done (the runs table is
		// on both pages: waiting for it would not wait for the redirect).
		chromedp.WaitVisible(chromedp.CSS(`.banner.notice`)),
	)
	require.Contains(t, text(".banner.notice"), "Retried 2 runs")
	retries, err := s.List(context.Background(), jobs.Filter{Trigger: jobs.TriggerRetry})
	require.NoError(t, err)
	require.Len(t, retries, 2, "each failed run was retried once")
	for _, r := range retries {
		require.Equal(t, "dashboard:ops (bulk retry)", r.TriggeredBy)
	}
}
