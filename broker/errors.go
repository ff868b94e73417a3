package broker

import "errors"

var (
	// ErrNotFound: no such key or session.
	ErrNotFound = errors.New("broker: not found")
	// ErrUnavailable: the broker's backend cannot be reached; the call
	// failed fast. A write that timed out may still have happened (a
	// publish retried with its idempotency key is safe).
	ErrUnavailable = errors.New("broker: unavailable")
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("broker: closed")
	// ErrNoNode: a control message addressed to one node found no node of
	// that id listening (it is gone, or its link to the broker is down).
	ErrNoNode = errors.New("broker: no such node is listening")
	// ErrNotHeld: Locker.Unlock by an owner that does not hold the key
	// (its lease lapsed, or it never took it).
	ErrNotHeld = errors.New("broker: lock not held by this owner")
)
