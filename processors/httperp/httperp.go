// Package httperp owns the reference ERP integration over HTTP: the "http"
// connection type (one pooled HTTP client per connection) and the
// processors OrderCancel, OrderAction and OrderStatusSync that speak the
// "Reference ERP REST contract" of DESIGN.md:
//
//	GET  {baseURL}/orders/{orderNumber}            → 200 {"orderNumber","status"}; 404 unknown
//	POST {baseURL}/orders/{orderNumber}/{op}       body {"reason"} (op cancel, validateOrder, …)
//	GET  {baseURL}/orders?updatedSince=RFC3339     → 200 {"orders":[{"orderNumber","status","updatedAt"}]}
//
// # Connection settings
//
//	type: http
//	settings:
//	  baseURL: ${JOBRUNNER_ERP_URL}   # required, http or https, no credentials/query
//	  timeout: 10s                    # per ERP call (default 10s)
//	  auth: bearer                    # bearer (default with a token secret), basic, none
//	  headers: {X-Tenant: eu}         # extra non-secret headers
//	  tls: {insecureSkipVerify: false, caFile: /etc/erp-ca.pem}
//	  maxResponseBytes: 1048576       # cap of an answer's body (default 1 MiB)
//	secrets:
//	  token: JOBRUNNER_ERP_TOKEN      # bearer; or username/password for basic
//
// Invalid settings fail the run permanently with code ERP_CONFIG.
// Redirects are not followed. Every request carries "User-Agent: jobrunner";
// every POST carries "Idempotency-Key: <run key>:<op>".
//
// # Answers
//
//	2xx                  success
//	404                  permanent ORDER_NOT_FOUND
//	409                  permanent, the ERP's own {"code","message"} verbatim (code default ERP_CONFLICT)
//	423                  permanent STATUS_LOCKED, the ERP's message kept
//	401/403              permanent ERP_UNAUTHORIZED; other 4xx permanent ERP_REJECTED (or the ERP's code)
//	425/429/503          come back later without consuming an attempt
//	                     (processors.RetryLater), honouring Retry-After in
//	                     seconds or as an HTTP date, capped at 10 minutes;
//	                     absent: the job's backoff. The job's MaxSnoozes caps it.
//	other 5xx, network   failed attempt retried with backoff ([*Error], code ERP_UNAVAILABLE)
//	errors, timeouts
//	not JSON, wrong      failed attempt retried with backoff (code ERP_BAD_RESPONSE): the
//	content type, body   message names the status and content type and quotes at most
//	over the limit       200 bytes of the body
//
// Each ERP call logs one line (method, path, status, duration). Secrets
// (token, username, password, the basic-auth encoding) never appear in
// logs, errors or results: they are only put in the Authorization header,
// and every message built from ERP answers or network errors is redacted.
//
// # Idempotency assumption
//
// A run's attempts all send the same Idempotency-Key for the same
// operation (run.IdempotencyKey plus ":cancel", ":validateOrder", …). The
// ERP is assumed to honour it as the reference contract's ERP does (see
// package erpdemo): a repeated key returns the first definitive answer
// without applying the operation again. So when an attempt times out after
// the ERP received and applied a cancel, the retry gets the ERP's first
// answer and the order is cancelled exactly once. An ERP that ignores the
// key still converges for OrderCancel, which reads the order first and
// treats an already cancelled order as success, but could apply the other
// OrderAction operations twice.
package httperp

import (
	"context"
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// ConnectionType is the connection type the processors of this package
// serve.
const ConnectionType = "http"

// Processor names registered by [Register].
const (
	NameOrderCancel     = "OrderCancel"
	NameOrderAction     = "OrderAction"
	NameOrderStatusSync = "OrderStatusSync"
)

// StateKeyHighWaterMark is the job state name under which OrderStatusSync
// keeps its high-water mark (RFC 3339, UTC).
const StateKeyHighWaterMark = "highWaterMark"

// DefaultSyncLookback is how far back the first OrderStatusSync (no mark,
// no Since parameter) reads.
const DefaultSyncLookback = 24 * time.Hour

// State stores per-job values between runs. *jobs.Store implements it.
type State interface {
	// JobState returns the value of name for job, and false when unset.
	JobState(ctx context.Context, job, name string) (string, bool, error)
	// SetJobState stores the value of name for job.
	SetJobState(ctx context.Context, job, name, value string) error
}

// Options configure the processors of [Register].
type Options struct {
	// Statuses returns the current ERP → commerce order status mapping
	// (definitions.Set.OrderStatuses); it is called once per run so that
	// reloaded definitions apply. Nil, or returning nil, means no mapping:
	// OrderCancel then fails permanently with ERP_CONFIG and OrderStatusSync
	// counts every order as unmapped.
	Statuses func() *definitions.OrderStatusMap
	// State keeps OrderStatusSync's high-water mark. Nil: an in-memory
	// state private to this registration (lost on restart).
	State State
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnResponse, when set, is told each ERP answer's status by connection
	// name (0 for no answer: network error or timeout), for metrics. It
	// must be fast and safe for concurrent use.
	OnResponse func(conn string, status int)
}

// base is shared by the processors of one registration.
type base struct {
	opts    Options
	clients *clientCache
	specs   *specCache
	tokens  *tokenCache
}

func (b *base) statuses() *definitions.OrderStatusMap {
	if b.opts.Statuses == nil {
		return nil
	}
	return b.opts.Statuses()
}

func (b *base) now() time.Time {
	if b.opts.Now != nil {
		return b.opts.Now()
	}
	return time.Now()
}

// Register registers, for connection type "http", OrderCancel and
// OrderAction (both with preview support: a preview reads the order and
// records what it would do, without any POST) and OrderStatusSync. The
// three share one client cache: one pooled *http.Client per connection
// (keyed by connection name and a hash of its settings). It panics, like
// [processors.Registry.Register], when a name is already registered for
// "http".
func Register(r *processors.Registry, opts Options) {
	if opts.State == nil {
		opts.State = &memState{}
	}
	b := &base{opts: opts, clients: &clientCache{}, specs: &specCache{}, tokens: &tokenCache{}}
	r.Register(NameOrderCancel, &orderCancel{b}, processors.ForConnectionTypes(ConnectionType), processors.WithPreview(),
		processors.WithDescription("Cancels an order in the ERP when its mapped status allows it"))
	r.Register(NameOrderAction, &orderAction{b}, processors.ForConnectionTypes(ConnectionType), processors.WithPreview(),
		processors.WithDescription("Runs one order operation in the ERP (op: cancel, validateOrder, validatePaymentAuthorization, invalidateOrder)"))
	r.Register(NameOrderStatusSync, &orderStatusSync{b}, processors.ForConnectionTypes(ConnectionType),
		processors.WithDescription("Reads orders updated in the ERP since the last successful sync and maps their statuses"))
	r.Register(NameHTTP, &generic{b}, processors.ForConnectionTypes(ConnectionType), processors.WithPreview(),
		processors.WithDescription("Runs the job's connection operation (operation: NAME), inputs bound from its parameters"))
	r.SetChecker(ConnectionType, checker{})
}

// orderNumber returns the OrderNumber parameter, or a permanent failure
// when it cannot name an order.
func orderNumber(run *processors.Run) (string, error) {
	n := run.Params.String("OrderNumber")
	switch {
	case n == "":
		return "", processors.Permanent(CodeInvalidParam, "parameter OrderNumber is required")
	case n == "." || n == "..":
		return "", processors.Permanent(CodeInvalidParam, fmt.Sprintf("parameter OrderNumber %q is not an order number", n))
	case len(n) > 200:
		return "", processors.Permanent(CodeInvalidParam, "parameter OrderNumber is longer than 200 bytes")
	}
	for _, r := range n {
		if r < ' ' || r == 0x7f {
			return "", processors.Permanent(CodeInvalidParam, "parameter OrderNumber contains a control character")
		}
	}
	return n, nil
}
