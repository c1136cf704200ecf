package processors

import (
	"context"
	"errors"
	"time"
)

// OutcomeKind says what an attempt's error means for the run.
type OutcomeKind int

// Outcome kinds, see [Classify].
const (
	// OutcomeSuccess: the attempt succeeded (nil error).
	OutcomeSuccess OutcomeKind = iota
	// OutcomePermanent: fail the run now ([PermanentError]).
	OutcomePermanent
	// OutcomeSnooze: come back later without consuming an attempt
	// ([RetryLaterError]).
	OutcomeSnooze
	// OutcomeRetry: the attempt failed; retry while attempts remain
	// ([RetryError] or any other error).
	OutcomeRetry
	// OutcomeCancelled: the run ends cancelled ([CancelError] or
	// context.Canceled).
	OutcomeCancelled
	// OutcomeTimeout: the attempt ran out of time (context.DeadlineExceeded);
	// retried like OutcomeRetry.
	OutcomeTimeout
)

// String returns the kind's lower-case name ("success", "permanent",
// "snooze", "retry", "cancelled", "timeout").
func (k OutcomeKind) String() string {
	switch k {
	case OutcomeSuccess:
		return "success"
	case OutcomePermanent:
		return "permanent"
	case OutcomeSnooze:
		return "snooze"
	case OutcomeRetry:
		return "retry"
	case OutcomeCancelled:
		return "cancelled"
	case OutcomeTimeout:
		return "timeout"
	}
	return "unknown"
}

// Error codes set by [Classify] when the error carries none.
const (
	CodeError      = "ERROR"       // a plain (retryable) error
	CodePermanent  = "PERMANENT"   // a PermanentError without a code
	CodeRetryLater = "RETRY_LATER" // a RetryLaterError
	CodeCancelled  = "CANCELLED"   // a CancelError or context.Canceled
	CodeTimeout    = "TIMEOUT"     // context.DeadlineExceeded
)

// Outcome is what an attempt's error means: its kind, the error code and
// message to record, and the wanted delay before the next attempt (0: use
// the job's backoff).
type Outcome struct {
	Kind    OutcomeKind
	Code    string
	Message string
	Delay   time.Duration
	// Horizon is a snooze's horizon ([RetryLaterError.Horizon]); 0: the
	// job's MaxSnoozes applies.
	Horizon time.Duration
}

// Retryable reports whether the run may be retried (OutcomeRetry or
// OutcomeTimeout), consuming an attempt.
func (o Outcome) Retryable() bool { return o.Kind == OutcomeRetry || o.Kind == OutcomeTimeout }

// Classify maps a processor's error to an [Outcome]. Wrapped errors are
// classified by what they wrap (errors.As / errors.Is); the first match in
// this order wins:
//
//   - nil: OutcomeSuccess.
//   - *PermanentError: OutcomePermanent with its Code (default "PERMANENT")
//     and Message (default err.Error()).
//   - *CancelError: OutcomeCancelled, code "CANCELLED", its Reason.
//   - *RetryLaterError: OutcomeSnooze, its Code (default "RETRY_LATER"),
//     Delay its After, its Horizon.
//   - context.Canceled: OutcomeCancelled, code "CANCELLED".
//   - context.DeadlineExceeded: OutcomeTimeout, code "TIMEOUT" (retryable).
//   - *RetryError: OutcomeRetry, Delay its After.
//   - anything else: OutcomeRetry, Delay 0.
//
// A retried error's code is "ERROR", or what the error names through an
// ErrorCode() string method (found with errors.As); when that error also
// has an ErrorMessage() string method, it is the message.
//
// Message is err.Error() unless said otherwise.
func Classify(err error) Outcome {
	if err == nil {
		return Outcome{Kind: OutcomeSuccess}
	}
	msg := err.Error()
	var perm *PermanentError
	if errors.As(err, &perm) {
		o := Outcome{Kind: OutcomePermanent, Code: perm.Code, Message: perm.Message}
		if o.Code == "" {
			o.Code = CodePermanent
		}
		if o.Message == "" {
			o.Message = msg
		}
		return o
	}
	var cancel *CancelError
	if errors.As(err, &cancel) {
		o := Outcome{Kind: OutcomeCancelled, Code: CodeCancelled, Message: cancel.Reason}
		if o.Message == "" {
			o.Message = msg
		}
		return o
	}
	var later *RetryLaterError
	if errors.As(err, &later) {
		o := Outcome{Kind: OutcomeSnooze, Code: later.Code, Message: later.Reason, Delay: later.After, Horizon: later.Horizon}
		if o.Code == "" {
			o.Code = CodeRetryLater
		}
		if o.Message == "" {
			o.Message = msg
		}
		return o
	}
	if errors.Is(err, context.Canceled) {
		return Outcome{Kind: OutcomeCancelled, Code: CodeCancelled, Message: msg}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		var cm codedMessage
		if errors.As(err, &cm) && cm.ErrorMessage() != "" {
			msg = cm.ErrorMessage()
		}
		return Outcome{Kind: OutcomeTimeout, Code: CodeTimeout, Message: msg}
	}
	code := CodeError
	var c coded
	if errors.As(err, &c) && c.ErrorCode() != "" {
		code = c.ErrorCode()
		if m, ok := c.(interface{ ErrorMessage() string }); ok && m.ErrorMessage() != "" {
			msg = m.ErrorMessage()
		}
	}
	var retry *RetryError
	if errors.As(err, &retry) {
		return Outcome{Kind: OutcomeRetry, Code: code, Message: msg, Delay: max(retry.After, 0)}
	}
	return Outcome{Kind: OutcomeRetry, Code: code, Message: msg}
}

// coded is an error that names its code (e.g. httperp.Error's
// ERP_UNAVAILABLE or a platform's own "200100"); Classify records it for
// retried attempts instead of "ERROR".
type coded interface{ ErrorCode() string }

// codedMessage is a coded error that also gives its message without the
// code.
type codedMessage interface {
	coded
	ErrorMessage() string
}
