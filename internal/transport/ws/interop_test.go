package ws

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// Interoperability with an independent implementation as the client.

func dialCoder(tb testing.TB, ts *testServer, opts *websocket.DialOptions) *websocket.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), safetyTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, ts.wsURL(), opts)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), safetyTimeout)
	tb.Cleanup(cancel)
	return ctx
}

func TestInteropEcho(t *testing.T) {
	for _, mode := range []struct {
		name   string
		server *Options
		client websocket.CompressionMode
		wantZ  bool
	}{
		{"plain", nil, websocket.CompressionDisabled, false},
		{"server without compression, client asks", nil, websocket.CompressionNoContextTakeover, false},
		{"deflate no context takeover", &Options{Compression: true, MaxMessageBytes: 1 << 20}, websocket.CompressionNoContextTakeover, true},
		{"deflate, client would take over context", &Options{Compression: true, MaxMessageBytes: 1 << 20}, websocket.CompressionContextTakeover, true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ts := newTestServer(t, mode.server, nil)
			ctx := testCtx(t)
			c := dialCoder(t, ts, &websocket.DialOptions{CompressionMode: mode.client})
			c.SetReadLimit(2 << 20)
			h := ts.nextHandler(t)
			if got := ts.nextConn(t).Compressed(); got != mode.wantZ {
				t.Fatalf("Compressed() = %v, want %v", got, mode.wantZ)
			}
			messages := []struct {
				typ  websocket.MessageType
				data []byte
			}{
				{websocket.MessageText, []byte("hello")},
				{websocket.MessageBinary, []byte{0, 1, 2, 3}},
				{websocket.MessageText, []byte{}},
				{websocket.MessageText, []byte(strings.Repeat("compressible text ✓ ", 2500))},
				{websocket.MessageBinary, bytes.Repeat([]byte{0xAB, 0xCD, 1}, 100000)},
			}
			if mode.server == nil {
				messages = messages[:4] // 64 KiB default limit
			}
			for _, m := range messages {
				if err := c.Write(ctx, m.typ, m.data); err != nil {
					t.Fatalf("write: %v", err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if typ != m.typ || !bytes.Equal(got, m.data) {
					t.Fatalf("echo: type %v, %d bytes; want %v, %d bytes", typ, len(got), m.typ, len(m.data))
				}
			}
			if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
				t.Fatalf("close handshake: %v", err)
			}
			if ev := waitClose(t, h); ev.code != 1000 || ev.reason != "bye" {
				t.Fatalf("OnClose(%d, %q), want (1000, bye)", ev.code, ev.reason)
			}
		})
	}
}

func TestInteropPingPong(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	ctx := testCtx(t)
	c := dialCoder(t, ts, nil)
	h := ts.nextHandler(t)
	conn := ts.nextConn(t)
	readCtx := c.CloseRead(ctx) // keeps reading so that pings and pongs are handled

	// Client pings, server pongs.
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("client ping: %v", err)
	}
	// Server pings, client pongs, which counts as activity.
	before := conn.LastActivity()
	pollUntil(t, "clock moves", func() bool { return nowAfter(before) })
	if err := conn.Ping(); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "pong arrives", func() bool { return conn.LastActivity().After(before) })

	if err := conn.Close(4012, "heartbeat timeout"); err != nil {
		t.Fatal(err)
	}
	<-readCtx.Done()
	if ev := waitClose(t, h); ev.code != 4012 {
		t.Fatalf("OnClose code %d, want 4012", ev.code)
	}
}

func TestInteropServerClose(t *testing.T) {
	ts := newTestServer(t, &Options{MaxMessageBytes: 100, TooBigCloseCode: 4009}, nil)
	ctx := testCtx(t)
	c := dialCoder(t, ts, nil)
	h := ts.nextHandler(t)
	if err := c.Write(ctx, websocket.MessageBinary, make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Read(ctx)
	if got := websocket.CloseStatus(err); got != 4009 {
		t.Fatalf("client read error %v (status %d), want close 4009", err, got)
	}
	if ev := waitClose(t, h); ev.code != 4009 {
		t.Fatalf("OnClose code %d, want 4009", ev.code)
	}
}

func TestInteropSubprotocol(t *testing.T) {
	opts := &Options{Subprotocols: []string{"ferry.v1.json", "ferry.v1.msgpack"}, RequireSubprotocol: true}
	ts := newTestServer(t, opts, nil)
	tests := []struct {
		offer   []string
		want    string
		refused bool
	}{
		{[]string{"ferry.v1.msgpack", "ferry.v1.json"}, "ferry.v1.msgpack", false},
		{[]string{"other", "ferry.v1.json"}, "ferry.v1.json", false},
		{nil, "", false},
		{[]string{"other"}, "", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.offer, ","), func(t *testing.T) {
			ctx := testCtx(t)
			c, resp, err := websocket.Dial(ctx, ts.wsURL(), &websocket.DialOptions{Subprotocols: tt.offer})
			if tt.refused {
				if err == nil || resp == nil || resp.StatusCode != 400 {
					if c != nil {
						_ = c.CloseNow()
					}
					t.Fatalf("dial error %v, response %v; want HTTP 400", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			h := ts.nextHandler(t)
			if c.Subprotocol() != tt.want || ts.nextConn(t).Subprotocol() != tt.want {
				t.Fatalf("subprotocol %q, want %q", c.Subprotocol(), tt.want)
			}
			if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Fatal(err)
			}
			waitClose(t, h)
		})
	}
}

func TestInteropFragmentedFromClient(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	ctx := testCtx(t)
	c := dialCoder(t, ts, nil)
	h := ts.nextHandler(t)
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := range 50 {
		part := []byte(strings.Repeat("é", i+1))
		want = append(want, part...)
		if _, err := w.Write(part); err != nil { // each Write is a frame
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, err %v; want %d bytes", len(got), err, len(want))
	}
	_ = c.Close(websocket.StatusGoingAway, "")
	if ev := waitClose(t, h); ev.code != 1001 {
		t.Fatalf("OnClose code %d, want 1001", ev.code)
	}
}

func TestInteropWriteParts(t *testing.T) {
	parts := [][]byte{[]byte("["), []byte(`{"a":1}`), []byte(","), []byte(`{"b":2}`), []byte("]")}
	ts := newTestServer(t, nil, func(h *echoHandler) {
		h.onMessage = func(c *Conn, _ bool, p []byte) {
			if _, err := c.WriteMessageParts(false, parts...); err != nil {
				panic(err)
			}
			many := make([][]byte, 200) // more parts than one writev takes
			for i := range many {
				many[i] = []byte{byte('a' + i%26)}
			}
			if _, err := c.WriteMessageParts(true, many...); err != nil {
				panic(err)
			}
		}
	})
	ctx := testCtx(t)
	c := dialCoder(t, ts, nil)
	h := ts.nextHandler(t)
	if err := c.Write(ctx, websocket.MessageText, []byte("go")); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != `[{"a":1},{"b":2}]` {
		t.Fatalf("got %q, %v", got, err)
	}
	typ, got, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageBinary || len(got) != 200 || got[27] != 'b' {
		t.Fatalf("got %v %q, %v", typ, got, err)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	waitClose(t, h)
}
