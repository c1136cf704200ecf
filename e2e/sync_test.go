package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/erpdemo"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/platformsim"
)

const (
	syncERPToken  = "e2e-sync-erp-CANARY-71"
	syncShopToken = "e2e-sync-shop-CANARY-72"
)

// syncDefs are the definitions of the sync tests: OrderStatusSync from
// the reference ERP to a VTEX shop, with fast in-run retries.
func syncDefs(t *testing.T, maxErrors int) string {
	return writeDefs(t, fmt.Sprintf(`
connections:
  - name: erp
    type: http
    settings: {baseURL: "${ERP_URL}", timeout: 10s}
    secrets: {token: ERP_TOKEN}
  - name: shop
    type: http
    preset: vtex
    settings: {baseURL: "${SHOP_URL}", connectorName: e2e, waitInterval: 20ms}
    secrets: {appKey: SHOP_KEY, appToken: SHOP_TOKEN}
    maxConcurrency: 8
jobs:
  - name: Sync
    connection: erp
    processor: OrderStatusSync
    push:
      connection: shop
      operation: updateOrderStatus
      inputs: {marketplaceOrderId: OrderNumber, marketplaceOrderStatus: Status}
    parameters:
      - {name: Since, type: datetime}
    concurrency: {overlap: forbid}
    maxErrors: %d
    timeout: 10m
    retry: {maxAttempts: 3, initial: 200ms}
    settings: {pageSize: 500, laterAttempts: 2, laterBackoff: 20ms}
orderStatuses:
  mappings:
    - {erpStatus: Open, commerceStatus: Submitted, allowCancellation: true}
    - {erpStatus: Processing, commerceStatus: Processing, allowCancellation: true}
    - {erpStatus: PendingAuthorization, commerceStatus: On Hold, allowCancellation: true}
    - {erpStatus: Shipped, commerceStatus: Shipped}
    - {erpStatus: Invoiced, commerceStatus: Complete}
    - {erpStatus: Cancelled, commerceStatus: Cancelled}
  cancellableStatuses: [Submitted, Processing, On Hold]
`, maxErrors))
}

// syncWorld is a reference ERP with n changed orders (besides its 8
// seeded ones) and a VTEX shop that refuses every 100th order for good
// (err-EOI002-…) and makes every 100th+1 wait twice (wait-2-…), each
// answer delayed by delay.
type syncWorld struct {
	erp             *erpdemo.Server
	shop            *platformsim.VTEX
	erpURL, shopURL string
	orders          []string // every order number the ERP lists
	refused, later  map[string]bool
}

func newSyncWorld(t *testing.T, n int, delay time.Duration) *syncWorld {
	w := &syncWorld{erp: erpdemo.New(syncERPToken), shop: platformsim.NewVTEX("e2e-key", syncShopToken), refused: map[string]bool{}, later: map[string]bool{}}
	w.shop.Lean()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	statuses := []string{"Shipped", "Invoiced", "Processing", "Cancelled"}
	for i := range n {
		num := fmt.Sprintf("SO%06d", i)
		switch i % 100 {
		case 0:
			num = fmt.Sprintf("err-EOI002-%06d", i)
			w.refused[num] = true
		case 1:
			num = fmt.Sprintf("wait-2-%06d", i)
			w.later[num] = true
		}
		w.erp.Put(erpdemo.Order{OrderNumber: num, Status: statuses[i%len(statuses)], UpdatedAt: base.Add(time.Duration(i/4) * time.Millisecond)})
	}
	w.orders = w.erp.OrderNumbers() // with the 8 seeded ones
	es := httptest.NewServer(w.erp.Handler())
	t.Cleanup(es.Close)
	ss := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			time.Sleep(delay)
		}
		w.shop.ServeHTTP(rw, r)
	}))
	t.Cleanup(ss.Close)
	w.erpURL, w.shopURL = es.URL, ss.URL
	return w
}

func (w *syncWorld) env() []string {
	return baseEnv("ERP_URL="+w.erpURL, "ERP_TOKEN="+syncERPToken, "SHOP_URL="+w.shopURL, "SHOP_KEY=e2e-key", "SHOP_TOKEN="+syncShopToken)
}

// syncResult reads a finished sync run's result.
type syncResult struct {
	Read, Retried, Changed, Refused, Unmapped, Carried, Skipped, Total int
	HighWaterMark                                                      string
	Refusals                                                           []struct{ OrderNumber, Code, Message string }
}

func readSync(t *testing.T, s *jobs.Store, id int64) (*jobs.Run, syncResult) {
	t.Helper()
	r, err := s.Get(context.Background(), id)
	require.NoError(t, err)
	var res syncResult
	if len(r.Result) > 0 {
		require.NoError(t, json.Unmarshal([]byte(r.Result), &res), "result %s", r.Result)
	}
	return r, res
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

var runIDPattern = regexp.MustCompile(`run (\d+)`)

func runID(t *testing.T, out string) int64 {
	t.Helper()
	m := runIDPattern.FindStringSubmatch(out)
	require.NotNil(t, m, "no run id in %q", out)
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

// TestSync10kRefusalsAndLaterOnes syncs 10,000 changed orders to a shop
// that refuses 1 % for good and asks for 1 % to be sent later: the counts
// are exact, each refused order is logged with the shop's code, the
// outcome follows maxErrors, and the next run delivers the later ones.
// Every order is applied at the shop exactly once.
func TestSync10kRefusalsAndLaterOnes(t *testing.T) {
	w := newSyncWorld(t, 10_000, 0)
	dsn, store := database(t)
	defs := syncDefs(t, 150)

	run := func() int64 {
		p := start(t, "run", w.env(), "run", "Sync", "--db", dsn, "--definitions", defs)
		_ = p.wait(5 * time.Minute)
		return runID(t, p.output())
	}
	started := time.Now()
	id := run()
	took := time.Since(started)
	r, res := readSync(t, store, id)
	require.Equal(t, jobs.StatusSucceededWithWarnings, r.Status, "%s: %s", r.ErrorCode, r.ErrorMessage)
	total := len(w.orders)
	require.Equal(t, total, res.Read)
	require.Equal(t, total, res.Total)
	require.Equal(t, 100, res.Refused)
	require.Equal(t, 100, res.Carried)
	require.Equal(t, total-200, res.Changed)
	require.Equal(t, int64(total), r.RecordsRead)
	require.Equal(t, int64(total-200), r.RecordsChanged)
	require.Equal(t, int64(100), r.RecordErrors)
	require.Equal(t, int64(100), r.RecordWarnings)
	require.Equal(t, 100, r.Progress, "progress at the end")
	for _, rf := range res.Refusals {
		require.True(t, w.refused[rf.OrderNumber], rf.OrderNumber)
		require.Equal(t, "EOI002", rf.Code)
	}
	lines, err := store.Logs(context.Background(), id, 0, 20000)
	require.NoError(t, err)
	logged := map[string]bool{}
	for _, l := range lines {
		if l.Level == "error" && strings.Contains(l.Message, "order refused by shop") && strings.Contains(l.Message, "EOI002") {
			logged[strings.Fields(strings.SplitN(l.Message, ": ", 2)[1])[0]] = true
		}
		require.NotContains(t, l.Message, "CANARY")
		require.NotContains(t, string(l.Fields), "CANARY")
	}
	require.Len(t, logged, 100, "each refused order logged with its code")
	for n := range w.refused {
		require.True(t, logged[n], n)
	}
	applied := w.shop.AppliedAll()
	for _, n := range w.orders {
		want := 1
		if w.refused[n] || w.later[n] {
			want = 0
		}
		require.Equal(t, want, applied[n], n)
	}
	t.Logf("10,008 orders: %d pushed, %d refused, %d carried in %s", res.Changed, res.Refused, res.Carried, took.Round(time.Millisecond))

	// The next run delivers the carried ones and reads nothing new.
	id2 := run()
	r2, res2 := readSync(t, store, id2)
	require.Equal(t, jobs.StatusSucceeded, r2.Status, "%s: %s", r2.ErrorCode, r2.ErrorMessage)
	require.Equal(t, 100, res2.Retried)
	require.Equal(t, 100, res2.Changed)
	require.Zero(t, res2.Refused)
	applied = w.shop.AppliedAll()
	for _, n := range w.orders {
		want := 1
		if w.refused[n] {
			want = 0
		}
		require.Equal(t, want, applied[n], n)
	}
	require.Zero(t, w.shop.Replays(), "nothing was sent twice")

	// The same changes under a strict job: 100 refusals are past its
	// maxErrors 50, so it fails MAX_ERRORS and stops early.
	strict := syncDefs(t, 50)
	p := start(t, "strict", w.env(), "run", "Sync", "--db", dsn, "--definitions", strict, "--param", "Since="+time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339))
	_ = p.wait(5 * time.Minute)
	r3, _ := readSync(t, store, runID(t, p.output()))
	require.Equal(t, jobs.StatusFailed, r3.Status)
	require.Equal(t, "MAX_ERRORS", r3.ErrorCode)
	require.Greater(t, r3.RecordErrors, int64(50))
	require.Less(t, r3.RecordsChanged, int64(total-200), "it stopped early")
	t.Logf("maxErrors 50: failed %s after %d refusals, %d pushed: %s", r3.ErrorCode, r3.RecordErrors, r3.RecordsChanged, r3.ErrorMessage)
}

// TestSyncKill9ExactlyOnce kills -9 the instance in the middle of a sync
// of 10,000 orders; the other instance rescues the run, which resumes
// after the last resolved order: every change is applied at the shop
// exactly once, and progress was visible while it ran.
func TestSyncKill9ExactlyOnce(t *testing.T) {
	const ttl = 3 * time.Second
	w := newSyncWorld(t, 10_000, 2*time.Millisecond)
	dsn, store := database(t)
	defs := syncDefs(t, -1)
	flags := []string{"--http", "", "--workers", "2", "--lease-ttl", ttl.String(), "--poll", "200ms", "--grace", "1s"}
	a := serve(t, "serveA", dsn, defs, w.env(), flags...)
	b := serve(t, "serveB", dsn, defs, w.env(), flags...)
	a.waitLog("workers started", 60*time.Second)
	b.waitLog("workers started", 60*time.Second)
	byPID := map[int]*proc{a.pid(): a, b.pid(): b}

	trig := start(t, "trigger", w.env(), "trigger", "Sync", "--db", dsn, "--definitions", defs)
	require.NoError(t, trig.wait(60*time.Second), "trigger: %s", trig.output())
	id := runID(t, trig.output())

	// Kill its owner once a third of the orders are applied.
	var owner string
	var progress int
	eventually(t, 2*time.Minute, 20*time.Millisecond, func() (bool, string) {
		rs := runs(t, store, "id = ?", id)
		n := 0
		for _, v := range w.shop.AppliedAll() {
			n += v
		}
		if rs[0].Status == "running" && rs[0].LeaseOwner != nil && n >= 3000 {
			owner = *rs[0].LeaseOwner
			r, _ := readSync(t, store, id)
			progress = r.Progress
			return true, ""
		}
		return false, fmt.Sprintf("a third applied (now %d, run %s)", n, rs[0].Status)
	})
	pid, err := strconv.Atoi(owner[strings.LastIndex(owner, ":")+1:])
	require.NoError(t, err)
	victim := byPID[pid]
	require.NotNil(t, victim, "owner %q", owner)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	_ = victim.wait(10 * time.Second)
	appliedAtKill := 0
	for _, v := range w.shop.AppliedAll() {
		appliedAtKill += v
	}

	eventually(t, 3*time.Minute, 100*time.Millisecond, func() (bool, string) {
		rs := runs(t, store, "id = ?", id)
		return rs[0].Status == "succeeded_with_warnings" || rs[0].Status == "failed" || rs[0].Status == "succeeded",
			fmt.Sprintf("run %d to finish (now %s, execution %d)", id, rs[0].Status, rs[0].Attempt)
	})
	r, res := readSync(t, store, id)
	require.Equal(t, jobs.StatusSucceededWithWarnings, r.Status, "%s: %s", r.ErrorCode, r.ErrorMessage)
	require.Equal(t, 2, r.Attempt, "executions")
	require.Positive(t, progress, "progress was visible while it ran")
	pend, err := store.SyncPending(context.Background(), "Sync", "", 10_000)
	require.NoError(t, err)
	pending := map[string]bool{}
	for _, p := range pend {
		pending[p.Subject] = true
	}
	applied := w.shop.AppliedAll()
	for _, n := range w.orders {
		switch {
		case w.refused[n]:
			require.Zero(t, applied[n], n)
		case w.later[n]: // delivered by the rescued attempt (its third try), or carried
			require.Equal(t, 1, applied[n]+b2i(pending[n]), "later order %s: applied %d, pending %v", n, applied[n], pending[n])
		default:
			require.Equal(t, 1, applied[n], "order %s applied %d times", n, applied[n])
		}
	}
	t.Logf("kill -9 after %d of %d orders applied (progress %d%%): the rescued run pushed %d, skipped %d already resolved; %d requests repeated a key already applied (in flight at the kill), applied once",
		appliedAtKill, len(w.orders), progress, res.Changed, res.Skipped, w.shop.Replays())
	require.Less(t, w.shop.Replays(), 100, "only pushes in flight or in the last unwritten commit are sent again")
}

// vmHWM returns a process's peak resident set size in KiB (0 when it
// cannot be read).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// TestSync100kFlatMemory syncs 10,000 and then 100,000 changed orders in
// a fresh process each and compares their peak RSS: pages and a bounded
// window keep it flat.
func TestSync100kFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 orders")
	}
	peak := func(n int) (int64, syncResult, time.Duration) {
		w := newSyncWorld(t, n, 0)
		dsn, store := database(t)
		defs := syncDefs(t, -1)
		begin := time.Now()
		p := start(t, fmt.Sprintf("run%d", n), w.env(), "run", "Sync", "--db", dsn, "--definitions", defs)
		// VmHWM of the process itself, sampled until it exits (rusage's
		// maxrss would count the test process it was forked from).
		var hwm int64
		for !p.exited() {
			if v := vmHWM(p.pid()); v > 0 {
				hwm = v
			}
			time.Sleep(20 * time.Millisecond)
		}
		require.NoError(t, p.wait(10*time.Minute), "%s", p.output())
		took := time.Since(begin)
		r, res := readSync(t, store, runID(t, p.output()))
		require.Equal(t, jobs.StatusSucceededWithWarnings, r.Status, "%s: %s", r.ErrorCode, r.ErrorMessage)
		require.Equal(t, len(w.orders), res.Read)
		require.Equal(t, len(w.orders)-2*(n/100), res.Changed)
		return hwm, res, took
	}
	small, _, tSmall := peak(10_000)
	big, res, tBig := peak(100_000)
	t.Logf("peak RSS: %d KiB for 10,008 orders (%s), %d KiB for 100,008 orders (%s, %d pushed); difference %d KiB",
		small, tSmall.Round(time.Millisecond), big, tBig.Round(time.Millisecond), res.Changed, big-small)
	require.Positive(t, small)
	require.Less(t, big-small, int64(5<<10), "peak RSS grew by more than 5 MiB from 10,000 to 100,000 orders")
}
