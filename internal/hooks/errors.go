package hooks

import (
	"errors"
	"fmt"
)

// Why a hook call gave no usable answer. The session maps each to the
// client-visible answer documented in docs/hooks.md.
var (
	// ErrTimeout: the back end did not answer within the hook's timeout.
	ErrTimeout = errors.New("hook: back end timed out")
	// ErrUnavailable: connection refused or reset, or a 5xx status.
	ErrUnavailable = errors.New("hook: back end unavailable")
	// ErrBusy: MaxConcurrent calls were already in flight; not sent.
	ErrBusy = errors.New("hook: too many calls in flight")
	// ErrBreakerOpen: the URL failed too often lately; not sent.
	ErrBreakerOpen = errors.New("hook: circuit breaker open")
	// ErrBadAnswer: the answer was not JSON of the expected shape, was
	// larger than MaxAnswerBytes, or came with an unexpected status.
	ErrBadAnswer = errors.New("hook: bad answer from back end")
)

// callError wraps a sentinel with what happened.
type callError struct {
	kind error
	msg  string
}

func (e *callError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *callError) Unwrap() error { return e.kind }

func fail(kind error, format string, args ...any) error {
	return &callError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
