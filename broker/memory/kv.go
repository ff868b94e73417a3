package memory

import (
	"context"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// kvEntry is a value (a string: the bytes without a slice's capacity) and
// its deadline in unix nanoseconds (0: never).
type kvEntry struct {
	val     string
	expires int64
}

// Set stores a copy of val under key until ttl passes (ttl <= 0: until
// deleted), replacing any earlier value.
func (b *Broker) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	e := kvEntry{val: string(val), expires: deadlineAt(b.now(), ttl)}
	sh := b.shardFor(key)
	sh.mu.Lock()
	sh.kv[key] = e
	sh.kvDue.note(e.expires)
	sh.mu.Unlock()
	return nil
}

// Get returns a copy of key's value, or broker.ErrNotFound when the key is
// missing or expired.
func (b *Broker) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	sh := b.shardFor(key)
	sh.mu.RLock()
	e, ok := sh.kv[key]
	live := ok && !expiredAt(e.expires, b.now())
	sh.mu.RUnlock()
	if !live {
		return nil, broker.ErrNotFound
	}
	return []byte(e.val), nil
}

// Take returns key's value and deletes the key in one step: of concurrent
// Takes of one key, exactly one gets the value and the others get
// broker.ErrNotFound.
func (b *Broker) Take(ctx context.Context, key string) ([]byte, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	sh := b.shardFor(key)
	sh.mu.Lock()
	e, ok := sh.kv[key]
	if ok {
		delete(sh.kv, key)
	}
	live := ok && !expiredAt(e.expires, b.now())
	sh.mu.Unlock()
	if !live {
		return nil, broker.ErrNotFound
	}
	return []byte(e.val), nil
}

// Delete removes key; a missing key is not an error.
func (b *Broker) Delete(ctx context.Context, key string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	sh := b.shardFor(key)
	sh.mu.Lock()
	delete(sh.kv, key)
	sh.mu.Unlock()
	return nil
}
