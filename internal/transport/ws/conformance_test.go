package ws

import (
	"bytes"
	"strconv"
	"testing"
)

// RFC 6455 conformance over a real TCP connection, with hand-built frames,
// against an echo handler built on Conn.

func TestConformanceEcho(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	big := func(n int) []byte { return bytes.Repeat([]byte("abcdefgh"), n/8+1)[:n] }
	tests := []struct {
		name string
		send [][]byte
		want [][2][]byte // {opcode, payload}
	}{
		{
			name: "text",
			send: [][]byte{frame(true, 0x1, []byte("hello"))},
			want: [][2][]byte{{{0x1}, []byte("hello")}},
		},
		{
			name: "binary",
			send: [][]byte{frame(true, 0x2, []byte{0, 1, 2, 0xff, 0xfe})},
			want: [][2][]byte{{{0x2}, {0, 1, 2, 0xff, 0xfe}}},
		},
		{
			name: "zero-length text and binary",
			send: [][]byte{frame(true, 0x1, nil), frame(true, 0x2, nil)},
			want: [][2][]byte{{{0x1}, {}}, {{0x2}, {}}},
		},
		{
			name: "fragmented with interleaved pings",
			send: [][]byte{
				frame(false, 0x1, []byte("fra")),
				frame(true, 0x9, []byte("p1")),
				frame(false, 0x0, []byte("gme")),
				frame(true, 0x9, []byte("p2")),
				frame(false, 0x0, nil),
				frame(true, 0x0, []byte("nted")),
			},
			want: [][2][]byte{{{0xA}, []byte("p1")}, {{0xA}, []byte("p2")}, {{0x1}, []byte("fragmented")}},
		},
		{
			name: "fragmented binary with empty fragments",
			send: [][]byte{frame(false, 0x2, nil), frame(false, 0x0, []byte{9}), frame(true, 0x0, nil)},
			want: [][2][]byte{{{0x2}, {9}}},
		},
		{
			name: "ping with empty payload, pong ignored",
			send: [][]byte{frame(true, 0xA, []byte("unsolicited")), frame(true, 0x9, nil)},
			want: [][2][]byte{{{0xA}, {}}},
		},
		{
			name: "ping with 125 bytes",
			send: [][]byte{frame(true, 0x9, big(125))},
			want: [][2][]byte{{{0xA}, big(125)}},
		},
		{
			name: "7-bit length 125",
			send: [][]byte{frame(true, 0x2, big(125))},
			want: [][2][]byte{{{0x2}, big(125)}},
		},
		{
			name: "16-bit length 126 and 65535",
			send: [][]byte{frame(true, 0x2, big(126)), frame(true, 0x2, big(65535))},
			want: [][2][]byte{{{0x2}, big(126)}, {{0x2}, big(65535)}},
		},
		{
			name: "64-bit length, 64 KiB message at the limit",
			send: [][]byte{frame(true, 0x1, big(64<<10))},
			want: [][2][]byte{{{0x1}, big(64 << 10)}},
		},
		{
			name: "multi-byte UTF-8 split across fragments",
			send: [][]byte{
				frame(false, 0x1, []byte("h\xc3")),
				frame(false, 0x0, []byte("\xa9llo \xf0\x9f")),
				frame(true, 0x0, []byte("\x98\x80")),
			},
			want: [][2][]byte{{{0x1}, []byte("héllo 😀")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr(), "", nil)
			h := ts.nextHandler(t)
			c.send(tt.send...)
			for _, w := range tt.want {
				c.expectFrame(w[0][0], w[1])
			}
			c.send(frame(true, 0x8, closePayload(1000, "done")))
			c.expectClose(1000)
			if ev := waitClose(t, h); ev.code != 1000 || ev.reason != "done" {
				t.Fatalf("OnClose(%d, %q), want (1000, done)", ev.code, ev.reason)
			}
		})
	}
}

func TestConformanceByteByByte(t *testing.T) {
	// The same stream fed one byte per TCP write exercises every partial
	// header and payload path over the network.
	ts := newTestServer(t, nil, nil)
	c := dialRaw(t, ts.addr(), "", nil)
	h := ts.nextHandler(t)
	stream := bytes.Join([][]byte{
		frame(false, 0x1, []byte("a\xe2\x82")),
		frame(true, 0x9, []byte("ping")),
		frame(true, 0x0, []byte("\xacz")),
		frame(true, 0x2, bytes.Repeat([]byte{7}, 300)),
	}, nil)
	for i := range stream {
		c.send(stream[i : i+1])
	}
	c.expectFrame(0xA, []byte("ping"))
	c.expectFrame(0x1, []byte("a€z"))
	c.expectFrame(0x2, bytes.Repeat([]byte{7}, 300))
	c.send(frame(true, 0x8, nil))
	c.expectClose(0)
	if ev := waitClose(t, h); ev.code != CloseNoStatus {
		t.Fatalf("OnClose code %d, want %d", ev.code, CloseNoStatus)
	}
}

func TestConformanceFailures(t *testing.T) {
	const limit = 1024
	ts := newTestServer(t, &Options{MaxMessageBytes: limit, TooBigCloseCode: 4009}, nil)
	type tc struct {
		name string
		send [][]byte
		code int
	}
	tests := []tc{
		{"fragmented ping", [][]byte{frame(false, 0x9, []byte("x"))}, 1002},
		{"fragmented close", [][]byte{frame(false, 0x8, nil)}, 1002},
		{"ping over 125 bytes", [][]byte{frame(true, 0x9, make([]byte, 126))}, 1002},
		{"close over 125 bytes", [][]byte{frame(true, 0x8, append(closePayload(1000, ""), make([]byte, 124)...))}, 1002},
		{"RSV1 without extension", [][]byte{buildFrame(0x80|0x40|0x1, []byte("x"), true)}, 1002},
		{"RSV2", [][]byte{buildFrame(0x80|0x20|0x1, []byte("x"), true)}, 1002},
		{"RSV3", [][]byte{buildFrame(0x80|0x10|0x2, []byte("x"), true)}, 1002},
		{"RSV on ping", [][]byte{buildFrame(0x80|0x40|0x9, nil, true)}, 1002},
		{"unmasked client frame", [][]byte{buildFrame(0x81, []byte("hello"), false)}, 1002},
		{"continuation without start", [][]byte{frame(true, 0x0, []byte("x"))}, 1002},
		{"new text inside fragmented message", [][]byte{frame(false, 0x1, []byte("a")), frame(true, 0x1, []byte("b"))}, 1002},
		{"new binary inside fragmented message", [][]byte{frame(false, 0x2, []byte("a")), frame(false, 0x2, []byte("b"))}, 1002},
		{"invalid UTF-8 in a single frame", [][]byte{frame(true, 0x1, []byte("ok\xffok"))}, 1007},
		{"surrogate in UTF-8", [][]byte{frame(true, 0x1, []byte("\xed\xa0\x80"))}, 1007},
		{"overlong UTF-8", [][]byte{frame(true, 0x1, []byte("\xc0\xaf"))}, 1007},
		// Fail fast: the final fragment is never sent.
		{"invalid UTF-8 split across fragments", [][]byte{frame(false, 0x1, []byte("valid\xce")), frame(false, 0x0, []byte("\x20rest"))}, 1007},
		{"invalid UTF-8 in the first fragment", [][]byte{frame(false, 0x1, []byte("\xf8"))}, 1007},
		{"text ending inside a character", [][]byte{frame(true, 0x1, []byte("a\xe2\x82"))}, 1007},
		{"close with 1-byte payload", [][]byte{frame(true, 0x8, []byte{0x03})}, 1002},
		{"close reason not UTF-8", [][]byte{frame(true, 0x8, closePayload(1000, "\xff"))}, 1007},
		{"message over the limit in one frame", [][]byte{frame(true, 0x2, make([]byte, limit+1))}, 4009},
		{"fragmented message over the limit", [][]byte{frame(false, 0x2, make([]byte, limit)), frame(true, 0x0, []byte{1})}, 4009},
		{"64-bit length with the top bit set", [][]byte{{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}}, 1002},
	}
	for _, op := range []byte{3, 4, 5, 6, 7} {
		tests = append(tests, tc{"reserved data opcode " + string(rune('0'+op)), [][]byte{frame(true, op, nil)}, 1002})
	}
	for _, op := range []byte{0xB, 0xC, 0xD, 0xE, 0xF} {
		tests = append(tests, tc{"reserved control opcode " + string(rune('A'+op-10)), [][]byte{frame(true, op, nil)}, 1002})
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		tests = append(tests, tc{"invalid close code " + strconv.Itoa(code), [][]byte{frame(true, 0x8, closePayload(code, ""))}, 1002})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr(), "", nil)
			h := ts.nextHandler(t)
			c.send(tt.send...)
			c.expectServerClose(tt.code)
			if ev := waitClose(t, h); ev.code != tt.code {
				t.Fatalf("OnClose code %d (%q), want %d", ev.code, ev.reason, tt.code)
			}
		})
	}
}

func TestConformanceValidCloseCodes(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			c := dialRaw(t, ts.addr(), "", nil)
			h := ts.nextHandler(t)
			c.send(frame(true, 0x8, closePayload(code, "reason ✓")))
			c.expectClose(code)
			if ev := waitClose(t, h); ev.code != code || ev.reason != "reason ✓" {
				t.Fatalf("OnClose(%d, %q), want (%d, reason ✓)", ev.code, ev.reason, code)
			}
		})
	}
}

func TestConformanceEarlyBytes(t *testing.T) {
	// Frames sent in the same write as the handshake land in net/http's
	// buffered reader; they must be parsed, not lost.
	ts := newTestServer(t, nil, nil)
	early := bytes.Join([][]byte{
		frame(true, 0x1, []byte("first")),
		frame(true, 0x9, []byte("ping")),
		frame(false, 0x2, []byte("par")),
	}, nil)
	c := dialRaw(t, ts.addr(), "", early)
	h := ts.nextHandler(t)
	c.expectFrame(0x1, []byte("first"))
	c.expectFrame(0xA, []byte("ping"))
	c.send(frame(true, 0x0, []byte("tial")))
	c.expectFrame(0x2, []byte("partial"))
	c.send(frame(true, 0x8, closePayload(1001, "")))
	c.expectClose(1001)
	waitClose(t, h)
}

func TestConformanceDataAfterCloseIgnored(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	c := dialRaw(t, ts.addr(), "", nil)
	h := ts.nextHandler(t)
	c.send(frame(true, 0x8, closePayload(1000, "")), frame(true, 0x1, []byte("after close")))
	c.expectClose(1000)
	waitClose(t, h)
}

func TestServerInitiatedClose(t *testing.T) {
	ts := newTestServer(t, &Options{CloseTimeout: safetyTimeout}, func(h *echoHandler) {
		h.onMessage = func(c *Conn, _ bool, p []byte) {
			if string(p) == "close me" {
				if err := c.Close(4001, "bye"); err != nil {
					panic(err)
				}
				if err := c.Close(4002, "again"); err != ErrClosed {
					panic("second Close did not return ErrClosed")
				}
				if _, err := c.WriteMessage(false, []byte("late")); err != ErrClosed {
					panic("write after Close did not return ErrClosed")
				}
				return
			}
			_, _ = c.WriteMessage(false, p)
		}
	})
	c := dialRaw(t, ts.addr(), "", nil)
	h := ts.nextHandler(t)
	c.send(frame(true, 0x1, []byte("before")), frame(true, 0x1, []byte("close me")))
	c.expectFrame(0x1, []byte("before"))
	f := c.mustRead()
	if f.op != 0x8 || string(f.payload) != string(closePayload(4001, "bye")) {
		t.Fatalf("got op %#x payload %q, want close 4001 bye", f.op, f.payload)
	}
	// Data the client sends before its close frame is dropped, then the
	// client's close completes the handshake.
	c.send(frame(true, 0x1, []byte("ignored")), frame(true, 0x8, closePayload(4001, "")))
	c.expectEOF()
	if ev := waitClose(t, h); ev.code != 4001 || ev.reason != "bye" {
		t.Fatalf("OnClose(%d, %q), want (4001, bye)", ev.code, ev.reason)
	}
}

func TestServerCloseTimeout(t *testing.T) {
	// The peer never answers the close frame: the connection is closed
	// after CloseTimeout anyway.
	ts := newTestServer(t, &Options{CloseTimeout: 20e6}, nil)
	c := dialRaw(t, ts.addr(), "", nil)
	h := ts.nextHandler(t)
	conn := ts.nextConn(t)
	if err := conn.Close(1001, "going away"); err != nil {
		t.Fatal(err)
	}
	f := c.mustRead()
	if f.op != 0x8 {
		t.Fatalf("got op %#x, want close", f.op)
	}
	c.expectEOF()
	if ev := waitClose(t, h); ev.code != 1001 {
		t.Fatalf("OnClose code %d, want 1001", ev.code)
	}
	if err := conn.Close(1000, ""); err != ErrClosed {
		t.Fatalf("Close after close: %v, want ErrClosed", err)
	}
	if err := conn.Ping(); err != ErrClosed {
		t.Fatalf("Ping after close: %v, want ErrClosed", err)
	}
}

func TestCloseNowAndAbnormalEnd(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	t.Run("CloseNow", func(t *testing.T) {
		c := dialRaw(t, ts.addr(), "", nil)
		h := ts.nextHandler(t)
		conn := ts.nextConn(t)
		conn.CloseNow()
		c.expectEOF()
		if ev := waitClose(t, h); ev.code != CloseAbnormal {
			t.Fatalf("OnClose code %d, want %d", ev.code, CloseAbnormal)
		}
	})
	t.Run("peer drops TCP", func(t *testing.T) {
		c := dialRaw(t, ts.addr(), "", nil)
		h := ts.nextHandler(t)
		c.send(frame(false, 0x1, []byte("partial")))
		_ = c.conn.Close()
		if ev := waitClose(t, h); ev.code != CloseAbnormal {
			t.Fatalf("OnClose code %d, want %d", ev.code, CloseAbnormal)
		}
	})
	t.Run("invalid close code refused", func(t *testing.T) {
		c := dialRaw(t, ts.addr(), "", nil)
		h := ts.nextHandler(t)
		conn := ts.nextConn(t)
		for _, code := range []int{0, 1005, 1006, 1015, 5000} {
			if err := conn.Close(code, ""); err != ErrInvalidCloseCode {
				t.Fatalf("Close(%d) = %v, want ErrInvalidCloseCode", code, err)
			}
		}
		c.send(frame(true, 0x8, closePayload(1000, "")))
		c.expectClose(1000)
		waitClose(t, h)
	})
}

func TestServerPingAndActivity(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	c := dialRaw(t, ts.addr(), "", nil)
	h := ts.nextHandler(t)
	conn := ts.nextConn(t)
	if err := conn.Ping(); err != nil {
		t.Fatal(err)
	}
	c.expectFrame(0x9, []byte{})
	before := conn.LastActivity()
	pollUntil(t, "clock moves", func() bool { return nowAfter(before) })
	c.send(frame(true, 0xA, nil))
	pollUntil(t, "pong counted as activity", func() bool { return conn.LastActivity().After(before) })
	c.send(frame(true, 0x8, closePayload(1000, "")))
	c.expectClose(1000)
	waitClose(t, h)
}
