package protocol

import (
	"errors"
	"fmt"
)

// Close codes (PROTOCOL.md section 4).
const (
	CloseNormal           = 1000
	CloseUnauthorized     = 4001
	CloseForbidden        = 4003
	CloseRateLimited      = 4008
	CloseTooBig           = 4009
	CloseSlowConsumer     = 4010
	CloseEvicted          = 4011
	CloseHeartbeat        = 4012
	CloseDraining         = 4013
	CloseProtocolError    = 4014
	CloseTokenExpired     = 4015
	CloseSessionTakenOver = 4016
	// CloseBackendUnavailable: the application's back end (a connect or
	// refresh hook) did not answer; reconnect after retry_after_ms.
	CloseBackendUnavailable = 4017
)

// ShouldReconnect reports whether a client should reconnect after the server
// closed its connection with code.
func ShouldReconnect(code int) bool {
	switch code {
	case CloseRateLimited, CloseSlowConsumer, CloseHeartbeat, CloseDraining, CloseTokenExpired, CloseBackendUnavailable:
		return true
	case CloseNormal, CloseUnauthorized, CloseForbidden, CloseTooBig, CloseEvicted, CloseProtocolError, CloseSessionTakenOver:
		return false
	}
	// Codes outside the table (1001 going away, 1006 abnormal, 1011 ...) are
	// network or server trouble: reconnect.
	return code != CloseNormal
}

// Error codes used in error frames and API replies.
const (
	CodeBadRequest   = 400
	CodeUnauthorized = 401
	CodeForbidden    = 403
	CodeNotFound     = 404
	CodeConflict     = 409
	CodeTooLarge     = 413
	CodeRateLimited  = 429
	CodeInternal     = 500
	CodeBadGateway   = 502 // a back-end hook gave a bad answer
	CodeUnavailable  = 503
	// CodeGatewayTimeout: a back-end hook did not answer in time.
	CodeGatewayTimeout = 504
)

// Error is a protocol error: it carries the code the peer sees.
type Error struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	Retry  bool   `json:"retry"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Reason) }

// Errorf builds an *Error with a formatted reason.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...), Retry: code == CodeRateLimited || code >= 500}
}

// AsError returns err as an *Error, or a 500 whose reason is err's text.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternal, Reason: err.Error(), Retry: true}
}

// Priority is a message's delivery class.
type Priority uint8

const (
	PriorityNormal    Priority = iota // dropped after droppable ones when a queue is full
	PriorityCritical                  // never dropped; a consumer that cannot take it is closed (4010)
	PriorityDroppable                 // dropped first, oldest first
)

func (p Priority) String() string {
	switch p {
	case PriorityCritical:
		return "critical"
	case PriorityDroppable:
		return "droppable"
	}
	return "normal"
}

// ParsePriority reads a priority name; "" is normal.
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "", "normal":
		return PriorityNormal, nil
	case "critical":
		return PriorityCritical, nil
	case "droppable":
		return PriorityDroppable, nil
	}
	return PriorityNormal, Errorf(CodeBadRequest, "priority %q: want critical, normal or droppable", s)
}
