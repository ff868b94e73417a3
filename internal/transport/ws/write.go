package ws

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"time"
)

// flushChunk is the most the flusher hands to one blocking write, so that
// WriteTimeout bounds a stall rather than the time to send a large backlog.
const flushChunk = 64 << 10

// maxPendingForPong: pings are not answered while the backlog is larger, so
// a client that pings without reading cannot grow it without bound (RFC
// 6455 allows answering only the latest ping).
const maxPendingForPong = 256 << 10

// WriteMessage sends payload as one text or binary message (a single frame
// with FIN set, unmasked as the server side requires, compressed when
// permessage-deflate was negotiated and the payload is at least
// Options.CompressionThreshold bytes).
//
// It never waits for the peer: what the socket does not take at once is
// copied to the connection's pending buffer and written by a flusher
// goroutine, which calls Handler.OnWritable when the backlog is gone. The
// returned pending is the backlog in bytes after this call (0 when the whole
// frame went to the socket); a caller should stop feeding a connection whose
// backlog grows and resume on OnWritable. payload may be reused once
// WriteMessage returns. Text payloads are not checked for UTF-8.
func (c *Conn) WriteMessage(binary bool, payload []byte) (pending int, err error) {
	return c.writeData(binary, [][]byte{payload})
}

// WriteMessageParts sends the concatenation of parts as one message, like
// WriteMessage, without joining them first: the frame header and the parts
// go to the socket in one writev(2) call. It lets a caller send a shared,
// already-encoded payload to many connections, or a batch of encoded frames
// with separators around them, with no copy when the socket keeps up.
func (c *Conn) WriteMessageParts(binary bool, parts ...[]byte) (pending int, err error) {
	return c.writeData(binary, parts)
}

func (c *Conn) writeData(binary bool, parts [][]byte) (int, error) {
	op := opText
	if binary {
		op = opBinary
	}
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	if c.compress && total >= c.opts.compressionThreshold() {
		bp, err := compressMessage(parts, total)
		if err != nil {
			return c.Pending(), fmt.Errorf("websocket: compress: %w", err)
		}
		n, err := c.writeFrame(op, true, [][]byte{*bp}, len(*bp))
		putBuf(bp)
		return n, err
	}
	return c.writeFrame(op, false, parts, total)
}

// Ping sends a ping frame with an empty payload. The peer's pong shows up
// in LastActivity.
func (c *Conn) Ping() error {
	_, err := c.writeFrame(opPing, false, nil, 0)
	return err
}

// Pending returns the number of bytes written by the caller that the socket
// has not taken yet.
func (c *Conn) Pending() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.pendingLocked()
}

func (c *Conn) pendingLocked() int {
	n := c.inflight
	if c.pending != nil {
		n += len(*c.pending)
	}
	return n
}

// writeFrame writes one frame unless a close frame was already sent.
func (c *Conn) writeFrame(op opcode, rsv1 bool, parts [][]byte, total int) (int, error) {
	c.wmu.Lock()
	if c.closeSent {
		c.wmu.Unlock()
		return 0, ErrClosed
	}
	n, err := c.writeLocked(op, rsv1, parts, total)
	c.wmu.Unlock()
	if err != nil && err != ErrClosed {
		c.closeTCP()
		return 0, fmt.Errorf("websocket: write: %w", err)
	}
	return n, err
}

// pong answers a ping, unless the connection is closing or backlogged.
func (c *Conn) pong(payload []byte) {
	c.wmu.Lock()
	if c.closeSent || c.pendingLocked() > maxPendingForPong {
		c.wmu.Unlock()
		return
	}
	_, err := c.writeLocked(opPong, false, [][]byte{payload}, len(payload))
	c.wmu.Unlock()
	if err != nil && err != ErrClosed {
		c.closeTCP()
	}
}

// putFrameHeader writes a server frame header (FIN set, no mask) into b and
// returns its length.
func putFrameHeader(b []byte, op opcode, rsv1 bool, length int) int {
	b[0] = bitFIN | byte(op)
	if rsv1 {
		b[0] |= bitRSV1
	}
	switch {
	case length <= 125:
		b[1] = byte(length)
		return 2
	case length <= 0xFFFF:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(length))
		return 4
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(length))
		return 10
	}
}

// writeLocked writes one frame whose payload is the concatenation of parts
// (total bytes). With no backlog it tries one non-blocking writev; whatever
// the socket does not take is queued, never splitting the order of frames.
// c.wmu must be held. The returned error is ErrClosed or a socket error.
func (c *Conn) writeLocked(op opcode, rsv1 bool, parts [][]byte, total int) (int, error) {
	if c.closed {
		return 0, ErrClosed
	}
	var hdr [10]byte
	hn := putFrameHeader(hdr[:], op, rsv1, total)
	if c.pending != nil || c.flushing || c.rc == nil || len(parts) >= maxIovecs {
		c.queueLocked(hdr[:hn], parts, 0)
		return c.pendingLocked(), nil
	}
	b := iovecPool.Get().(*iovecBatch)
	copy(b.hdr[:], hdr[:hn])
	b.add(b.hdr[:hn])
	for _, p := range parts {
		b.add(p)
	}
	b.wn, b.werr = 0, nil
	err := c.rc.Write(b.fn)
	n := b.wn
	if err == nil {
		err = b.werr
	}
	b.clear()
	iovecPool.Put(b)
	if err == syscall.EAGAIN {
		err, n = nil, 0
	}
	if err != nil {
		return 0, err
	}
	if n == hn+total {
		return 0, nil
	}
	c.queueLocked(hdr[:hn], parts, n)
	return c.pendingLocked(), nil
}

// queueLocked appends the frame (hdr then parts), minus its first skip
// bytes that the socket already took, to the backlog and makes sure the
// flusher runs. c.wmu must be held.
func (c *Conn) queueLocked(hdr []byte, parts [][]byte, skip int) {
	size := len(hdr) - skip
	for _, p := range parts {
		size += len(p)
	}
	c.pending = growBuf(c.pending, size)
	buf := *c.pending
	appendSkip := func(p []byte) {
		if skip >= len(p) {
			skip -= len(p)
			return
		}
		buf = append(buf, p[skip:]...)
		skip = 0
	}
	appendSkip(hdr)
	for _, p := range parts {
		appendSkip(p)
	}
	*c.pending = buf
	if !c.flushing {
		c.flushing = true
		c.opts.goFunc(c.flush)
	}
}

// flush is the flusher goroutine: it runs only while there is a backlog,
// writes it with blocking writes bounded by WriteTimeout (and by
// CloseTimeout in all once a close frame is queued), and calls OnWritable
// when it is gone.
func (c *Conn) flush() {
	for {
		c.wmu.Lock()
		bp := c.pending
		if bp == nil {
			c.flushing = false
			c.inflight = 0
			_ = c.nc.SetWriteDeadline(time.Time{}) // before direct writes may resume
			closeAfter := c.closeAfterFlush
			h := c.h
			notify := !c.closed && !c.closeSent && h != nil
			c.wmu.Unlock()
			switch {
			case closeAfter:
				c.closeTCP()
			case notify:
				h.OnWritable(c)
			}
			return
		}
		c.pending = nil
		c.inflight = len(*bp)
		timeout := c.opts.writeTimeout()
		closeBy := c.closeBy
		c.wmu.Unlock()

		err := c.writeBlocking(*bp, timeout, closeBy)
		putBuf(bp)
		if err != nil {
			c.wmu.Lock()
			putBuf(c.pending)
			c.pending = nil
			c.inflight = 0
			c.flushing = false
			c.wmu.Unlock()
			c.closeTCP()
			return
		}
	}
}

// writeBlocking writes b in chunks, each with a fresh deadline of timeout,
// but never past closeBy (unix nanoseconds, 0 for none): once a close frame
// is queued, the whole backlog gets CloseTimeout.
func (c *Conn) writeBlocking(b []byte, timeout time.Duration, closeBy int64) error {
	for len(b) > 0 {
		chunk := b
		if len(chunk) > flushChunk {
			chunk = chunk[:flushChunk]
		}
		deadline := time.Now().Add(timeout)
		if closeBy != 0 && deadline.UnixNano() > closeBy {
			deadline = time.Unix(0, closeBy)
		}
		if err := c.nc.SetWriteDeadline(deadline); err != nil {
			return err
		}
		n, err := c.nc.Write(chunk)
		b = b[n:]
		c.wmu.Lock()
		c.inflight -= n
		c.wmu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}
