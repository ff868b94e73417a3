package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// Locks are KV entries whose value is the owner; the shard's mutex makes
// each check-and-write below one step.

// TryLock takes key for owner unless another owner holds a live lease.
func (b *Broker) TryLock(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return b.lease(ctx, "lock", key, owner, ttl, true)
}

// Refresh extends owner's live lease on key.
func (b *Broker) Refresh(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return b.lease(ctx, "refresh", key, owner, ttl, false)
}

// lease writes owner's lease on key for ttl when owner holds it, or (when
// free is true) when nobody holds it.
func (b *Broker) lease(ctx context.Context, op, key, owner string, ttl time.Duration, free bool) (bool, error) {
	if err := broker.CheckLease(owner, ttl); err != nil {
		return false, fmt.Errorf("memory broker: %s %q: %w", op, key, err)
	}
	if err := b.usable(ctx); err != nil {
		return false, err
	}
	now := b.now()
	sh := b.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.kv[key]
	held := ok && !expiredAt(e.expires, now)
	if held && e.val != owner || !held && !free {
		return false, nil
	}
	sh.kv[key] = kvEntry{val: owner, expires: deadlineAt(now, ttl)}
	sh.kvDue.note(sh.kv[key].expires)
	return true, nil
}

// Unlock deletes key if owner holds it.
func (b *Broker) Unlock(ctx context.Context, key, owner string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	sh := b.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.kv[key]
	if !ok || e.val != owner || expiredAt(e.expires, b.now()) {
		return fmt.Errorf("memory broker: unlock %q: %w", key, broker.ErrNotHeld)
	}
	delete(sh.kv, key)
	return nil
}
