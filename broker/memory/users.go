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
	conn, node string
	since      int64
	expires    int64
	bySince    links
	byDeadline links
}

// links are a userConn's neighbours on one list.
type links struct{ prev, next *userConn }

func (c *userConn) ref() broker.ConnRef {
	return broker.ConnRef{Conn: c.conn, Node: c.node, Since: timeOf(c.since)}
}

// connList is one ordered list of a userSet. Its methods take the
// function that picks the links the list uses (not stored: a user with one
// connection should cost little more than the connection).
type connList struct{ first, last *userConn }

// linksOf picks a userConn's links on one list.
type linksOf func(*userConn) *links

func sinceLinks(c *userConn) *links    { return &c.bySince }
func deadlineLinks(c *userConn) *links { return &c.byDeadline }

// place links c (off the list) in order: after the last entry that does
// not come after it, walking back from the tail, so that among equals the
// one placed first stays first.
func (l *connList) place(at linksOf, c *userConn, after func(a, b *userConn) bool) {
	prev := l.last
	for prev != nil && after(prev, c) {
		prev = at(prev).prev
	}
	cl := at(c)
	cl.prev = prev
	if prev == nil {
		cl.next, l.first = l.first, c
	} else {
		pl := at(prev)
		cl.next, pl.next = pl.next, c
	}
	if cl.next == nil {
		l.last = c
	} else {
		at(cl.next).prev = c
	}
}

// unlink takes c off the list.
func (l *connList) unlink(at linksOf, c *userConn) {
	cl := at(c)
	if cl.prev == nil {
		l.first = cl.next
	} else {
		at(cl.prev).next = cl.next
	}
	if cl.next == nil {
		l.last = cl.prev
	} else {
		at(cl.next).prev = cl.prev
	}
	cl.prev, cl.next = nil, nil
}

// sinceAfter and deadlineAfter order the two lists (deadline 0: never,
// the latest).
func sinceAfter(a, b *userConn) bool { return a.since > b.since }
func deadlineAfter(a, b *userConn) bool {
	if a.expires == 0 || b.expires == 0 {
		return a.expires == 0 && b.expires != 0
	}
	return a.expires > b.expires
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
	bySince    connList // oldest .. newest
	byDeadline connList // soonest .. latest, never-expiring last
	n          int
	index      map[string]*userConn // nil while n < indexFrom
}

// find returns conn's entry or nil.
func (s *userSet) find(conn string) *userConn {
	if s.index != nil {
		return s.index[conn]
	}
	for c := s.bySince.first; c != nil; c = c.bySince.next {
		if c.conn == conn {
			return c
		}
	}
	return nil
}

// insert places a new c on both lists and in the index.
func (s *userSet) insert(c *userConn) {
	s.bySince.place(sinceLinks, c, sinceAfter)
	s.byDeadline.place(deadlineLinks, c, deadlineAfter)
	s.n++
	switch {
	case s.index != nil:
		s.index[c.conn] = c
	case s.n >= indexFrom:
		s.index = make(map[string]*userConn, s.n)
		for e := s.bySince.first; e != nil; e = e.bySince.next {
			s.index[e.conn] = e
		}
	}
}

// touch moves c to its place for a new deadline.
func (s *userSet) touch(c *userConn, expires int64) {
	s.byDeadline.unlink(deadlineLinks, c)
	c.expires = expires
	s.byDeadline.place(deadlineLinks, c, deadlineAfter)
}

// remove takes c off both lists and out of the index.
func (s *userSet) remove(c *userConn) {
	s.bySince.unlink(sinceLinks, c)
	s.byDeadline.unlink(deadlineLinks, c)
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
	for c := s.byDeadline.first; c != nil && expiredAt(c.expires, now); c = s.byDeadline.first {
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
		set.touch(c, exp)
		sh.usersDue.note(exp)
	} else {
		if ref.Since.IsZero() {
			ref.Since = now
		}
		set.insert(&userConn{conn: ref.Conn, node: ref.Node, since: ref.Since.UnixNano(), expires: exp})
		sh.usersDue.note(exp)
	}
	if keep <= 0 || set.n <= keep {
		return nil, nil
	}
	out := make([]broker.ConnRef, 0, set.n-keep)
	for c := set.bySince.first; len(out) < cap(out); c = c.bySince.next {
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
