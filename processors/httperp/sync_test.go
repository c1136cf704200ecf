package httperp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// syncERP answers GET /orders with the orders updated at or after
// updatedSince, and can be made to fail.
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

func TestSyncCountsAndResumes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	erp := newSyncERP(t,
		erpOrder{OrderNumber: "WEB1", Status: "Open", UpdatedAt: ts(-3 * time.Hour)},
		erpOrder{OrderNumber: "WEB2", Status: "Backordered", UpdatedAt: ts(-2 * time.Hour)},
		erpOrder{OrderNumber: "WEB3", Status: "Shipped", UpdatedAt: ts(-1 * time.Hour)},
		erpOrder{OrderNumber: "OLD", Status: "Shipped", UpdatedAt: ts(-48 * time.Hour)},
	)
	state := &fakeState{}
	e := newEnv(t, Options{State: state, Now: func() time.Time { return now }})
	job := &definitions.Job{Name: "OrderStatusSync", MaxErrors: -1}

	// First sync: no mark, reads the last 24 hours.
	run := e.run(erp.srv.URL, definitions.Values{}, nil)
	run.Job = job
	require.NoError(t, e.process(NameOrderStatusSync, run))
	require.Equal(t, ts(-24*time.Hour), erp.lastSince())
	res := run.Result().(SyncResult)
	require.Equal(t, 3, res.Read)
	require.Equal(t, 2, res.Changed)
	require.Equal(t, 1, res.Unmapped)
	require.Equal(t, ts(-time.Hour), res.HighWaterMark)
	require.Equal(t, ts(-time.Hour), state.get("OrderStatusSync"))
	require.Equal(t, []SyncedOrder{
		{OrderNumber: "WEB1", ERPStatus: "Open", CommerceStatus: "Submitted", UpdatedAt: ts(-3 * time.Hour)},
		{OrderNumber: "WEB3", ERPStatus: "Shipped", CommerceStatus: "Shipped", UpdatedAt: ts(-time.Hour)},
	}, res.Orders)
	require.Equal(t, processors.Counters{Read: 3, Changed: 2, Errors: 1}, run.Counters())
	require.Equal(t, 1, e.log.count("unmapped ERP status"))
	require.Contains(t, e.log.text(), "ERROR unmapped ERP status orderNumber WEB2 erpStatus Backordered")

	// A new order, but the ERP fails: the mark stays.
	erp.add(erpOrder{OrderNumber: "WEB4", Status: "Invoiced", UpdatedAt: ts(-30 * time.Minute)}, 1)
	run = e.run(erp.srv.URL, definitions.Values{}, nil)
	run.Job = job
	err := e.process(NameOrderStatusSync, run)
	o := processors.Classify(err)
	require.Equal(t, processors.OutcomeSnooze, o.Kind, "%v", err)
	require.Equal(t, time.Second, o.Delay)
	require.Equal(t, ts(-time.Hour), erp.lastSince())
	require.Equal(t, ts(-time.Hour), state.get("OrderStatusSync"))

	// The retry starts from the same point and moves the mark.
	run = e.run(erp.srv.URL, definitions.Values{}, nil)
	run.Job = job
	require.NoError(t, e.process(NameOrderStatusSync, run))
	require.Equal(t, ts(-time.Hour), erp.lastSince())
	res = run.Result().(SyncResult)
	require.Equal(t, 2, res.Read) // WEB3 again (inclusive mark) and WEB4
	require.Equal(t, ts(-30*time.Minute), state.get("OrderStatusSync"))

	// The Since parameter overrides the mark.
	run = e.run(erp.srv.URL, definitions.Values{"Since": now.Add(-100 * time.Hour)}, nil)
	run.Job = job
	require.NoError(t, e.process(NameOrderStatusSync, run))
	require.Equal(t, ts(-100*time.Hour), erp.lastSince())
	require.Equal(t, 5, run.Result().(SyncResult).Read)
	require.Equal(t, ts(-30*time.Minute), state.get("OrderStatusSync"))
}

func TestSyncMaxErrorsKeepsMark(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	erp := newSyncERP(t,
		erpOrder{OrderNumber: "WEB1", Status: "Lost", UpdatedAt: now.Add(-time.Hour).Format(time.RFC3339Nano)},
		erpOrder{OrderNumber: "WEB2", Status: "Stolen", UpdatedAt: now.Add(-time.Minute).Format(time.RFC3339Nano)},
	)
	state := &fakeState{}
	mark := now.Add(-2 * time.Hour).Format(time.RFC3339Nano)
	require.NoError(t, state.SetJobState(context.Background(), "Sync", StateKeyHighWaterMark, mark))
	e := newEnv(t, Options{State: state})
	run := e.run(erp.srv.URL, definitions.Values{}, nil)
	run.Job = &definitions.Job{Name: "Sync", MaxErrors: 1}
	o := processors.Classify(e.process(NameOrderStatusSync, run))
	require.Equal(t, processors.OutcomePermanent, o.Kind)
	require.Equal(t, "MAX_ERRORS", o.Code)
	require.Equal(t, mark, state.get("Sync"))
	require.Equal(t, 2, e.log.count("unmapped ERP status"))
}

func TestSyncBadAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"items": []string{}})
	}))
	t.Cleanup(srv.Close)
	state := &fakeState{}
	e := newEnv(t, Options{State: state})
	o := processors.Classify(e.process(NameOrderStatusSync, e.run(srv.URL, definitions.Values{}, nil)))
	require.Equal(t, processors.OutcomeRetry, o.Kind)
	require.Equal(t, "ERP_BAD_RESPONSE", o.Code)
	require.Contains(t, o.Message, "GET /orders: 200 OK: the answer has no orders list")
	require.Empty(t, state.get(NameOrderStatusSync))
}
