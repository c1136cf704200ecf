// Package platformsim owns the simulators of the commerce platforms the
// http connection presets speak (Oracle Commerce, VTEX, Salesforce B2C),
// for tests and local trials: each is an http.Handler that answers in the
// platform's shapes with the platform's codes, checks the credentials the
// platform would check, and counts what it received.
//
// What an order answers is chosen by its id, so a test (or a person with
// curl) needs no set-up. Each simulator counts the changes it applied
// per order (Applied), once per Idempotency-Key.
//
//	Oracle Commerce  id "err-CODE" (e.g. err-200101) → that error code;
//	                 anything else → success
//	VTEX             marketplaceOrderId "err-CODE[-…]" (e.g. err-EOI011) → that code;
//	                 "wait-N[-…]" → EOI011 N times, then SOI003
//	Salesforce B2C   orderNo "som-…" → StatusTransitionNotPossibleException,
//	                 "illegal-…" → IllegalOrderIntegrationStateException,
//	                 "missing-…" → 404 OrderNotFoundException
//	all              "hostile-html" (502 HTML page), "hostile-200html",
//	                 "hostile-empty" (200, empty body), "hostile-10mb" (200, 10 MB),
//	                 "hostile-false" (200 {"success":false}), "hostile-slow" (sleeps 2s)
package platformsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Request is one request a simulator received.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         string
}

// recorder counts and keeps requests; it is safe for concurrent use.
type recorder struct {
	mu       sync.Mutex
	reqs     []Request
	byPath   map[string]int
	tokenN   int
	tokens   map[string]bool // valid access tokens
	tokenTTL time.Duration
	tokenOff bool // token endpoint answers 503

	lean    bool           // keep no requests, only counts
	applied map[string]int // subject → changes applied
	keys    map[string]bool
	replays int
}

// Lean makes the simulator keep no request (only counts), for long runs:
// Requests then returns nothing.
func (r *recorder) Lean() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lean = true
	r.reqs = nil
}

// apply records that a change to subject was applied, once per
// Idempotency-Key: it reports false for a key already applied (a replay,
// which the platform answers again without applying it twice).
func (r *recorder) apply(subject string, req *http.Request) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applied == nil {
		r.applied = map[string]int{}
		r.keys = map[string]bool{}
	}
	if k := req.Header.Get("Idempotency-Key"); k != "" {
		if r.keys[k] {
			r.replays++
			return false
		}
		r.keys[k] = true
	}
	r.applied[subject]++
	return true
}

// Applied returns how many changes were applied to subject (repeats of an
// Idempotency-Key not counted).
func (r *recorder) Applied(subject string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied[subject]
}

// AppliedAll returns the changes applied per subject.
func (r *recorder) AppliedAll() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.applied))
	for k, v := range r.applied {
		out[k] = v
	}
	return out
}

// Replays returns how many requests repeated an Idempotency-Key already
// applied.
func (r *recorder) Replays() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replays
}

func (r *recorder) record(req *http.Request) Request {
	b, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	rq := Request{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: string(b)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lean {
		r.reqs = append(r.reqs, rq)
	}
	if r.byPath == nil {
		r.byPath = map[string]int{}
	}
	r.byPath[req.URL.Path]++
	return rq
}

// Requests returns the requests received so far.
func (r *recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Count returns how many requests path received.
func (r *recorder) Count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byPath[path]
}

// Total returns how many requests were received.
func (r *recorder) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// TokensIssued returns how many access tokens the token endpoint issued.
func (r *recorder) TokensIssued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokenN
}

// ExpireTokens makes every issued token invalid (the next call with one
// answers 401), as a server-side revocation or expiry would.
func (r *recorder) ExpireTokens() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens = map[string]bool{}
}

// SetTokenEndpointDown makes the token endpoint answer 503 (down) or
// work again.
func (r *recorder) SetTokenEndpointDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokenOff = down
}

// SetTokenTTL sets the expires_in of issued tokens (default 1h).
func (r *recorder) SetTokenTTL(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokenTTL = d
}

// issue answers a token request with a new token, or 503 when down.
func (r *recorder) issue(w http.ResponseWriter, prefix string) {
	r.mu.Lock()
	if r.tokenOff {
		r.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "temporarily_unavailable"})
		return
	}
	r.tokenN++
	tok := fmt.Sprintf("%s-access-%d-%d", prefix, r.tokenN, time.Now().UnixNano())
	if r.tokens == nil {
		r.tokens = map[string]bool{}
	}
	r.tokens[tok] = true
	ttl := r.tokenTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	r.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(ttl / time.Second)})
}

// bearerOK reports whether the request carries a token the simulator
// issued and still accepts.
func (r *recorder) bearerOK(req *http.Request) bool {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokens[tok]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// hostile answers the shared hostile ids; it reports whether it did.
func hostile(w http.ResponseWriter, id string) bool {
	switch id {
	case "hostile-html":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>")
	case "hostile-200html":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<html><body>Maintenance</body></html>")
	case "hostile-empty":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
	case "hostile-10mb":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"pad":"`)
		chunk := strings.Repeat("x", 64<<10)
		for range 160 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return true
			}
		}
		_, _ = io.WriteString(w, `"}`)
	case "hostile-false":
		writeJSON(w, http.StatusOK, map[string]any{"success": false})
	case "hostile-slow":
		time.Sleep(2 * time.Second)
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "code": "SOI003"})
	default:
		return false
	}
	return true
}

// basicAuth returns the user and password of an HTTP basic header.
func basicAuth(req *http.Request) (string, string, bool) {
	v, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Basic ")
	if !ok {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", "", false
	}
	u, p, ok := strings.Cut(string(b), ":")
	return u, p, ok
}
