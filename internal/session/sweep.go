package session

import (
	"context"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/protocol"
)

// What the node's registry asks of a session (node.Conn): the periodic
// checks of one connection, its link in its user's chain, its queue length.

// Sweep runs this connection's periodic checks at now and returns the
// refresh of its broker records when one is due (node.Conn).
func (s *Session) Sweep(now time.Time) func(context.Context) {
	if !s.sweep(now) {
		return nil
	}
	f, ok := s.refreshDue(now)
	if !ok {
		return nil
	}
	return f.run
}

// UserLink is the session's link to the next session of its user in the
// node's registry (node.Conn); only the registry touches it, under its
// shard's lock.
func (s *Session) UserLink() **Session { return &s.nextOfUser }

// QueueLen is the number of frames queued for this connection.
func (s *Session) QueueLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.Len()
}

// registerConnected indexes the session by its user in the node's registry
// once connect succeeded.
func (s *Session) registerConnected() {
	reg := s.env.Registry
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	reg.Connected(s, user)
	// A session that ended meanwhile may have left the index before it
	// was in it (Closed marks it closed, then unregisters it).
	s.mu.Lock()
	closed := s.state == stateClosed
	s.mu.Unlock()
	if closed {
		reg.RemoveUser(s, user)
	}
}

// unregister takes the session out of the node's registry.
func (s *Session) unregister() {
	s.mu.Lock()
	id, user := s.id, s.user
	s.mu.Unlock()
	s.env.Registry.Remove(s, user, id != "")
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
		if s.expiredByHook() {
			return true // the refresh hook decides (refreshByHook)
		}
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
		_, _ = env.Users.AddUserConn(ctx, f.user, broker.ConnRef{Conn: s.connID, Node: env.NodeID, Since: time.Unix(0, s.opened)}, userConnTTL(env), 0) // a refresh evicts nothing
	}
	if env.Presence != nil {
		for _, ch := range f.chans {
			_ = env.Presence.AddPresence(ctx, ch, broker.PresenceInfo{User: f.user, Conn: s.connID, Node: env.NodeID}, presenceTTL(env))
		}
	}
}

// The session is what the writer pool holds (and, as the Env's Registry
// type says, what the node's registry holds: node.Conn).
var _ flow.Writable = (*Session)(nil)
