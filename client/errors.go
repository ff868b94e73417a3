package client

import (
	"errors"
	"fmt"

	"github.com/ferry-io/ferry/protocol"
)

var (
	// ErrClosed is returned by calls on a closed client, and wrapped by the
	// error that ended a client the server closed for good (see Err).
	ErrClosed = errors.New("ferry client closed")

	// ErrAlreadySubscribed is returned by Subscribe for a channel the
	// client is already subscribed to.
	ErrAlreadySubscribed = errors.New("already subscribed")

	// errUnsubscribed ends a subscription that Unsubscribe ended (its Err
	// returns nil).
	errUnsubscribed = errors.New("unsubscribed")

	// ErrGaveUp wraps the last connection error when Backoff.MaxAttempts
	// attempts in a row failed.
	ErrGaveUp = errors.New("gave up reconnecting")

	// ErrTooLarge is returned by Publish when the frame would exceed the
	// server's max_frame_bytes (which would close the connection).
	ErrTooLarge = errors.New("frame larger than the server accepts")

	// ErrInvalidConfig wraps the errors of New for a bad URL or Config.
	ErrInvalidConfig = errors.New("invalid client config")

	// errDisconnected fails a request that cannot outlive its connection
	// (refresh, the resume barrier).
	errDisconnected = errors.New("connection lost")
)

// ServerError is an error frame from the server: Code is one of the
// protocol's error codes (400, 401, 403, 404, 409, 413, 429, 500, 503),
// and Retry says whether the same request may succeed later. Request
// methods return it (wrapped); find it with errors.As.
type ServerError = protocol.Error

// CloseError says the server closed the connection with Code and the client
// did not reconnect (a code after which the protocol says not to, or 4015
// without Config.GetToken).
type CloseError struct {
	Code   int
	Reason string
}

// Error names the code and its meaning.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("closed by the server with %d (%s)", e.Code, closeCodeName(e.Code))
	}
	return fmt.Sprintf("closed by the server with %d (%s): %s", e.Code, closeCodeName(e.Code), e.Reason)
}

// HandshakeError says the server refused the WebSocket handshake with an
// HTTP status (401 bad token, 403 origin, 429 rate limit, 503 draining...).
type HandshakeError struct {
	StatusCode int
	Reason     string // the reason of the server's JSON error, if any
}

// Error gives the HTTP status and the server's reason.
func (e *HandshakeError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("handshake refused: HTTP %d", e.StatusCode)
	}
	return fmt.Sprintf("handshake refused: HTTP %d: %s", e.StatusCode, e.Reason)
}

// closeCodeName names the protocol's close codes for messages.
func closeCodeName(code int) string {
	switch code {
	case protocol.CloseNormal:
		return "normal"
	case protocol.CloseUnauthorized:
		return "unauthorized"
	case protocol.CloseForbidden:
		return "forbidden"
	case protocol.CloseRateLimited:
		return "rate limited"
	case protocol.CloseTooBig:
		return "frame too big"
	case protocol.CloseSlowConsumer:
		return "slow consumer"
	case protocol.CloseEvicted:
		return "evicted: too many connections"
	case protocol.CloseHeartbeat:
		return "heartbeat timeout"
	case protocol.CloseDraining:
		return "server draining"
	case protocol.CloseProtocolError:
		return "protocol error"
	case protocol.CloseTokenExpired:
		return "token expired"
	case protocol.CloseSessionTakenOver:
		return "session taken over"
	}
	return "unknown"
}

// closedError is what calls return once the client has ended for cause (nil
// after Close).
func closedError(cause error) error {
	if cause == nil || errors.Is(cause, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}
