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
//   - *RetryLaterError: OutcomeSnooze, code "RETRY_LATER", Delay its After.
//   - context.Canceled: OutcomeCancelled, code "CANCELLED".
//   - context.DeadlineExceeded: OutcomeTimeout, code "TIMEOUT" (retryable).
//   - *RetryError: OutcomeRetry, code "ERROR", Delay its After.
//   - anything else: OutcomeRetry, code "ERROR", Delay 0.
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
		o := Outcome{Kind: OutcomeSnooze, Code: CodeRetryLater, Message: later.Reason, Delay: later.After}
		if o.Message == "" {
			o.Message = msg
		}
		return o
	}
	if errors.Is(err, context.Canceled) {
		return Outcome{Kind: OutcomeCancelled, Code: CodeCancelled, Message: msg}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Outcome{Kind: OutcomeTimeout, Code: CodeTimeout, Message: msg}
	}
	var retry *RetryError
	if errors.As(err, &retry) {
		return Outcome{Kind: OutcomeRetry, Code: CodeError, Message: msg, Delay: max(retry.After, 0)}
	}
	return Outcome{Kind: OutcomeRetry, Code: CodeError, Message: msg}
}
