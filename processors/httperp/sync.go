package httperp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/recordsync"
)

// Caps of what a [SyncResult] lists.
const (
	MaxSyncOrdersInResult   = 500
	MaxSyncRefusalsInResult = 100
)

// Defaults and limits of OrderStatusSync's job settings.
const (
	DefaultSyncPageSize = 500
	MaxSyncPageSize     = 1000
)

// Codes of OrderStatusSync's record errors.
const (
	CodeBadRecord = "ERP_BAD_RECORD" // an ERP order without an order number
)

// SyncResult is the result of OrderStatusSync.
type SyncResult struct {
	// Since is where the ERP was read from (RFC 3339, UTC): the Since
	// parameter, else the stored mark, else DefaultSyncLookback ago.
	Since string `json:"since"`
	// Target names the commerce connection and the operation (or
	// processor) each record was pushed with.
	Target string `json:"target"`
	// Total is the number of changed orders the ERP announced (-1: it
	// did not say).
	Total int `json:"total"`
	// Read counts the orders read from the ERP; Retried the orders
	// carried from earlier runs tried again.
	Read    int `json:"read"`
	Retried int `json:"retried"`
	// Changed counts the orders pushed and accepted by the commerce
	// platform; Refused those it (or the mapping: Unmapped of them)
	// refused for good — record errors; Carried those it asked to send
	// later, still pending, carried to the next run; Skipped those
	// already pushed (a resumed sync) or superseded by a newer change.
	Changed  int `json:"changed"`
	Refused  int `json:"refused"`
	Unmapped int `json:"unmapped"`
	Carried  int `json:"carried"`
	Skipped  int `json:"skipped"`
	// HighWaterMark is the mark stored for the next sync.
	HighWaterMark string `json:"highWaterMark"`
	// Orders lists the pushed orders (a preview: those it would push), at
	// most MaxSyncOrdersInResult; Truncated says there were more.
	Orders    []SyncedOrder `json:"orders"`
	Truncated bool          `json:"truncated,omitempty"`
	// Refusals lists refused orders with the platform's code and message
	// (at most MaxSyncRefusalsInResult; every one is in the run's log).
	Refusals []SyncRefusal `json:"refusals,omitempty"`
	Preview  bool          `json:"preview,omitempty"`
}

// SyncedOrder is one order of a sync.
type SyncedOrder struct {
	OrderNumber    string `json:"orderNumber"`
	ERPStatus      string `json:"erpStatus"`
	CommerceStatus string `json:"commerceStatus"`
	UpdatedAt      string `json:"updatedAt"`
}

// SyncRefusal is one refused order.
type SyncRefusal struct {
	OrderNumber string `json:"orderNumber"`
	Code        string `json:"code"`
	Message     string `json:"message"`
}

// syncRecord is the Data of one change: the fields a push binds to
// (definitions.PushFields).
type syncRecord struct {
	OrderNumber string `json:"OrderNumber"`
	Status      string `json:"Status"`
	ERPStatus   string `json:"ERPStatus"`
	UpdatedAt   string `json:"UpdatedAt"`
}

// syncSettings are OrderStatusSync's job settings.
type syncSettings struct {
	pageSize      int
	laterAttempts int
	laterBackoff  time.Duration
}

var syncSettingKeys = []string{"pageSize", "laterAttempts", "laterBackoff"}

// parseSyncSettings reads the job's settings: pageSize (ERP orders per
// page, 1..1000, default 500), laterAttempts (in-run tries of an order the
// platform asks to send later, 1..20, default 3), laterBackoff (the first
// wait between them, default 1s, doubled each time).
func parseSyncSettings(s map[string]any) (syncSettings, problems) {
	out := syncSettings{pageSize: DefaultSyncPageSize, laterAttempts: recordsync.DefaultLaterAttempts, laterBackoff: recordsync.DefaultLaterBackoff}
	var p problems
	for _, k := range names(s) {
		v := s[k]
		switch k {
		case "pageSize":
			n, err := integer(v)
			if err != nil || n < 1 || n > MaxSyncPageSize {
				p.add("settings.pageSize", "want a whole number from 1 to %d, got %v", MaxSyncPageSize, v)
				continue
			}
			out.pageSize = int(n)
		case "laterAttempts":
			n, err := integer(v)
			if err != nil || n < 1 || n > 20 {
				p.add("settings.laterAttempts", "want a whole number from 1 to 20, got %v", v)
				continue
			}
			out.laterAttempts = int(n)
		case "laterBackoff":
			d, err := duration(v)
			if err != nil || d <= 0 || d > recordsync.MaxInRunDelay {
				p.add("settings.laterBackoff", "want a duration from 1ms to %s, got %v", recordsync.MaxInRunDelay, v)
				continue
			}
			out.laterBackoff = d
		default:
			p.add("settings."+k, "unknown setting %q of OrderStatusSync%s (known: %s)", k, definitions.Hint(k, syncSettingKeys), strings.Join(syncSettingKeys, ", "))
		}
	}
	return out, p
}

// orderStatusSync is the OrderStatusSync processor.
type orderStatusSync struct{ *base }

// Process reads the orders the ERP changed since the mark, page by page
// (listOrders with updatedSince, limit and the ERP's next token), maps
// each order's ERP status to its commerce status, and pushes each mapped
// order through the job's push (a connection operation or a processor of
// the commerce connection), record by record with the push's concurrency
// (see package recordsync for what is kept and why nothing is pushed
// twice). Each push carries the idempotency key
// "jobrunner-<installation>-sync-<key of order, ERP status, change time>".
//
// An order without an order number, with an unmapped status, or refused
// for good by the platform is a record error, logged with its order
// number, code and message; the sync fails (MAX_ERRORS) only past the
// job's maxErrors, keeping the mark before the orders it did not try. An
// order the platform asks to send later is tried again within the run
// (settings laterAttempts, laterBackoff) and then carried to the next run
// with a warning. A failed ERP read fails the attempt (retried by the
// job's policy), which resumes after the last resolved order. A preview
// lists what would be pushed and pushes and stores nothing.
func (p *orderStatusSync) Process(ctx context.Context, run *processors.Run) error {
	e, err := p.newERP(run)
	if err != nil {
		return err
	}
	job := NameOrderStatusSync
	if run.Job != nil && run.Job.Name != "" {
		job = run.Job.Name
	}
	var settings map[string]any
	maxErrors := -1
	if run.Job != nil {
		settings, maxErrors = run.Job.Settings, run.Job.MaxErrors
	}
	ss, probs := parseSyncSettings(settings)
	if len(probs) > 0 {
		return processors.Permanent(CodeConfig, fmt.Sprintf("job %s: %s: %s", job, probs[0].Key, probs[0].Message))
	}
	t := run.Push
	if t == nil || t.Processor == nil {
		return processors.Permanent(CodeConfig, fmt.Sprintf("job %s: OrderStatusSync pushes each changed order to the commerce platform: add push: {connection: SHOP, operation: updateOrderStatus, inputs: {…}} to the job", job))
	}
	target := t.Connection.Name + " " + t.ProcessorName
	if t.Operation != "" {
		target = t.Connection.Name + " " + t.Operation
	}
	m := p.statuses()
	cfg := recordsync.Config{
		Job: job, Store: p.opts.Sync, Start: p.now().Add(-DefaultSyncLookback), From: run.Params.Time("Since"),
		Concurrency: t.Concurrency, LaterAttempts: ss.laterAttempts, LaterBackoff: ss.laterBackoff, MaxErrors: maxErrors,
		Guard: run.BeforeSideEffect,
	}
	from, err := recordsync.Mark(ctx, cfg)
	if err != nil {
		return err
	}
	res := &SyncResult{Since: from.Format(time.RFC3339Nano), Target: target, Total: -1, Orders: []SyncedOrder{}, Preview: run.Preview}
	src := &erpSource{e: e, run: run, since: res.Since, pageSize: ss.pageSize, statuses: m}

	if run.Preview {
		return p.preview(ctx, run, cfg, src, res)
	}

	var mu sync.Mutex // OnRecord is serialised by the engine; the result is also read at the end
	cfg.OnRecord = func(r recordsync.Result) {
		var rec syncRecord
		_ = json.Unmarshal(r.Change.Data, &rec)
		mu.Lock()
		defer mu.Unlock()
		switch r.Verdict {
		case recordsync.Pushed:
			run.AddChanged(1)
			if len(res.Orders) < MaxSyncOrdersInResult {
				res.Orders = append(res.Orders, SyncedOrder{OrderNumber: rec.OrderNumber, ERPStatus: rec.ERPStatus, CommerceStatus: rec.Status, UpdatedAt: rec.UpdatedAt})
			} else {
				res.Truncated = true
			}
		case recordsync.Refused:
			if r.Code == CodeUnmapped {
				res.Unmapped++
			}
			if len(res.Refusals) < MaxSyncRefusalsInResult {
				res.Refusals = append(res.Refusals, SyncRefusal{OrderNumber: rec.OrderNumber, Code: r.Code, Message: r.Message})
			}
			what := "order refused by " + t.Connection.Name
			switch r.Code {
			case CodeUnmapped:
				what = "unmapped ERP status"
			case CodeBadRecord:
				what = "ERP order without an order number"
			}
			run.RecordError(fmt.Sprintf("%s: %s %s", what, rec.OrderNumber, strings.TrimSpace(r.Code+" "+r.Message)),
				"orderNumber", rec.OrderNumber, "erpStatus", rec.ERPStatus, "code", r.Code, "message", r.Message, "attempts", r.Attempts)
		case recordsync.Carried:
			run.RecordWarning(fmt.Sprintf("order %s not accepted yet by %s after %d tries (%s): carried to the next run", rec.OrderNumber, t.Connection.Name, r.Attempts, strings.TrimSpace(r.Code+" "+r.Message)),
				"orderNumber", rec.OrderNumber, "code", r.Code, "message", r.Message, "attempts", r.Attempts)
		}
	}
	cfg.OnUnsorted = func(c recordsync.Change) {
		e.log().Warn(fmt.Sprintf("the ERP does not list orders oldest first (order %s is older than one before it): the high-water mark moves only when this sync has read and resolved every order", c.Subject), "orderNumber", c.Subject)
	}
	cfg.OnProgress = func(done, total int) {
		if total > 0 {
			run.SetProgress(min(done*100/total, 99))
		}
	}
	sum, err := recordsync.Run(ctx, cfg, src, func(ctx context.Context, c recordsync.Change, attempt int) recordsync.Outcome {
		return p.push(ctx, run, t, c, attempt)
	})
	mu.Lock()
	res.Total, res.Read, res.Retried = sum.Total, sum.Read, sum.Retried
	res.Changed, res.Refused, res.Carried, res.Skipped = sum.Pushed, sum.Refused, sum.Carried, sum.Skipped
	res.HighWaterMark = sum.Mark.Format(time.RFC3339Nano)
	mu.Unlock()
	run.SetResult(res)
	line := fmt.Sprintf("order status sync to %s: %s; high-water mark %s", target, sum.Describe(), res.HighWaterMark)
	if err != nil {
		e.log().Warn(line+" (stopped: "+e.red.s(err.Error())+")", "read", sum.Read, "pushed", sum.Pushed, "refused", sum.Refused, "carried", sum.Carried)
		switch {
		case errors.Is(err, recordsync.ErrTooManyErrors):
			return processors.Permanent(CodeMaxErrors, fmt.Sprintf("order status sync refused %d orders, more than the job's maxErrors %d; stopped, the high-water mark stays at %s (before the orders not tried)",
				sum.Refused, maxErrors, res.HighWaterMark))
		case ctx.Err() != nil:
			return ctx.Err()
		}
		return unwrapSource(err)
	}
	run.SetProgress(100)
	e.log().Info(line, "read", sum.Read, "pushed", sum.Pushed, "refused", sum.Refused, "carried", sum.Carried, "skipped", sum.Skipped, "highWaterMark", res.HighWaterMark)
	return nil
}

// unwrapSource returns the ERP's own error inside a recordsync source
// error, so that the attempt is judged (and its code recorded) by it.
func unwrapSource(err error) error {
	var pe *processors.PermanentError
	if errors.As(err, &pe) {
		return pe
	}
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	return err
}

// push writes one change through the job's push target.
func (p *orderStatusSync) push(ctx context.Context, run *processors.Run, t *processors.Target, c recordsync.Change, attempt int) recordsync.Outcome {
	var rec syncRecord
	if err := json.Unmarshal(c.Data, &rec); err != nil {
		return recordsync.Outcome{Verdict: recordsync.Refused, Code: CodeBadRecord, Message: "unreadable record"}
	}
	switch {
	case strings.TrimSpace(rec.OrderNumber) == "":
		return recordsync.Outcome{Verdict: recordsync.Refused, Code: CodeBadRecord, Message: fmt.Sprintf("ERP order without an order number (status %q)", rec.ERPStatus)}
	case rec.Status == "":
		return recordsync.Outcome{Verdict: recordsync.Refused, Code: CodeUnmapped, Message: fmt.Sprintf("ERP status %q has no commerce status (orderStatuses)", rec.ERPStatus)}
	}
	child := &processors.Run{
		ID: run.ID, Job: run.Job, Attempt: attempt, MaxAttempts: run.MaxAttempts,
		Params:         definitions.Values{"OrderNumber": rec.OrderNumber, "Status": rec.Status, "ERPStatus": rec.ERPStatus, "UpdatedAt": rec.UpdatedAt},
		Operation:      t.Operation,
		Inputs:         t.Inputs,
		Connection:     t.Connection,
		Input:          c.Data,
		IdempotencyKey: "jobrunner-" + run.InstallationID + "-sync-" + c.Key,
		InstallationID: run.InstallationID,
		Log:            quietLogger{run.Log},
		Guard:          run.Guard,
	}
	err := t.Processor.Process(ctx, child)
	if err == nil {
		return recordsync.Outcome{Verdict: recordsync.Pushed}
	}
	o := processors.Classify(err)
	switch o.Kind {
	case processors.OutcomePermanent, processors.OutcomeCancelled:
		return recordsync.Outcome{Verdict: recordsync.Refused, Code: o.Code, Message: o.Message}
	default: // snooze (429, EOI011), retry (5xx, network), timeout
		return recordsync.Outcome{Verdict: recordsync.Carried, Code: o.Code, Message: o.Message, After: o.Delay}
	}
}

// preview reads what a sync would push, pushes and stores nothing.
func (p *orderStatusSync) preview(ctx context.Context, run *processors.Run, cfg recordsync.Config, src *erpSource, res *SyncResult) error {
	for {
		page, total, err := src.NextPage(ctx)
		if err != nil {
			return err
		}
		if total >= 0 {
			res.Total = total
		}
		if len(page) == 0 {
			break
		}
		keys := make([]string, len(page))
		for i, c := range page {
			keys[i] = c.Key
		}
		done, err := cfg.Store.SyncDone(ctx, cfg.Job, keys)
		if err != nil {
			return fmt.Errorf("reading what sync %s already pushed: %w", cfg.Job, err)
		}
		for _, c := range page {
			res.Read++
			var rec syncRecord
			_ = json.Unmarshal(c.Data, &rec)
			switch {
			case done[c.Key]:
				res.Skipped++
			case rec.Status == "" || strings.TrimSpace(rec.OrderNumber) == "":
				res.Refused++
				if rec.Status == "" {
					res.Unmapped++
				}
			default:
				res.Changed++
				if len(res.Orders) < MaxSyncOrdersInResult {
					res.Orders = append(res.Orders, SyncedOrder{OrderNumber: rec.OrderNumber, ERPStatus: rec.ERPStatus, CommerceStatus: rec.Status, UpdatedAt: rec.UpdatedAt})
				} else {
					res.Truncated = true
				}
			}
		}
	}
	res.HighWaterMark = res.Since
	run.Log.Info(fmt.Sprintf("preview: would push %d orders to %s (%d unmapped, %d already pushed); nothing sent", res.Changed, res.Target, res.Unmapped, res.Skipped))
	run.SetResult(res)
	return nil
}

// erpSource lists the ERP's changed orders page by page.
type erpSource struct {
	e        *erp
	run      *processors.Run
	since    string
	pageSize int
	statuses *definitions.OrderStatusMap
	next     string
	done     bool
	pages    int
}

// maxSyncPages guards against an ERP whose next token never ends.
const maxSyncPages = 1_000_000

// NextPage implements recordsync.Source.
func (s *erpSource) NextPage(ctx context.Context) ([]recordsync.Change, int, error) {
	if s.done {
		return nil, -1, nil
	}
	s.pages++
	if s.pages > maxSyncPages {
		return nil, -1, &Error{Code: CodeBadResponse, Message: fmt.Sprintf("GET /orders: more than %d pages: the ERP's next token does not end", maxSyncPages)}
	}
	in := definitions.Values{"updatedSince": s.since, "limit": strconv.Itoa(s.pageSize)}
	if s.next != "" {
		in["after"] = s.next
	}
	a, err := s.e.do(ctx, "listOrders", in)
	if err != nil {
		return nil, -1, err
	}
	var body struct {
		Orders *[]erpOrder `json:"orders"`
		Next   string      `json:"next"`
		Total  *int        `json:"total"`
	}
	if err := s.e.decode(http.MethodGet, "/orders", a.resp, &body); err != nil {
		return nil, -1, err
	}
	if body.Orders == nil {
		return nil, -1, &Error{Code: CodeBadResponse, Message: fmt.Sprintf("GET /orders: %s: the answer has no orders list", statusText(a.resp.status))}
	}
	if body.Next == "" || len(*body.Orders) == 0 {
		s.done = true
	} else if body.Next == s.next {
		return nil, -1, &Error{Code: CodeBadResponse, Message: "GET /orders: the ERP answered the same next token twice"}
	}
	s.next = body.Next
	total := -1
	if body.Total != nil {
		total = *body.Total
	}
	out := make([]recordsync.Change, 0, len(*body.Orders))
	for _, o := range *body.Orders {
		s.run.AddRead(1)
		n, status, upd := s.e.red.s(o.OrderNumber), s.e.red.s(o.Status), s.e.red.s(o.UpdatedAt)
		var t time.Time
		if upd != "" {
			pt, err := time.Parse(time.RFC3339Nano, upd)
			if err != nil {
				s.run.RecordWarning("ERP order with an invalid updatedAt", "orderNumber", n, "updatedAt", upd)
			} else {
				t = pt.UTC()
			}
		}
		rec := syncRecord{OrderNumber: n, ERPStatus: status, UpdatedAt: upd}
		if sm, ok := s.statuses.Lookup(status); ok {
			rec.Status = sm.CommerceStatus
		}
		data, _ := json.Marshal(rec)
		out = append(out, recordsync.Change{Key: recordsync.ChangeKey(n, status, upd), Subject: n, Time: t, Data: data})
	}
	return out, total, nil
}

// quietLogger passes a pushed record's warnings and errors to the run's
// log and drops its per-call info lines (one sync pushes thousands).
type quietLogger struct{ l processors.Logger }

func (q quietLogger) Debug(string, ...any) {}
func (q quietLogger) Info(string, ...any)  {}
func (q quietLogger) Warn(msg string, kv ...any) {
	if q.l != nil {
		q.l.Warn(msg, kv...)
	}
}
func (q quietLogger) Error(msg string, kv ...any) {
	if q.l != nil {
		q.l.Error(msg, kv...)
	}
}
