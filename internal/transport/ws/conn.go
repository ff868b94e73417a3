package ws

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// Handler receives a connection's events. The methods must not block for
// long: with Options.Reactor they run on an epoll loop shared with other
// connections; with a reader goroutine, a slow OnMessage delays the
// connection's own reads.
type Handler interface {
	// OnMessage is called for every complete data message, in order, on
	// the reactor loop (or the connection's reader goroutine). payload is
	// only valid during the call: retain a copy, not the slice. To push
	// back on a peer that sends faster than its messages are handled, call
	// Conn.PauseReading, and ResumeReading later.
	OnMessage(c *Conn, binary bool, payload []byte)

	// OnClose is called exactly once, after the last OnMessage, when the
	// connection is over: after a close handshake (code is the code the
	// peer sent, or the one this side sent when it closed first), after a
	// protocol violation (code is the one sent: 1002, 1007 or
	// Options.TooBigCloseCode), or when the TCP connection ended without a
	// close frame (CloseAbnormal). It runs on the reader (loop or
	// goroutine) or, when the connection was closed from this side
	// (CloseNow, a failed write), on a goroutine started through
	// Options.Go. Writes fail with ErrClosed from then on.
	OnClose(c *Conn, code int, reason string)

	// OnWritable is called, on the flusher goroutine, when a write backlog
	// has been fully handed to the socket (Pending dropped to 0). It may
	// write again. It can race with OnMessage and OnClose.
	OnWritable(c *Conn)
}

// Conn is a server-side WebSocket connection returned by Upgrade.
//
// Writes (WriteMessage, WriteMessageParts, Ping, Close, CloseNow) are safe
// for concurrent use and never wait for the peer. Reading happens on the
// Options.Reactor loop the connection is registered with by Serve, or on a
// goroutine Serve starts.
type Conn struct {
	nc          net.Conn
	rc          syscall.RawConn // nil when nc is not a syscall.Conn (TLS): blocking reads, writes via the flusher
	opts        *Options
	subprotocol string
	compress    bool // permessage-deflate negotiated

	served       atomic.Bool
	closing      atomic.Bool  // a close frame was sent or the TCP connection closed: inbound data is dropped
	lastActivity atomic.Int64 // unix nanoseconds of the last bytes read

	// Reader state.
	h          Handler
	p          parser
	early      []byte // bytes read by net/http past the request, parsed first
	peerCode   int
	peerReason string

	// Write state, guarded by wmu.
	wmu             sync.Mutex
	pending         *[]byte // pooled: bytes the socket has not taken yet, whole frames in order
	inflight        int     // bytes the flusher is writing now
	flushing        bool    // the flusher goroutine is running
	closeSent       bool
	closeAfterFlush bool  // close the TCP connection once the backlog is written
	closed          bool  // TCP connection closed
	localAbort      bool  // closed by CloseNow before any close frame
	closeBy         int64 // unix nanoseconds: the backlog must be written by then once a close frame is queued
	sentCode        int
	sentReason      string
	paused          bool          // PauseReading: no reads until ResumeReading
	pauseCh         chan struct{} // goroutine reader: closed by ResumeReading

	// Reactor state (Options.Reactor on Linux); loop and loopID are set
	// under wmu when Serve registers the connection.
	loop      *loop
	loopID    uint64
	rmu       sync.Mutex  // held while the loop reads and parses, and by finish
	finished  atomic.Bool // OnClose was delivered
	lingering bool        // guarded by rmu: a failing close frame was sent; bytes are discarded until EOF
}

// rawReader holds one raw read's buffer and result, with the
// syscall.RawConn callback bound to them once. A reactor loop has one for
// all its connections, a reader goroutine one for its connection, so a
// Conn keeps none while idle.
type rawReader struct {
	fixed []byte  // a reactor loop's own buffer; nil: borrow from the pool
	size  int     // pooled buffer size
	buf   *[]byte // the pooled buffer of the read in progress
	n     int
	err   error
	fn    func(fd uintptr) bool
}

// testReadHook, set only by tests, runs in every read callback.
var testReadHook atomic.Pointer[func()]

func newRawReader(fixed []byte, size int) *rawReader {
	r := &rawReader{fixed: fixed, size: size}
	r.fn = r.read
	return r
}

// read is the syscall.RawConn read callback. With a fixed buffer (the
// reactor, which knows the socket is ready) it reads once and never parks.
// Otherwise it borrows a pooled buffer only once the socket has bytes, and
// returns false on EAGAIN so that the goroutine parks in the runtime's
// netpoller (without spinning: the poller wakes it on the next readiness
// edge).
func (r *rawReader) read(fd uintptr) bool {
	if h := testReadHook.Load(); h != nil {
		(*h)()
	}
	if r.fixed != nil {
		r.n, r.err = readFD(fd, r.fixed)
		return true
	}
	if r.buf == nil {
		r.buf = getBuf(r.size)
	}
	n, err := readFD(fd, (*r.buf)[:cap(*r.buf)])
	if err == syscall.EAGAIN {
		putBuf(r.buf)
		r.buf = nil
		return false
	}
	r.n, r.err = n, err
	return true
}

// Subprotocol returns the subprotocol chosen during the handshake, or "".
func (c *Conn) Subprotocol() string { return c.subprotocol }

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.compress }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// LastActivity returns when bytes were last received from the peer (or the
// time of the upgrade when none were). Any frame counts, pongs included.
func (c *Conn) LastActivity() time.Time {
	return time.Unix(0, c.lastActivity.Load())
}

// Serve registers the connection with Options.Reactor, or starts its
// reader goroutine through Options.Go; h (not nil)
// receives the connection's events. It must be called exactly once, and
// returns ErrServed when called again; OnClose is only delivered to a served
// connection, so a caller that gives up on a Conn before serving it calls
// CloseNow.
func (c *Conn) Serve(h Handler) error {
	if h == nil {
		return errors.New("websocket: Serve with a nil Handler")
	}
	if !c.served.CompareAndSwap(false, true) {
		return ErrServed
	}
	c.wmu.Lock()
	c.h = h
	c.wmu.Unlock()
	if r := c.opts.Reactor; r != nil && c.rc != nil && reactorSupported {
		c.serveReactor(r)
		return nil
	}
	c.opts.goFunc(c.run)
	return nil
}

// serveReactor hands the connection to a reactor loop. Bytes net/http read
// past the request are parsed first, on the caller, with rmu held so that
// the loop's first read waits for them.
func (c *Conn) serveReactor(r *Reactor) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := r.add(c); err != nil {
		if err == errConnClosed {
			c.finishLocked(c.finalCode())
			return
		}
		c.wmu.Lock()
		closed := c.closed
		c.loop = nil
		c.wmu.Unlock()
		if !closed {
			c.opts.goFunc(c.run) // the reactor is closing: read on a goroutine
		}
		// else closeTCP saw the loop and started finishClosed.
		return
	}
	if early := c.early; early != nil {
		c.early = nil
		if err := c.p.feed(early, c); err != nil {
			c.feedFailedLocked(err)
		}
	}
}

// onReadable is called by the reactor loop when the socket has bytes (or
// ended): one read into the loop's buffer, parsed at once.
func (c *Conn) onReadable(r *rawReader) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.finished.Load() {
		return
	}
	r.n, r.err = 0, nil
	err := c.rc.Read(r.fn)
	if err == nil {
		err = r.err
	}
	if err == syscall.EAGAIN {
		return // another reader took the bytes, or a spurious wake-up
	}
	if err == nil && r.n <= 0 {
		err = io.EOF
	}
	if err != nil {
		if c.lingering {
			c.closeTCP()
			c.finishLocked(c.finalCode())
			return
		}
		code, reason := c.readEnded()
		c.finishLocked(code, reason)
		return
	}
	c.lastActivity.Store(time.Now().UnixNano())
	if c.lingering {
		return
	}
	if err := c.p.feed(r.fixed[:r.n], c); err != nil {
		c.feedFailedLocked(err)
	}
}

// feedFailedLocked ends a reactor connection after the parser stopped with
// err; c.rmu is held. A protocol error lingers without blocking the loop:
// inbound bytes are discarded until the peer closes or CloseTimeout passes.
func (c *Conn) feedFailedLocked(err error) {
	if err == errPeerClose {
		code, reason := c.peerClosed()
		c.finishLocked(code, reason)
		return
	}
	code, reason, linger := c.fail(err)
	if !linger {
		c.finishLocked(code, reason)
		return
	}
	c.lingering = true
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.AfterFunc(c.opts.closeTimeout(), c.closeTCP)
}

// finishLocked delivers OnClose once and stops watching the socket; c.rmu
// is held.
func (c *Conn) finishLocked(code int, reason string) {
	if !c.finished.CompareAndSwap(false, true) {
		return
	}
	c.wmu.Lock()
	l := c.loop
	c.wmu.Unlock()
	if l != nil {
		l.remove(c)
	}
	c.p.release()
	c.h.OnClose(c, code, reason)
}

// finishClosed reports OnClose for a reactor connection closed from outside
// the loop (CloseNow, a failed write, the close timeout).
func (c *Conn) finishClosed() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.finished.Load() {
		return
	}
	c.finishLocked(c.finalCode())
}

// finalCode is finalCodeLocked for a caller without c.wmu.
func (c *Conn) finalCode() (int, string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.finalCodeLocked()
}

// PauseReading stops reading from the peer until ResumeReading: further
// bytes wait in the socket, and TCP flow control holds the peer back.
// Messages already read (parsed from the same read) may still be delivered
// to OnMessage after the call. It is safe to call from any goroutine,
// OnMessage included.
func (c *Conn) PauseReading() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.paused || c.closed {
		return
	}
	c.paused = true
	if c.loop != nil {
		c.loop.pause(c)
		return
	}
	c.pauseCh = make(chan struct{})
}

// ResumeReading undoes PauseReading.
func (c *Conn) ResumeReading() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.paused {
		return
	}
	c.paused = false
	if c.loop != nil {
		if !c.closed && !c.finished.Load() {
			c.loop.resume(c)
		}
		return
	}
	if c.pauseCh != nil {
		close(c.pauseCh)
		c.pauseCh = nil
	}
}

// waitResumed blocks the goroutine reader while reading is paused.
func (c *Conn) waitResumed() {
	c.wmu.Lock()
	ch := c.pauseCh
	c.wmu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (c *Conn) run() {
	code, reason := c.readLoop(newRawReader(nil, c.opts.readBufferSize()))
	c.p.release()
	c.h.OnClose(c, code, reason)
}

// errPeerClose stops the parser when the peer's close frame arrives.
var errPeerClose = errors.New("websocket: peer sent close")

// readLoop reads and parses until the connection ends, and returns the code
// and reason for OnClose. While it waits for bytes it holds no buffer.
func (c *Conn) readLoop(r *rawReader) (int, string) {
	if early := c.early; early != nil {
		c.early = nil
		if err := c.p.feed(early, c); err != nil {
			return c.readFailed(err, r)
		}
	}
	for {
		bp, n, err := c.read(r)
		if err != nil {
			return c.readEnded()
		}
		c.lastActivity.Store(time.Now().UnixNano())
		err = c.p.feed((*bp)[:n], c)
		putBuf(bp)
		if err != nil {
			return c.readFailed(err, r)
		}
		c.waitResumed()
	}
}

// fallbackReadSize is the buffer of a blocking read on a connection without
// raw access (TLS keeps its own record buffers, so a small one is enough).
const fallbackReadSize = 1 << 10

// read waits until bytes are available and returns them in a pooled buffer.
func (c *Conn) read(r *rawReader) (*[]byte, int, error) {
	if c.rc == nil {
		bp := getBuf(fallbackReadSize)
		n, err := c.nc.Read((*bp)[:cap(*bp)])
		if n > 0 {
			return bp, n, nil
		}
		putBuf(bp)
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, 0, err
	}
	r.n, r.err = 0, nil
	err := c.rc.Read(r.fn)
	bp := r.buf
	r.buf = nil
	if err == nil {
		err = r.err
	}
	if err == nil && r.n <= 0 {
		err = io.EOF
	}
	if err != nil {
		putBuf(bp)
		return nil, 0, err
	}
	return bp, r.n, nil
}

// message implements frameSink.
func (c *Conn) message(op opcode, compressed bool, payload []byte) error {
	if c.closing.Load() {
		return nil // closing: data that crosses our close frame, or comes after CloseNow, is dropped
	}
	if !compressed {
		c.h.OnMessage(c, op == opBinary, payload)
		return nil
	}
	out, err := inflateMessage(payload, c.p.maxMsg)
	switch {
	case errors.Is(err, errTooBig):
		return &protoError{code: c.p.tooBig, reason: "message too big"}
	case err != nil:
		return &protoError{code: CloseInvalidPayload, reason: "invalid compressed data"}
	}
	if op == opText && !utf8.Valid(*out) {
		putBuf(out)
		return &protoError{code: CloseInvalidPayload, reason: "text message is not valid UTF-8"}
	}
	c.h.OnMessage(c, op == opBinary, *out)
	putBuf(out)
	return nil
}

// control implements frameSink.
func (c *Conn) control(op opcode, payload []byte) error {
	switch op {
	case opPing:
		c.pong(payload)
	case opClose:
		c.peerCode, c.peerReason = CloseNoStatus, ""
		if len(payload) >= 2 {
			c.peerCode = int(binary.BigEndian.Uint16(payload))
			c.peerReason = string(payload[2:])
		}
		return errPeerClose
	}
	return nil // pong: the read itself counted as activity
}

// readFailed ends the connection after the parser stopped with err.
func (c *Conn) readFailed(err error, r *rawReader) (int, string) {
	if err == errPeerClose {
		return c.peerClosed()
	}
	code, reason, linger := c.fail(err)
	if linger {
		c.linger(r)
	}
	return code, reason
}

// fail answers a parser error with a close frame. linger reports that the
// close frame is written and the caller must now discard what the peer
// still sends before closing the TCP connection.
func (c *Conn) fail(err error) (code int, reason string, linger bool) {
	var pe *protoError
	if !errors.As(err, &pe) {
		pe = &protoError{code: CloseInternalError, reason: err.Error()}
	}
	c.wmu.Lock()
	if c.closeSent || c.closed {
		code, reason := c.finalCodeLocked()
		c.wmu.Unlock()
		c.closeTCP()
		return code, reason, false
	}
	c.sendCloseLocked(pe.code, pe.reason)
	flushing := c.flushing
	if flushing {
		c.closeAfterFlush = true
	}
	c.wmu.Unlock()
	return pe.code, pe.reason, !flushing
}

// peerClosed answers the peer's close frame (unless this side closed first)
// and closes the TCP connection once the answer is written.
func (c *Conn) peerClosed() (int, string) {
	c.wmu.Lock()
	code, reason := c.peerCode, c.peerReason
	if c.closeSent {
		code, reason = c.sentCode, c.sentReason
	} else if !c.closed {
		echo := c.peerCode
		if echo == CloseNoStatus {
			echo = 0 // answer an empty close with an empty close
		}
		c.sendCloseLocked(echo, "")
	}
	if c.flushing {
		c.closeAfterFlush = true
		c.wmu.Unlock()
	} else {
		c.wmu.Unlock()
		c.closeTCP()
	}
	return code, reason
}

// readEnded ends the connection after a read error or EOF.
func (c *Conn) readEnded() (int, string) {
	c.closeTCP()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.finalCodeLocked()
}

// finalCodeLocked is the OnClose code when no close frame was received.
func (c *Conn) finalCodeLocked() (int, string) {
	switch {
	case c.closeSent:
		return c.sentCode, c.sentReason
	case c.localAbort:
		return CloseAbnormal, "connection closed by the server"
	}
	return CloseAbnormal, "connection closed without a close frame"
}

// linger half-closes the connection after a failing close frame was written
// and discards what the peer still sends until it closes its side or
// CloseTimeout passes, so that unread bytes do not turn the close into a
// reset that could destroy the close frame in flight.
func (c *Conn) linger(r *rawReader) {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.opts.closeTimeout()))
	for {
		bp, _, err := c.read(r)
		putBuf(bp)
		if err != nil {
			break
		}
	}
	c.closeTCP()
}

// Close starts the closing handshake: it queues a close frame with code and
// reason (truncated to 123 bytes) behind any pending data, and returns
// without waiting. The TCP connection is closed when the peer's close frame
// arrives, or after Options.CloseTimeout. Handler.OnClose then reports code.
// Close returns ErrClosed when a close frame was already sent.
func (c *Conn) Close(code int, reason string) error {
	if !validCloseCode(code) {
		return ErrInvalidCloseCode
	}
	c.wmu.Lock()
	if c.closeSent || c.closed {
		c.wmu.Unlock()
		return ErrClosed
	}
	err := c.sendCloseLocked(code, reason)
	if c.h == nil {
		// No reader: nobody would see the peer's answer.
		if c.flushing {
			c.closeAfterFlush = true
			c.wmu.Unlock()
		} else {
			c.wmu.Unlock()
			c.closeTCP()
		}
		return err
	}
	reactor := c.loop != nil
	c.wmu.Unlock()
	if reactor {
		time.AfterFunc(c.opts.closeTimeout(), c.closeTCP)
		return err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.opts.closeTimeout()))
	return err
}

// CloseNow closes the TCP connection at once, without a close frame.
// Handler.OnClose reports CloseAbnormal unless a close frame was sent
// before.
func (c *Conn) CloseNow() {
	c.wmu.Lock()
	if !c.closeSent && !c.closed {
		c.localAbort = true
	}
	c.wmu.Unlock()
	c.closeTCP()
}

// closeTCP closes the network connection once.
func (c *Conn) closeTCP() {
	c.wmu.Lock()
	if c.closed {
		c.wmu.Unlock()
		return
	}
	c.closed = true
	c.closing.Store(true)
	if c.pauseCh != nil {
		close(c.pauseCh) // a paused reader wakes up to find the socket closed
		c.pauseCh = nil
	}
	reactor := c.loop != nil
	c.wmu.Unlock()
	_ = c.nc.Close()
	if reactor {
		// No goroutine is blocked on this socket to notice: report the end
		// from here (once; the loop may be reporting it already).
		c.opts.goFunc(c.finishClosed)
	}
}

// sendCloseLocked writes (or queues) a close frame and records it; code 0
// sends an empty close frame. c.wmu must be held.
func (c *Conn) sendCloseLocked(code int, reason string) error {
	c.closeSent = true
	c.closing.Store(true)
	c.closeBy = time.Now().Add(c.opts.closeTimeout()).UnixNano()
	c.sentCode, c.sentReason = code, reason
	if code == 0 {
		c.sentCode = CloseNoStatus
		_, err := c.writeLocked(opClose, false, nil, 0)
		return err
	}
	var buf [maxControlPayload]byte
	binary.BigEndian.PutUint16(buf[:], uint16(code))
	n := 2 + copy(buf[2:], truncateUTF8(reason, maxControlPayload-2))
	_, err := c.writeLocked(opClose, false, [][]byte{buf[:n]}, n)
	return err
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
