package nats

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// A lock is a KV value (its expiry, then the owner; see Set) written only
// by compare-and-set on the revision read (slot.go): of two owners that
// read a free key, one write lands and the other is refused, however the
// writes interleave on a replicated stream. The expiry is the writing
// node's clock, as for every KV value: nodes whose clocks disagree by
// more than a small part of the lease see it lapse at different moments.

// TryLock takes key for owner unless another owner holds a live lease.
func (b *Broker) TryLock(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return b.lease(ctx, "lock", key, owner, ttl, true)
}

// Refresh extends owner's live lease on key.
func (b *Broker) Refresh(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return b.lease(ctx, "refresh", key, owner, ttl, false)
}

// lease writes owner's lease on key when owner holds it or, with free,
// when nobody does.
func (b *Broker) lease(ctx context.Context, op, key, owner string, ttl time.Duration, free bool) (bool, error) {
	if err := broker.CheckLease(owner, ttl); err != nil {
		return false, fmt.Errorf("nats broker: %s %q: %w", op, key, err)
	}
	if err := b.checkOpen(); err != nil {
		return false, err
	}
	exp, err := b.expiry(ttl)
	if err != nil {
		return false, fmt.Errorf("nats broker: %s %q: %w", op, key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	sl, holder, err := b.readLock(ctx, key)
	if err != nil {
		return false, b.fail(fmt.Sprintf("%s %q", op, key), err)
	}
	if holder != "" && holder != owner || holder == "" && !free {
		return false, nil
	}
	val := append(binary.BigEndian.AppendUint64(make([]byte, 0, expLen+len(owner)), uint64(exp)), owner...)
	_, err = b.writeSlot(ctx, b.names.kv, token(key), sl.rev, val, false)
	if errors.Is(err, errConflict) {
		return false, nil // another owner's write landed first
	}
	if err != nil {
		return false, b.fail(fmt.Sprintf("%s %q", op, key), err)
	}
	return true, nil
}

// Unlock deletes key if owner holds it.
func (b *Broker) Unlock(ctx context.Context, key, owner string) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	sl, holder, err := b.readLock(ctx, key)
	if err != nil {
		return b.fail(fmt.Sprintf("unlock %q", key), err)
	}
	if holder == "" || holder != owner {
		return fmt.Errorf("nats broker: unlock %q: %w", key, broker.ErrNotHeld)
	}
	_, err = b.writeSlot(ctx, b.names.kv, token(key), sl.rev, nil, true)
	if errors.Is(err, errConflict) {
		return fmt.Errorf("nats broker: unlock %q: %w", key, broker.ErrNotHeld)
	}
	if err != nil {
		return b.fail(fmt.Sprintf("unlock %q", key), err)
	}
	return nil
}

// readLock reads key's slot and the owner of its live lease ("" when the
// key is free: missing, deleted or lapsed). The slot's revision is what a
// conditional write replaces.
func (b *Broker) readLock(ctx context.Context, key string) (slot, string, error) {
	sl, err := b.readSlot(ctx, b.names.kv, token(key))
	if err != nil || !sl.live {
		return sl, "", err
	}
	if len(sl.val) < expLen {
		return sl, "", fmt.Errorf("%w: value of %q", errMalformed, key)
	}
	if int64(binary.BigEndian.Uint64(sl.val)) <= time.Now().UnixMilli() {
		return sl, "", nil
	}
	return sl, string(sl.val[expLen:]), nil
}
