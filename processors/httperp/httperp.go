// Package httperp owns the "http" connection type: declarative HTTP
// operations (method, path, query, headers, JSON body templates, success
// test, result fields, outcome table), their auth (bearer, basic, API-key
// headers, OAuth2 client credentials, a login that trades a key for an
// access token), the presets that ship operations for commerce platforms,
// and the processors that run them:
//
//   - http runs the job's operation (operation: NAME), inputs bound from the
//     job's parameters (inputs: {input: parameter} where names differ).
//   - OrderCancel, OrderAction and OrderStatusSync speak the "Reference ERP
//     REST contract" of DESIGN.md through the reference-erp preset's
//     operations (getOrder, orderAction, listOrders): one code path.
//     OrderStatusSync pushes each changed order to the commerce platform
//     through the job's push (any operation of any http connection, or a
//     processor of another connection type), record by record (package
//     recordsync).
//
// Presets (presets/*.yaml, embedded): reference-erp (the default of a
// connection without preset), oracle-commerce (handleOrderActions), vtex
// (updateOrderStatus), salesforce-b2c (updateOrderStatus). A connection's
// settings and operations override the preset's field by field; its
// outcome rules come before the preset's.
//
// # Files
//
//	spec.go       presets, merging, parsing operations and outcome rules
//	template.go   templates ({name} shorthand, text/template) and JSON bodies
//	operation.go  building, sending and judging one operation's request
//	auth.go       auth kinds, the shared token cache (golang.org/x/oauth2)
//	generic.go    the http processor and the validation Checker
//	client.go     settings, the pooled client per connection, redaction
//	orders.go, sync.go  the reference ERP processors
//
// # Connection settings
//
//	type: http
//	preset: oracle-commerce         # or vtex, salesforce-b2c, reference-erp (default), none
//	settings:
//	  baseURL: ${JOBRUNNER_ERP_URL}   # required, http or https, no credentials/query
//	  timeout: 10s                    # per call (default 10s); an operation may set its own
//	  auth: bearer                    # bearer (default with a token secret), basic, none, or a mapping
//	  headers: {X-Tenant: eu}         # extra non-secret headers
//	  tls: {insecureSkipVerify: false, caFile: /etc/erp-ca.pem}
//	  maxResponseBytes: 1048576       # cap of an answer's body (default 1 MiB)
//	secrets:
//	  token: JOBRUNNER_ERP_TOKEN      # bearer; or username/password for basic
//
// Invalid settings fail the run permanently with code ERP_CONFIG, and
// `jobrunner definitions validate` reports them with file:line through the
// Checker this package registers. Redirects are not followed. Every
// request carries "User-Agent: jobrunner"; every request of an operation
// that changes something (not GET/HEAD unless it says changes: true)
// carries "Idempotency-Key: <run key>:<operation>" (the reference
// orderAction: "<run key>:<op>"), where the run key is stable across the
// run's attempts and names the installation.
//
// # Outcomes
//
// First the operation's outcome rules (status, the platform's code, a JSON
// field), first match wins; then its success test (default any 2xx); then
// the defaults, which are the reference contract's rules:
//
//	404                  permanent, not found (code the platform's, or the rule's)
//	409                  permanent, the platform's own code and message verbatim (code default ERP_CONFLICT)
//	423                  permanent STATUS_LOCKED, the platform's message kept
//	401/403              permanent ERP_UNAUTHORIZED (after one token refresh with OAuth2/login)
//	other 4xx            permanent ERP_REJECTED (or the platform's code)
//	425/429/503          come back later without consuming an attempt
//	                     (processors.RetryLaterError with code HTTP_<status> or the
//	                     platform's), honouring Retry-After in seconds or as an HTTP
//	                     date, capped at 10 minutes; absent: the job's backoff
//	other 5xx, network   failed attempt retried with backoff ([*Error], code
//	errors, timeouts     ERP_UNAVAILABLE or the platform's)
//	not JSON, wrong      failed attempt retried with backoff (code ERP_BAD_RESPONSE): the
//	content type, body   message names the status and content type and quotes at most
//	over the limit       200 bytes of the body
//
// Each call logs one line (method, path, status, duration). Secrets
// (token, username, password, keys, client secrets, the basic-auth
// encoding, access tokens) never appear in logs, errors or results: they
// are only put in headers (templates may use them nowhere else), and every
// message built from answers or network errors is redacted.
//
// # Idempotency assumption
//
// A run's attempts all send the same Idempotency-Key for the same
// operation. The ERP is assumed to honour it as the reference contract's
// ERP does (see package erpdemo): a repeated key returns the first
// definitive answer without applying the operation again. So when an
// attempt times out after the ERP received and applied a cancel, the retry
// gets the ERP's first answer and the order is cancelled exactly once. An
// ERP that ignores the key still converges for OrderCancel, which reads the
// order first and treats an already cancelled order as success, but could
// apply other operations twice.
package httperp

import (
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/recordsync"
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

// Options configure the processors of [Register].
type Options struct {
	// Statuses returns the current ERP → commerce order status mapping
	// (definitions.Set.OrderStatuses); it is called once per run so that
	// reloaded definitions apply. Nil, or returning nil, means no mapping:
	// OrderCancel then fails permanently with ERP_CONFIG and OrderStatusSync
	// counts every order as unmapped.
	Statuses func() *definitions.OrderStatusMap
	// Sync keeps OrderStatusSync's mark, done set and pending orders
	// (*jobs.Store implements it). Nil: an in-memory store private to
	// this registration (lost on restart).
	Sync recordsync.Store
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnResponse, when set, is told each ERP answer's status by connection
	// name (0 for no answer: network error or timeout), for metrics. It
	// must be fast and safe for concurrent use.
	OnResponse func(conn string, status int)
	// OnThrottle, when set, is told that a connection answered 429 or 503
	// with a Retry-After (after > 0): the runner pauses the connection for
	// that long (a circuit breaker across instances). It must be safe for
	// concurrent use and return promptly.
	OnThrottle func(conn string, status int, after time.Duration)
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
	if opts.Sync == nil {
		opts.Sync = &recordsync.MemStore{}
	}
	b := &base{opts: opts, clients: &clientCache{}, specs: &specCache{}, tokens: &tokenCache{}}
	r.Register(NameOrderCancel, &orderCancel{b}, processors.ForConnectionTypes(ConnectionType), processors.WithPreview(),
		processors.WithDescription("Cancels an order in the ERP when its mapped status allows it"))
	r.Register(NameOrderAction, &orderAction{b}, processors.ForConnectionTypes(ConnectionType), processors.WithPreview(),
		processors.WithDescription("Runs one order operation in the ERP (op: cancel, validateOrder, validatePaymentAuthorization, invalidateOrder)"))
	r.Register(NameOrderStatusSync, &orderStatusSync{b}, processors.ForConnectionTypes(ConnectionType), processors.WithPreview(),
		processors.WithDescription("Pushes the statuses of orders changed in the ERP to the commerce platform (push:), record by record, resuming where it stopped"))
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
