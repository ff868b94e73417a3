package ws

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestPauseReadingHoldsMessagesUntilResume(t *testing.T) {
	// The handler pauses reading at the first message. Messages sent after
	// it must not reach the handler until ResumeReading; then all arrive,
	// in order. Runs with the reactor and (FERRY_WS_GOROUTINE_READER=1)
	// with a reader goroutine.
	var mu sync.Mutex
	var got []string
	srv := newTestServer(t, nil, func(h *echoHandler) {
		h.onMessage = func(c *Conn, _ bool, p []byte) {
			mu.Lock()
			got = append(got, string(p))
			first := len(got) == 1
			mu.Unlock()
			if first {
				c.PauseReading()
			}
		}
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	c := dialRaw(t, srv.addr(), "", nil)
	conn := srv.nextConn(t)
	h := srv.nextHandler(t)
	c.send(frame(true, 0x1, []byte("m0")))
	pollUntil(t, "first message", func() bool { return count() == 1 })
	for i := 1; i <= 3; i++ {
		c.send(frame(true, 0x1, fmt.Appendf(nil, "m%d", i)))
	}
	time.Sleep(50 * time.Millisecond) // observing that nothing arrives needs a wait
	if n := count(); n != 1 {
		t.Fatalf("%d messages handled while reading was paused, want 1", n)
	}
	conn.ResumeReading()
	pollUntil(t, "the held messages", func() bool { return count() == 4 })
	mu.Lock()
	for i, m := range got {
		if want := fmt.Sprintf("m%d", i); m != want {
			t.Errorf("message %d = %q, want %q", i, m, want)
		}
	}
	mu.Unlock()
	c.send(frame(true, 0x8, closePayload(1000, "")))
	c.expectClose(1000)
	if ev := waitClose(t, h); ev.code != 1000 {
		t.Fatalf("OnClose code %d, want 1000", ev.code)
	}
}

func TestPausedConnectionStillClosesWhenPeerGoes(t *testing.T) {
	// A paused connection whose peer disappears reports OnClose once it is
	// resumed (the bytes, then the end, wait in the socket).
	srv := newTestServer(t, nil, func(h *echoHandler) {
		h.onMessage = func(c *Conn, _ bool, _ []byte) { c.PauseReading() }
	})
	c := dialRaw(t, srv.addr(), "", nil)
	conn := srv.nextConn(t)
	h := srv.nextHandler(t)
	c.send(frame(true, 0x1, []byte("pause")))
	pollUntil(t, "paused", func() bool {
		conn.wmu.Lock()
		defer conn.wmu.Unlock()
		return conn.paused
	})
	_ = c.conn.Close()
	conn.ResumeReading()
	if ev := waitClose(t, h); ev.code != CloseAbnormal {
		t.Fatalf("OnClose code %d, want %d", ev.code, CloseAbnormal)
	}
}

func TestCloseNowReportsOnCloseOnce(t *testing.T) {
	// With the reactor nothing blocks on the socket: a close from outside
	// the loop must still reach the handler, exactly once.
	srv := newTestServer(t, nil, nil)
	c := dialRaw(t, srv.addr(), "", nil)
	conn := srv.nextConn(t)
	h := srv.nextHandler(t)
	c.send(frame(true, 0x1, []byte("hi")))
	c.expectFrame(0x1, []byte("hi"))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(conn.CloseNow)
	}
	wg.Wait()
	if ev := waitClose(t, h); ev.code != CloseAbnormal {
		t.Fatalf("OnClose code %d, want %d", ev.code, CloseAbnormal)
	}
	select {
	case ev := <-h.closed:
		t.Fatalf("OnClose delivered twice (second: %+v)", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestReactorCloseClosesItsConnections(t *testing.T) {
	r, err := NewReactor(2)
	if err != nil {
		t.Skip("no reactor on this platform:", err)
	}
	opts := &Options{Reactor: r}
	handlers := make(chan *echoHandler, 4)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := Upgrade(w, req, opts)
		if err != nil {
			return
		}
		h := newEchoHandler()
		handlers <- h
		_ = c.Serve(h)
	}))
	defer ts.Close()
	addr := ts.Listener.Addr().String()
	clients := []*rawClient{dialRaw(t, addr, "", nil), dialRaw(t, addr, "", nil), dialRaw(t, addr, "", nil)}
	var hs []*echoHandler
	for _, c := range clients {
		c.send(frame(true, 0x1, []byte("x")))
		c.expectFrame(0x1, []byte("x"))
		hs = append(hs, <-handlers)
	}
	if n := r.Conns(); n != 3 {
		t.Fatalf("reactor watches %d connections, want 3", n)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if ev := waitClose(t, h); ev.code != CloseAbnormal {
			t.Fatalf("OnClose code %d, want %d", ev.code, CloseAbnormal)
		}
	}
	for _, c := range clients {
		c.expectEOF()
	}
	if n := r.Conns(); n != 0 {
		t.Fatalf("reactor still watches %d connections after Close", n)
	}
}
