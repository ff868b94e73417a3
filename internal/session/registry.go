package session

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/protocol"
)

const registryShards = 32

// Registry holds a node's live sessions, by connection id and by user,
// and runs the periodic checks (heartbeats, connect timeout, token
// expiry, presence refresh) in one sweep over all of them instead of a timer
// per connection.
type Registry struct {
	seed   maphash.Seed
	shards [registryShards]regShard
}

type regShard struct {
	mu    sync.RWMutex
	conns map[string]*Session
	// byUser holds the first of each user's connected sessions; the rest
	// follow it through Session.nextOfUser (a user has one or a few, and
	// a chain costs no table per user).
	byUser map[string]*Session
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i] = regShard{
			conns:  make(map[string]*Session),
			byUser: make(map[string]*Session),
		}
	}
	return r
}

func (r *Registry) shard(key string) *regShard {
	return &r.shards[maphash.String(r.seed, key)%registryShards]
}

func (r *Registry) addPending(s *Session) {
	sh := r.shard(s.connID)
	sh.mu.Lock()
	sh.conns[s.connID] = s
	sh.mu.Unlock()
}

// connected indexes s by its user once connect succeeded.
func (r *Registry) connected(s *Session) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	sh := r.shard(user)
	sh.mu.Lock()
	s.nextOfUser = sh.byUser[user]
	sh.byUser[user] = s
	sh.mu.Unlock()
	// A session that ended meanwhile may have left the index before it
	// was in it (Closed marks it closed, then removes it).
	s.mu.Lock()
	closed := s.state == stateClosed
	s.mu.Unlock()
	if closed {
		r.removeUser(s, user)
	}
}

func (r *Registry) remove(s *Session) {
	sh := r.shard(s.connID)
	sh.mu.Lock()
	if sh.conns[s.connID] == s {
		delete(sh.conns, s.connID)
	}
	sh.mu.Unlock()
	s.mu.Lock()
	id, user := s.id, s.user
	s.mu.Unlock()
	if id == "" {
		return
	}
	r.removeUser(s, user)
}

// removeUser takes s out of user's sessions, if it is there.
func (r *Registry) removeUser(s *Session, user string) {
	sh := r.shard(user)
	sh.mu.Lock()
	for p, c := (*Session)(nil), sh.byUser[user]; c != nil; p, c = c, c.nextOfUser {
		if c != s {
			continue
		}
		switch {
		case p != nil:
			p.nextOfUser = c.nextOfUser
		case c.nextOfUser != nil:
			sh.byUser[user] = c.nextOfUser
		default:
			delete(sh.byUser, user)
		}
		c.nextOfUser = nil
		break
	}
	sh.mu.Unlock()
}

func (r *Registry) byConn(conn string) *Session {
	sh := r.shard(conn)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.conns[conn]
}

// ByConn returns the live session of a connection id, or nil.
func (r *Registry) ByConn(conn string) *Session { return r.byConn(conn) }

// ByUser returns the live sessions of a user on this node.
func (r *Registry) ByUser(user string) []*Session {
	sh := r.shard(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	var out []*Session
	for s := sh.byUser[user]; s != nil; s = s.nextOfUser {
		out = append(out, s)
	}
	return out
}

// Count returns the number of live connections (connected or not yet).
func (r *Registry) Count() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		n += len(sh.conns)
		sh.mu.RUnlock()
	}
	return n
}

// Each calls fn for every live session (outside the registry's locks).
func (r *Registry) Each(fn func(*Session)) {
	var batch []*Session
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		batch = batch[:0]
		for _, s := range sh.conns {
			batch = append(batch, s)
		}
		sh.mu.RUnlock()
		for _, s := range batch {
			fn(s)
		}
	}
}

// QueueDepth returns the total number of frames queued on this node.
func (r *Registry) QueueDepth() int {
	n := 0
	r.Each(func(s *Session) {
		s.mu.Lock()
		n += s.queue.Len()
		s.mu.Unlock()
	})
	return n
}

// Sweep runs the periodic checks on every session. The node calls it about
// once a second.
func (r *Registry) Sweep(ctx context.Context, now time.Time) {
	// First the checks that need no broker (heartbeats, timeouts, queue
	// bounds) for every session, then the record refreshes that are due,
	// several at once: one round trip per record, one after the other,
	// would make a sweep of many connections as slow as their number
	// times the broker's latency, and delay the next heartbeats by as
	// much.
	var due []refresh
	r.Each(func(s *Session) {
		if s.sweep(now) {
			if f, ok := s.refreshDue(now); ok {
				due = append(due, f)
			}
		}
	})
	runRefreshes(ctx, due)
}

// sweepRefreshers bounds the record refreshes a sweep runs at once (the
// Redis client pipelines concurrent calls).
const sweepRefreshers = 32

// runRefreshes runs fs on up to sweepRefreshers goroutines and waits.
func runRefreshes(ctx context.Context, fs []refresh) {
	if len(fs) == 0 {
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(sweepRefreshers, len(fs)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(fs)) {
					return
				}
				fs[i].run(ctx)
			}
		})
	}
	wg.Wait()
}

// sweep checks one session's timeouts and heartbeat, and reports whether it
// is still connected and answering (its records may be refreshed).
func (s *Session) sweep(now time.Time) bool {
	env := s.env
	s.mu.Lock()
	state, exp := s.state, s.expiresAt
	s.mu.Unlock()
	switch state {
	case stateClosed:
		return false
	case stateNew:
		if d := env.Limits.ConnectTimeout; d > 0 && now.UnixNano()-s.opened > int64(d) {
			s.Close(protocol.CloseUnauthorized, "no connect frame within "+d.String())
		}
		return false
	}
	if exp != 0 && exp <= now.UnixNano() {
		s.Close(protocol.CloseTokenExpired, "token expired")
		return false
	}
	s.mu.Lock()
	qerr := s.queue.Check(now)
	if s.queue.Len() == 0 {
		// An idle connection keeps no buffers: the queue's and the
		// writer's scratch slice are made again when it has traffic.
		s.queue.Shrink()
		s.scratch = nil
	}
	s.mu.Unlock()
	if qerr != nil {
		s.afterPush(qerr)
		return false
	}
	last := s.t.LastActivity()
	if pinged := s.pingedAt.Load(); pinged != 0 {
		if last.UnixNano() >= pinged {
			s.pingedAt.Store(0)
		} else if now.UnixNano()-pinged > int64(env.Limits.HeartbeatTimeout) {
			s.Close(protocol.CloseHeartbeat, "heartbeat timeout: nothing heard for "+now.Sub(last).Round(time.Second).String())
			return false
		} else {
			return false
		}
	}
	if now.Sub(last) >= env.Limits.HeartbeatInterval {
		s.pingedAt.Store(now.UnixNano())
		_ = s.t.Ping()
	}
	return true
}

// refresh is one session's record refresh, taken under its lock by
// refreshDue and run without it.
type refresh struct {
	s      *Session
	user   string
	chans  []string
	resave bool
}

// refreshDue reports whether this connection's presence and user records
// (which expire on their own if the node dies) are due for a refresh, and
// what to refresh.
func (s *Session) refreshDue(now time.Time) (refresh, bool) {
	env := s.env
	every := env.Limits.HeartbeatInterval + env.Limits.HeartbeatTimeout
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.msSinceOpened(now)
	if time.Duration(ms-s.refreshedAt)*time.Millisecond < every {
		return refresh{}, false
	}
	s.refreshedAt = ms
	f := refresh{s: s, user: s.user}
	f.resave = time.Duration(ms-s.savedAt)*time.Millisecond > env.Limits.SessionTTL/2
	if f.resave {
		s.savedAt = ms
	}
	for _, sub := range s.subs {
		if sub.tracked {
			f.chans = append(f.chans, sub.ch)
		}
	}
	return f, true
}

// run writes the records to the broker.
func (f *refresh) run(ctx context.Context) {
	s, env := f.s, f.s.env
	if f.resave {
		// The live snapshot must outlive the connection for takeover,
		// and carries the subscriptions in case this node dies.
		s.saveSnapshot(ctx, true, nil)
	}
	if env.Users != nil && f.user != "" {
		_, _ = env.Users.AddUserConn(ctx, f.user, broker.ConnRef{Conn: s.connID, Node: env.NodeID, Since: time.Unix(0, s.opened)}, userConnTTL(env))
	}
	if env.Presence != nil {
		for _, ch := range f.chans {
			_ = env.Presence.AddPresence(ctx, ch, broker.PresenceInfo{User: f.user, Conn: s.connID, Node: env.NodeID}, presenceTTL(env))
		}
	}
}
