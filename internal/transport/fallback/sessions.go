package fallback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/session"
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

// Sessions is a node's HTTP sessions by session token: the ones it holds,
// and the records (in the broker's KV, when it has one) through which it
// adopts the sessions of other nodes. Its methods are safe for concurrent
// use.
type Sessions struct {
	// Set by NewSessions, read-only after.
	env          *session.Env
	kv           broker.KV     // nil: sessions live on one node only
	recordTTL    time.Duration // how long a record outlives its last refresh
	refreshEvery time.Duration // how often a held session's record is refreshed
	log          *slog.Logger

	byToken    sync.Map // session token -> *Transport (sync.Map's own lock)
	nets       sync.Map // session token -> network key it is bound to (session.bind_network)
	adoptLocks sync.Map // session token -> *sync.Mutex: one adoption at a time
}

// SessionsConfig configures Sessions.
type SessionsConfig struct {
	// Env is the node's session environment (required).
	Env *session.Env
	// KV keeps the records for adoption across nodes (nil: none; a session
	// is then found only on the node that opened it).
	KV broker.KV
	// SessionTTL is how long a session's state is kept for resumption; a
	// record lives that long plus Heartbeat after its last refresh, and is
	// refreshed every SessionTTL/3 while requests come.
	SessionTTL time.Duration
	// Heartbeat is the heartbeat interval plus its timeout.
	Heartbeat time.Duration
	// Logger receives the adoption logs (required).
	Logger *slog.Logger
}

// NewSessions returns an empty set of HTTP sessions.
func NewSessions(cfg SessionsConfig) *Sessions {
	return &Sessions{
		env:          cfg.Env,
		kv:           cfg.KV,
		recordTTL:    cfg.SessionTTL + cfg.Heartbeat,
		refreshEvery: cfg.SessionTTL / 3,
		log:          cfg.Logger,
	}
}

// Open starts a session on a new transport in mode under session token
// tok, and holds it until it ends. The caller binds nothing: the
// transport and the session know each other when Open returns.
//
// network is the key of the network the token is bound to
// (session.bind_network; the caller's hash of the client's network, not an
// address), "" for a token usable from anywhere. Find refuses a bound
// token from another network with ErrOtherNetwork, on this node and, through
// the record, on any node that would adopt it.
func (ss *Sessions) Open(tok string, mode Mode, hs session.Handshake, network string) (*Transport, *session.Session) {
	if network != "" {
		ss.nets.Store(tok, network)
	}
	t := New(mode, func() { ss.byToken.Delete(tok); ss.nets.Delete(tok) })
	sess := session.New(ss.env, t, hs)
	t.Bind(sess)
	ss.byToken.Store(tok, t)
	return t, sess
}

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
	// Network is the network key the token is bound to
	// (session.bind_network; a hash, not an address), "" when unbound.
	Network string `json:"network,omitempty"`
}

func httpSessionKey(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return "ferry:httpsess:" + hex.EncodeToString(h[:])
}

// Save writes (or refreshes) the record of session token tok, so that
// another node can adopt the session.
func (ss *Sessions) Save(ctx context.Context, tok string, mode Mode, sess *session.Session, claims *auth.Claims) {
	if ss.kv == nil || claims == nil {
		return
	}
	id, _ := sess.ResumeInfo()
	rec := httpSessionRecord{Session: id, Mode: string(mode), User: claims.Subject}
	if v, ok := ss.nets.Load(tok); ok {
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
	_ = ss.kv.Set(ctx, httpSessionKey(tok), b, ss.recordTTL)
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

// ErrNoSession: the token names no session anywhere.
var ErrNoSession = errors.New("session not found or expired")

// ErrOtherNetwork: the token is bound to another network
// (session.bind_network).
var ErrOtherNetwork = errors.New("session token used from another network")

// Find returns the transport of a session token: the local one,
// or the session adopted from another node.
//
// lastSeq is the client's Last-Event-ID (-1 when none): an adopted session
// resumes after it, and its seq numbers go on from the old node's.
//
// network is the request's network key (as passed to Open; "" when the
// server does not bind tokens): a session bound to another network is
// refused with ErrOtherNetwork, before any adoption.
func (ss *Sessions) Find(ctx context.Context, tok string, lastSeq int64, network string) (*Transport, error) {
	if v, ok := ss.nets.Load(tok); ok && v.(string) != network {
		return nil, ErrOtherNetwork
	}
	if v, ok := ss.byToken.Load(tok); ok {
		t := v.(*Transport)
		code, _, closed := t.Session().CloseCode()
		if !closed || code != protocol.CloseSessionTakenOver {
			if !closed && t.Due(ss.refreshEvery) {
				sess := t.Session()
				ss.Save(ctx, tok, Mode(t.Name()), sess, sess.Claims())
			}
			return t, nil
		}
		// Another node took it over; take it back.
		ss.byToken.CompareAndDelete(tok, t)
	}
	mu, _ := ss.adoptLocks.LoadOrStore(tok, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	defer ss.adoptLocks.Delete(tok)
	if v, ok := ss.nets.Load(tok); ok && v.(string) != network { // bound meanwhile (adopted)
		return nil, ErrOtherNetwork
	}
	if v, ok := ss.byToken.Load(tok); ok { // adopted meanwhile
		return v.(*Transport), nil
	}
	rec, err := ss.record(ctx, tok, network)
	if err != nil {
		return nil, err
	}
	claims := rec.claims()
	mode := Mode(rec.Mode)
	if rec.Network != "" {
		ss.nets.Store(tok, rec.Network)
	}
	t := New(mode, func() { ss.byToken.Delete(tok); ss.nets.Delete(tok) })
	sess, err := session.Adopt(ss.env, t, session.Adoption{
		Session:      rec.Session,
		Claims:       claims,
		SessionToken: tok,
		ResumeSeq:    lastSeq,
	})
	if err != nil {
		return nil, ErrNoSession
	}
	if id, _ := sess.ResumeInfo(); id != rec.Session {
		// The old state was gone (expired): this is a new session now;
		// the client will see fresh subscriptions are needed.
		ss.log.Info("adopted session had no state left", "session", rec.Session)
	}
	ss.byToken.Store(tok, t)
	t.Due(0)
	ss.Save(ctx, tok, mode, sess, claims)
	return t, nil
}

// record reads the cluster record of session token tok: ErrNoSession when
// there is none (or its claims expired), ErrOtherNetwork when it is bound
// to another network than the request's.
func (ss *Sessions) record(ctx context.Context, tok, network string) (*httpSessionRecord, error) {
	if ss.kv == nil {
		return nil, ErrNoSession
	}
	b, err := ss.kv.Get(ctx, httpSessionKey(tok))
	if err != nil {
		if errors.Is(err, broker.ErrNotFound) {
			return nil, ErrNoSession
		}
		return nil, err
	}
	var rec httpSessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, ErrNoSession
	}
	if rec.Network != "" && rec.Network != network {
		return nil, ErrOtherNetwork
	}
	if rec.Exp > 0 && !time.Unix(rec.Exp, 0).After(time.Now()) {
		return nil, ErrNoSession
	}
	return &rec, nil
}

// Exists reports whether session token tok names a session that a request
// to this node reaches (nil): one it holds, or one that another node
// keeps a record of, which the request would adopt. It adopts nothing,
// and returns the errors Find returns.
//
// A ticket for a new SSE stream is issued after Exists, not Find: the
// ticket request carries no Last-Event-ID, and a session adopted without
// one resumes from the positions its last node had seen confirmed (for
// SSE: at its stream's start) and drops the seq->offset map of what that
// node wrote since, so the Last-Event-ID the stream brings next maps to
// nothing. Every reconnection to another node then went back to the
// positions the session had when it subscribed: a growing replay, then
// "recovered": false once history no longer reached that far (issue 21's
// soak, ten minutes in). The stream adopts the session instead, with the
// client's Last-Event-ID.
func (ss *Sessions) Exists(ctx context.Context, tok, network string) error {
	if v, ok := ss.nets.Load(tok); ok && v.(string) != network {
		return ErrOtherNetwork
	}
	if v, ok := ss.byToken.Load(tok); ok {
		code, _, closed := v.(*Transport).Session().CloseCode()
		if !closed || code != protocol.CloseSessionTakenOver {
			return nil // Find returns it as it is
		}
	}
	_, err := ss.record(ctx, tok, network)
	return err
}
