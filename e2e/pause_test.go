package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/erpdemo"
)

// countingERP is the demo ERP behind a counter of the requests that reach
// it, which can answer 429 with Retry-After for one order.
type countingERP struct {
	erp      *erpdemo.Server
	srv      *httptest.Server
	requests atomic.Int64
	throttle string // order number answered 429
	after    string // its Retry-After
}

func newCountingERP(t *testing.T) *countingERP {
	c := &countingERP{erp: erpdemo.New("e2e-pause-erp-token")}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		if c.throttle != "" && strings.Contains(r.URL.Path, "/"+c.throttle) {
			w.Header().Set("Retry-After", c.after)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"code":"RATE_LIMITED","message":"slow down"}`)
			return
		}
		c.erp.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *countingERP) env(extra ...string) []string {
	return baseEnv(append([]string{"JOBRUNNER_ERP_URL=" + c.srv.URL, "JOBRUNNER_ERP_TOKEN=e2e-pause-erp-token"}, extra...)...)
}

// triggerAll posts an OrderCancel for each order, spread over bases.
func triggerAll(t *testing.T, bases []string, orders []string) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan string)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				body, _ := json.Marshal(map[string]any{"parameters": map[string]string{"OrderNumber": n}})
				resp, err := http.Post(bases[c%len(bases)]+"/api/v1/jobs/OrderCancel/runs", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Errorf("trigger %s: %v", n, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("trigger %s: %d %s", n, resp.StatusCode, b)
				}
			}
		}()
	}
	for _, n := range orders {
		work <- n
	}
	close(work)
	wg.Wait()
}

// TestPauseConnectionUnderLoad pauses the ERP connection while two
// instances work through 300 OrderCancel runs: once the pause is seen (one
// poll interval), no request reaches the ERP until it is resumed; then
// every run completes, each with one attempt (none used while paused).
func TestPauseConnectionUnderLoad(t *testing.T) {
	const n = 300
	erp := newCountingERP(t)
	var orders []string
	for i := range n {
		num := fmt.Sprintf("PZ%05d", i)
		erp.erp.Put(erpdemo.Order{OrderNumber: num, Status: erpdemo.StatusOpen})
		orders = append(orders, num)
	}
	erp.erp.SetDelay(20 * time.Millisecond) // a slow ERP: the load lasts
	dsn, store := database(t)
	var bases []string
	for i := range 2 {
		addr := freeAddr(t)
		p := serve(t, fmt.Sprintf("serve%d", i+1), dsn, "", erp.env(),
			"--http", addr, "--workers", "4", "--poll", "200ms", "--no-scheduler", "--log-level", "info")
		p.waitLog("HTTP API and dashboard listening", 60*time.Second)
		bases = append(bases, "http://"+addr)
	}
	triggerAll(t, bases, orders)
	eventually(t, time.Minute, 20*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "OrderCancel")
		return c["succeeded"] >= 40, fmt.Sprintf("40 runs done (now %v)", c)
	})
	p := start(t, "pause", baseEnv(), "pause", "connection", "erp", "--reason", "ERP maintenance", "--db", dsn)
	require.NoError(t, p.wait(30*time.Second), p.output())
	time.Sleep(1500 * time.Millisecond) // one poll interval, and the runs in flight finish
	atPause := erp.requests.Load()
	doneAtPause := statusCounts(t, store, "OrderCancel")["succeeded"]
	time.Sleep(3 * time.Second)
	require.Equal(t, atPause, erp.requests.Load(), "requests reached the ERP while its connection was paused")
	c := statusCounts(t, store, "OrderCancel")
	require.Equal(t, doneAtPause, c["succeeded"])
	require.Positive(t, c["queued"], "runs wait queued")

	p = start(t, "resume", baseEnv(), "resume", "connection", "erp", "--db", dsn)
	require.NoError(t, p.wait(30*time.Second), p.output())
	eventually(t, 2*time.Minute, 100*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "OrderCancel")
		return c["succeeded"] == n, fmt.Sprintf("all %d to succeed (now %v)", n, c)
	})
	var attempts int64
	require.NoError(t, store.DB().Raw("SELECT COUNT(*) FROM run_attempts_all").Scan(&attempts).Error)
	require.EqualValues(t, n, attempts, "one attempt per run: none used while paused")
	ins, err := store.Instances(t.Context())
	require.NoError(t, err)
	require.Len(t, ins, 2, "both instances report themselves")
	for _, in := range ins {
		require.True(t, in.Live, in.Owner)
		require.Equal(t, 4, in.Workers)
	}
	for _, o := range orders {
		require.Equal(t, 1, erp.erp.CancelsApplied(o), o)
	}
	t.Logf("paused after %d of %d runs; %d ERP requests, none in the 3 s while paused (%d runs waited queued); all %d succeeded after resume with %d attempts",
		doneAtPause, n, atPause, c["queued"], n, attempts)
}

// TestCircuitBreakerPausesTheConnection: an ERP that answers 429 with
// Retry-After: 3 pauses its connection on every instance for 3 s: the
// runs triggered meanwhile reach it only afterwards, and no attempt is
// used for the wait.
func TestCircuitBreakerPausesTheConnection(t *testing.T) {
	erp := newCountingERP(t)
	erp.throttle, erp.after = "HOT00001", "3"
	erp.erp.Put(erpdemo.Order{OrderNumber: "HOT00001", Status: erpdemo.StatusOpen})
	var orders []string
	for i := range 20 {
		num := fmt.Sprintf("CB%05d", i)
		erp.erp.Put(erpdemo.Order{OrderNumber: num, Status: erpdemo.StatusOpen})
		orders = append(orders, num)
	}
	dsn, store := database(t)
	var bases []string
	var procs []*proc
	for i := range 2 {
		addr := freeAddr(t)
		p := serve(t, fmt.Sprintf("serve%d", i+1), dsn, "", erp.env(),
			"--http", addr, "--workers", "4", "--poll", "200ms", "--no-scheduler", "--log-level", "info")
		p.waitLog("HTTP API and dashboard listening", 60*time.Second)
		bases = append(bases, "http://"+addr)
		procs = append(procs, p)
	}
	triggerAll(t, bases[:1], []string{"HOT00001"})
	eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		return erp.requests.Load() >= 1, "the throttled call"
	})
	tripped := time.Now()
	time.Sleep(500 * time.Millisecond) // the pause is stored and seen (one poll)
	before := erp.requests.Load()
	triggerAll(t, bases, orders)
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, before, erp.requests.Load(), "a request reached the ERP while the circuit breaker held its connection")
	p := start(t, "pauses", baseEnv(), "pauses", "--db", dsn)
	require.NoError(t, p.wait(30*time.Second), p.output())
	require.Contains(t, p.output(), "circuit-breaker")
	require.Contains(t, p.output(), "answered 429 with Retry-After 3s")

	erp.throttle = ""
	eventually(t, time.Minute, 100*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "OrderCancel")
		return c["succeeded"] == 21, fmt.Sprintf("all 21 to succeed (now %v)", c)
	})
	took := time.Since(tripped)
	require.GreaterOrEqual(t, took, 2500*time.Millisecond, "the others waited for the Retry-After")
	found := false
	for _, p := range procs {
		if strings.Contains(p.output(), "circuit breaker: connection erp answered 429") {
			found = true
		}
	}
	require.True(t, found, "the breaker says so in the log")
	t.Logf("429 Retry-After 3 s: %d requests before, none for 1.5 s after; all 21 runs done %s after the 429", before, took.Round(10*time.Millisecond))
}
