package wssession

import (
	"sync"
	"time"

	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/transport/ws"
)

// Serve runs the WebSocket connection conn (upgraded, its subprotocol
// negotiated into hs.Codec) as a session of env. Inbound messages are
// handled on a goroutine started with goFn (tracked by the caller, so that
// shutdown can wait for it) while there are any; the end of the wire is
// reported to the session after every message that came before it.
func Serve(conn *ws.Conn, env *session.Env, hs session.Handshake, goFn func(func())) {
	t := &transport{c: conn, binary: hs.Codec != nil && hs.Codec.Binary(), goFn: goFn}
	t.s = session.New(env, t, hs)
	conn.Serve(t)
}

// transport adapts a WebSocket connection to a session.
type transport struct {
	// Set by Serve, read-only after.
	c      *ws.Conn
	s      *session.Session
	binary bool
	goFn   func(func()) // starts the inbox goroutine (tracked by the server)

	// Inbound messages wait here for the session's own goroutine: the
	// connection's reader (a reactor loop shared with other connections)
	// never runs frame handling itself. mu guards the fields below; it is
	// never held while calling the session (lock order: session.mu may be
	// held when the session calls Send or Close, which take the
	// connection's own lock, never this one).
	mu      sync.Mutex
	inbox   [][]byte // copies of messages not yet handled, in order
	inBytes int      // bytes in inbox
	working bool     // a goroutine is draining the inbox
	paused  bool     // reading is paused until the inbox drains
	ended   bool     // OnClose came: handle the rest, then end the session
	code    int      // the close code OnClose reported
	reason  string   // the close reason OnClose reported
}

var (
	_ session.Transport = (*transport)(nil)
	_ ws.Handler        = (*transport)(nil)
)

// The inbox is bounded: past these, reading from the socket pauses until
// the session has handled what came, so a client that sends faster than
// its frames are handled is held back by TCP flow control.
const (
	inboxMaxMessages = 64
	inboxMaxBytes    = 1 << 20
)

func (t *transport) Name() string { return "ws" }

func (t *transport) Send(msg []byte) (int, error) { return t.c.WriteMessage(t.binary, msg) }

func (t *transport) Pending() int { return t.c.Pending() }

func (t *transport) Ping() error { return t.c.Ping() }

func (t *transport) Close(code int, reason string) { t.c.Close(code, reason) }

func (t *transport) LastActivity() time.Time { return t.c.LastActivity() }

// OnMessage queues a copy of the message for the session's goroutine,
// which handles messages one at a time, in order. Frame handling (token
// checks, decoding, broker calls) may wait on the broker; it never runs on
// the reader, and the goroutine exists only while there is work.
func (t *transport) OnMessage(_ *ws.Conn, _ bool, payload []byte) {
	msg := append([]byte(nil), payload...)
	t.mu.Lock()
	t.inbox = append(t.inbox, msg)
	t.inBytes += len(msg)
	start := !t.working
	t.working = true
	if !t.paused && (len(t.inbox) >= inboxMaxMessages || t.inBytes >= inboxMaxBytes) {
		t.paused = true
		t.c.PauseReading()
	}
	t.mu.Unlock()
	if start {
		t.goFn(t.work)
	}
}

// OnClose hands the end of the wire to the session after the messages that
// came before it.
func (t *transport) OnClose(_ *ws.Conn, code int, reason string) {
	t.mu.Lock()
	t.ended, t.code, t.reason = true, code, reason
	start := !t.working
	t.working = true
	t.mu.Unlock()
	if start {
		t.goFn(t.work)
	}
}

// work drains the inbox, then reports the end of the wire if it came.
func (t *transport) work() {
	for {
		t.mu.Lock()
		// Take everything that is waiting: the session sends the replies
		// of messages that came together in one write.
		msgs := t.inbox
		t.inbox, t.inBytes = nil, 0
		if t.paused {
			t.paused = false
			t.c.ResumeReading()
		}
		end := len(msgs) == 0 && t.ended
		if len(msgs) == 0 && !end {
			t.working = false
			t.mu.Unlock()
			return
		}
		if end {
			t.ended = false
			code, reason := t.code, t.reason
			t.mu.Unlock()
			t.s.Closed(code, reason) // after every message that came before it
			continue
		}
		t.mu.Unlock()
		t.s.HandleMessages(msgs)
	}
}

func (t *transport) OnWritable(*ws.Conn) { t.s.Kick() }
