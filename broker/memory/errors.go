package memory

import "errors"

var (
	// ErrAlreadyStarted is returned by a second call to Broker.Start.
	ErrAlreadyStarted = errors.New("memory broker: already started")
	// ErrNilHandler is returned by Broker.Start when the handler is nil.
	ErrNilHandler = errors.New("memory broker: nil handler")
)
