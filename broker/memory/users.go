package memory

import (
	"context"
	"slices"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// userConn is a broker.ConnRef with its times in unix nanoseconds, and
// its deadline (0: never).
type userConn struct {
	conn, node string
	since      int64
	expires    int64
}

func (c *userConn) ref() broker.ConnRef {
	return broker.ConnRef{Conn: c.conn, Node: c.node, Since: timeOf(c.since)}
}

// AddUserConn records ref for user until ttl passes (ttl <= 0: until
// removed) and returns the user's live connections, oldest first by
// ConnRef.Since, ref included. A zero ref.Since is set to now. Adding a
// known connection again restarts its ttl and updates its Node; it keeps its
// original Since and place.
func (b *Broker) AddUserConn(ctx context.Context, user string, ref broker.ConnRef, ttl time.Duration) ([]broker.ConnRef, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	sh := b.shardFor(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := b.now()
	exp := deadlineAt(now, ttl)
	conns := slices.DeleteFunc(sh.users[user], func(c userConn) bool { return expiredAt(c.expires, now) })
	if i := slices.IndexFunc(conns, func(c userConn) bool { return c.conn == ref.Conn }); i >= 0 {
		conns[i].node = ref.Node
		conns[i].expires = exp
	} else {
		if ref.Since.IsZero() {
			ref.Since = now
		}
		since := ref.Since.UnixNano()
		// Keep the list ordered by Since; among equal times, oldest added
		// first.
		i := len(conns)
		for i > 0 && conns[i-1].since > since {
			i--
		}
		c := userConn{conn: ref.Conn, node: ref.Node, since: since, expires: exp}
		if len(conns) == 0 {
			// The usual case, one connection: a slice of exactly one
			// (Insert would round the capacity up).
			conns = []userConn{c}
		} else {
			conns = slices.Insert(conns, i, c)
		}
	}
	sh.users[user] = conns
	out := make([]broker.ConnRef, len(conns))
	for i := range conns {
		out[i] = conns[i].ref()
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
	conns := slices.DeleteFunc(sh.users[user], func(c userConn) bool { return c.conn == conn })
	if len(conns) == 0 {
		delete(sh.users, user)
	} else {
		sh.users[user] = conns
	}
	return nil
}
