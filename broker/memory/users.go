package memory

import (
	"context"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// userConn is one connection of a user: a broker.ConnRef with its times in
// unix nanoseconds and its deadline (0: never). It sits on two lists of its
// userSet at once: by Since (for eviction, oldest first) and by deadline
// (for expiry, soonest first).
type userConn struct {
	conn, node   string
	since        int64
	expires      int64
	prev, next   *userConn // by since
	eprev, enext *userConn // by deadline
}

func (c *userConn) ref() broker.ConnRef {
	return broker.ConnRef{Conn: c.conn, Node: c.node, Since: timeOf(c.since)}
}

// indexFrom is the connection count from which a userSet keeps an index by
// connection id; below it a lookup walks the list (a user mostly has one or
// two connections, and a map would double their memory).
const indexFrom = 8

// userSet is one user's live connections. Every operation on it costs O(1)
// amortized, whatever the number of connections: a new connection's Since is
// nearly always the newest, and a refreshed one's deadline nearly always the
// latest, so the ordered insertions walk back from the tail a step or two;
// each expired connection is removed once, from the head of the deadline
// list.
type userSet struct {
	first, last   *userConn // by since: oldest .. newest
	efirst, elast *userConn // by deadline: soonest .. latest, never-expiring last
	n             int
	index         map[string]*userConn // nil while n < indexFrom
}

// find returns conn's entry or nil.
func (s *userSet) find(conn string) *userConn {
	if s.index != nil {
		return s.index[conn]
	}
	for c := s.first; c != nil; c = c.next {
		if c.conn == conn {
			return c
		}
	}
	return nil
}

// later reports whether deadline a comes after b (0: never, the latest).
func later(a, b int64) bool {
	if a == 0 || b == 0 {
		return a == 0 && b != 0
	}
	return a > b
}

// insert places a new c on both lists and in the index.
func (s *userSet) insert(c *userConn) {
	// By since, walking back from the newest; among equal times the one
	// added first stays first.
	at := s.last
	for at != nil && at.since > c.since {
		at = at.prev
	}
	c.prev = at
	if at == nil {
		c.next, s.first = s.first, c
	} else {
		c.next, at.next = at.next, c
	}
	if c.next == nil {
		s.last = c
	} else {
		c.next.prev = c
	}
	s.placeByDeadline(c)
	s.n++
	switch {
	case s.index != nil:
		s.index[c.conn] = c
	case s.n >= indexFrom:
		s.index = make(map[string]*userConn, s.n)
		for e := s.first; e != nil; e = e.next {
			s.index[e.conn] = e
		}
	}
}

// placeByDeadline links c (off the deadline list) into it, walking back
// from the latest.
func (s *userSet) placeByDeadline(c *userConn) {
	at := s.elast
	for at != nil && later(at.expires, c.expires) {
		at = at.eprev
	}
	c.eprev = at
	if at == nil {
		c.enext, s.efirst = s.efirst, c
	} else {
		c.enext, at.enext = at.enext, c
	}
	if c.enext == nil {
		s.elast = c
	} else {
		c.enext.eprev = c
	}
}

// unlinkDeadline takes c off the deadline list.
func (s *userSet) unlinkDeadline(c *userConn) {
	if c.eprev == nil {
		s.efirst = c.enext
	} else {
		c.eprev.enext = c.enext
	}
	if c.enext == nil {
		s.elast = c.eprev
	} else {
		c.enext.eprev = c.eprev
	}
	c.eprev, c.enext = nil, nil
}

// remove takes c off both lists and out of the index.
func (s *userSet) remove(c *userConn) {
	if c.prev == nil {
		s.first = c.next
	} else {
		c.prev.next = c.next
	}
	if c.next == nil {
		s.last = c.prev
	} else {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	s.unlinkDeadline(c)
	s.n--
	if s.index != nil {
		delete(s.index, c.conn)
		if s.n < indexFrom/2 {
			s.index = nil // hysteresis: not rebuilt on every step across indexFrom
		}
	}
}

// prune removes the connections expired at now and returns how many.
func (s *userSet) prune(now time.Time) int {
	n := 0
	for c := s.efirst; c != nil && expiredAt(c.expires, now); c = s.efirst {
		s.remove(c)
		n++
	}
	return n
}

// AddUserConn records ref for user until ttl passes (ttl <= 0: until
// removed) and returns the user's live connections beyond the keep newest
// by ConnRef.Since, oldest first (among equal times, the one added first
// first); keep <= 0 returns none. A zero ref.Since is set to now. Adding a
// known connection again restarts its ttl and updates its Node; it keeps its
// original Since and place. O(1) amortized plus the connections returned.
func (b *Broker) AddUserConn(ctx context.Context, user string, ref broker.ConnRef, ttl time.Duration, keep int) ([]broker.ConnRef, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	sh := b.shardFor(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := b.now()
	exp := deadlineAt(now, ttl)
	set := sh.users[user]
	if set == nil {
		set = &userSet{}
		sh.users[user] = set
	}
	set.prune(now)
	if c := set.find(ref.Conn); c != nil {
		c.node = ref.Node
		c.expires = exp
		set.unlinkDeadline(c)
		set.placeByDeadline(c)
	} else {
		if ref.Since.IsZero() {
			ref.Since = now
		}
		set.insert(&userConn{conn: ref.Conn, node: ref.Node, since: ref.Since.UnixNano(), expires: exp})
	}
	if keep <= 0 || set.n <= keep {
		return nil, nil
	}
	out := make([]broker.ConnRef, 0, set.n-keep)
	for c := set.first; len(out) < cap(out); c = c.next {
		out = append(out, c.ref())
	}
	return out, nil
}

// RemoveUserConn forgets conn of user; an unknown conn is not an error.
func (b *Broker) RemoveUserConn(ctx context.Context, user string, conn string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	sh := b.shardFor(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.users[user]
	if set == nil {
		return nil
	}
	if c := set.find(conn); c != nil {
		set.remove(c)
	}
	if set.n == 0 {
		delete(sh.users, user)
	}
	return nil
}
