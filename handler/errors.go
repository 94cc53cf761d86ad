package handler

import "errors"

// Error types recorded with a failed attempt. Handlers may use their own
// types through NewError; these are the ones Tasker itself reports.
const (
	ErrorTypePanic          = "handler_panic"
	ErrorTypeTimeout        = "handler_timeout"
	ErrorTypeUnknownHandler = "handler_not_found"
	ErrorTypeLeaseExpired   = "lease_expired"
	ErrorTypeRetryable      = "retryable_error"
	ErrorTypePermanent      = "permanent_error"
	ErrorTypeCancelled      = "task_cancelled"
)

// Error is a classified step failure: its type and code are stored with the
// attempt and shown by the API, and Retryable decides whether the step runs
// again while attempts remain.
type Error struct {
	Type      string
	Code      string
	Retryable bool
	Err       error
}

// Error returns the message of the wrapped error.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Type
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as a failure that is never retried (bad input, a
// business rule): the step fails at once and the task ends in error.
func Permanent(err error) error { return NewError(ErrorTypePermanent, "", false, err) }

// Retryable marks err as a failure that is retried while attempts remain.
// A plain error is retryable too; Retryable states it explicitly.
func Retryable(err error) error { return NewError(ErrorTypeRetryable, "", true, err) }

// NewError returns a failure with an explicit type and code (e.g. a payment
// provider's decline code), retried or not as retryable says.
func NewError(errType, code string, retryable bool, err error) error {
	if err == nil {
		err = errors.New("unknown error")
	}
	return &Error{Type: errType, Code: code, Retryable: retryable, Err: err}
}

// Classify returns how the worker records err: the *Error in its chain, or a
// retryable error of type ErrorTypeRetryable for any other error. It returns
// nil for a nil err.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		out := *e
		if out.Type == "" {
			out.Type = ErrorTypeRetryable
			if !out.Retryable {
				out.Type = ErrorTypePermanent
			}
		}
		// Keep the outer message: wrapping adds context the operator needs.
		out.Err = err
		return &out
	}
	return &Error{Type: ErrorTypeRetryable, Retryable: true, Err: err}
}

// IsPermanent reports whether err fails its step without a retry.
func IsPermanent(err error) bool {
	e := Classify(err)
	return e != nil && !e.Retryable
}
