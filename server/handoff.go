package server

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/ferry-io/ferry/internal/transport/fallback"
)

// handoffListener is the listener the node's HTTP server accepts from when
// it serves plain HTTP: the connections of ln, and the connections that a
// held long-poll took off net/http and gives back once it has answered
// (fallback.Handoff), so that the client's next request on its kept-alive
// connection is served as on any other (ADR 012).
type handoffListener struct {
	net.Listener
	idle     time.Duration     // the HTTP server's IdleTimeout
	accepted chan acceptResult // from the pump goroutine
	back     chan net.Conn     // handed back by held polls
	closed   chan struct{}
	once     sync.Once

	mu      sync.Mutex
	waiting map[net.Conn]struct{} // guarded by mu: handed back, waiting for their next request
	done    bool                  // guarded by mu: closed; nothing waits any more
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// newHandoffListener wraps ln; start runs the goroutine that accepts from
// ln (it ends when ln is closed). idle is the server's IdleTimeout.
func newHandoffListener(ln net.Listener, idle time.Duration, start func(func())) *handoffListener {
	l := &handoffListener{
		Listener: ln,
		idle:     idle,
		waiting:  make(map[net.Conn]struct{}),
		accepted: make(chan acceptResult),
		back:     make(chan net.Conn),
		closed:   make(chan struct{}),
	}
	start(l.pump)
	return l
}

// pump accepts from the wrapped listener until it is closed.
func (l *handoffListener) pump() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.closed:
			if c != nil {
				_ = c.Close()
			}
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Accept returns the next new or handed-back connection.
func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	case r := <-l.accepted:
		return r.conn, r.err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close closes the wrapped listener; connections handed back are closed
// from now on, and those waiting for their next request stop waiting.
func (l *handoffListener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		close(l.closed)
		err = l.Listener.Close()
		l.mu.Lock()
		l.done = true
		for c := range l.waiting {
			_ = c.SetReadDeadline(time.Unix(1, 0)) // its Read returns
		}
		l.mu.Unlock()
	})
	return err
}

// handoff gives c back to the HTTP server (fallback.Handoff) once the
// client's next request starts, or closes it when the client sends none
// within the server's IdleTimeout or the listener is closed.
//
// The wait is what net/http does between two requests of a kept-alive
// connection; a connection it accepts would get only ReadHeaderTimeout
// until the first request is read.
func (l *handoffListener) handoff(c net.Conn) {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		_ = c.Close()
		return
	}
	l.waiting[c] = struct{}{}
	if l.idle > 0 {
		_ = c.SetReadDeadline(time.Now().Add(l.idle))
	}
	l.mu.Unlock()
	var first [1]byte
	n, _ := c.Read(first[:])
	l.mu.Lock()
	delete(l.waiting, c)
	l.mu.Unlock()
	if n == 0 {
		_ = c.Close() // the client closed it, it idled out, or the node stops
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	select {
	case l.back <- fallback.WithPrefix(c, first[:]):
	case <-l.closed:
		_ = c.Close()
	}
}

var _ fallback.Handoff = (*handoffListener)(nil).handoff
