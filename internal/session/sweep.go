package session

import (
	"context"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// What the node's registry asks of a session (node.Conn): the periodic
// checks of one connection, its link in its user's chain, its queue length.

// Sweep runs this connection's periodic checks at now and returns when
// the next one is due (zero: the connection has ended) and the refresh of
// its broker records when one is due (node.Conn).
func (s *Session) Sweep(now time.Time) (time.Time, func(context.Context)) {
	next, live := s.sweep(now)
	if !live {
		return next, nil
	}
	f, due, ok := s.refreshDue(now)
	next = earliest(next, due)
	if !ok {
		return next, nil
	}
	return next, f.run
}

// SweepLink is this connection's place in the node registry's timing
// wheel (node.Conn).
func (s *Session) SweepLink() *node.SweepLink[*Session] { return &s.sweepLink }

// earliest is the earlier of a and b, ignoring a zero time.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
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

// sweep checks one session's timeouts and heartbeat. It returns when the
// next check is due (zero: the session has ended) and whether the session
// is connected and answering (its records may be refreshed).
func (s *Session) sweep(now time.Time) (time.Time, bool) {
	env := s.env
	soon := now.Add(time.Second) // the next sweep
	s.mu.Lock()
	state, exp := s.state, s.expiresAt
	s.mu.Unlock()
	switch state {
	case stateClosed:
		return time.Time{}, false
	case stateNew:
		d := env.Limits.ConnectTimeout
		if d <= 0 {
			return now.Add(time.Hour), false // the wheel's horizon
		}
		deadline := time.Unix(0, s.opened+int64(d))
		if now.After(deadline) {
			s.Close(protocol.CloseUnauthorized, "no connect frame within "+d.String())
			return time.Time{}, false
		}
		return deadline, false
	}
	var next time.Time
	if exp != 0 {
		if exp <= now.UnixNano() {
			if s.expiredByHook() {
				return soon, true // the refresh hook decides (refreshByHook)
			}
			s.Close(protocol.CloseTokenExpired, "token expired")
			return time.Time{}, false
		}
		next = time.Unix(0, exp)
	}
	s.mu.Lock()
	qerr := s.queue.Check(now)
	if s.queue.Len() == 0 {
		// An idle connection keeps no buffers: the queue's and the
		// writer's scratch slice are made again when it has traffic.
		s.queue.Shrink()
		s.scratch = nil
	} else {
		next = soon // its bounds are checked every second
	}
	s.mu.Unlock()
	if qerr != nil {
		s.afterPush(qerr)
		return soon, false
	}
	last := s.t.LastActivity()
	if pinged := s.pingedAt.Load(); pinged != 0 {
		deadline := time.Unix(0, pinged+int64(env.Limits.HeartbeatTimeout))
		switch {
		case last.UnixNano() >= pinged:
			s.pingedAt.Store(0)
		case now.After(deadline):
			s.Close(protocol.CloseHeartbeat, "heartbeat timeout: nothing heard for "+now.Sub(last).Round(time.Second).String())
			return time.Time{}, false
		default:
			return earliest(next, deadline), false
		}
	}
	if now.Sub(last) >= env.Limits.HeartbeatInterval {
		s.pingedAt.Store(now.UnixNano())
		_ = s.t.Ping()
		return earliest(next, now.Add(env.Limits.HeartbeatTimeout)), true
	}
	return earliest(next, last.Add(env.Limits.HeartbeatInterval)), true
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
// what to refresh, and when the next refresh is due.
func (s *Session) refreshDue(now time.Time) (refresh, time.Time, bool) {
	env := s.env
	every := env.Limits.HeartbeatInterval + env.Limits.HeartbeatTimeout
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.msSinceOpened(now)
	if since := time.Duration(ms-s.refreshedAt) * time.Millisecond; since < every {
		return refresh{}, now.Add(every - since), false
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
	return f, now.Add(every), true
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
