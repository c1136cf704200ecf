package httperp

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// MaxSyncOrdersInResult caps the orders listed in a [SyncResult].
const MaxSyncOrdersInResult = 500

// SyncResult is the result of OrderStatusSync.
type SyncResult struct {
	// Since is the updatedSince sent to the ERP (RFC 3339, UTC).
	Since string `json:"since"`
	// Read counts the orders the ERP returned, Changed those whose status
	// is mapped, Unmapped those whose status is not.
	Read     int `json:"read"`
	Changed  int `json:"changed"`
	Unmapped int `json:"unmapped"`
	// HighWaterMark is the mark stored for the next sync: the latest
	// updatedAt seen, or Since when nothing newer came.
	HighWaterMark string `json:"highWaterMark"`
	// Orders lists the mapped orders (at most MaxSyncOrdersInResult;
	// Truncated is true when there were more).
	Orders    []SyncedOrder `json:"orders"`
	Truncated bool          `json:"truncated,omitempty"`
}

// SyncedOrder is one mapped order of a sync.
type SyncedOrder struct {
	OrderNumber    string `json:"orderNumber"`
	ERPStatus      string `json:"erpStatus"`
	CommerceStatus string `json:"commerceStatus"`
	UpdatedAt      string `json:"updatedAt"`
}

// orderStatusSync is the OrderStatusSync processor.
type orderStatusSync struct{ *base }

// Process reads the orders updated since the high-water mark (the Since
// parameter when given, else the stored mark, else DefaultSyncLookback
// ago), maps their statuses, and stores the new mark only when the sync
// succeeds: a failed sync is retried from the same point. An unmapped
// status is recorded as a run error (one log line per order); when the
// errors exceed the job's MaxErrors the sync fails permanently with
// MAX_ERRORS and the mark is not moved.
func (p *orderStatusSync) Process(ctx context.Context, run *processors.Run) error {
	e, err := p.newERP(run)
	if err != nil {
		return err
	}
	job := NameOrderStatusSync
	if run.Job != nil && run.Job.Name != "" {
		job = run.Job.Name
	}
	since := run.Params.Time("Since")
	if since.IsZero() {
		v, ok, err := p.opts.State.JobState(ctx, job, StateKeyHighWaterMark)
		if err != nil {
			return fmt.Errorf("reading the high-water mark of %s: %w", job, err)
		}
		if ok && v != "" {
			since, err = time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return processors.Permanent(CodeConfig, fmt.Sprintf("stored high-water mark %q of job %s is not RFC 3339: %v", v, job, err))
			}
		} else {
			since = p.now().Add(-DefaultSyncLookback)
		}
	}
	since = since.UTC()
	sinceText := since.Format(time.RFC3339Nano)

	path := "/orders"
	a, err := e.do(ctx, "listOrders", definitions.Values{"updatedSince": sinceText})
	if err != nil {
		return err // the message names the call
	}
	r := a.resp
	var body struct {
		Orders *[]erpOrder `json:"orders"`
	}
	if err := e.decode(http.MethodGet, path, r, &body); err != nil {
		return err
	}
	if body.Orders == nil {
		return &Error{Code: CodeBadResponse, Message: fmt.Sprintf("GET %s: %s: the answer has no orders list", path, statusText(r.status))}
	}

	m := p.statuses()
	res := SyncResult{Since: sinceText, Orders: []SyncedOrder{}}
	mark := since
	for _, o := range *body.Orders {
		res.Read++
		run.AddRead(1)
		n, status := e.red.s(o.OrderNumber), e.red.s(o.Status)
		if strings.TrimSpace(n) == "" {
			run.RecordError("ERP order without an order number", "erpStatus", status)
			continue
		}
		if o.UpdatedAt != "" {
			t, err := time.Parse(time.RFC3339Nano, o.UpdatedAt)
			if err != nil {
				run.RecordWarning("ERP order with an invalid updatedAt", "orderNumber", n, "updatedAt", e.red.s(o.UpdatedAt))
			} else if t.After(mark) {
				mark = t.UTC()
			}
		}
		sm, ok := m.Lookup(status)
		if !ok {
			res.Unmapped++
			run.RecordError("unmapped ERP status", "orderNumber", n, "erpStatus", status)
			continue
		}
		res.Changed++
		run.AddChanged(1)
		if len(res.Orders) < MaxSyncOrdersInResult {
			res.Orders = append(res.Orders, SyncedOrder{OrderNumber: n, ERPStatus: status, CommerceStatus: sm.CommerceStatus, UpdatedAt: o.UpdatedAt})
		} else {
			res.Truncated = true
		}
	}
	res.HighWaterMark = mark.Format(time.RFC3339Nano)

	if run.Job != nil && run.Job.MaxErrors >= 0 {
		if errs := run.Counters().Errors; errs > int64(run.Job.MaxErrors) {
			return processors.Permanent(CodeMaxErrors, fmt.Sprintf("order status sync recorded %d errors (%d unmapped statuses), more than the job's maxErrors %d; the high-water mark stays at %s",
				errs, res.Unmapped, run.Job.MaxErrors, sinceText))
		}
	}
	if err := p.opts.State.SetJobState(ctx, job, StateKeyHighWaterMark, res.HighWaterMark); err != nil {
		return fmt.Errorf("storing the high-water mark of %s: %w", job, err)
	}
	e.log().Info(fmt.Sprintf("order status sync: %d read, %d mapped, %d unmapped; high-water mark %s", res.Read, res.Changed, res.Unmapped, res.HighWaterMark),
		"read", res.Read, "changed", res.Changed, "unmapped", res.Unmapped, "highWaterMark", res.HighWaterMark)
	run.SetResult(res)
	return nil
}

// memState is the in-memory [State] used when Options.State is nil.
type memState struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memState) JobState(_ context.Context, job, name string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[job+"\x00"+name]
	return v, ok, nil
}

func (s *memState) SetJobState(_ context.Context, job, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]string)
	}
	s.m[job+"\x00"+name] = value
	return nil
}
