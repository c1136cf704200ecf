package httperp

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// DefaultReason is the cancel reason sent when the run has no Reason
// parameter.
const DefaultReason = "customerRequest"

// Ops are the operations OrderAction accepts in its op parameter.
var Ops = []string{"cancel", "validateOrder", "validatePaymentAuthorization", "invalidateOrder"}

// OrderResult is the result of OrderCancel and OrderAction.
type OrderResult struct {
	OrderNumber string `json:"orderNumber"`
	// Op is the operation (OrderAction only).
	Op string `json:"op,omitempty"`
	// PreviousERPStatus is the status read before the operation.
	PreviousERPStatus string `json:"previousErpStatus,omitempty"`
	// ERPStatus is the status the ERP returned (or read, when nothing was
	// sent), and CommerceStatus its mapping ("" when unmapped).
	ERPStatus      string `json:"erpStatus"`
	CommerceStatus string `json:"commerceStatus"`
	// AlreadyCancelled is true when the order was cancelled in the ERP
	// before this run's cancel (nothing was sent).
	AlreadyCancelled bool `json:"alreadyCancelled"`
	// Preview is true for a preview; WouldSend says whether a real run
	// would have sent the operation.
	Preview   bool `json:"preview,omitempty"`
	WouldSend bool `json:"wouldSend,omitempty"`
}

// erpOrder is an order as the ERP returns it.
type erpOrder struct {
	OrderNumber string `json:"orderNumber"`
	Status      string `json:"status"`
	UpdatedAt   string `json:"updatedAt,omitempty"`
}

// orderPath returns the path, below the base URL, of an order (and of an
// operation on it when op is not empty), with the order number escaped:
// what the reference-erp preset's operations request, for messages.
func orderPath(orderNumber, op string) string {
	p := "/orders/" + url.PathEscape(orderNumber)
	if op != "" {
		p += "/" + url.PathEscape(op)
	}
	return p
}

// getOrder reads one order with the connection's getOrder operation
// (reference-erp preset: GET /orders/{orderNumber}).
func (e *erp) getOrder(ctx context.Context, n string) (erpOrder, error) {
	a, err := e.do(ctx, "getOrder", definitions.Values{"orderNumber": n})
	if err != nil {
		return erpOrder{}, err // the message names the call
	}
	path := orderPath(n, "")
	var o erpOrder
	if err := e.decode(http.MethodGet, path, a.resp, &o); err != nil {
		return erpOrder{}, err
	}
	if strings.TrimSpace(o.Status) == "" {
		return erpOrder{}, &Error{Code: CodeBadResponse, Message: fmt.Sprintf("GET %s: %s: the answer has no order status", path, statusText(a.resp.status))}
	}
	o.Status = e.red.s(o.Status)
	return o, nil
}

// post sends op for order n with the connection's orderAction operation
// (reference-erp preset: POST /orders/{orderNumber}/{op}, Idempotency-Key
// "<run key>:<op>") and returns the status the ERP answered with ("" when
// its 2xx answer has no body).
func (e *erp) post(ctx context.Context, n, op, reason string) (string, error) {
	in := definitions.Values{"orderNumber": n, "op": op}
	if reason != "" {
		in["reason"] = reason
	}
	a, err := e.do(ctx, "orderAction", in)
	if err != nil {
		return "", err // the message names the call
	}
	r := a.resp
	if r.status == http.StatusNoContent || len(strings.TrimSpace(string(r.body))) == 0 {
		return "", nil
	}
	var o erpOrder
	if err := e.decode(http.MethodPost, orderPath(n, op), r, &o); err != nil {
		return "", err
	}
	return e.red.s(o.Status), nil
}

func isCancelled(s string) bool {
	return strings.EqualFold(s, "Cancelled") || strings.EqualFold(s, "Canceled")
}

// cancellable reports whether an order in mapping sm may be cancelled: the
// mapping allows cancellation, or its commerce status is listed in
// cancellableStatuses.
func cancellable(m *definitions.OrderStatusMap, sm definitions.StatusMapping) bool {
	return sm.AllowCancellation || m.Cancellable(sm.CommerceStatus)
}

func mapped(m *definitions.OrderStatusMap, erpStatus string) string {
	sm, _ := m.Lookup(erpStatus)
	return sm.CommerceStatus
}

// orderCancel is the OrderCancel processor.
type orderCancel struct{ *base }

// Process cancels the order named by the OrderNumber parameter; see the
// package doc.
func (p *orderCancel) Process(ctx context.Context, run *processors.Run) error {
	e, err := p.newERP(run)
	if err != nil {
		return err
	}
	n, err := orderNumber(run)
	if err != nil {
		return err
	}
	return p.cancel(ctx, run, e, n, "")
}

// cancel reads order n, checks that its mapped status allows cancellation,
// and (unless previewing) sends the cancel. op is "" for OrderCancel and
// "cancel" for OrderAction (it is only recorded in the result).
func (b *base) cancel(ctx context.Context, run *processors.Run, e *erp, n, op string) error {
	m := b.statuses()
	if m == nil {
		return processors.Permanent(CodeConfig, "no order status mapping (orderStatuses) is defined: cannot tell whether an order may be cancelled")
	}
	o, err := e.getOrder(ctx, n)
	if err != nil {
		return err
	}
	run.AddRead(1)
	res := OrderResult{OrderNumber: n, Op: op, PreviousERPStatus: o.Status, ERPStatus: o.Status, Preview: run.Preview}
	sm, ok := m.Lookup(o.Status)
	res.CommerceStatus = sm.CommerceStatus
	if isCancelled(o.Status) || (ok && isCancelled(sm.CommerceStatus)) {
		res.AlreadyCancelled = true
		msg := fmt.Sprintf("order %s is already cancelled in the ERP (ERP status %s): nothing to do", n, o.Status)
		if run.Attempt > 1 {
			msg += " (possibly by an earlier attempt of this run)"
		}
		e.log().Info(msg, "orderNumber", n, "erpStatus", o.Status)
		run.SetResult(res)
		return nil
	}
	if !ok {
		return processors.Permanent(CodeUnmapped, fmt.Sprintf("order %s has ERP status %q, which has no mapping in orderStatuses", n, o.Status))
	}
	if !cancellable(m, sm) {
		return processors.Permanent(CodeNotCancellable, fmt.Sprintf("order %s is %s (ERP status %s), which does not allow cancellation", n, sm.CommerceStatus, o.Status))
	}
	if run.Preview {
		msg := fmt.Sprintf("would cancel %s: ERP status %s → %s, cancellable", n, o.Status, sm.CommerceStatus)
		e.log().Info(msg, "orderNumber", n, "erpStatus", o.Status, "commerceStatus", sm.CommerceStatus)
		res.WouldSend = true
		run.SetResult(res)
		return nil
	}
	reason := run.Params.String("Reason")
	if reason == "" {
		reason = DefaultReason
	}
	status, err := e.post(ctx, n, "cancel", reason)
	if err != nil {
		return err
	}
	if status == "" {
		status = "Cancelled" // a 2xx without a body: the cancel was accepted
	}
	run.AddChanged(1)
	res.ERPStatus = status
	res.CommerceStatus = mapped(m, status)
	if res.CommerceStatus == "" {
		run.RecordWarning("the ERP answered the cancel with an unmapped status", "orderNumber", n, "erpStatus", status)
	}
	e.log().Info(fmt.Sprintf("cancelled %s: ERP status %s → %s", n, o.Status, status), "orderNumber", n, "erpStatus", status)
	run.SetResult(res)
	return nil
}

// orderAction is the OrderAction processor.
type orderAction struct{ *base }

// Process runs the op parameter's operation on the OrderNumber parameter's
// order: "cancel" as OrderCancel does, the others as a POST to
// {baseURL}/orders/{n}/{op} classified like every ERP answer.
func (p *orderAction) Process(ctx context.Context, run *processors.Run) error {
	e, err := p.newERP(run)
	if err != nil {
		return err
	}
	n, err := orderNumber(run)
	if err != nil {
		return err
	}
	op := run.Params.String("op")
	if !slices.Contains(Ops, op) {
		return processors.Permanent(CodeInvalidParam, fmt.Sprintf("parameter op is %q, want one of %s", op, strings.Join(Ops, ", ")))
	}
	if op == "cancel" {
		return p.cancel(ctx, run, e, n, op)
	}
	m := p.statuses()
	res := OrderResult{OrderNumber: n, Op: op, Preview: run.Preview}
	if run.Preview {
		o, err := e.getOrder(ctx, n)
		if err != nil {
			return err
		}
		run.AddRead(1)
		res.PreviousERPStatus, res.ERPStatus, res.CommerceStatus, res.WouldSend = o.Status, o.Status, mapped(m, o.Status), true
		e.log().Info(fmt.Sprintf("would %s %s: ERP status %s", op, n, o.Status), "orderNumber", n, "op", op, "erpStatus", o.Status)
		run.SetResult(res)
		return nil
	}
	status, err := e.post(ctx, n, op, run.Params.String("Reason"))
	if err != nil {
		return err
	}
	run.AddChanged(1)
	res.ERPStatus, res.CommerceStatus = status, mapped(m, status)
	if status != "" && res.CommerceStatus == "" {
		run.RecordWarning("the ERP answered with an unmapped status", "orderNumber", n, "op", op, "erpStatus", status)
	}
	e.log().Info(fmt.Sprintf("%s %s: ERP status now %s", op, n, status), "orderNumber", n, "op", op, "erpStatus", status)
	run.SetResult(res)
	return nil
}
