package ws

import (
	"bytes"
	"compress/flate"
	"runtime"
	"testing"
)

// deflateForTest compresses b the way a permessage-deflate sender does.
func deflateForTest(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, flate.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func TestInflateRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 100, 5000, 64 << 10} {
		msg := bytes.Repeat([]byte("round trip "), size/11+1)[:size]
		bp, err := compressMessage([][]byte{msg[:size/2], msg[size/2:]}, size)
		if err != nil {
			t.Fatal(err)
		}
		out, err := inflateMessage(*bp, 64<<10)
		putBuf(bp)
		if err != nil || !bytes.Equal(*out, msg) {
			t.Fatalf("size %d: err %v, got %d bytes", size, err, len(*out))
		}
		putBuf(out)
	}
}

func TestInflateStopsAtLimit(t *testing.T) {
	// 32 MiB of zeros in about 32 KiB: a sync-flushed deflate segment is
	// self-contained, so 32 copies of the segment for 1 MiB of zeros form
	// one valid stream. Inflating must stop at the limit, allocating on the
	// order of the limit, not of the bomb.
	segment := deflateForTest(t, make([]byte, 1<<20))
	var bomb []byte
	for i := range 32 {
		if i > 0 {
			bomb = append(bomb, 0, 0, 0xff, 0xff)
		}
		bomb = append(bomb, segment...)
	}
	if out, err := inflateMessage(bomb, 40<<20); err != nil || len(*out) != 32<<20 {
		t.Fatalf("the bomb does not inflate to 32 MiB: %v", err)
	}
	const limit = 64 << 10
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := inflateMessage(bomb, limit)
	runtime.ReadMemStats(&after)
	if err != errTooBig || out != nil {
		t.Fatalf("inflate of a bomb: %v, want errTooBig", err)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 4<<20 {
		t.Fatalf("inflating a bomb allocated %d bytes; the bound is about the limit", allocated)
	}
	exact := deflateForTest(t, make([]byte, limit))
	if out, err := inflateMessage(exact, limit); err != nil || len(*out) != limit {
		t.Fatalf("message of exactly the limit: %v", err)
	}
	if _, err := inflateMessage([]byte{0xff, 0xff, 0xff}, limit); err == nil || err == errTooBig {
		t.Fatalf("corrupt data: %v, want a decompression error", err)
	}
}

func TestCompressedOverTheWire(t *testing.T) {
	const ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	opts := &Options{Compression: true, MaxMessageBytes: 4096, TooBigCloseCode: 4009}
	ts := newTestServer(t, opts, nil)

	t.Run("echo", func(t *testing.T) {
		c := dialRaw(t, ts.addr(), ext, nil)
		h := ts.nextHandler(t)
		msg := bytes.Repeat([]byte("hello compressed world "), 100)
		z := deflateForTest(t, msg)
		// Compressed message in two fragments, RSV1 only on the first.
		c.send(buildFrame(0x40|0x1, z[:len(z)/2], true), frame(true, 0x0, z[len(z)/2:]))
		f := c.mustRead()
		if f.b0&0x40 == 0 || f.op != 0x1 {
			t.Fatalf("echo frame %#x: want a compressed text frame", f.b0)
		}
		got, err := inflateMessage(f.payload, 1<<20)
		if err != nil || !bytes.Equal(*got, msg) {
			t.Fatalf("echo decompressed to %d bytes (%v), want %d", len(*got), err, len(msg))
		}
		// Small messages go uncompressed.
		c.send(buildFrame(0x80|0x40|0x1, deflateForTest(t, []byte("hi")), true))
		c.expectFrame(0x1, []byte("hi"))
		c.send(frame(true, 0x8, closePayload(1000, "")))
		c.expectClose(1000)
		waitClose(t, h)
	})
	failures := []struct {
		name    string
		payload []byte
		op      byte
		code    int
	}{
		{"decompression bomb", deflateForTest(t, make([]byte, 1<<20)), 0x2, 4009},
		{"one byte over the limit", deflateForTest(t, make([]byte, 4097)), 0x2, 4009},
		{"corrupt deflate data", []byte{0xff, 0xfe, 0xfd, 0x00}, 0x2, 1007},
		{"compressed text not UTF-8", deflateForTest(t, []byte("bad \xff text")), 0x1, 1007},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr(), ext, nil)
			h := ts.nextHandler(t)
			c.send(buildFrame(0x80|0x40|tt.op, tt.payload, true))
			c.expectServerClose(tt.code)
			if ev := waitClose(t, h); ev.code != tt.code {
				t.Fatalf("OnClose code %d, want %d", ev.code, tt.code)
			}
		})
	}
}

func FuzzInflate(f *testing.F) {
	f.Add(deflateForTest(f, []byte("hello hello hello")), uint16(8))
	f.Add([]byte{0xff, 0, 0}, uint16(100))
	f.Add(deflateForTest(f, make([]byte, 5000)), uint16(4000))
	f.Fuzz(func(t *testing.T, payload []byte, limit uint16) {
		out, err := inflateMessage(payload, int64(limit))
		if err != nil {
			if out != nil {
				t.Fatal("output returned with an error")
			}
			return
		}
		if int64(len(*out)) > int64(limit) {
			t.Fatalf("inflated %d bytes past the limit %d", len(*out), limit)
		}
		putBuf(out)
	})
}
