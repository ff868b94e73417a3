package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// fakeClock is a Clock whose time moves only when the test says so. Every
// timer made is announced on created with its duration.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), created: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) client.Timer {
	c.mu.Lock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: c.now.Add(d), clock: c}
	if d <= 0 {
		t.fired = true
		t.c <- c.now
	} else {
		c.timers = append(c.timers, t)
	}
	c.mu.Unlock()
	c.created <- d
	return t
}

// Advance moves the time forward by d and fires the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		if !t.at.After(c.now) {
			t.fired = true
			t.c <- c.now
			continue
		}
		keep = append(keep, t)
	}
	c.timers = keep
}

// nextTimer returns the duration of the next timer made (hang guard 10 s).
func (c *fakeClock) nextTimer(t testing.TB) time.Duration {
	t.Helper()
	select {
	case d := <-c.created:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no timer made within 10s")
	}
	return 0
}

// noTimer checks that no timer was made.
func (c *fakeClock) noTimer(t testing.TB) {
	t.Helper()
	select {
	case d := <-c.created:
		t.Fatalf("unexpected timer of %v", d)
	default:
	}
}

type fakeTimer struct {
	c       chan time.Time
	at      time.Time
	clock   *fakeClock
	fired   bool
	stopped bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.fired && !t.stopped
	t.stopped = true
	return was
}

// constRand is a Rand that always returns the same number.
type constRand float64

func (r constRand) Float64() float64 { return float64(r) }

// tinyServer is a WebSocket server of the test's own (coder/websocket's
// Accept) that speaks just enough of the protocol to answer connect and
// then does what the script says with each connection.
type tinyServer struct {
	ts *httptest.Server

	mu       sync.Mutex
	attempts []tinyAttempt
	script   func(n int) tinyAction // n counts attempts from 1
}

type tinyAttempt struct {
	auth    string
	connect map[string]any
}

type tinyAction struct {
	status     int    // refuse the handshake with this HTTP status
	retryAfter string // Retry-After of the refusal
	close      int    // after connected: close with this code (0: stay open)
	abrupt     bool   // after connected: drop the TCP connection, no close frame
	retryMS    int64  // retry_after_ms of the disconnect frame
}

func newTinyServer(t testing.TB, script func(n int) tinyAction) *tinyServer {
	s := &tinyServer{script: script}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.ts.Close)
	return s
}

func (s *tinyServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.attempts = append(s.attempts, tinyAttempt{auth: r.Header.Get("Authorization")})
	n := len(s.attempts)
	s.mu.Unlock()
	act := s.script(n)
	if act.status != 0 {
		if act.retryAfter != "" {
			w.Header().Set("Retry-After", act.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(act.status)
		_, _ = w.Write([]byte(`{"error":{"code":` + strconv.Itoa(act.status) + `,"reason":"refused by the script"}}`))
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.SubprotocolJSON}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return
	}
	var f map[string]any
	_ = json.Unmarshal(b, &f)
	s.mu.Lock()
	s.attempts[n-1].connect = f
	s.mu.Unlock()
	connected, _ := json.Marshal(map[string]any{
		"type": "connected", "id": f["id"], "session": "sess-1", "resume_token": "rt-" + strconv.Itoa(n),
		"node": "tiny", "user": "u", "heartbeat": map[string]any{"interval_ms": 0, "timeout_ms": 0},
		"limits": map[string]any{"max_frame_bytes": 65536, "window": 0, "rate": 0}, "resumed": false,
	})
	if err := c.Write(ctx, websocket.MessageText, connected); err != nil {
		return
	}
	switch {
	case act.abrupt:
		return // CloseNow: no close frame
	case act.close != 0:
		disc, _ := json.Marshal(map[string]any{
			"type": "disconnect", "code": act.close, "reason": "scripted",
			"reconnect": protocol.ShouldReconnect(act.close), "retry_after_ms": act.retryMS,
		})
		_ = c.Write(ctx, websocket.MessageText, disc)
		_ = c.Close(websocket.StatusCode(act.close), "scripted")
		return
	}
	for { // stay open until the client leaves; answer pings
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		var f map[string]any
		if json.Unmarshal(b, &f) == nil && f["type"] == "ping" {
			pong, _ := json.Marshal(map[string]any{"type": "pong", "id": f["id"]})
			_ = c.Write(ctx, websocket.MessageText, pong)
		}
	}
}

func (s *tinyServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attempts)
}

func (s *tinyServer) attempt(i int) tinyAttempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[i]
}

func (s *tinyServer) url() string { return "ws" + strings.TrimPrefix(s.ts.URL, "http") }
