package fallback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
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
// state) and replays from history what the client has not confirmed. A
// send is routed to the node the record names instead (route.go). No
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
	beating      func() bool // nil: the node keeps no liveness record
	routeIDs     string      // random prefix of this process's route ids (route.go)

	byToken sync.Map // session token -> *Transport (sync.Map's own lock)
	// byKey finds a session for the frames another node routed here: they
	// name it by the hash of its token (httpSessionKey), never the token.
	byKey      sync.Map // httpSessionKey(token) -> *Transport
	adoptLocks sync.Map // session token -> *sync.Mutex: one adoption at a time
	// pending holds the sends this node routed to another one, waiting
	// for its answer (route.go).
	pending  sync.Map // route id -> chan routeAnswer
	routeSeq atomic.Uint64
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
	// Beating reports whether the node's liveness record is current
	// (node.Node.Beating): a node whose record lapsed (it was frozen)
	// refuses frames routed to it, since their session may have moved
	// meanwhile. nil: always current.
	Beating func() bool
}

// NewSessions returns an empty set of HTTP sessions.
func NewSessions(cfg SessionsConfig) *Sessions {
	return &Sessions{
		env:          cfg.Env,
		kv:           cfg.KV,
		recordTTL:    cfg.SessionTTL + cfg.Heartbeat,
		refreshEvery: cfg.SessionTTL / 3,
		log:          cfg.Logger,
		beating:      cfg.Beating,
		routeIDs:     randomID(),
	}
}

// newTransport returns a transport for session token tok, bound to
// network ("" for none); when the session is over it forgets tok, unless
// the token names a newer transport by then (the session was adopted back
// while this one was closing: forgetting that one would make the next
// request adopt the session again, from this very node).
func (ss *Sessions) newTransport(tok string, mode Mode, network string) *Transport {
	t := New(mode, nil)
	t.token, t.network = tok, network
	t.goFn = ss.env.Go
	key := httpSessionKey(tok)
	t.onDone = func() {
		ss.byToken.CompareAndDelete(tok, t)
		ss.byKey.CompareAndDelete(key, t)
	}
	return t
}

// hold makes t the transport of session token tok on this node.
func (ss *Sessions) hold(tok string, t *Transport) {
	ss.byToken.Store(tok, t)
	ss.byKey.Store(httpSessionKey(tok), t)
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
	t := ss.newTransport(tok, mode, network)
	sess := session.New(ss.env, t, hs)
	t.Bind(sess)
	ss.hold(tok, t)
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
	// Node is the node that holds the session (the last one that opened,
	// adopted or refreshed it): sends that land elsewhere are routed
	// there. "" in records written before routing: sends adopt.
	Node string `json:"node,omitempty"`
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
	rec := httpSessionRecord{Session: id, Mode: string(mode), User: claims.Subject, Node: ss.env.NodeID}
	if v, ok := ss.byToken.Load(tok); ok {
		rec.Network = v.(*Transport).network
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
	t, _, err := ss.lookup(ctx, tok, network, false)
	if t != nil || err != nil {
		return t, err
	}
	return ss.adopt(ctx, tok, lastSeq, network)
}

// Check reports whether session token tok names a session that a request
// from network may use, on this node or another, without adopting it:
// nil, ErrNoSession, ErrOtherNetwork, or the store's error.
func (ss *Sessions) Check(ctx context.Context, tok string, network string) error {
	_, _, err := ss.lookup(ctx, tok, network, true)
	return err
}

// lookup returns the transport that holds session token tok on this node,
// when there is one that was not taken over by another node (its record
// refreshed when due); else, with readRecord, the token's record from the
// KV. network is checked against the session's binding either way.
func (ss *Sessions) lookup(ctx context.Context, tok, network string, readRecord bool) (*Transport, *httpSessionRecord, error) {
	if v, ok := ss.byToken.Load(tok); ok {
		t := v.(*Transport)
		if t.network != "" && t.network != network {
			return nil, nil, ErrOtherNetwork
		}
		code, _, closed := t.Session().CloseCode()
		if !closed || code != protocol.CloseSessionTakenOver {
			ss.refresh(ctx, tok, t)
			return t, nil, nil
		}
	}
	if !readRecord {
		return nil, nil, nil
	}
	rec, _, err := ss.record(ctx, tok, network)
	return nil, rec, err
}

// refresh writes the record of session token tok again when it is due
// (every refreshEvery while requests come).
func (ss *Sessions) refresh(ctx context.Context, tok string, t *Transport) {
	sess := t.Session()
	if _, _, closed := sess.CloseCode(); !closed && t.Due(ss.refreshEvery) {
		ss.Save(ctx, tok, Mode(t.Name()), sess, sess.Claims())
	}
}

// record reads the KV record of session token tok and checks it: bound to
// network (or to none), not expired.
func (ss *Sessions) record(ctx context.Context, tok, network string) (*httpSessionRecord, *auth.Claims, error) {
	if ss.kv == nil {
		return nil, nil, ErrNoSession
	}
	b, err := ss.kv.Get(ctx, httpSessionKey(tok))
	if err != nil {
		if errors.Is(err, broker.ErrNotFound) {
			return nil, nil, ErrNoSession
		}
		return nil, nil, err
	}
	var rec httpSessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, nil, ErrNoSession
	}
	if rec.Network != "" && rec.Network != network {
		return nil, nil, ErrOtherNetwork
	}
	claims := rec.claims()
	if !claims.ExpiresAt.IsZero() && !claims.ExpiresAt.After(time.Now()) {
		return nil, nil, ErrNoSession
	}
	return &rec, claims, nil
}

// adopt takes the session of token tok over from the node that holds it
// (or held it), one adoption per token at a time on this node.
func (ss *Sessions) adopt(ctx context.Context, tok string, lastSeq int64, network string) (*Transport, error) {
	// A transport here that another node took the session from stays in
	// byToken until hold replaces it (lookup passes over it), and its end
	// does not forget the new one (newTransport).
	mu, _ := ss.adoptLocks.LoadOrStore(tok, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	defer ss.adoptLocks.Delete(tok)
	if t, _, err := ss.lookup(ctx, tok, network, false); t != nil || err != nil { // adopted meanwhile
		return t, err
	}
	rec, claims, err := ss.record(ctx, tok, network)
	if err != nil {
		return nil, err
	}
	mode := Mode(rec.Mode)
	t := ss.newTransport(tok, mode, rec.Network)
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
	ss.hold(tok, t)
	t.Due(0)
	ss.Save(ctx, tok, mode, sess, claims)
	return t, nil
}
