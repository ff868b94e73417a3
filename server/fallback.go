package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/transport/fallback"
	"github.com/ferry-io/ferry/protocol"
)

// The HTTP fallbacks (SSE and long-poll) for networks that block
// WebSockets. A session opened with POST /v1/sessions lives on this node;
// its session_token (header Ferry-Session) reaches it on later requests.

const (
	// pollHold is how long a long-poll is held while nothing is ready.
	pollHold = 25 * time.Second
	// sessionHeader carries an HTTP session's token.
	sessionHeader = "Ferry-Session"
	// sseTicketPrefix marks a ticket that opens a session's SSE stream.
	sseTicketPrefix = "sess:"
)

func (s *Server) fallbackRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/sessions", s.serveOpenSession)
	mux.HandleFunc("GET /v1/sse", s.serveSSE)
	mux.HandleFunc("POST /v1/send", s.serveSend)
	mux.HandleFunc("POST /v1/poll", s.servePoll)
	for _, p := range []string{"/v1/sessions", "/v1/sse", "/v1/send", "/v1/poll", "/v1/tickets"} {
		mux.HandleFunc("OPTIONS "+p, s.servePreflight)
	}
}

// cors adds the CORS headers for an allowed browser origin (the Origin
// policy already ran).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if s.anyOrigin || origin == "null" {
		// With every origin allowed (or an opaque one), never with
		// credentials: any site could otherwise act with the user's cookie.
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
}

func (s *Server) servePreflight(w http.ResponseWriter, r *http.Request) {
	if err := s.origins.Check(r); err != nil {
		httpError(w, http.StatusForbidden, err.Error())
		return
	}
	s.cors(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Ferry-Session, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// readBody reads a request body of at most max_frame_bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxFrameBytes)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, "body larger than max_frame_bytes ("+strconv.Itoa(s.cfg.MaxFrameBytes)+")")
		} else {
			httpError(w, http.StatusBadRequest, "reading body: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

// closeStatus maps the close code of a refused connect to an HTTP status.
func closeStatus(code int) int {
	switch code {
	case protocol.CloseUnauthorized, protocol.CloseTokenExpired:
		return http.StatusUnauthorized
	case protocol.CloseForbidden:
		return http.StatusForbidden
	case protocol.CloseRateLimited:
		return http.StatusTooManyRequests
	case protocol.CloseTooBig:
		return http.StatusRequestEntityTooLarge
	case protocol.CloseDraining, 1011, protocol.CloseBackendUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// serveOpenSession is POST /v1/sessions[?transport=sse|poll]: the body is a
// connect frame or an array that starts with one. The reply is the
// connected frame with the session's token and a stream ticket.
func (s *Server) serveOpenSession(w http.ResponseWriter, r *http.Request) {
	if !s.admit(w, r) {
		return
	}
	s.cors(w, r)
	mode := fallback.ModePoll
	switch r.URL.Query().Get("transport") {
	case "", "poll":
	case "sse":
		mode = fallback.ModeSSE
	default:
		httpError(w, http.StatusBadRequest, "transport: want sse or poll")
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
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var probe []protocol.ClientFrame
	probe, err := protocol.JSON.DecodeClient(probe, body)
	if err != nil || len(probe) == 0 || probe[0].Type != protocol.TypeConnect {
		httpError(w, http.StatusBadRequest, "body: want a connect frame, or a JSON array that starts with one")
		return
	}
	sessTok := randomToken()
	ticket, err := s.tickets.Issue(r.Context(), sseTicketPrefix+sessTok)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "cannot issue a stream ticket now: "+err.Error())
		return
	}
	_, sess := s.httpSessions.Open(sessTok, mode, session.Handshake{
		Token:        tok,
		Claims:       claims,
		RemoteAddr:   s.logIP(r),
		Codec:        protocol.JSON,
		SessionToken: sessTok,
		StreamTicket: ticket,
		ResumeSeq:    -1,
		Headers:      s.hookHeaders(r),
	}, s.networkKey(r))
	defer func() {
		if sess.Connected() {
			s.httpSessions.Save(r.Context(), sessTok, mode, sess, sessClaims(sess, claims))
		}
	}()
	if err := sess.HandleRequest(body); err != nil {
		sess.Close(protocol.CloseProtocolError, "malformed body")
		httpError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if !sess.Connected() {
		code, reason, _ := sess.CloseCode()
		if code == 0 {
			code, reason = protocol.CloseUnauthorized, "connect refused"
			sess.Close(code, reason)
		}
		if code == protocol.CloseBackendUnavailable { // the connect hook's back end did not answer
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(s.cfg.Hooks.RetryAfter.Round(time.Second)/time.Second))))
		}
		httpError(w, closeStatus(code), reason)
		return
	}
	// The first queued frame is the connected reply; the rest (replies to
	// later frames, replayed messages) wait for the stream or the poll.
	buf, frames := sess.Pull(nil, nil, 1)
	if len(frames) != 1 || frames[0].Type != protocol.TypeConnected {
		httpError(w, http.StatusInternalServerError, "session opened without a connected frame")
		sess.Close(protocol.CloseProtocolError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf[frames[0].Start:frames[0].End])
}

// sessionToken returns the session token of the Ferry-Session header.
func sessionToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok := r.Header.Get(sessionHeader)
	if tok == "" {
		httpError(w, http.StatusUnauthorized, "missing "+sessionHeader+" header: open a session with POST /v1/sessions")
		return "", false
	}
	return tok, true
}

// httpSession finds the session named by the Ferry-Session header, and
// adopts it when another node holds it (a poll).
func (s *Server) httpSession(w http.ResponseWriter, r *http.Request) (*fallback.Transport, bool) {
	tok, ok := sessionToken(w, r)
	if !ok {
		return nil, false
	}
	last, _ := lastEventID(r) // checked by the callers that use it
	t, err := s.httpSessions.Find(r.Context(), tok, last, s.networkKey(r))
	if err != nil {
		httpSessionError(w, err)
		return nil, false
	}
	return t, true
}

// lastEventID reads the Last-Event-ID header (-1 when absent).
func lastEventID(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 63)
	if err != nil {
		return -1, errors.New("Last-Event-ID: want the seq of the last message received")
	}
	return int64(n), nil
}

// serveSSE is GET /v1/sse?ticket=T: the session's frames as events.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	if !s.gate(w, r, false) { // the session is already counted
		return
	}
	s.cors(w, r)
	if r.URL.Query().Has("token") {
		httpError(w, http.StatusBadRequest, "a token in the URL is refused: open the session with POST /v1/sessions and use its stream_ticket")
		return
	}
	ticket := r.URL.Query().Get("ticket")
	if ticket == "" {
		httpError(w, http.StatusUnauthorized, "missing ticket: use the stream_ticket of POST /v1/sessions, or get a new one from POST /v1/tickets with the Ferry-Session header")
		return
	}
	val, err := s.tickets.Redeem(r.Context(), ticket)
	if err != nil || !strings.HasPrefix(val, sseTicketPrefix) {
		httpError(w, http.StatusUnauthorized, "ticket is invalid, expired or already used: get a new one from POST /v1/tickets with the Ferry-Session header")
		return
	}
	last, err := lastEventID(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	t, err := s.httpSessions.Find(r.Context(), strings.TrimPrefix(val, sseTicketPrefix), last, s.networkKey(r))
	if err != nil {
		httpSessionError(w, err)
		return
	}
	t.ServeSSE(w, r, last, 10*time.Second)
}

// pollRequest runs what comes before a long-poll is held: the gate, CORS,
// the session named by Ferry-Session (adopted when another node holds
// it: the poll is the session's stream), and the frames of the body (an
// empty body is no frames).
func (s *Server) pollRequest(w http.ResponseWriter, r *http.Request) (*fallback.Transport, bool) {
	if !s.gate(w, r, false) {
		return nil, false
	}
	s.cors(w, r)
	t, ok := s.httpSession(w, r)
	if !ok {
		return nil, false
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return nil, false
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := t.Session().HandleRequest(body); err != nil {
			httpError(w, http.StatusBadRequest, "body: "+err.Error())
			return nil, false
		}
	}
	return t, true
}

// serveSend is POST /v1/send: client frames for an HTTP session; their
// replies go to the session's stream (or poll). It answers once the frames
// were processed, here or, when another node holds the session, there
// (fallback.Sessions.Send routes them): it never adopts a session whose
// node is alive, which would close its stream there.
func (s *Server) serveSend(w http.ResponseWriter, r *http.Request) {
	if !s.gate(w, r, false) {
		return
	}
	s.cors(w, r)
	tok, ok := sessionToken(w, r)
	if !ok {
		return
	}
	// Checked before the body is read, as a poll's session is.
	network := s.networkKey(r)
	if err := s.httpSessions.Check(r.Context(), tok, network); err != nil {
		httpSessionError(w, err)
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := s.httpSessions.Send(r.Context(), tok, body, network); err != nil {
			httpSessionError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"accepted":true}` + "\n"))
}

// servePoll is POST /v1/poll[?wait=ms]: client frames in, server frames
// out, held up to 25 s (or wait) while nothing is ready.
func (s *Server) servePoll(w http.ResponseWriter, r *http.Request) {
	last, err := lastEventID(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	t, ok := s.pollRequest(w, r)
	if !ok {
		return
	}
	hold := pollHold
	if v := r.URL.Query().Get("wait"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			httpError(w, http.StatusBadRequest, "wait: want milliseconds, 0 to 25000")
			return
		}
		hold = min(hold, time.Duration(ms)*time.Millisecond)
	}
	if s.draining.Load() {
		hold = 0
	}
	var handoff fallback.Handoff
	if hl := s.handoff.Load(); hl != nil {
		handoff = hl.handoff
	}
	t.Poll(w, r, last, hold, handoff)
}

// issueSessionTicket answers POST /v1/tickets with a Ferry-Session header:
// a ticket for a new SSE stream of that session. It does not adopt the
// session (the stream that the ticket opens does, wherever it lands).
func (s *Server) issueSessionTicket(w http.ResponseWriter, r *http.Request) {
	tok, ok := sessionToken(w, r)
	if !ok {
		return
	}
	if err := s.httpSessions.Check(r.Context(), tok, s.networkKey(r)); err != nil {
		httpSessionError(w, err)
		return
	}
	ticket, err := s.tickets.Issue(r.Context(), sseTicketPrefix+tok)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "cannot issue a ticket now: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"ticket": ticket, "expires_in": 30})
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessClaims returns the claims a session connected with (the handshake's,
// or those of the connect frame's token).
func sessClaims(sess *session.Session, hs *auth.Claims) *auth.Claims {
	if c := sess.Claims(); c != nil {
		return c
	}
	return hs
}

// httpSessionError answers a request whose session cannot be found, or
// whose frames were refused.
func httpSessionError(w http.ResponseWriter, err error) {
	var re *fallback.RouteError
	switch {
	case errors.Is(err, fallback.ErrBadBody):
		httpError(w, http.StatusBadRequest, err.Error())
		return
	case errors.As(err, &re):
		w.Header().Set("Retry-After", "1")
		httpError(w, re.Status, re.Reason)
		return
	}
	if errors.Is(err, fallback.ErrNoSession) {
		httpError(w, http.StatusNotFound, "session not found or expired: open a new one with POST /v1/sessions (with resume to keep its subscriptions)")
		return
	}
	if errors.Is(err, fallback.ErrOtherNetwork) {
		httpError(w, http.StatusUnauthorized, "session token used from another network (session.bind_network): open a new session with POST /v1/sessions")
		return
	}
	w.Header().Set("Retry-After", "1")
	httpError(w, http.StatusServiceUnavailable, "session store unavailable: "+err.Error())
}

// networkKey names the network a request comes from, for
// session.bind_network: a hash of the client address truncated as in the
// logs (IPv4 /24, IPv6 /48), so the session store holds no address. ""
// when session.bind_network is off.
func (s *Server) networkKey(r *http.Request) string {
	if !s.cfg.Session.BindNetwork {
		return ""
	}
	sum := sha256.Sum256([]byte(auth.TruncateIP(auth.ClientIP(r, s.proxies))))
	return hex.EncodeToString(sum[:12])
}
