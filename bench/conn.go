package bench

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ferry-io/ferry/protocol"
)

// readCtx is where the connections read by one reactor loop (or one shard
// of goroutine-read connections) record what they receive. mu is nil when a
// single goroutine owns the context.
type readCtx struct {
	mu         *sync.Mutex
	hist       *hdrhistogram.Histogram
	deliveries atomic.Uint64 // first receipts of an offset
	dups       atomic.Uint64 // repeated or unexpected offsets
}

func newReadCtx(shared bool) *readCtx {
	rc := &readCtx{hist: newHist()}
	if shared {
		rc.mu = new(sync.Mutex)
	}
	return rc
}

func (rc *readCtx) record(ns int64) {
	if rc.mu != nil {
		rc.mu.Lock()
		recordNS(rc.hist, ns)
		rc.mu.Unlock()
		return
	}
	recordNS(rc.hist, ns)
}

// Connection states.
const (
	stConnected  = 1 << iota // the connected frame arrived
	stSubscribed             // the subscribed frame arrived
	stRefused                // an error frame answered connect or subscribe
	stDead                   // closed (by either side)
)

// conn is one bench connection. Until it is handed to its reader it belongs
// to the goroutine that dials it; afterwards only to its reader (a reactor
// loop or its own goroutine), and after the readers have stopped, to the
// group that closes it.
type conn struct {
	g     *group
	idx   int32 // index in the group
	node  int16
	ch    int32 // channel index, -1 when not subscribed
	state uint8
	fd    int // reactor mode: the socket, owned by the bench once handed over
	nc    net.Conn
	rc    *readCtx
	now   int64 // unix nanos of the read being parsed
	p     parser

	base   uint64   // the channel's offset when the subscription began
	seen   []uint64 // bit i: offset base+1+i received
	unique uint64
	dups   uint64
	// wireBytes counts the WebSocket messages received once connected and
	// subscribed, with their frame headers: the bytes on the wire that
	// deliveries cost.
	wireBytes uint64

	closeCode int    // from the server's disconnect or close frame
	reason    string // why connect or subscribe was refused
}

// message implements frameSink.
func (c *conn) message(payload []byte) {
	if c.state&(stConnected|stSubscribed) == stConnected|stSubscribed {
		c.wireBytes += uint64(len(payload) + serverHeaderLen(len(payload)))
	}
	if c.g.wire.op == opText {
		eachFrame(payload, c.frame)
		return
	}
	js, err := c.g.wire.asJSON(nil, payload)
	if err != nil {
		// Not a frame this bench can read: the server broke the protocol.
		c.closeCode = int(protocol.CloseProtocolError)
		c.state |= stDead
		return
	}
	eachFrame(js, c.frame)
}

// serverHeaderLen is the size of an unmasked WebSocket frame header for a
// payload of n bytes (RFC 6455 section 5.2).
func serverHeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

func (c *conn) frame(f []byte) {
	typ := frameType(f)
	switch string(typ) {
	case "message":
		c.delivery(f)
	case "connected":
		c.state |= stConnected
	case "subscribed":
		if off, ok := intField(f, offsetKey); ok && off > 0 {
			c.base = uint64(off)
		}
		c.state |= stSubscribed
	case "published":
		if pub := c.g.pubOK; pub != nil {
			if id, ok := intField(f, idKey); ok && id > 0 {
				pub[c.node][int(id-1)%len(pub[c.node])].Add(1)
			}
		}
	case "error":
		if c.g.pubOK != nil && c.state&stConnected != 0 {
			c.g.pubErr.Add(1)
			return
		}
		if _, hasID := intField(f, idKey); hasID && c.state&(stConnected|stSubscribed) != stConnected|stSubscribed {
			code, _ := intField(f, codeKey)
			c.reason = fmt.Sprintf("error %d: %s", code, stringField(f, "reason"))
			c.state |= stRefused
		}
	case "disconnect":
		if code, ok := intField(f, codeKey); ok {
			c.closeCode = int(code)
		}
	}
}

// delivery records one message frame: latency from the payload's send time,
// and its offset in the connection's bitmap.
func (c *conn) delivery(f []byte) {
	if ts, ok := intField(f, tsKey); ok && ts > 0 {
		c.rc.record(c.now - ts)
	}
	o, ok := intField(f, offsetKey)
	if !ok || o <= 0 || uint64(o) <= c.base {
		c.dups++
		c.rc.dups.Add(1)
		return
	}
	i := uint64(o) - c.base - 1
	w := int(i / 64)
	if w >= len(c.seen) {
		if w > 1<<24 { // an offset far beyond anything this run published
			c.dups++
			c.rc.dups.Add(1)
			return
		}
		n := make([]uint64, max(w+1, 2*len(c.seen)))
		copy(n, c.seen)
		c.seen = n
	}
	bit := uint64(1) << (i % 64)
	if c.seen[w]&bit != 0 {
		c.dups++
		c.rc.dups.Add(1)
		return
	}
	c.seen[w] |= bit
	c.unique++
	c.rc.deliveries.Add(1)
}

// control implements frameSink: pings get pongs (the server closes silent
// connections), a close frame is remembered and answered.
func (c *conn) control(op byte, payload []byte) {
	switch op {
	case opPing:
		c.g.pings.Add(1)
		c.write(appendClientFrame(make([]byte, 0, 6+len(payload)), opPong, payload, rand.Uint32()))
	case opClose:
		code := 1005
		if len(payload) >= 2 {
			code = int(payload[0])<<8 | int(payload[1])
		}
		if c.closeCode == 0 {
			c.closeCode = code
		}
		c.write(appendClientFrame(make([]byte, 0, 8), opClose, payload[:min(2, len(payload))], rand.Uint32()))
		c.state |= stDead
	}
}

// write sends a small frame from the connection's reader. A frame the
// socket does not take at once is dropped: only pongs and close replies are
// written this way.
func (c *conn) write(b []byte) {
	if c.nc != nil {
		_, _ = c.nc.Write(b)
		return
	}
	writeFD(c.fd, b)
}

// connError is a failed connection attempt; kind groups failures in
// reports.
type connError struct {
	kind string
	err  error
}

func (e *connError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

func failure(kind string, err error) error { return &connError{kind: kind, err: err} }

// errorKind names a failure for the error counts of a report.
func errorKind(err error) string {
	var ce *connError
	if errors.As(err, &ce) {
		var ne net.Error
		if errors.As(ce.err, &ne) && ne.Timeout() {
			return ce.kind + ": timeout"
		}
		var errno syscall.Errno
		if errors.As(ce.err, &errno) {
			return ce.kind + ": " + errno.Error()
		}
		if errors.Is(ce.err, ErrHandshake) || errors.Is(ce.err, ErrClosed) || errors.Is(ce.err, ErrRefused) {
			return ce.kind + ": " + ce.err.Error()
		}
		return ce.kind
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	return "other"
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// place is the node and the channel (0 without channels) of connection
// i: round-robin over the nodes, then over the channels on each node.
func (g *group) place(i int) (node int16, ch int32) {
	gi := g.spec.First + i
	nodes := len(g.targets)
	node = int16(gi % nodes)
	if len(g.spec.Channels) > 0 {
		ch = int32((gi / nodes) % len(g.spec.Channels))
	}
	return node, ch
}

// dial opens connection i of the group: TCP from its source address, the
// upgrade request with the token in the Authorization header and, in the
// same packet, the connect frame and (when subscribing) the subscribe frame;
// then it reads until both replies have arrived.
func (g *group) dial(ctx context.Context, i int) (*conn, error) {
	node, ch := g.place(i)
	c := &conn{g: g, idx: int32(i), node: node, ch: -1, fd: -1, rc: g.hs}
	if g.spec.Subscribe && len(g.spec.Channels) > 0 {
		c.ch = ch
	}
	t := g.targets[c.node]
	d := g.dialers[i%len(g.dialers)]

	ctx, cancel := context.WithTimeout(ctx, g.spec.ConnectTimeout)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", t.Host)
	if err != nil {
		return nil, failure("dial", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	fail := func(kind string, err error) (*conn, error) {
		stop()
		_ = nc.Close()
		return nil, failure(kind, err)
	}

	var key [16]byte
	for j := 0; j < 16; j += 8 {
		v := rand.Uint64()
		for k := 0; k < 8; k++ {
			key[j+k] = byte(v >> (8 * k))
		}
	}
	wsKey := base64.StdEncoding.EncodeToString(key[:])
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	buf := (*bp)[:0]
	buf = append(buf, "GET "...)
	buf = append(buf, t.WSPath...)
	buf = append(buf, " HTTP/1.1\r\nHost: "...)
	buf = append(buf, t.Host...)
	buf = append(buf, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "...)
	buf = append(buf, g.wire.codec.Name()...)
	buf = append(buf, "\r\nSec-WebSocket-Key: "...)
	buf = append(buf, wsKey...)
	buf = append(buf, "\r\nAuthorization: Bearer "...)
	buf = append(buf, g.tokens[i]...)
	buf = append(buf, "\r\n\r\n"...)
	connect, err := g.wire.encode(&protocol.ClientFrame{Type: protocol.TypeConnect, ID: 1, Client: "ferry-bench/1"})
	if err != nil {
		return fail("encode", err)
	}
	buf = appendClientFrame(buf, g.wire.op, connect, rand.Uint32())
	want := uint8(stConnected)
	if c.ch >= 0 {
		sub, err := g.wire.encode(&protocol.ClientFrame{Type: protocol.TypeSubscribe, ID: 2, Channel: g.spec.Channels[c.ch]})
		if err != nil {
			return fail("encode", err)
		}
		buf = appendClientFrame(buf, g.wire.op, sub, rand.Uint32())
		want |= stSubscribed
	}
	if _, err := nc.Write(buf); err != nil {
		return fail("write", err)
	}

	// The 101 response.
	buf = (*bp)[:cap(*bp)]
	n, end := 0, -1
	for end < 0 {
		if n == len(buf) {
			return fail("handshake", fmt.Errorf("%w: response headers over %d bytes", ErrHandshake, len(buf)))
		}
		m, err := nc.Read(buf[n:])
		n += m
		if end = bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 {
			break
		}
		if err != nil {
			return fail("handshake", err)
		}
	}
	if err := checkUpgrade(buf[:end+2], wsKey); err != nil {
		return fail("handshake", err)
	}

	// The replies to connect and subscribe (and anything after them).
	c.nc = nc
	rest := buf[end+4 : n]
	for {
		if len(rest) > 0 {
			c.now = time.Now().UnixNano()
			if err := c.p.feed(rest, c); err != nil {
				return fail("protocol", err)
			}
		}
		switch {
		case c.state&stRefused != 0:
			return fail("refused", fmt.Errorf("%w: %s", ErrRefused, c.reason))
		case c.state&stDead != 0 || c.closeCode != 0:
			return fail("closed", fmt.Errorf("%w: code %d", ErrClosed, c.closeCode))
		case c.state&want == want:
			stop()
			if err := nc.SetDeadline(time.Time{}); err != nil {
				return fail("deadline", err)
			}
			return c, nil
		}
		m, err := nc.Read(buf)
		if m == 0 && err != nil {
			return fail("reply", err)
		}
		rest = buf[:m]
	}
}

// checkUpgrade checks the status line and the accept key of the response
// headers (which end with one CRLF).
func checkUpgrade(h []byte, key string) error {
	line, rest, _ := bytes.Cut(h, []byte("\r\n"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 101")) {
		status := string(line)
		if len(status) > 9 {
			status = status[9:]
		}
		return fmt.Errorf("%w: HTTP %s", ErrHandshake, status)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	want := base64.StdEncoding.EncodeToString(sum[:])
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Accept")) {
			if string(bytes.TrimSpace(value)) != want {
				return fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrHandshake)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no Sec-WebSocket-Accept", ErrHandshake)
}

// readGoroutine reads a connection on its own goroutine (ClientGoroutine).
func (g *group) readGoroutine(c *conn) {
	defer g.readers.Done()
	buf := make([]byte, 2048)
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.now = time.Now().UnixNano()
			if perr := c.p.feed(buf[:n], c); perr != nil {
				g.lose(c, 1002)
				return
			}
			if c.state&stDead != 0 {
				g.lose(c, c.closeCode)
				return
			}
		}
		if err != nil {
			if !g.stopping.Load() {
				code := c.closeCode
				if code == 0 {
					code = 1006
				}
				g.lose(c, code)
			}
			return
		}
	}
}

// processRSS is this process's resident set size in bytes (0 where /proc
// is missing).
func processRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return pages * int64(os.Getpagesize())
}
