package bench

import "errors"

var (
	// ErrConfig is wrapped by every error about a bad Config.
	ErrConfig = errors.New("bench: bad configuration")
	// ErrUnsupportedURL is returned for URLs the bench client cannot reach
	// (TLS, or a scheme other than http/ws).
	ErrUnsupportedURL = errors.New("bench: unsupported URL")
	// ErrHandshake is wrapped by errors of the WebSocket opening handshake
	// (a status other than 101, a wrong accept key).
	ErrHandshake = errors.New("bench: handshake refused")
	// ErrClosed is wrapped when the server closed a connection before it was
	// ready (a disconnect frame, a close frame or the end of the stream).
	ErrClosed = errors.New("bench: connection closed by the server")
	// ErrRefused is wrapped when the server answered connect or subscribe
	// with an error frame.
	ErrRefused = errors.New("bench: request refused")
	// ErrWorker is wrapped by errors of a worker process (it died, broke
	// the protocol, or reported a failure).
	ErrWorker = errors.New("bench: worker failed")
	// ErrStats is wrapped when GET /v1/api/stats fails.
	ErrStats = errors.New("bench: server stats unavailable")
)
