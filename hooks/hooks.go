// Package hooks owns inbound triggers at run time: checking a hook call's
// caller (HMAC signature over the body with an optional signed timestamp
// against replays, a bearer token, or a token header; every comparison in
// constant time), reading the job's parameters and the event id out of
// the JSON payload, and keeping each hook's call counts and last calls
// for the API, the dashboard and metrics.
//
// The hook definitions (definitions.Hook) say what to check and map; the
// HTTP endpoint POST /hooks/{name} (package api) does the calling.
package hooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/jobrunner/jobrunner/definitions"
)

// Errors of [Verify]; their text is safe to show the caller.
var (
	ErrNoSignature  = errors.New("hooks: the call carries no signature or token")
	ErrBadSignature = errors.New("hooks: the signature or token does not match")
	ErrStale        = errors.New("hooks: the signed timestamp is missing, invalid or outside the allowed window (a replay?)")
	ErrNoSecret     = errors.New("hooks: the hook's secret is not set on this instance")
)

// Verify checks that a call to h with header and body comes from a
// caller that knows secret (the value of h.Auth.Secret's variable; ""
// gives ErrNoSecret). now is the time to judge a signed timestamp by.
func Verify(h *definitions.Hook, header http.Header, body []byte, secret string, now time.Time) error {
	if secret == "" {
		return ErrNoSecret
	}
	a := h.Auth
	switch a.Type {
	case definitions.HookAuthBearer:
		tok, ok := strings.CutPrefix(header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			return ErrNoSignature
		}
		return equal(tok, secret)
	case definitions.HookAuthHeader:
		tok := header.Get(a.Header)
		if tok == "" {
			return ErrNoSignature
		}
		return equal(tok, secret)
	case definitions.HookAuthHMAC:
		name := a.Header
		if name == "" {
			name = definitions.DefaultHookSignatureHeader
		}
		got := strings.TrimSpace(header.Get(name))
		if got == "" {
			return ErrNoSignature
		}
		if a.Prefix != "" {
			rest, ok := strings.CutPrefix(got, a.Prefix)
			if !ok {
				return ErrBadSignature
			}
			got = rest
		}
		mac := hmac.New(sha256.New, []byte(secret))
		if a.TimestampHeader != "" {
			ts := strings.TrimSpace(header.Get(a.TimestampHeader))
			sec, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return ErrStale
			}
			tol := a.Tolerance.D()
			if tol <= 0 {
				tol = definitions.DefaultHookTolerance
			}
			if d := now.Sub(time.Unix(sec, 0)); d > tol || d < -tol {
				return ErrStale
			}
			mac.Write([]byte(ts + "."))
		}
		mac.Write(body)
		want := mac.Sum(nil)
		var sig []byte
		var err error
		if a.Encoding == "base64" {
			sig, err = base64.StdEncoding.DecodeString(got)
		} else {
			sig, err = hex.DecodeString(strings.ToLower(got))
		}
		if err != nil || !hmac.Equal(sig, want) {
			return ErrBadSignature
		}
		return nil
	}
	return fmt.Errorf("hooks: hook %s has unknown auth type %q", h.Name, a.Type)
}

func equal(got, want string) error {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want)) // equal lengths: no length leak
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return ErrBadSignature
	}
	return nil
}

// Sign returns the signature header value a sender puts on body for h
// with secret (and, when h signs a timestamp, the timestamp ts): for tests
// and for documenting the scheme.
func Sign(h *definitions.Hook, secret string, body []byte, ts int64) string {
	mac := hmac.New(sha256.New, []byte(secret))
	if h.Auth.TimestampHeader != "" {
		mac.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	}
	mac.Write(body)
	sum := mac.Sum(nil)
	if h.Auth.Encoding == "base64" {
		return h.Auth.Prefix + base64.StdEncoding.EncodeToString(sum)
	}
	return h.Auth.Prefix + hex.EncodeToString(sum)
}

// Payload is a decoded hook payload.
type Payload struct {
	raw []byte
	obj map[string]any
}

// ErrNotObject is returned by [Decode] for a body that is not a JSON
// object.
var ErrNotObject = errors.New("hooks: the payload is not a JSON object")

// Decode parses body, which must be one JSON object.
func Decode(body []byte) (*Payload, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("hooks: invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("hooks: invalid JSON: data after the JSON value")
	}
	obj, ok := normalize(v).(map[string]any)
	if !ok {
		return nil, ErrNotObject
	}
	return &Payload{raw: body, obj: obj}, nil
}

// normalize turns the decoder's json.Number values into int64 (whole
// numbers that fit) or float64, so that filters compare them with number
// literals.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	}
	return v
}

// Object returns the payload as a map (for the filter).
func (p *Payload) Object() map[string]any { return p.obj }

// text returns the value at path as parameter text: a string as is, a
// number or boolean as written; false when absent, null, or an object or
// list.
func (p *Payload) text(path string) (string, bool, string) {
	r := gjson.GetBytes(p.raw, path)
	switch {
	case !r.Exists() || r.Type == gjson.Null:
		return "", false, "missing"
	case r.IsObject() || r.IsArray():
		return "", false, "an object or list, not a value"
	case r.Type == gjson.String:
		return r.Str, true, ""
	}
	return r.Raw, true, ""
}

// Params returns the text of each job parameter h maps, read from p (and
// those it sets), and the problems per parameter (a path the payload does
// not have).
func Params(h *definitions.Hook, p *Payload) (map[string]string, map[string]string) {
	out := map[string]string{}
	for k, v := range h.Set {
		out[k] = v
	}
	bad := map[string]string{}
	names := make([]string, 0, len(h.Parameters))
	for n := range h.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := h.ParamPath(name)
		v, ok, why := p.text(path)
		if !ok {
			bad[name] = fmt.Sprintf("payload field %s is %s", path, why)
			continue
		}
		out[name] = v
	}
	return out, bad
}

// EventID returns the event id h names in p: the values of its event
// paths joined by NUL ("" and nil when h names none), or an error when
// the payload lacks one.
func EventID(h *definitions.Hook, p *Payload) (string, error) {
	var parts []string
	for _, path := range h.EventPaths() {
		v, ok, why := p.text(path)
		if !ok || v == "" {
			if why == "" {
				why = "empty"
			}
			return "", fmt.Errorf("payload field %s (the event id) is %s", path, why)
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, "\x00"), nil
}

// IdempotencyKey returns the run idempotency key of an event of hook:
// "hook:<name>:" and 32 hex digits of the event id's SHA-256.
func IdempotencyKey(hook, eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return "hook:" + hook + ":" + hex.EncodeToString(sum[:16])
}

// Outcome is how a hook call ended.
type Outcome string

// Outcomes, as counted and shown.
const (
	Accepted     Outcome = "accepted"     // 202: a run was started
	Duplicate    Outcome = "duplicate"    // 202: the event's run already existed
	Filtered     Outcome = "filtered"     // 204: the filter did not match
	Unauthorized Outcome = "unauthorized" // 401: bad or missing signature, stale timestamp
	Invalid      Outcome = "invalid"      // 400/413/415/422: a payload that cannot start the job
	Unavailable  Outcome = "unavailable"  // 503: the secret is missing, or the database is down
)

// Outcomes lists every outcome.
var Outcomes = []Outcome{Accepted, Duplicate, Filtered, Unauthorized, Invalid, Unavailable}

// Refused reports whether o refused the call.
func (o Outcome) Refused() bool { return o == Unauthorized || o == Invalid || o == Unavailable }

// Call is one recorded hook call.
type Call struct {
	Time    time.Time `json:"time"`
	Outcome Outcome   `json:"outcome"`
	Status  int       `json:"status"`
	// RunID is the started (or existing) run; 0 for none.
	RunID int64 `json:"runId,omitempty"`
	// Reason says why a call was refused or filtered (never a secret or
	// payload value).
	Reason string `json:"reason,omitempty"`
}

// LastCalls is how many calls per hook [Stats] keeps.
const LastCalls = 20

// Stats counts each hook's calls by outcome and keeps its last calls, in
// memory (per instance, since the start). It is safe for concurrent use;
// the zero value is ready.
type Stats struct {
	mu    sync.Mutex
	hooks map[string]*hookStats
}

type hookStats struct {
	counts map[Outcome]int64
	last   []Call // ring, newest at (next-1)
	next   int
}

// Record counts c for hook.
func (s *Stats) Record(hook string, c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hooks == nil {
		s.hooks = map[string]*hookStats{}
	}
	h := s.hooks[hook]
	if h == nil {
		h = &hookStats{counts: map[Outcome]int64{}}
		s.hooks[hook] = h
	}
	h.counts[c.Outcome]++
	if len(h.last) < LastCalls {
		h.last = append(h.last, c)
	} else {
		h.last[h.next] = c
	}
	h.next = (h.next + 1) % LastCalls
}

// Summary is one hook's counts and last calls.
type Summary struct {
	Counts map[Outcome]int64 `json:"counts"`
	// Accepted counts calls that started or found a run; Refused those
	// refused (unauthorized, invalid, unavailable); Filtered those the
	// filter passed over.
	Accepted, Refused, Filtered int64
	// Last are the last calls, newest first.
	Last []Call `json:"last"`
}

// Of returns hook's summary (zero counts when never called).
func (s *Stats) Of(hook string) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Summary{Counts: map[Outcome]int64{}, Last: []Call{}}
	for _, o := range Outcomes {
		out.Counts[o] = 0
	}
	h := s.hooks[hook]
	if h == nil {
		return out
	}
	for o, n := range h.counts {
		out.Counts[o] = n
		switch {
		case o == Accepted || o == Duplicate:
			out.Accepted += n
		case o == Filtered:
			out.Filtered += n
		case o.Refused():
			out.Refused += n
		}
	}
	for i := range len(h.last) {
		j := (h.next - 1 - i + 2*LastCalls) % LastCalls
		if j < len(h.last) {
			out.Last = append(out.Last, h.last[j])
		}
	}
	return out
}
