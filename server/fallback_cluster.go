package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/transport/fallback"
	"github.com/ferry-io/ferry/protocol"
)

// HTTP-fallback sessions are reachable from every node: the session token
// names a record in the broker's KV (by its hash, so the store never holds
// the token) with what a node needs to take the session over. A poll or a
// stream that lands on a node that does not hold the session adopts it:
// the node resumes it (the old node closes its copy with 4016 and saves its
// state) and replays from history what the client has not confirmed. No
// sticky sessions are needed behind a round-robin balancer. The record
// holds no secret: neither the session token nor the resume token.

// httpSessionRecord is what the KV keeps for a session token.
type httpSessionRecord struct {
	Session      string   `json:"session"`
	Mode         string   `json:"mode"`
	User         string   `json:"user"`
	Exp          int64    `json:"exp,omitempty"`
	Subscribe    []string `json:"subscribe"`
	SubscribeSet bool     `json:"subscribe_set"`
	Publish      []string `json:"publish"`
	PublishSet   bool     `json:"publish_set"`
	// Network is the networkKey the token is bound to (session.bind_network;
	// a hash, not an address), "" when unbound.
	Network string `json:"network,omitempty"`
}

func httpSessionKey(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return "ferry:httpsess:" + hex.EncodeToString(h[:])
}

// saveHTTPSession writes (or refreshes) the record of a session token.
func (s *Server) saveHTTPSession(ctx context.Context, tok string, mode fallback.Mode, sess *session.Session, claims *auth.Claims) {
	kv, ok := s.broker.(broker.KV)
	if !ok || claims == nil {
		return
	}
	id, _ := sess.ResumeInfo()
	rec := httpSessionRecord{Session: id, Mode: string(mode), User: claims.Subject}
	if v, ok := s.sessionNets.Load(tok); ok {
		rec.Network = v.(string)
	}
	if !claims.ExpiresAt.IsZero() {
		rec.Exp = claims.ExpiresAt.Unix()
	}
	if c := claims.Channels; c != nil {
		rec.Subscribe, rec.SubscribeSet = c.Subscribe, c.Subscribe != nil
		rec.Publish, rec.PublishSet = c.Publish, c.Publish != nil
	}
	b, _ := json.Marshal(rec)
	ttl := s.cfg.Session.TTL + s.cfg.Heartbeat.Interval + s.cfg.Heartbeat.Timeout
	_ = kv.Set(ctx, httpSessionKey(tok), b, ttl)
}

func (r *httpSessionRecord) claims() *auth.Claims {
	c := &auth.Claims{Subject: r.User}
	if r.Exp > 0 {
		c.ExpiresAt = time.Unix(r.Exp, 0)
	}
	if r.SubscribeSet || r.PublishSet {
		c.Channels = &auth.ChannelsClaim{}
		if r.SubscribeSet {
			c.Channels.Subscribe = append([]string{}, r.Subscribe...)
		}
		if r.PublishSet {
			c.Channels.Publish = append([]string{}, r.Publish...)
		}
	}
	return c
}

// errNoSession: the token names no session anywhere.
var errNoSession = errors.New("session not found or expired")

// errOtherNetwork: the token is bound to another network
// (session.bind_network).
var errOtherNetwork = errors.New("session token used from another network")

// networkKey names the network a request comes from, for
// session.bind_network: a hash of the client address truncated as in the
// logs (IPv4 /24, IPv6 /48), so the session store holds no address.
func (s *Server) networkKey(r *http.Request) string {
	if !s.cfg.Session.BindNetwork {
		return ""
	}
	sum := sha256.Sum256([]byte(auth.TruncateIP(auth.ClientIP(r, s.proxies))))
	return hex.EncodeToString(sum[:12])
}

// findHTTPSession returns the transport of a session token: the local one,
// or the session adopted from another node.
//
// lastSeq is the client's Last-Event-ID (-1 when none): an adopted session
// resumes after it, and its seq numbers go on from the old node's.
//
// network is the request's networkKey: a session bound to another network
// (session.bind_network) is refused with errOtherNetwork, before any
// adoption.
func (s *Server) findHTTPSession(ctx context.Context, tok string, lastSeq int64, network string) (*fallback.Transport, error) {
	if v, ok := s.sessionNets.Load(tok); ok && v.(string) != network {
		return nil, errOtherNetwork
	}
	if v, ok := s.httpSessions.Load(tok); ok {
		t := v.(*fallback.Transport)
		code, _, closed := t.Session().CloseCode()
		if !closed || code != protocol.CloseSessionTakenOver {
			if !closed && t.Due(s.cfg.Session.TTL/3) {
				sess := t.Session()
				s.saveHTTPSession(ctx, tok, fallback.Mode(t.Name()), sess, sess.Claims())
			}
			return t, nil
		}
		// Another node took it over; take it back.
		s.httpSessions.CompareAndDelete(tok, t)
	}
	mu, _ := s.adoptLocks.LoadOrStore(tok, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	defer s.adoptLocks.Delete(tok)
	if v, ok := s.httpSessions.Load(tok); ok { // adopted meanwhile
		return v.(*fallback.Transport), nil
	}
	kv, ok := s.broker.(broker.KV)
	if !ok {
		return nil, errNoSession
	}
	b, err := kv.Get(ctx, httpSessionKey(tok))
	if err != nil {
		if errors.Is(err, broker.ErrNotFound) {
			return nil, errNoSession
		}
		return nil, err
	}
	var rec httpSessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, errNoSession
	}
	if rec.Network != "" && rec.Network != network {
		return nil, errOtherNetwork
	}
	claims := rec.claims()
	if !claims.ExpiresAt.IsZero() && !claims.ExpiresAt.After(time.Now()) {
		return nil, errNoSession
	}
	mode := fallback.Mode(rec.Mode)
	if rec.Network != "" {
		s.sessionNets.Store(tok, rec.Network)
	}
	t := fallback.New(mode, func() { s.httpSessions.Delete(tok); s.sessionNets.Delete(tok) })
	sess := session.New(s.env, t, session.Handshake{
		Claims:       claims,
		Codec:        protocol.JSON,
		SessionToken: tok,
		ResumeSeq:    lastSeq,
		Adopt:        true,
	})
	t.Bind(sess)
	connect, _ := json.Marshal(map[string]any{"type": "connect", "resume": map[string]string{"session": rec.Session, "token": "adopted"}})
	if err := sess.HandleRequest(connect); err != nil || !sess.Connected() {
		sess.Close(protocol.CloseUnauthorized, "session could not be adopted")
		return nil, errNoSession
	}
	// The connected frame was for this node's bookkeeping, not the client.
	_, _ = sess.Pull(nil, nil, 1)
	if id, _ := sess.ResumeInfo(); id != rec.Session {
		// The old state was gone (expired): this is a new session now;
		// the client will see fresh subscriptions are needed.
		s.log.Info("adopted session had no state left", "session", rec.Session)
	}
	s.httpSessions.Store(tok, t)
	t.Due(0)
	s.saveHTTPSession(ctx, tok, mode, sess, claims)
	return t, nil
}

// httpSessionError answers a request whose session cannot be found.
func httpSessionError(w http.ResponseWriter, err error) {
	if errors.Is(err, errNoSession) {
		httpError(w, http.StatusNotFound, "session not found or expired: open a new one with POST /v1/sessions (with resume to keep its subscriptions)")
		return
	}
	if errors.Is(err, errOtherNetwork) {
		httpError(w, http.StatusUnauthorized, "session token used from another network (session.bind_network): open a new session with POST /v1/sessions")
		return
	}
	w.Header().Set("Retry-After", "1")
	httpError(w, http.StatusServiceUnavailable, "session store unavailable: "+err.Error())
}
