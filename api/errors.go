package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
)

// Kind classifies an API error; statusByKind maps each kind to its HTTP
// status. Kinds are stable and appear as the default "code" of an error.
type Kind string

// Error kinds.
const (
	KindInvalid             Kind = "invalid"              // bad input: body, query, parameters
	KindUnauthenticated     Kind = "unauthenticated"      // no or unknown token / session
	KindForbidden           Kind = "forbidden"            // role too low, bad CSRF token
	KindNotFound            Kind = "not_found"            // unknown job, run or route
	KindMethodNotAllowed    Kind = "method_not_allowed"   // route exists for other methods
	KindConflict            Kind = "conflict"             // run finished (cancel) or still active (retry)
	KindTooLarge            Kind = "too_large"            // request body over MaxBodyBytes
	KindUnsupportedMedia    Kind = "unsupported_media"    // a body that is not JSON
	KindIdempotencyMismatch Kind = "idempotency_mismatch" // key reused with other parameters
	KindInternal            Kind = "internal"             // a bug
	KindNotImplemented      Kind = "not_implemented"      // feature not configured (reload)
	KindUnavailable         Kind = "unavailable"          // database unreachable: nothing was stored
)

// statusByKind is the one table mapping error kinds to HTTP statuses.
var statusByKind = map[Kind]int{
	KindInvalid:             http.StatusBadRequest,
	KindUnauthenticated:     http.StatusUnauthorized,
	KindForbidden:           http.StatusForbidden,
	KindNotFound:            http.StatusNotFound,
	KindMethodNotAllowed:    http.StatusMethodNotAllowed,
	KindConflict:            http.StatusConflict,
	KindTooLarge:            http.StatusRequestEntityTooLarge,
	KindUnsupportedMedia:    http.StatusUnsupportedMediaType,
	KindIdempotencyMismatch: http.StatusUnprocessableEntity,
	KindInternal:            http.StatusInternalServerError,
	KindNotImplemented:      http.StatusNotImplemented,
	KindUnavailable:         http.StatusServiceUnavailable,
}

// RetryAfterSeconds is the Retry-After sent with 503 answers.
const RetryAfterSeconds = 5

// Error is an error with a kind, a stable code, a message safe to show to
// the caller and, for input errors, messages by field. It is what every
// handler returns and what the API writes as
// {"error":{"code","message","fields"}}.
type Error struct {
	Kind    Kind
	Code    string            // default: the kind
	Message string            // shown to the caller: never a secret or a raw database error
	Fields  map[string]string // by field or parameter name; may be nil
	// Err is the cause, logged but never shown.
	Err error
}

// Error returns "code: message".
func (e *Error) Error() string { return e.code() + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Status returns the HTTP status of e's kind (500 for an unknown kind).
func (e *Error) Status() int {
	if s, ok := statusByKind[e.Kind]; ok {
		return s
	}
	return http.StatusInternalServerError
}

func (e *Error) code() string {
	if e.Code != "" {
		return e.Code
	}
	return string(e.Kind)
}

func errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON shape of every API error.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// asError converts any error to an *Error: an *Error as it is,
// definitions.ParamErrors as a 400 with one field per parameter, a body
// over the limit as 413, the store's sentinel errors by kind, a cancelled
// request context as 503 and anything else as a 500 whose message hides
// the cause.
func asError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var pe definitions.ParamErrors
	if errors.As(err, &pe) {
		return &Error{Kind: KindInvalid, Code: "invalid_parameters", Message: "some parameters are not valid: see fields", Fields: pe.Fields(), Err: err}
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return &Error{Kind: KindTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", mb.Limit), Err: err}
	}
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return &Error{Kind: KindNotFound, Code: "run_not_found", Message: "no run with that id", Err: err}
	case errors.Is(err, jobs.ErrFinished):
		return &Error{Kind: KindConflict, Code: "run_finished", Message: "the run has already finished", Err: err}
	case errors.Is(err, jobs.ErrNotFinished):
		return &Error{Kind: KindConflict, Code: "run_active", Message: "the run is still queued or running: only a finished run can be retried", Err: err}
	case errors.Is(err, jobs.ErrIdempotencyMismatch):
		return &Error{Kind: KindIdempotencyMismatch, Code: "idempotency_key_reused", Message: "this idempotency key was already used with other parameters", Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindUnavailable, Message: "the request was cancelled or timed out; nothing was stored", Err: err}
	}
	return &Error{Kind: KindInternal, Message: "internal error", Err: err}
}

// storeError converts an error of the run store: its sentinel errors by
// kind (asError), and anything else — the database is unreachable, closed,
// read-only or timing out — as 503 "unavailable". The store writes each
// change in one transaction, so such an error means nothing was accepted.
func storeError(err error) *Error {
	if errors.Is(err, jobs.ErrOutcomeUnknown) {
		return &Error{Kind: KindUnavailable, Code: "outcome_unknown", Err: err,
			Message: "the database connection was lost while the run was being stored and it could not be checked: the run may exist; look for it (GET /api/v1/runs?job=…) or retry with an idempotencyKey, which never makes a second run"}
	}
	e := asError(err)
	if e.Kind == KindInternal {
		return &Error{Kind: KindUnavailable, Code: "database_unavailable", Message: "the database is unavailable; nothing was stored, try again later", Err: err}
	}
	return e
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// writeError writes err in the API's error shape, with Retry-After on 503
// and WWW-Authenticate on 401, and logs causes of 5xx answers.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := asError(err)
	status := e.Status()
	switch status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="jobrunner"`)
	}
	switch {
	case status == http.StatusServiceUnavailable && e.Kind == KindUnavailable:
		s.outage.Fail(e.Err, logrus.Fields{"path": r.URL.Path, "answer": e.Error()})
	case status >= 500:
		s.log().WithError(e.Err).WithField("path", r.URL.Path).Warnf("api: %s", e.Error())
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: e.code(), Message: e.Message, Fields: e.Fields}})
}
