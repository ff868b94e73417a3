package redis

import "errors"

var (
	// ErrInvalidURL is returned by New when Config.URL cannot be parsed.
	ErrInvalidURL = errors.New("redis broker: invalid URL")
	// ErrAlreadyStarted is returned by a second call to Broker.Start.
	ErrAlreadyStarted = errors.New("redis broker: already started")
	// ErrNilHandler is returned by Broker.Start when the handler is nil.
	ErrNilHandler = errors.New("redis broker: nil handler")
	// ErrNotStarted is returned by Subscribe and Unsubscribe before Start.
	ErrNotStarted = errors.New("redis broker: not started")

	// errMalformed marks a message from Redis this broker cannot parse
	// (written by an incompatible version, or not by Ferry at all).
	errMalformed = errors.New("redis broker: malformed message")
)
