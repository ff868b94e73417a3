package memory

import (
	"context"
	"slices"
	"time"

	"github.com/ferry-io/ferry/broker"
)

type userConn struct {
	ref     broker.ConnRef
	expires time.Time // zero: never
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
	exp := deadline(now, ttl)
	conns := slices.DeleteFunc(sh.users[user], func(c userConn) bool { return expired(c.expires, now) })
	if i := slices.IndexFunc(conns, func(c userConn) bool { return c.ref.Conn == ref.Conn }); i >= 0 {
		conns[i].ref.Node = ref.Node
		conns[i].expires = exp
	} else {
		if ref.Since.IsZero() {
			ref.Since = now
		}
		// Keep the list ordered by Since; among equal times, oldest added
		// first.
		i := len(conns)
		for i > 0 && conns[i-1].ref.Since.After(ref.Since) {
			i--
		}
		conns = slices.Insert(conns, i, userConn{ref: ref, expires: exp})
	}
	sh.users[user] = conns
	out := make([]broker.ConnRef, len(conns))
	for i, c := range conns {
		out[i] = c.ref
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
	conns := slices.DeleteFunc(sh.users[user], func(c userConn) bool { return c.ref.Conn == conn })
	if len(conns) == 0 {
		delete(sh.users, user)
	} else {
		sh.users[user] = conns
	}
	return nil
}
