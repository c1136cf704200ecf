// Package erpdemo owns a DEMO ERP: an in-process sample ERP that implements
// the "Reference ERP REST contract" of DESIGN.md over real HTTP, with a
// handful of seeded orders in different statuses, for `jobrunner serve
// --demo`, the README walkthrough and tests. It is NOT an ERP: its data
// lives in memory and is lost on Close; never point production jobs at it.
//
// # API (bearer token required on every request; 401 otherwise)
//
//	GET  /orders/{orderNumber}           200 {"orderNumber","status","updatedAt"}; 404 {"code","message"}
//	GET  /orders?updatedSince=RFC3339    200 {"orders":[…],"total":N} updated at or after updatedSince
//	     [&limit=N][&after=TOKEN]        (inclusive; all orders without it), oldest first (ties by
//	                                     order number); with limit (1..1000) at most N per page and
//	                                     "next": a TOKEN for the following page while more remain
//	POST /orders/{orderNumber}/{op}      op: cancel, validateOrder, validatePaymentAuthorization,
//	                                     invalidateOrder; body {"reason"} (optional)
//
// # Seeded orders
//
//	WEB000123 Open                  cancel → 200 Cancelled
//	WEB000124 Processing            cancel → 200 Cancelled
//	WEB000125 PendingAuthorization  cancel → 425 Too Early, Retry-After: 2, for the first
//	                                [AuthorizationCalls] cancel calls (manual authorization
//	                                pending); then the authorization completes and cancel → 200
//	WEB000126 Shipped               cancel → 409 {"code":"ORDER_STATE","message":"Cancel failed as order is in [Shipped] state"}
//	WEB000127 Invoiced              cancel → 409 ORDER_STATE (… [Invoiced] state)
//	WEB000128 Cancelled             cancel → 200 Cancelled (nothing changes)
//	WEB000129 Open, locked by an order-management integration:
//	                                every POST → 423 {"code":"STATUS_LOCKED","message":"Status of integrated orders cannot be changed"}
//	WEB000130 Open                  cancel → 503, Retry-After: 1, for the first
//	                                [UnavailableCalls] cancel calls; then 200
//
// The other operations: validateOrder moves Open to Processing;
// validatePaymentAuthorization moves PendingAuthorization to Open;
// invalidateOrder moves Open or Processing to PendingAuthorization; any
// other state answers 409 ORDER_STATE. A change sets the order's updatedAt
// to now.
//
// # Idempotency
//
// A POST with an Idempotency-Key header is applied at most once per key:
// the first definitive answer (2xx, 4xx other than 425/429) is stored, and
// a repeat of the key on the same path gets that answer again (with header
// "Idempotent-Replayed: true") without a second effect; the same key on
// another path answers 422. Transient answers (425, 429, 5xx) are not
// stored, so a retry with the same key tries again. Keys are kept in
// memory for the server's life.
//
// A Server is safe for concurrent use.
package erpdemo

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Behaviour constants of the seeded orders.
const (
	// AuthorizationCalls is how many cancel calls of WEB000125 answer 425
	// before its manual authorization completes.
	AuthorizationCalls = 2
	// UnavailableCalls is how many cancel calls of WEB000130 answer 503.
	UnavailableCalls = 2
	// maxBody caps a request body.
	maxBody = 64 << 10
)

// Order statuses used by the seeded orders.
const (
	StatusOpen                 = "Open"
	StatusProcessing           = "Processing"
	StatusPendingAuthorization = "PendingAuthorization"
	StatusShipped              = "Shipped"
	StatusInvoiced             = "Invoiced"
	StatusCancelled            = "Cancelled"
)

// Order is an order of the demo ERP.
type Order struct {
	OrderNumber string    `json:"orderNumber"`
	Status      string    `json:"status"`
	UpdatedAt   time.Time `json:"updatedAt"`
	// Locked orders refuse every change with 423 (owned by another
	// system).
	Locked bool `json:"-"`
	// PendingCalls makes the next N cancel calls answer PendingStatus
	// (425 or 503) with Retry-After PendingRetryAfter seconds.
	PendingCalls      int `json:"-"`
	PendingStatus     int `json:"-"`
	PendingRetryAfter int `json:"-"`
}

type answer struct {
	path   string
	status int
	body   []byte
}

// Server is the demo ERP. Create it with [New] (for httptest or a custom
// listener, via [Server.Handler]) or [Start] (listens on its own).
type Server struct {
	token string

	mu      sync.Mutex
	orders  map[string]*Order
	idem    map[string]answer
	calls   map[string]int // cancel POSTs received, by order
	applied map[string]int // cancels applied, by order
	delay   time.Duration
	now     func() time.Time

	handler http.Handler
	srv     *http.Server
	ln      net.Listener
	done    chan struct{}
}

// New returns a demo ERP with the seeded orders that requires token as a
// bearer token; an empty token is replaced by a random one (see
// [Server.Token]). It does not listen: serve [Server.Handler].
func New(token string) *Server {
	if token == "" {
		token = randomToken()
	}
	s := &Server{
		token:   token,
		orders:  make(map[string]*Order),
		idem:    make(map[string]answer),
		calls:   make(map[string]int),
		applied: make(map[string]int),
		now:     time.Now,
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	seed := []Order{
		{OrderNumber: "WEB000123", Status: StatusOpen},
		{OrderNumber: "WEB000124", Status: StatusProcessing},
		{OrderNumber: "WEB000125", Status: StatusPendingAuthorization, PendingCalls: AuthorizationCalls, PendingStatus: http.StatusTooEarly, PendingRetryAfter: 2},
		{OrderNumber: "WEB000126", Status: StatusShipped},
		{OrderNumber: "WEB000127", Status: StatusInvoiced},
		{OrderNumber: "WEB000128", Status: StatusCancelled},
		{OrderNumber: "WEB000129", Status: StatusOpen, Locked: true},
		{OrderNumber: "WEB000130", Status: StatusOpen, PendingCalls: UnavailableCalls, PendingStatus: http.StatusServiceUnavailable, PendingRetryAfter: 1},
	}
	for i, o := range seed {
		o.UpdatedAt = now.Add(-time.Duration(len(seed)-i) * 10 * time.Minute)
		s.orders[o.OrderNumber] = &o
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{order}", s.getOrder)
	mux.HandleFunc("GET /orders", s.listOrders)
	mux.HandleFunc("POST /orders/{order}/{op}", s.postOp)
	s.handler = s.auth(mux)
	return s
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return "demo-" + hex.EncodeToString(b)
}

// Start returns a demo ERP with a random token listening on addr (e.g.
// "127.0.0.1:0" for a free loopback port). It returns an error when addr
// cannot be listened on. Close it when done.
func Start(addr string) (*Server, error) {
	s := New("")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("erpdemo: listening on %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	return s, nil
}

// URL returns the base URL ("http://127.0.0.1:PORT") of a server made by
// [Start], or "" for one made by [New].
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Token returns the bearer token the server requires.
func (s *Server) Token() string { return s.token }

// Handler returns the server's HTTP handler (authentication included).
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops a server made by [Start], closing open connections; it is a
// no-op for one made by [New] and safe to call twice.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	<-s.done
	if err != nil {
		return fmt.Errorf("erpdemo: closing: %w", err)
	}
	return nil
}

// SetDelay makes every POST wait d after it has been applied and before it
// answers (0, the default, answers at once): a client with a shorter
// timeout gives up although the ERP did the work. The wait ends early when
// the client goes away.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Put adds or replaces an order; a zero UpdatedAt is set to now.
func (s *Server) Put(o Order) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.UpdatedAt.IsZero() {
		o.UpdatedAt = s.now().UTC()
	}
	s.orders[o.OrderNumber] = &o
}

// OrderNumbers returns the number of every order, sorted.
func (s *Server) OrderNumbers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.orders))
	for n := range s.orders {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Get returns a copy of an order and whether it exists.
func (s *Server) Get(orderNumber string) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[orderNumber]
	if !ok {
		return Order{}, false
	}
	return *o, true
}

// CancelCalls returns how many authenticated cancel POSTs the order has
// received, replays of an idempotency key included.
func (s *Server) CancelCalls(orderNumber string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[orderNumber]
}

// CancelsApplied returns how many times a cancel actually changed the
// order (0 or 1 unless the order was reopened with Put).
func (s *Server) CancelsApplied(orderNumber string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[orderNumber]
}

func (s *Server) auth(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="erpdemo"`)
			writeJSON(w, http.StatusUnauthorized, errBody("UNAUTHORIZED", "missing or invalid bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func errBody(code, msg string) map[string]string {
	return map[string]string{"code": code, "message": msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"INTERNAL","message":"encoding the answer failed"}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	n := r.PathValue("order")
	s.mu.Lock()
	o, ok := s.orders[n]
	var c Order
	if ok {
		c = *o
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, errBody("ORDER_NOT_FOUND", "order "+n+" not found"))
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("updatedSince"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errBody("INVALID_PARAMETER", "updatedSince must be an RFC 3339 date-time"))
			return
		}
		since = t
	}
	s.mu.Lock()
	out := make([]Order, 0, len(s.orders))
	for _, o := range s.orders {
		if !o.UpdatedAt.Before(since) {
			out = append(out, *o)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].UpdatedAt.Equal(out[j].UpdatedAt) {
			return out[i].UpdatedAt.Before(out[j].UpdatedAt)
		}
		return out[i].OrderNumber < out[j].OrderNumber
	})
	total := len(out)
	q := r.URL.Query()
	if a := q.Get("after"); a != "" {
		raw, err := base64.RawURLEncoding.DecodeString(a)
		ts, num, ok := strings.Cut(string(raw), "|")
		at, terr := time.Parse(time.RFC3339Nano, ts)
		if err != nil || !ok || terr != nil {
			writeJSON(w, http.StatusBadRequest, errBody("INVALID_PARAMETER", "after is not a page token of this listing"))
			return
		}
		i := sort.Search(len(out), func(i int) bool {
			o := out[i]
			return o.UpdatedAt.After(at) || (o.UpdatedAt.Equal(at) && o.OrderNumber > num)
		})
		out = out[i:]
	}
	body := map[string]any{"total": total}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeJSON(w, http.StatusBadRequest, errBody("INVALID_PARAMETER", "limit must be 1 to 1000"))
			return
		}
		if len(out) > n {
			out = out[:n]
			last := out[n-1]
			body["next"] = base64.RawURLEncoding.EncodeToString([]byte(last.UpdatedAt.UTC().Format(time.RFC3339Nano) + "|" + last.OrderNumber))
		}
	}
	body["orders"] = out
	writeJSON(w, http.StatusOK, body)
}

var ops = []string{"cancel", "validateOrder", "validatePaymentAuthorization", "invalidateOrder"}

func (s *Server) postOp(w http.ResponseWriter, r *http.Request) {
	n, op := r.PathValue("order"), r.PathValue("op")
	var req struct {
		Reason string `json:"reason"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	switch {
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errBody("INVALID_REQUEST", "reading the request body failed"))
		return
	case len(body) > maxBody:
		writeJSON(w, http.StatusRequestEntityTooLarge, errBody("INVALID_REQUEST", "request body too large"))
		return
	case len(strings.TrimSpace(string(body))) > 0:
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, errBody("INVALID_REQUEST", "the request body is not a JSON object"))
			return
		}
	}
	if !slices.Contains(ops, op) {
		writeJSON(w, http.StatusNotFound, errBody("UNKNOWN_OPERATION", "unknown operation "+op))
		return
	}

	key := r.Header.Get("Idempotency-Key")
	path := r.URL.EscapedPath()
	s.mu.Lock()
	if op == "cancel" {
		s.calls[n]++
	}
	if key != "" {
		if a, ok := s.idem[key]; ok {
			s.mu.Unlock()
			if a.path != path {
				writeJSON(w, http.StatusUnprocessableEntity, errBody("IDEMPOTENCY_KEY_REUSED", "the Idempotency-Key was used for another request"))
				return
			}
			w.Header().Set("Idempotent-Replayed", "true")
			writeRaw(w, a.status, a.body)
			return
		}
	}
	status, v, retryAfter := s.apply(n, op)
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"INTERNAL","message":"encoding the answer failed"}`)
	}
	if key != "" && status < 500 && status != http.StatusTooEarly && status != http.StatusTooManyRequests {
		s.idem[key] = answer{path: path, status: status, body: b}
	}
	delay := s.delay
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeRaw(w, status, b)
}

// apply runs op on order n; s.mu is held. It returns the answer's status,
// body and Retry-After seconds (0: none).
func (s *Server) apply(n, op string) (int, any, int) {
	o, ok := s.orders[n]
	if !ok {
		return http.StatusNotFound, errBody("ORDER_NOT_FOUND", "order "+n+" not found"), 0
	}
	if o.Locked {
		return http.StatusLocked, errBody("STATUS_LOCKED", "Status of integrated orders cannot be changed"), 0
	}
	refuse := func(verb string) (int, any, int) {
		return http.StatusConflict, errBody("ORDER_STATE", fmt.Sprintf("%s failed as order is in [%s] state", verb, o.Status)), 0
	}
	change := func(status string) (int, any, int) {
		o.Status = status
		o.UpdatedAt = s.now().UTC()
		return http.StatusOK, *o, 0
	}
	switch op {
	case "cancel":
		if o.PendingCalls > 0 {
			o.PendingCalls--
			msg := "the order is waiting for manual authorization; try again later"
			if o.PendingStatus == http.StatusServiceUnavailable {
				msg = "the ERP is temporarily unavailable; try again later"
			}
			return o.PendingStatus, errBody("TRY_LATER", msg), o.PendingRetryAfter
		}
		switch o.Status {
		case StatusCancelled:
			return http.StatusOK, *o, 0
		case StatusOpen, StatusProcessing, StatusPendingAuthorization:
			s.applied[n]++
			return change(StatusCancelled)
		}
		return refuse("Cancel")
	case "validateOrder":
		if o.Status == StatusOpen {
			return change(StatusProcessing)
		}
		return refuse("Validate")
	case "validatePaymentAuthorization":
		if o.Status == StatusPendingAuthorization {
			o.PendingCalls = 0
			return change(StatusOpen)
		}
		return refuse("Payment authorization validation")
	case "invalidateOrder":
		if o.Status == StatusOpen || o.Status == StatusProcessing {
			return change(StatusPendingAuthorization)
		}
		return refuse("Invalidate")
	}
	return http.StatusNotFound, errBody("UNKNOWN_OPERATION", "unknown operation "+op), 0
}
