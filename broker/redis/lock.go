package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/ferry-io/ferry/broker"
)

// A lock is a KV key whose value is its owner, with the lease as the key's
// PX expiry (Redis' own clock, so nodes with skewed clocks agree). Each
// script reads the owner and writes in one atomic step: compare and set,
// compare and expire, compare and delete.
//
// KEYS[1] the lock's KV key
// ARGV[1] owner
// ARGV[2] lease in ms (lock and refresh)
// Each returns 1 when it acted for owner, 0 when another owner (or nobody,
// for refresh and unlock) holds the key.
var (
	lockScript = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)
	refreshScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)
	unlockScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)
)

// TryLock takes key for owner unless another owner holds it.
func (b *Broker) TryLock(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return b.runLock(ctx, "lock", lockScript, key, owner, ttl)
}

// Refresh extends owner's lease on key.
func (b *Broker) Refresh(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return b.runLock(ctx, "refresh", refreshScript, key, owner, ttl)
}

// Unlock deletes key if owner holds it.
func (b *Broker) Unlock(ctx context.Context, key, owner string) error {
	ok, err := b.runLock(ctx, "unlock", unlockScript, key, owner, time.Millisecond)
	if err == nil && !ok {
		err = fmt.Errorf("redis broker: unlock %q: %w", key, broker.ErrNotHeld)
	}
	return err
}

// runLock runs one of the lock scripts on key's shard.
func (b *Broker) runLock(ctx context.Context, op string, script *rueidis.Lua, key, owner string, ttl time.Duration) (bool, error) {
	if err := broker.CheckLease(owner, ttl); err != nil {
		return false, fmt.Errorf("redis broker: %s %q: %w", op, key, err)
	}
	if err := b.usable(ctx); err != nil {
		return false, err
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	args := []string{owner, strconv.FormatInt(millis(ttl), 10)}
	n, err := script.Exec(cctx, b.shardFor(key).client, []string{b.names.kv(key)}, args).AsInt64()
	if err != nil {
		return false, b.fail(ctx, fmt.Sprintf("%s %q", op, key), err)
	}
	return n == 1, nil
}
