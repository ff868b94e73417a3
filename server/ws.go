package server

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/transport/ws"
	"github.com/ferry-io/ferry/protocol"
)

// wsOptions are shared by every WebSocket connection of the node.
func (s *Server) wsOptions() *ws.Options {
	s.wsOnce.Do(func() {
		s.wsOpts = &ws.Options{
			Subprotocols:       []string{protocol.SubprotocolJSON, protocol.SubprotocolMsgpack},
			RequireSubprotocol: true,
			MaxMessageBytes:    int64(s.cfg.MaxFrameBytes),
			TooBigCloseCode:    protocol.CloseTooBig,
			Compression:        s.cfg.Compression,
			Go:                 s.goTracked,
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
	t := &wsTransport{c: conn, binary: codec.Binary()}
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
}

var (
	_ session.Transport = (*wsTransport)(nil)
	_ ws.Handler        = (*wsTransport)(nil)
)

func (t *wsTransport) Name() string { return "ws" }

func (t *wsTransport) Send(msg []byte) (int, error) { return t.c.WriteMessage(t.binary, msg) }

func (t *wsTransport) Pending() int { return t.c.Pending() }

func (t *wsTransport) Ping() error { return t.c.Ping() }

func (t *wsTransport) Close(code int, reason string) { t.c.Close(code, reason) }

func (t *wsTransport) LastActivity() time.Time { return t.c.LastActivity() }

// OnMessage handles a message on a goroutine of its own and waits for it:
// frame handling (token checks, decoding, broker calls) runs deep, and
// doing it on the connection's reader would leave that long-lived
// goroutine with a grown stack for the rest of the connection's life.
func (t *wsTransport) OnMessage(_ *ws.Conn, _ bool, payload []byte) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.s.HandleMessage(payload)
	}()
	<-done
}

// OnClose hands the end of the wire to the session on its own goroutine:
// the transport may report it from inside a write the session makes while
// holding its lock.
func (t *wsTransport) OnClose(_ *ws.Conn, code int, reason string) {
	t.s.ClosedAsync(code, reason)
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
