package rabbitmq

import "errors"

var (
	// ErrInvalidURL is returned by New when Config.URL is not an amqp://
	// or amqps:// URL.
	ErrInvalidURL = errors.New("rabbitmq broker: invalid URL")
	// ErrAlreadyStarted is returned by a second call to Broker.Start.
	ErrAlreadyStarted = errors.New("rabbitmq broker: already started")
	// ErrNilHandler is returned by Broker.Start when the handler is nil.
	ErrNilHandler = errors.New("rabbitmq broker: nil handler")
	// ErrNotStarted is returned by every call but Close before Start.
	ErrNotStarted = errors.New("rabbitmq broker: not started")

	// errMalformed marks a message this broker cannot parse (written by an
	// incompatible version, or not by Ferry at all).
	errMalformed = errors.New("rabbitmq broker: malformed message")
	// errWriter marks a failure the shard's writer reported.
	errWriter = errors.New("rabbitmq broker: shard writer")
)
