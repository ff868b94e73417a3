//go:build !linux

package ws

import "errors"

// Reactor is only available on Linux (epoll); elsewhere every connection
// reads on a goroutine of its own.
type Reactor struct{}

// NewReactor fails on this platform: connections read on goroutines.
func NewReactor(int) (*Reactor, error) {
	return nil, errors.New("websocket: the reactor needs Linux epoll")
}

// Close does nothing.
func (r *Reactor) Close() error { return nil }

// Conns is always 0.
func (r *Reactor) Conns() int { return 0 }

func (r *Reactor) add(*Conn) error { return errors.New("websocket: no reactor") }

type loop struct{}

func (l *loop) remove(*Conn) {}
func (l *loop) pause(*Conn)  {}
func (l *loop) resume(*Conn) {}

var errConnClosed = errors.New("websocket: connection closed before it was served")

const reactorSupported = false
