package ws

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
)

func TestConcurrentWritersNeverInterleave(t *testing.T) {
	// Several goroutines write messages of mixed sizes while the socket
	// keeps filling up, so direct writes, partial writes and the backlog
	// all mix. Every message must arrive whole, and each writer's messages
	// in order. All goroutines go through Options.Go.
	var goroutines sync.WaitGroup
	var started atomic.Int64
	opts := &Options{
		MaxMessageBytes: 1 << 20,
		Go: func(f func()) {
			started.Add(1)
			goroutines.Go(f)
		},
	}
	ts := newTestServer(t, opts, nil)
	ctx := testCtx(t)
	client := dialCoder(t, ts, nil)
	client.SetReadLimit(1 << 20)
	conn := ts.nextConn(t)
	h := ts.nextHandler(t)
	_ = conn.nc.(*net.TCPConn).SetWriteBuffer(8 << 10)

	const writers, perWriter = 6, 150
	sizes := []int{8, 100, 3000, 20000, 70000}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				size := sizes[(w+i)%len(sizes)]
				p := bytes.Repeat([]byte{byte(w*31 + i)}, size)
				binary.BigEndian.PutUint16(p, uint16(w))
				binary.BigEndian.PutUint32(p[2:], uint32(i))
				var err error
				if i%2 == 0 {
					_, err = conn.WriteMessage(true, p)
				} else {
					_, err = conn.WriteMessageParts(true, p[:3], p[3:5], p[5:])
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	next := make([]int, writers)
	for range writers * perWriter {
		_, p, err := client.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w, i := int(binary.BigEndian.Uint16(p)), int(binary.BigEndian.Uint32(p[2:]))
		if w >= writers || i != next[w] {
			t.Fatalf("message from writer %d seq %d, want seq %d", w, i, next[w])
		}
		next[w]++
		if want := sizes[(w+i)%len(sizes)]; len(p) != want || p[len(p)-1] != byte(w*31+i) {
			t.Fatalf("writer %d seq %d: %d bytes, want %d intact", w, i, len(p), want)
		}
	}
	wg.Wait()
	if err := client.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	waitClose(t, h)
	goroutines.Wait() // every goroutine started through Options.Go has ended
	if started.Load() < 2 {
		t.Fatalf("Options.Go started %d goroutines, want the reader and at least one flusher", started.Load())
	}
}

func TestTLSFallback(t *testing.T) {
	// Over TLS the connection is not a syscall.Conn: blocking reads and
	// writes through the flusher.
	conns := make(chan *Conn, 1)
	handlers := make(chan *echoHandler, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, &Options{Compression: true})
		if err != nil {
			return
		}
		h := newEchoHandler()
		conns <- c
		handlers <- h
		_ = c.Serve(h)
	}))
	defer srv.Close()
	ctx := testCtx(t)
	client, _, err := websocket.Dial(ctx, "wss"+srv.URL[len("https"):], &websocket.DialOptions{
		HTTPClient:      srv.Client(),
		CompressionMode: websocket.CompressionNoContextTakeover,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()
	client.SetReadLimit(1 << 20)
	conn, h := <-conns, <-handlers
	if conn.rc != nil {
		t.Fatal("TLS connection took the raw path")
	}
	for _, size := range []int{0, 10, 5000, 60000} {
		msg := bytes.Repeat([]byte("tls "), size/4)
		if err := client.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := client.Read(ctx)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("size %d: got %d bytes, %v", size, len(got), err)
		}
	}
	pollUntil(t, "backlog flushed", func() bool { return conn.Pending() == 0 })
	if err := client.Close(websocket.StatusNormalClosure, "tls bye"); err != nil {
		t.Fatal(err)
	}
	if ev := waitClose(t, h); ev.code != 1000 || ev.reason != "tls bye" {
		t.Fatalf("OnClose(%d, %q)", ev.code, ev.reason)
	}
}
