package server

import (
	"log/slog"
	"net/http"

	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/transport/ws"
	"github.com/ferry-io/ferry/internal/transport/wssession"
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
	wssession.Serve(conn, s.env, session.Handshake{
		Token:      tok,
		Claims:     claims,
		RemoteAddr: s.logIP(r),
		Codec:      protocol.CodecFor(conn.Subprotocol()),
		Headers:    s.hookHeaders(r),
	}, s.goTracked)
}

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
