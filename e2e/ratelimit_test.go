package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/erpdemo"
)

// builtinWith returns a definitions directory holding the built-in
// definitions with extra lines added to the erp connection (after its
// secrets).
func builtinWith(t *testing.T, erpExtra string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "definitions", "builtin", "examples.yaml"))
	require.NoError(t, err)
	const anchor = "    secrets:\n      token: JOBRUNNER_ERP_TOKEN\n"
	require.Contains(t, string(b), anchor)
	return writeDefs(t, strings.Replace(string(b), anchor, anchor+erpExtra, 1))
}

// timedERP is the demo ERP behind a recorder of when each request arrived.
type timedERP struct {
	erp  *erpdemo.Server
	url  string
	mu   sync.Mutex
	seen []time.Time
}

func newTimedERP(t *testing.T) *timedERP {
	e := &timedERP{erp: erpdemo.New("e2e-rate-erp-token")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, time.Now())
		e.mu.Unlock()
		e.erp.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *timedERP) times() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := append([]time.Time(nil), e.seen...)
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// TestRateLimitHoldsAcrossInstances: the erp connection has rateLimit
// 20; three instances with 8 workers each work through 150 OrderCancel
// runs (two requests each). Measured at the ERP, the requests arrive at
// 20 per second (±10 %) and no second holds more than a few over 20,
// though 24 workers could send far more; every run succeeds with one
// attempt, and more than one instance did the work.
func TestRateLimitHoldsAcrossInstances(t *testing.T) {
	const n, rate = 150, 20.0
	erp := newTimedERP(t)
	var orders []string
	for i := range n {
		num := fmt.Sprintf("RL%05d", i)
		erp.erp.Put(erpdemo.Order{OrderNumber: num, Status: erpdemo.StatusOpen})
		orders = append(orders, num)
	}
	defs := builtinWith(t, "    rateLimit: 20\n")
	dsn, store := database(t)
	env := baseEnv("JOBRUNNER_ERP_URL="+erp.url, "JOBRUNNER_ERP_TOKEN=e2e-rate-erp-token")
	var bases []string
	for i := range 3 {
		addr := freeAddr(t)
		p := serve(t, fmt.Sprintf("rate%d", i+1), dsn, defs, env,
			"--http", addr, "--workers", "8", "--poll", "200ms", "--no-scheduler", "--log-level", "info")
		p.waitLog("HTTP API and dashboard listening", 60*time.Second)
		bases = append(bases, "http://"+addr)
	}
	triggerAll(t, bases, orders)
	eventually(t, 2*time.Minute, 100*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "OrderCancel")
		return c["succeeded"] == n, fmt.Sprintf("all %d to succeed (now %v)", n, c)
	})
	ts := erp.times()
	require.GreaterOrEqual(t, len(ts), 2*n, "two requests per run")
	// The steady rate: requests after the first, over the time they took.
	span := ts[len(ts)-1].Sub(ts[0]).Seconds()
	got := float64(len(ts)-1) / span
	require.InDelta(t, rate, got, rate*0.10, "%d requests in %.2f s: %.2f/s", len(ts), span, got)
	// No one-second window holds much more than the rate (slots are 50 ms
	// apart; a request may arrive a little after its slot).
	most := 0
	for i := range ts {
		j := sort.Search(len(ts), func(k int) bool { return !ts[k].Before(ts[i].Add(time.Second)) })
		most = max(most, j-i)
	}
	require.LessOrEqual(t, most, int(rate)+6, "requests in the busiest second")

	var owners []string
	require.NoError(t, store.DB().Raw("SELECT DISTINCT owner FROM run_attempts_all").Scan(&owners).Error)
	require.GreaterOrEqual(t, len(owners), 2, "the work was spread over instances: %v", owners)
	var attemptRows int64
	require.NoError(t, store.DB().Raw("SELECT COUNT(*) FROM run_attempts_all").Scan(&attemptRows).Error)
	require.EqualValues(t, n, attemptRows, "one attempt per run: waiting for a slot is not a failure")
	t.Logf("%d ERP requests from 3 instances (24 workers) in %.2f s: %.2f/s against a limit of %.0f/s; busiest second %d; %d instances executed runs",
		len(ts), span, got, rate, most, len(owners))
}

// TestServeConnectionsPlacesRuns: one instance serves only the local
// connection, another only the erp connection's label: each run is
// executed by the instance that serves its connection, /readyz and the
// instances view say what each serves, and a --connections entry naming
// nothing is refused at start.
func TestServeConnectionsPlacesRuns(t *testing.T) {
	const n = 20
	defs := builtinWith(t, "    labels: [erp-zone]\n")
	dsn, store := database(t)
	erp, err := erpdemo.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = erp.Close() })
	for i := range n {
		erp.Put(erpdemo.Order{OrderNumber: fmt.Sprintf("PC%03d", i), Status: erpdemo.StatusOpen})
	}
	env := baseEnv("JOBRUNNER_ERP_URL="+erp.URL(), "JOBRUNNER_ERP_TOKEN="+erp.Token())

	bad := serve(t, "typo", dsn, defs, env, "--http", "", "--connections", "erp-zon")
	require.Error(t, bad.wait(60*time.Second))
	require.Contains(t, bad.output(), "--connections erp-zon: no connection or label of that name")

	addrLocal, addrERP := freeAddr(t), freeAddr(t)
	local := serve(t, "local-only", dsn, defs, env, "--http", addrLocal, "--poll", "200ms", "--connections", "local")
	local.waitLog("HTTP API and dashboard listening", 60*time.Second)
	remote := serve(t, "erp-only", dsn, defs, env, "--http", addrERP, "--poll", "200ms", "--connections", "erp-zone", "--no-scheduler")
	remote.waitLog("HTTP API and dashboard listening", 60*time.Second)

	client := &http.Client{Timeout: 10 * time.Second}
	post := func(base, job, body string) {
		resp, err := client.Post(base+"/api/v1/jobs/"+job+"/runs", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
	}
	for i := range n {
		post("http://"+addrLocal, "OrderCancel", fmt.Sprintf(`{"parameters":{"OrderNumber":"PC%03d"}}`, i))
		post("http://"+addrERP, "Noop", `{"parameters":{}}`)
	}
	eventually(t, time.Minute, 100*time.Millisecond, func() (bool, string) {
		a, b := statusCounts(t, store, "OrderCancel"), statusCounts(t, store, "Noop")
		return a["succeeded"] == n && b["succeeded"] == n, fmt.Sprintf("all to succeed (now OrderCancel %v, Noop %v)", a, b)
	})
	ins, err := store.Instances(t.Context())
	require.NoError(t, err)
	serves := map[string][]string{}
	for _, in := range ins {
		serves[in.Owner] = in.Serves
	}
	byJob := func(job string) []string {
		var owners []string
		require.NoError(t, store.DB().Raw("SELECT DISTINCT a.owner FROM run_attempts_all a JOIN runs r ON r.id = a.run_id WHERE r.job = ?", job).Scan(&owners).Error)
		return owners
	}
	cancels, noops := byJob("OrderCancel"), byJob("Noop")
	require.Len(t, cancels, 1, "one instance ran every OrderCancel")
	require.Len(t, noops, 1, "one instance ran every Noop")
	require.Equal(t, []string{"erp-zone"}, serves[cancels[0]], "OrderCancel ran where erp is served")
	require.Equal(t, []string{"local"}, serves[noops[0]], "Noop ran where local is served")

	resp, err := client.Get("http://" + addrLocal + "/readyz")
	require.NoError(t, err)
	var ready struct {
		Checks map[string]struct {
			Message string `json:"message"`
		} `json:"checks"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ready))
	_ = resp.Body.Close()
	require.Equal(t, "serves only local", ready.Checks["connections"].Message)
	require.Contains(t, ready.Checks["jobs"].Message, "OrderCancel: connection erp is not served by this instance (serve --connections local)")
}
