package fallback

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// A request that waits long for its session's frames (an SSE stream, a
// held long-poll) can wait off net/http (ADR 012): the handler takes the
// connection (Hijack), a goroutine of the transport parks in a Read on it
// and writes the response itself, and net/http's connection goroutine,
// background read, buffers and request are released meanwhile.

// parked is such a connection while its request waits.
type parked struct {
	conn net.Conn
	// mu guards released: once the connection goes back to net/http, a
	// late kick (from a Wake that loaded this parked before it was
	// forgotten) must not touch its deadline.
	mu       sync.Mutex
	released bool
	// in holds what the client sent while the request waited (a
	// pipelined next request: a poll's connection goes back to net/http
	// with it); n bytes of it.
	in [16]byte
	n  int
}

// What ended a parked wait.
const (
	parkWoken   = iota // a token in wake: there may be frames to pull
	parkLeft           // leave or done closed: replaced, or the session ended
	parkExpired        // the wait's deadline passed
	parkRead           // the client sent bytes (in[:n])
	parkGone           // EOF or a broken connection: the client went away
)

// wait parks in a Read on the connection until something happens; until
// is when the wait expires (zero: never).
//
// The order guards against a lost kick: the read deadline is set first,
// the channels are looked at next, the Read comes last. A kick that came
// before the deadline was set was preceded by what it announces (a token
// in wake, leave or done closed), which the look then sees; a kick after
// it makes the Read return at once.
func (p *parked) wait(t *Transport, leave chan struct{}, until time.Time) int {
	for {
		_ = p.conn.SetReadDeadline(until)
		select {
		case <-t.wake:
			return parkWoken
		case <-leave:
			return parkLeft
		case <-t.done:
			return parkLeft
		default:
		}
		if !until.IsZero() && !time.Now().Before(until) {
			return parkExpired
		}
		if p.n == len(p.in) {
			p.n = 0 // an SSE client that keeps sending: dropped
		}
		n, err := p.conn.Read(p.in[p.n:])
		p.n += n
		switch {
		case n > 0:
			return parkRead
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
			continue // a kick, or the deadline: look again
		}
		return parkGone
	}
}

// kick interrupts the wait: its Read returns.
func (p *parked) kick() {
	p.mu.Lock()
	if !p.released {
		_ = p.conn.SetReadDeadline(longAgo)
	}
	p.mu.Unlock()
}

// release ends the kicks: the connection is someone else's from now on.
func (p *parked) release() {
	p.mu.Lock()
	p.released = true
	p.mu.Unlock()
}

// longAgo is a deadline in the past: a Read waiting with it returns.
var longAgo = time.Unix(1, 0)

// appendHead writes the head of a 200 response with headers h (and Date)
// as net/http would; Content-Length and Transfer-Encoding are the
// caller's to add.
func appendHead(out *bytes.Buffer, h http.Header) {
	out.WriteString("HTTP/1.1 200 OK\r\n")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	for name, values := range h {
		if name == "Content-Length" || name == "Transfer-Encoding" {
			continue
		}
		for _, v := range values {
			out.WriteString(name)
			out.WriteString(": ")
			out.WriteString(strings.Map(noCRLF, v))
			out.WriteString("\r\n")
		}
	}
}

func noCRLF(r rune) rune {
	if r == '\r' || r == '\n' {
		return ' '
	}
	return r
}

// WithPrefix returns c whose first reads return prefix, then c's own bytes:
// for a connection handed back to net/http with bytes already read from it
// (a poll's, or the first byte of the client's next request). A connection
// WithPrefix made already gets prefix in front of what it still holds.
func WithPrefix(c net.Conn, prefix []byte) net.Conn {
	if len(prefix) == 0 {
		return c
	}
	if pc, ok := c.(*prefixedConn); ok {
		pc.prefix = append(prefix[:len(prefix):len(prefix)], pc.prefix...)
		return pc
	}
	return &prefixedConn{Conn: c, prefix: prefix}
}

// prefixedConn is a connection whose first reads return prefix: the bytes
// that were read from it while it was off net/http.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixedConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
