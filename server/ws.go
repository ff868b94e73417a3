package server

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/transport/ws"
	"github.com/ferry-io/ferry/protocol"
)

// wsOptions are shared by every WebSocket connection of the node.
func (s *Server) wsOptions() *ws.Options {
	s.wsOnce.Do(func() {
		s.wsOpts = &ws.Options{
			Subprotocols:       []string{protocol.SubprotocolJSON, protocol.SubprotocolMsgpack, protocol.SubprotocolProtobuf},
			RequireSubprotocol: true,
			MaxMessageBytes:    int64(s.cfg.MaxFrameBytes),
			TooBigCloseCode:    protocol.CloseTooBig,
			Compression:        s.cfg.Compression,
			Go:                 s.goTracked,
			Reactor:            s.reactor,
		}
	})
	return s.wsOpts
}

// serveWS is GET /v1/ws: checks, token, upgrade, then a session.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.admit(w, r) {
		return
	}
	tok, ok := s.requestToken(w, r)
	if !ok {
		return
	}
	claims, ok := s.verifyRequestToken(w, r, tok)
	if !ok {
		return
	}
	conn, err := ws.Upgrade(w, r, s.wsOptions())
	if err != nil {
		s.metrics.HandshakeRejected("bad_request")
		s.log.Debug("upgrade failed", slog.String("remote", s.logIP(r)), slog.Any("err", err))
		return
	}
	codec := protocol.CodecFor(conn.Subprotocol())
	t := &wsTransport{c: conn, binary: codec.Binary(), goFn: s.goTracked}
	t.s = session.New(s.env, t, session.Handshake{
		Token:      tok,
		Claims:     claims,
		RemoteAddr: s.logIP(r),
		Codec:      codec,
	})
	conn.Serve(t)
}

// wsTransport adapts a WebSocket connection to a session.
type wsTransport struct {
	c      *ws.Conn
	s      *session.Session
	binary bool
	goFn   func(func()) // starts the inbox goroutine (tracked by the server)

	// Inbound messages wait here for the session's own goroutine: the
	// connection's reader (a reactor loop shared with other connections)
	// never runs frame handling itself.
	mu      sync.Mutex
	inbox   [][]byte // copies of messages not yet handled, in order
	inBytes int
	working bool // a goroutine is draining the inbox
	paused  bool // reading is paused until the inbox drains
	ended   bool // OnClose came: handle the rest, then end the session
	code    int
	reason  string
}

var (
	_ session.Transport = (*wsTransport)(nil)
	_ ws.Handler        = (*wsTransport)(nil)
)

// The inbox is bounded: past these, reading from the socket pauses until
// the session has handled what came, so a client that sends faster than
// its frames are handled is held back by TCP flow control.
const (
	inboxMaxMessages = 64
	inboxMaxBytes    = 1 << 20
)

func (t *wsTransport) Name() string { return "ws" }

func (t *wsTransport) Send(msg []byte) (int, error) { return t.c.WriteMessage(t.binary, msg) }

func (t *wsTransport) Pending() int { return t.c.Pending() }

func (t *wsTransport) Ping() error { return t.c.Ping() }

func (t *wsTransport) Close(code int, reason string) { t.c.Close(code, reason) }

func (t *wsTransport) LastActivity() time.Time { return t.c.LastActivity() }

// OnMessage queues a copy of the message for the session's goroutine,
// which handles messages one at a time, in order. Frame handling (token
// checks, decoding, broker calls) may wait on the broker; it never runs on
// the reader, and the goroutine exists only while there is work.
func (t *wsTransport) OnMessage(_ *ws.Conn, _ bool, payload []byte) {
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
func (t *wsTransport) OnClose(_ *ws.Conn, code int, reason string) {
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
func (t *wsTransport) work() {
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

func (t *wsTransport) OnWritable(*ws.Conn) { t.s.Kick() }

// serveEcho is the --dev WebSocket echo endpoint on the same transport
// stack (same reader, writer and limits), for external conformance suites.
func (s *Server) serveEcho(w http.ResponseWriter, r *http.Request) {
	if !s.admit(w, r) {
		return
	}
	opts := *s.wsOptions()
	opts.Subprotocols, opts.RequireSubprotocol = nil, false
	opts.TooBigCloseCode = 0
	conn, err := ws.Upgrade(w, r, &opts)
	if err != nil {
		return
	}
	conn.Serve(echoHandler{})
}

type echoHandler struct{}

func (echoHandler) OnMessage(c *ws.Conn, binary bool, payload []byte) {
	_, _ = c.WriteMessage(binary, payload)
}
func (echoHandler) OnClose(*ws.Conn, int, string) {}
func (echoHandler) OnWritable(*ws.Conn)           {}
