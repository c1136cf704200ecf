package processors

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the registry.
var (
	// ErrProcessorNotFound is returned by Resolve when no processor of that
	// name is registered.
	ErrProcessorNotFound = errors.New("processors: processor not found")
	// ErrUnsupportedConnection is returned by Resolve when the processor
	// exists but not for the connection's type.
	ErrUnsupportedConnection = errors.New("processors: processor does not support connection type")
	// ErrDuplicate is returned by RegisterSafely for a (name, connection
	// type) pair registered twice.
	ErrDuplicate = errors.New("processors: duplicate registration")
	// ErrPreviewUnsupported is returned by Resolve when a preview is asked
	// of a processor that does not support it.
	ErrPreviewUnsupported = errors.New("processors: processor does not support preview")
)

// PermanentError is a failure that retrying cannot fix (the ERP refused:
// "Cancel failed as order is in [Shipped] state"). Code is a stable code
// (the ERP's own code when it gave one, e.g. ORDER_NOT_FOUND); Message is
// kept verbatim.
type PermanentError struct {
	Code    string
	Message string
}

// Error returns "CODE: message".
func (e *PermanentError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// Permanent returns a *PermanentError: the run fails now, remaining
// attempts are not used.
func Permanent(code, message string) error {
	return &PermanentError{Code: code, Message: message}
}

// RetryLaterError asks to come back later without consuming an attempt
// (the ERP said 429/503 with Retry-After, or an order awaits manual
// authorization). The job's MaxSnoozes caps how often; past it the run
// fails with code SNOOZE_LIMIT.
type RetryLaterError struct {
	// After is the wanted delay; 0 uses the job's backoff.
	After  time.Duration
	Reason string
	// Code is the code of what asked for it (the platform's own, e.g.
	// VTEX "EOI011", or "HTTP_429"); recorded with the snooze. Default
	// "RETRY_LATER".
	Code string
	// Horizon, when positive, replaces the job's MaxSnoozes cap: the run
	// keeps coming back until Horizon has passed since it was created,
	// then fails with Code and Reason. For waits that end when someone
	// acts (an order awaiting manual authorization), not after N tries.
	Horizon time.Duration
}

// Error describes the request.
func (e *RetryLaterError) Error() string {
	return fmt.Sprintf("retry later (after %s): %s", e.After, e.Reason)
}

// RetryLater returns a *RetryLaterError.
func RetryLater(after time.Duration, reason string) error {
	return &RetryLaterError{After: after, Reason: reason}
}

// RetryLaterCode returns a *RetryLaterError that records code as what
// caused it.
func RetryLaterCode(after time.Duration, code, reason string) error {
	return &RetryLaterError{After: after, Reason: reason, Code: code}
}

// RetryError is a failed attempt that consumes an attempt and asks for a
// specific delay before the next one instead of the job's backoff.
type RetryError struct {
	After time.Duration
	Err   error
}

// Error returns the wrapped error's text.
func (e *RetryError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *RetryError) Unwrap() error { return e.Err }

// Retry returns a *RetryError wrapping err.
func Retry(after time.Duration, err error) error { return &RetryError{After: after, Err: err} }

// CancelError ends the run as cancelled, by the processor's own decision.
type CancelError struct{ Reason string }

// Error returns "cancelled: reason".
func (e *CancelError) Error() string { return "cancelled: " + e.Reason }

// Cancel returns a *CancelError.
func Cancel(reason string) error { return &CancelError{Reason: reason} }
