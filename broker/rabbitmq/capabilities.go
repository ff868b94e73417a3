package rabbitmq

import (
	"context"
	"fmt"
	"time"

	"github.com/ferry-io/ferry/broker"
)

var (
	_ broker.Presence = (*Broker)(nil)
	_ broker.Users    = (*Broker)(nil)
	_ broker.KV       = (*Broker)(nil)
	_ broker.Locker   = (*Broker)(nil)
)

// ask sends a presence, user or key-value request to the writer of the
// shard key hashes to.
func (b *Broker) ask(ctx context.Context, op, key string, r *record) (*reply, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	id := b.requestID()
	rep, err := b.call(ctx, op, shardOf(key, b.cfg.Shards), &request{Op: op, Rec: r}, id)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// AddPresence records info.Conn as present in ch for ttl (ttl <= 0: until
// removed); adding it again restarts its ttl.
func (b *Broker) AddPresence(ctx context.Context, ch string, info broker.PresenceInfo, ttl time.Duration) error {
	_, err := b.ask(ctx, opPresenceAdd, ch, &record{Channel: ch, User: info.User, Conn: info.Conn, Node: info.Node, TTL: int64(ttl)})
	return err
}

// RemovePresence removes conn from ch's presence.
func (b *Broker) RemovePresence(ctx context.Context, ch string, conn string) error {
	_, err := b.ask(ctx, opPresenceRemove, ch, &record{Channel: ch, Conn: conn})
	return err
}

// Presence lists the connections present in ch.
func (b *Broker) Presence(ctx context.Context, ch string) ([]broker.PresenceInfo, error) {
	rep, err := b.ask(ctx, opPresenceList, ch, &record{Channel: ch})
	if err != nil {
		return nil, err
	}
	return rep.Presence, nil
}

// AddUserConn records ref for user for ttl and returns the user's live
// connections beyond the keep newest, oldest first (keep <= 0: none). The
// records live in the writer's memory broker, O(1) amortized per call.
func (b *Broker) AddUserConn(ctx context.Context, user string, ref broker.ConnRef, ttl time.Duration, keep int) ([]broker.ConnRef, error) {
	r := &record{User: user, Conn: ref.Conn, Node: ref.Node, Since: ref.Since.UnixNano(), TTL: int64(ttl), Keep: keep}
	if ref.Since.IsZero() {
		r.Since = time.Now().UnixNano()
	}
	rep, err := b.ask(ctx, opUserAdd, "user:"+user, r)
	if err != nil {
		return nil, err
	}
	return rep.Conns, nil
}

// RemoveUserConn removes conn from user's connections.
func (b *Broker) RemoveUserConn(ctx context.Context, user string, conn string) error {
	_, err := b.ask(ctx, opUserRemove, "user:"+user, &record{User: user, Conn: conn})
	return err
}

// Set stores val under key for ttl (ttl <= 0: until deleted).
func (b *Broker) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	_, err := b.ask(ctx, opKVSet, "kv:"+key, &record{Key: key, Val: val, TTL: int64(ttl)})
	return err
}

// Get returns key's value, or broker.ErrNotFound.
func (b *Broker) Get(ctx context.Context, key string) ([]byte, error) {
	return b.value(ctx, opKVGet, key)
}

// Take returns key's value and deletes it in one step: of concurrent
// Takes one gets the value, the others broker.ErrNotFound.
func (b *Broker) Take(ctx context.Context, key string) ([]byte, error) {
	return b.value(ctx, opKVTake, key)
}

func (b *Broker) value(ctx context.Context, op, key string) ([]byte, error) {
	rep, err := b.ask(ctx, op, "kv:"+key, &record{Key: key})
	if err != nil {
		return nil, err
	}
	if rep.NotFound {
		return nil, fmt.Errorf("rabbitmq broker: key %q: %w", key, broker.ErrNotFound)
	}
	if rep.Val == nil {
		return []byte{}, nil
	}
	return rep.Val, nil
}

// Delete removes key.
func (b *Broker) Delete(ctx context.Context, key string) error {
	_, err := b.ask(ctx, opKVDelete, "kv:"+key, &record{Key: key})
	return err
}

// TryLock takes key for owner unless another owner holds it; the shard's
// writer decides (see writer.lock).
func (b *Broker) TryLock(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return b.lease(ctx, opLock, key, owner, ttl)
}

// Refresh extends owner's lease on key.
func (b *Broker) Refresh(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return b.lease(ctx, opLockRefresh, key, owner, ttl)
}

// Unlock deletes key if owner holds it.
func (b *Broker) Unlock(ctx context.Context, key, owner string) error {
	ok, err := b.lease(ctx, opUnlock, key, owner, time.Millisecond)
	if err == nil && !ok {
		err = fmt.Errorf("rabbitmq broker: unlock %q: %w", key, broker.ErrNotHeld)
	}
	return err
}

// lease asks key's writer for a Locker operation; false when it refused.
func (b *Broker) lease(ctx context.Context, op, key, owner string, ttl time.Duration) (bool, error) {
	if err := broker.CheckLease(owner, ttl); err != nil {
		return false, fmt.Errorf("rabbitmq broker: %s %q: %w", op, key, err)
	}
	rep, err := b.ask(ctx, op, "kv:"+key, &record{Key: key, Val: []byte(owner), TTL: int64(ttl)})
	if err != nil {
		return false, err
	}
	return !rep.NotFound, nil
}
