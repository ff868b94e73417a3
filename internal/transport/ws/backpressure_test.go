package ws

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-io/ferry/internal/testutil/wait"
)

// countFlushers returns Options whose Go counts the flusher goroutines
// running (each calls OnWritable, if it does, before it ends).
func countFlushers(running *atomic.Int64) *Options {
	return &Options{Go: func(f func()) {
		if !strings.Contains(runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name(), ".flush") {
			go f()
			return
		}
		running.Add(1)
		go func() {
			defer running.Add(-1)
			f()
		}()
	}}
}

func TestBackpressure(t *testing.T) {
	var flushers atomic.Int64
	ts := newTestServer(t, countFlushers(&flushers), nil)
	c := dialRaw(t, ts.addr(), "", nil)
	h := ts.nextHandler(t)
	conn := ts.nextConn(t)
	// A small send buffer makes the socket refuse bytes soon. The
	// client's receive buffer gets a fixed size: left to autotuning it
	// can grow to tcp_rmem's maximum (32 MiB on some machines) while the
	// test runs, absorb the whole backlog and fire OnWritable with the
	// client not reading. (A tiny one would make the kernel fall back to
	// zero-window probes with backoff, which only slows the test down.)
	_ = conn.nc.(*net.TCPConn).SetWriteBuffer(4096)
	_ = c.conn.(*net.TCPConn).SetReadBuffer(64 << 10)

	// The client reads nothing: writes must keep returning while the
	// backlog grows.
	payload := make([]byte, 1000)
	sent := 0
	write := func() int {
		t.Helper()
		binary.BigEndian.PutUint32(payload, uint32(sent))
		pending, err := conn.WriteMessage(true, payload)
		if err != nil {
			t.Fatalf("write %d: %v", sent, err)
		}
		sent++
		return pending
	}
	for write() == 0 {
		if sent > 1_000_000 {
			t.Fatal("the socket never refused bytes")
		}
	}
	// The first backlog may still drain into the kernel's buffers (which
	// legitimately fires OnWritable): grow it past anything the two
	// sockets can hold, so that it cannot drain while the client does not
	// read, then wait for any earlier flusher to have ended and forget
	// what it signalled.
	for conn.Pending() < 512<<10 {
		write()
	}
	wait.For(t, "earlier flushers to end", func() bool { return flushers.Load() <= 1 })
	for len(h.writable) > 0 {
		<-h.writable
	}
	first := conn.Pending()
	for range 500 {
		write()
	}
	if grown := conn.Pending(); grown <= first {
		t.Fatalf("backlog %d did not grow past %d while the client did not read", grown, first)
	}
	if flushers.Load() != 1 {
		t.Fatalf("%d flushers running with a backlog, want 1", flushers.Load())
	}
	select {
	case <-h.writable:
		t.Fatal("OnWritable fired while the client was not reading")
	default:
	}

	// The client reads again: every message arrives intact and in order,
	// the flusher drains the backlog and OnWritable fires.
	for i := range sent {
		f := c.mustRead()
		if f.op != 0x2 || len(f.payload) != len(payload) || binary.BigEndian.Uint32(f.payload) != uint32(i) {
			t.Fatalf("message %d: op %#x, %d bytes, seq %d", i, f.op, len(f.payload), binary.BigEndian.Uint32(f.payload))
		}
	}
	<-h.writable
	if n := conn.Pending(); n != 0 {
		t.Fatalf("Pending() = %d after OnWritable, want 0", n)
	}
	// Direct writes resume after the backlog is gone.
	if pending := write(); pending != 0 {
		t.Fatalf("write after drain left %d bytes pending", pending)
	}
	c.expectFrame(0x2, payload)
	c.send(frame(true, 0x8, closePayload(1000, "")))
	c.expectClose(1000)
	waitClose(t, h)
}

func TestWriteTimeoutClosesStuckPeer(t *testing.T) {
	ts := newTestServer(t, &Options{WriteTimeout: 50e6}, nil)
	c := dialRaw(t, ts.addr(), "", nil)
	h := ts.nextHandler(t)
	conn := ts.nextConn(t)
	_ = c.conn.(*net.TCPConn).SetReadBuffer(4096)
	_ = conn.nc.(*net.TCPConn).SetWriteBuffer(4096)
	payload := make([]byte, 4000)
	for {
		pending, err := conn.WriteMessage(true, payload)
		if errors.Is(err, ErrClosed) {
			// On a loaded machine the flusher's 50 ms timeout can
			// fire before the backlog reaches 1 MiB: that is the
			// close under test, checked below.
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if pending > 1<<20 {
			break
		}
	}
	// The client never reads: the flusher's write times out and the
	// connection is closed without a close handshake.
	if ev := waitClose(t, h); ev.code != CloseAbnormal {
		t.Fatalf("OnClose code %d, want %d", ev.code, CloseAbnormal)
	}
	if _, err := conn.WriteMessage(true, payload); err != ErrClosed {
		t.Fatalf("write after timeout: %v, want ErrClosed", err)
	}
	_, _ = io.Copy(io.Discard, c.conn)
}
