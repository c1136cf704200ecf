package httperp

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/platformsim"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/recordsync"
)

// syncERP answers GET /orders with the orders updated at or after
// updatedSince (one page: it ignores limit), and can be made to fail.
type syncERP struct {
	mu     sync.Mutex
	orders []erpOrder
	sinces []string
	fail   int // answer 503 this many times
	srv    *httptest.Server
}

func newSyncERP(t *testing.T, orders ...erpOrder) *syncERP {
	s := &syncERP{orders: orders}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/orders" || r.Header.Get("Authorization") != "Bearer "+canary {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		since := r.URL.Query().Get("updatedSince")
		s.sinces = append(s.sinces, since)
		if s.fail > 0 {
			s.fail--
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		st, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			http.Error(w, "bad since", http.StatusBadRequest)
			return
		}
		out := []erpOrder{}
		for _, o := range s.orders {
			u, _ := time.Parse(time.RFC3339Nano, o.UpdatedAt)
			if !u.Before(st) {
				out = append(out, o)
			}
		}
		writeJSON(w, 200, map[string]any{"orders": out})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *syncERP) lastSince() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sinces[len(s.sinces)-1]
}

func (s *syncERP) add(o erpOrder, fail int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders = append(s.orders, o)
	s.fail = fail
}

// syncJob is an OrderStatusSync job with fast in-run retries.
func syncJob(name string, maxErrors int) *definitions.Job {
	return &definitions.Job{Name: name, MaxErrors: maxErrors, Concurrency: definitions.Concurrency{Overlap: definitions.OverlapForbid},
		Settings: map[string]any{"laterBackoff": "1ms", "laterAttempts": 2}}
}

// vtexTarget is a push to a VTEX simulator at url through the http
// processor of e's registration.
func vtexTarget(t *testing.T, e *env, url string) *processors.Target {
	t.Helper()
	p, err := e.reg.Resolve(NameHTTP, ConnectionType, false)
	require.NoError(t, err)
	return &processors.Target{
		Connection: processors.Connection{Name: "shop", Type: ConnectionType, Preset: PresetVTEX,
			Settings: map[string]any{"baseURL": url, "timeout": "2s", "waitInterval": "1ms"},
			Secrets:  map[string]string{"appKey": "key", "appToken": "shop-secret"}},
		Processor: p, ProcessorName: NameHTTP, Operation: "updateOrderStatus",
		Inputs:      map[string]string{"marketplaceOrderId": "OrderNumber", "marketplaceOrderStatus": "Status"},
		Concurrency: 4,
	}
}

func newShop(t *testing.T) (*platformsim.VTEX, string) {
	shop := platformsim.NewVTEX("key", "shop-secret")
	srv := httptest.NewServer(shop)
	t.Cleanup(srv.Close)
	return shop, srv.URL
}

func TestSyncPushesRecordByRecordAndResumes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	erp := newSyncERP(t,
		erpOrder{OrderNumber: "WEB1", Status: "Open", UpdatedAt: ts(-3 * time.Hour)},
		erpOrder{OrderNumber: "WEB2", Status: "Backordered", UpdatedAt: ts(-2 * time.Hour)},
		erpOrder{OrderNumber: "err-EOI002-WEB5", Status: "Shipped", UpdatedAt: ts(-90 * time.Minute)},
		erpOrder{OrderNumber: "wait-2-WEB6", Status: "Shipped", UpdatedAt: ts(-80 * time.Minute)},
		erpOrder{OrderNumber: "wait-1-WEB7", Status: "Invoiced", UpdatedAt: ts(-70 * time.Minute)},
		erpOrder{OrderNumber: "WEB3", Status: "Shipped", UpdatedAt: ts(-1 * time.Hour)},
		erpOrder{OrderNumber: "OLD", Status: "Shipped", UpdatedAt: ts(-48 * time.Hour)},
	)
	shop, shopURL := newShop(t)
	store := &recordsync.MemStore{}
	e := newEnv(t, Options{Sync: store, Now: func() time.Time { return now }})
	job := syncJob("OrderStatusSync", -1)
	newRun := func(params definitions.Values) *processors.Run {
		run := e.run(erp.srv.URL, params, nil)
		run.Job, run.Push, run.InstallationID = job, vtexTarget(t, e, shopURL), "inst"
		return run
	}

	// First sync: no mark, reads the last 24 hours.
	run := newRun(definitions.Values{})
	require.NoError(t, e.process(NameOrderStatusSync, run))
	require.Equal(t, ts(-24*time.Hour), erp.lastSince())
	res := run.Result().(*SyncResult)
	require.Equal(t, 6, res.Read)
	require.Equal(t, 3, res.Changed, e.log.text()) // WEB1, WEB3, wait-1 (delivered by the in-run retry)
	require.Equal(t, 2, res.Refused)               // WEB2 unmapped, err-EOI002 refused by the shop
	require.Equal(t, 1, res.Unmapped)
	require.Equal(t, 1, res.Carried) // wait-2: still waiting after 2 tries
	require.Equal(t, ts(-time.Hour), res.HighWaterMark)
	require.Equal(t, "shop updateOrderStatus", res.Target)
	require.Equal(t, processors.Counters{Read: 6, Changed: 3, Errors: 2, Warnings: 1}, run.Counters())
	require.Contains(t, e.log.text(), "ERROR unmapped ERP status: WEB2 UNMAPPED_STATUS")
	require.Contains(t, e.log.text(), "ERROR order refused by shop: err-EOI002-WEB5 EOI002")
	require.Contains(t, e.log.text(), "WARN order wait-2-WEB6 not accepted yet by shop after 2 tries (EOI011")
	require.ElementsMatch(t, []SyncRefusal{
		{OrderNumber: "WEB2", Code: "UNMAPPED_STATUS", Message: `ERP status "Backordered" has no commerce status (orderStatuses)`},
		{OrderNumber: "err-EOI002-WEB5", Code: "EOI002", Message: res.Refusals[1].Message},
	}, res.Refusals)
	require.Equal(t, "Submitted", shop.Status("WEB1"))
	require.Equal(t, "Complete", shop.Status("wait-1-WEB7"))
	require.Equal(t, 1, store.PendingCount("OrderStatusSync"))
	// Each push carries a key derived from the change, the same every time.
	var keys []string
	for _, rq := range shop.Requests() {
		keys = append(keys, rq.Header.Get("Idempotency-Key"))
	}
	want := "jobrunner-inst-sync-" + recordsync.ChangeKey("WEB1", "Open", ts(-3*time.Hour)) + ":updateOrderStatus"
	require.Contains(t, keys, want)

	// A new order, but the ERP fails: the attempt is retried, the mark stays;
	// the carried order was tried again (its third try is accepted).
	erp.add(erpOrder{OrderNumber: "WEB4", Status: "Invoiced", UpdatedAt: ts(-30 * time.Minute)}, 1)
	run = newRun(definitions.Values{})
	err := e.process(NameOrderStatusSync, run)
	o := processors.Classify(err)
	require.Equal(t, processors.OutcomeSnooze, o.Kind, "%v", err)
	require.Equal(t, ts(-time.Hour), erp.lastSince())
	require.Equal(t, "Shipped", shop.Status("wait-2-WEB6"))
	require.Equal(t, 0, store.PendingCount("OrderStatusSync"))

	// The retry starts from the same point, skips WEB3 (already pushed) and
	// pushes WEB4.
	run = newRun(definitions.Values{})
	require.NoError(t, e.process(NameOrderStatusSync, run))
	require.Equal(t, ts(-time.Hour), erp.lastSince())
	res = run.Result().(*SyncResult)
	require.Equal(t, 2, res.Read)
	require.Equal(t, 1, res.Skipped)
	require.Equal(t, 1, res.Changed)
	require.Equal(t, ts(-30*time.Minute), res.HighWaterMark)
	for _, n := range []string{"WEB1", "WEB3", "WEB4", "wait-1-WEB7", "wait-2-WEB6"} {
		require.Equal(t, 1, shop.Applied(n), n)
	}
	require.Zero(t, shop.Replays())

	// The Since parameter rereads from further back: the changes already
	// pushed are sent again with the same keys, and the shop applies none twice.
	run = newRun(definitions.Values{"Since": now.Add(-100 * time.Hour)})
	require.NoError(t, e.process(NameOrderStatusSync, run))
	require.Equal(t, ts(-100*time.Hour), erp.lastSince())
	require.Equal(t, 8, run.Result().(*SyncResult).Read)
	require.Equal(t, 1, shop.Applied("WEB1"))
	require.Equal(t, 1, shop.Applied("OLD"), "%+v\n%s", run.Result(), e.log.text())
}

func TestSyncMaxErrorsKeepsMark(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	var orders []erpOrder
	for i := range 50 {
		orders = append(orders, erpOrder{OrderNumber: fmt.Sprintf("WEB%02d", i), Status: "Lost", UpdatedAt: now.Add(time.Duration(i-100) * time.Minute).Format(time.RFC3339Nano)})
	}
	erp := newSyncERP(t, orders...)
	_, shopURL := newShop(t)
	store := &recordsync.MemStore{}
	mark := now.Add(-2 * time.Hour)
	require.NoError(t, store.SyncCommit(context.Background(), "Sync", recordsync.Commit{Mark: mark}))
	e := newEnv(t, Options{Sync: store})
	run := e.run(erp.srv.URL, definitions.Values{}, nil)
	run.Job, run.Push = syncJob("Sync", 1), vtexTarget(t, e, shopURL)
	o := processors.Classify(e.process(NameOrderStatusSync, run))
	require.Equal(t, processors.OutcomePermanent, o.Kind)
	require.Equal(t, "MAX_ERRORS", o.Code)
	got, _, _ := store.SyncMark(context.Background(), "Sync")
	require.True(t, got.Before(now.Add(-55*time.Minute)), "the mark passed orders never tried: %v", got)
	require.Less(t, e.log.count("unmapped ERP status"), 50)
}

func TestSyncPreviewPushesNothing(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	erp := newSyncERP(t,
		erpOrder{OrderNumber: "WEB1", Status: "Open", UpdatedAt: now.Add(-time.Hour).Format(time.RFC3339Nano)},
		erpOrder{OrderNumber: "WEB2", Status: "Lost", UpdatedAt: now.Add(-time.Minute).Format(time.RFC3339Nano)},
	)
	shop, shopURL := newShop(t)
	store := &recordsync.MemStore{}
	e := newEnv(t, Options{Sync: store})
	run := e.run(erp.srv.URL, definitions.Values{}, nil)
	run.Job, run.Push, run.Preview = syncJob("Sync", -1), vtexTarget(t, e, shopURL), true
	require.NoError(t, e.process(NameOrderStatusSync, run))
	res := run.Result().(*SyncResult)
	require.True(t, res.Preview)
	require.Equal(t, 1, res.Changed)
	require.Equal(t, 1, res.Unmapped)
	require.Equal(t, "WEB1", res.Orders[0].OrderNumber)
	require.Zero(t, shop.Total())
	_, ok, _ := store.SyncMark(context.Background(), "Sync")
	require.False(t, ok)
}

func TestSyncNeedsAPushAndGoodSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	run := e.run("http://127.0.0.1:1", definitions.Values{}, nil)
	run.Job = syncJob("Sync", -1)
	o := processors.Classify(e.process(NameOrderStatusSync, run))
	require.Equal(t, CodeConfig, o.Code)
	require.Contains(t, o.Message, "add push:")

	run.Job.Settings = map[string]any{"pageSize": 0}
	o = processors.Classify(e.process(NameOrderStatusSync, run))
	require.Contains(t, o.Message, "settings.pageSize: want a whole number from 1 to 1000")
}

func TestSyncBadAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"items": []string{}})
	}))
	t.Cleanup(srv.Close)
	_, shopURL := newShop(t)
	store := &recordsync.MemStore{}
	e := newEnv(t, Options{Sync: store})
	run := e.run(srv.URL, definitions.Values{}, nil)
	run.Job, run.Push = syncJob("Sync", -1), vtexTarget(t, e, shopURL)
	o := processors.Classify(e.process(NameOrderStatusSync, run))
	require.Equal(t, processors.OutcomeRetry, o.Kind)
	require.Equal(t, "ERP_BAD_RESPONSE", o.Code)
	require.Contains(t, o.Message, "GET /orders: 200 OK: the answer has no orders list")
	_, ok, _ := store.SyncMark(context.Background(), "Sync")
	require.False(t, ok)
}
