package ws

import (
	"bytes"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// nopSink counts what the parser delivers.
type nopSink struct{ n int }

func (s *nopSink) message(opcode, bool, []byte) error { s.n++; return nil }
func (s *nopSink) control(opcode, []byte) error       { return nil }

func BenchmarkParseSmallMaskedFrames(b *testing.B) {
	// 1,000 masked 16-byte text frames per 4 KiB-ish read, as pongs, acks
	// and small publishes arrive.
	one := frame(true, 0x1, []byte(`{"type":"ack"}  `))
	stream := bytes.Repeat(one, 1000)
	work := make([]byte, len(stream))
	p := parser{maxMsg: 64 << 10, tooBig: 1009}
	s := &nopSink{}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		copy(work, stream)
		for off := 0; off < len(work); off += 4096 {
			if err := p.feed(work[off:min(off+4096, len(work))], s); err != nil {
				b.Fatal(err)
			}
		}
	}
	if s.n == 0 {
		b.Fatal("nothing parsed")
	}
}

func BenchmarkParseLargeFragmented(b *testing.B) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB per frame
	stream := bytes.Join([][]byte{
		frame(false, 0x2, payload), frame(false, 0x0, payload), frame(true, 0x0, payload),
	}, nil)
	work := make([]byte, len(stream))
	p := parser{maxMsg: 64 << 10, tooBig: 1009}
	s := &nopSink{}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		copy(work, stream)
		for off := 0; off < len(work); off += 4096 {
			if err := p.feed(work[off:min(off+4096, len(work))], s); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// loopbackConn returns a served Conn whose peer discards everything.
func loopbackConn(b *testing.B) *Conn {
	b.Helper()
	ts := newTestServer(b, nil, nil)
	c := dialRaw(b, ts.addr(), "", nil)
	_ = c.conn.SetDeadline(time.Time{})
	conn := ts.nextConn(b)
	h := ts.nextHandler(b)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c.conn)
		close(done)
	}()
	b.Cleanup(func() {
		conn.CloseNow()
		<-done
		waitClose(b, h)
	})
	return conn
}

func BenchmarkWriteMessage(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			conn := loopbackConn(b)
			payload := bytes.Repeat([]byte{'x'}, size)
			var backlogged int
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				pending, err := conn.WriteMessage(false, payload)
				if err != nil {
					b.Fatal(err)
				}
				if pending > 0 {
					backlogged++
				}
			}
			b.ReportMetric(float64(backlogged)/float64(b.N), "backlogged/op")
		})
	}
}

func BenchmarkWriteMessagePartsBatch(b *testing.B) {
	// A batch of ten shared, pre-encoded frames as one JSON array message.
	conn := loopbackConn(b)
	msg := []byte(`{"type":"message","channel":"room:1","offset":42,"data":{"text":"hello"}}`)
	parts := [][]byte{[]byte("[")}
	for i := range 10 {
		if i > 0 {
			parts = append(parts, []byte(","))
		}
		parts = append(parts, msg)
	}
	parts = append(parts, []byte("]"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.WriteMessageParts(false, parts...); err != nil {
			b.Fatal(err)
		}
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

func TestReaderParksWithoutSpinning(t *testing.T) {
	// The read callback is counted: while the connection is idle it must not
	// be called at all (a spinning reader would call it continuously).
	var calls atomic.Int64
	srvConns := make(chan *Conn, 1)
	count := func() { calls.Add(1) }
	testReadHook.Store(&count)
	t.Cleanup(func() { testReadHook.Store(nil) })
	srv := newTestServerHook(t, nil, nil, func(c *Conn) { srvConns <- c })
	c := dialRaw(t, srv.addr(), "", nil)
	h := srv.nextHandler(t)
	conn := <-srvConns
	if conn.rc == nil {
		t.Fatal("TCP connection without raw access")
	}
	c.send(frame(true, 0x1, []byte("wake")))
	c.expectFrame(0x1, []byte("wake"))
	// A goroutine reader reads once with data and once more to find EAGAIN
	// before it parks; a reactor loop reads once per readiness.
	want := int64(2)
	if testReactor != nil {
		want = 1
	}
	pollUntil(t, "reader parked", func() bool { return calls.Load() >= want })
	idleStart := calls.Load()
	time.Sleep(50 * time.Millisecond) // observing that nothing happens needs a wait
	if idle := calls.Load() - idleStart; idle > 1 {
		t.Fatalf("read callback ran %d times while the connection was idle", idle)
	}
	t.Logf("read callbacks for one message: %d", idleStart)
	c.send(frame(true, 0x8, closePayload(1000, "")))
	c.expectClose(1000)
	waitClose(t, h)
}
