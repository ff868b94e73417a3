package nats

import "errors"

var (
	// ErrInvalidURL is returned by New and ParseURL when a URL cannot be
	// parsed.
	ErrInvalidURL = errors.New("nats broker: invalid URL")
	// ErrInvalidConfig is returned by New when a Config field is out of
	// range (a prefix with characters NATS names cannot hold, say).
	ErrInvalidConfig = errors.New("nats broker: invalid config")
	// ErrAlreadyStarted is returned by a second call to Broker.Start.
	ErrAlreadyStarted = errors.New("nats broker: already started")
	// ErrNilHandler is returned by Broker.Start when the handler is nil.
	ErrNilHandler = errors.New("nats broker: nil handler")
	// ErrNotStarted is returned by Subscribe and Unsubscribe before Start.
	ErrNotStarted = errors.New("nats broker: not started")
	// ErrWindowTooLong is returned by Publish when
	// PublishOptions.IdempotencyWindow exceeds Config.MaxRecordTTL, how long
	// the idempotency records can be kept.
	ErrWindowTooLong = errors.New("nats broker: idempotency window longer than Config.MaxRecordTTL")
	// ErrTTLTooLong is returned when a record's ttl exceeds
	// Config.MaxRecordTTL, the age limit of the key-value buckets.
	ErrTTLTooLong = errors.New("nats broker: ttl longer than Config.MaxRecordTTL")

	// errMalformed marks a message this broker cannot parse (written by an
	// incompatible version, or not by Ferry at all).
	errMalformed = errors.New("nats broker: malformed message")
	// errConflict marks a lost compare-and-set race; the caller retries.
	errConflict = errors.New("nats broker: concurrent update")
)
