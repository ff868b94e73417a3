// Package ws is Ferry's server side of the WebSocket protocol (RFC 6455,
// with optional permessage-deflate from RFC 7692), written for many idle
// connections and for fan-out that never waits on a slow client.
//
// # Use
//
// An HTTP handler calls Upgrade, which validates the opening handshake,
// writes the 101 response and hijacks the connection from net/http, then
// calls Conn.Serve with a Handler that receives messages (OnMessage), the end
// of the connection (OnClose, exactly once) and the end of a write backlog
// (OnWritable). Messages are sent with WriteMessage or WriteMessageParts,
// pings with Ping, and the connection is ended with Close (closing
// handshake) or CloseNow.
//
// # Memory per idle connection
//
// A connection costs its Conn (a few hundred bytes) and the runtime's
// socket state. With Options.Reactor (Linux) no goroutine waits for it and
// no read or write buffer is held while it is idle:
//
//   - Reading with a Reactor: a few epoll loops (one per CPU) watch every
//     connection's socket, level-triggered. A ready socket is read once into
//     the loop's own buffer and parsed at once; OnMessage runs on the loop,
//     so handlers queue work and return (Conn.PauseReading takes the socket
//     out of the epoll set until ResumeReading, which is how a handler
//     pushes back on a fast sender). A connection closed from this side is
//     reported to OnClose from a short-lived goroutine, since no reader is
//     blocked on it to notice.
//   - Reading without a Reactor: a reader goroutine per connection waits for
//     the socket to become readable in the runtime's netpoller through
//     syscall.RawConn, inside a callback that tries a non-blocking read(2).
//     Only when bytes are there does it take a buffer from a pool
//     (Options.ReadBufferSize), and it gives the buffer back as soon as the
//     bytes are parsed. On EAGAIN the callback returns false and the
//     goroutine parks (about 2 KiB of stack per idle connection).
//   - Parsing: the incremental parser keeps between reads only an
//     incomplete frame header (a fixed 14-byte array) and the bytes of a
//     message that did not arrive within one read (a pooled buffer, released
//     when the message completes, never more than MaxMessageBytes). A
//     message that arrives within one read is delivered in place, unmasked
//     in the pooled read buffer, without a copy.
//   - Writing: WriteMessage frames the payload and tries one non-blocking
//     writev(2) of the header and the payload parts, so a payload encoded
//     once for many subscribers is never copied when the socket keeps up.
//     Whatever the socket does not take is copied to a pooled per-connection
//     backlog, and only then is a flusher goroutine started; it writes the
//     backlog with blocking writes bounded by Options.WriteTimeout, calls
//     Handler.OnWritable and exits. A publisher therefore never blocks on a
//     socket; it watches the returned pending count (or Pending) instead.
//   - Compression contexts are never kept: permessage-deflate is only
//     negotiated with no context takeover in either direction, and the
//     compressors and decompressors live in pools.
//
// Connections that are not a syscall.Conn (TLS terminated in-process) fall
// back to blocking reads with a small pooled buffer, and all their writes go
// through the flusher goroutine.
//
// # Protocol checks
//
// Client frames must be masked; reserved bits, reserved opcodes,
// fragmented or oversized control frames and broken fragmentation fail the
// connection with 1002; text that is not UTF-8 fails it with 1007 at the
// first bad byte, even in the middle of a fragmented message; a message over
// Options.MaxMessageBytes fails it with Options.TooBigCloseCode (decompressed
// size included, and decompression stops at the limit). Pings are answered
// with pongs; any received byte counts as activity (LastActivity), which the
// server's heartbeat uses to find dead connections.
//
// Origin checks, authentication and handshake rate limits belong to the
// caller and happen before Upgrade.
package ws
