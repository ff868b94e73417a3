package ws

import (
	"errors"
	"strconv"
)

// Sentinel errors returned by Conn methods.
var (
	// ErrClosed is returned by writes on a connection whose close frame was
	// already sent or whose TCP connection is closed.
	ErrClosed = errors.New("websocket: connection closed")

	// ErrServed is returned by Serve when it is called more than once.
	ErrServed = errors.New("websocket: Serve already called")

	// ErrInvalidCloseCode is returned by Close for a code that may not be
	// sent on the wire (see RFC 6455 section 7.4).
	ErrInvalidCloseCode = errors.New("websocket: invalid close code")
)

// HandshakeError is returned by Upgrade when the request is not a valid
// WebSocket opening handshake (or cannot be hijacked). Upgrade has already
// written Status and Reason as the HTTP response when it returns one.
type HandshakeError struct {
	Status int    // HTTP status sent to the client
	Reason string // human-readable cause, also the response body
}

// Error implements error.
func (e *HandshakeError) Error() string {
	return "websocket: handshake refused (" + strconv.Itoa(e.Status) + "): " + e.Reason
}

// protoError is a violation detected while reading: the connection is failed
// with Code in the close frame.
type protoError struct {
	code   int
	reason string
}

func (e *protoError) Error() string {
	return "websocket: protocol error " + strconv.Itoa(e.code) + ": " + e.reason
}

// Close status codes used by this package (RFC 6455 section 7.4.1).
const (
	CloseNormal          = 1000 // normal closure
	CloseGoingAway       = 1001 // endpoint going away
	CloseProtocolError   = 1002 // protocol violation
	CloseUnsupportedData = 1003 // data type not accepted
	CloseNoStatus        = 1005 // reported (never sent) when a close frame had no code
	CloseAbnormal        = 1006 // reported (never sent) when the TCP connection dropped without a close frame
	CloseInvalidPayload  = 1007 // text message that is not UTF-8
	ClosePolicyViolation = 1008 // generic policy violation
	CloseMessageTooBig   = 1009 // message over the size limit
	CloseInternalError   = 1011 // unexpected server condition
)

// validCloseCode reports whether code may appear in a close frame on the
// wire: 1000-1003, 1007-1011 (assigned by RFC 6455 and the IANA registry,
// 1012-1014 included as later registrations), and 3000-4999.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
