package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/ferry-io/ferry/broker"
)

// Set stores val under key until ttl passes (ttl <= 0: until deleted),
// replacing any earlier value.
func (b *Broker) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	client := b.shardFor(key).client
	set := client.B().Set().Key(b.names.kv(key)).Value(string(val))
	var cmd rueidis.Completed
	if ms := millis(ttl); ms > 0 {
		cmd = set.PxMilliseconds(ms).Build()
	} else {
		cmd = set.Build()
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	if err := client.Do(cctx, cmd).Error(); err != nil {
		return b.fail(ctx, "set", err)
	}
	return nil
}

// Get returns key's value, or broker.ErrNotFound when the key is missing or
// expired.
func (b *Broker) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	client := b.shardFor(key).client
	cctx, cancel := b.call(ctx)
	defer cancel()
	return b.value(ctx, "get", client.Do(cctx, client.B().Get().Key(b.names.kv(key)).Build()))
}

// Take returns key's value and deletes the key in one step (GETDEL, Redis
// 6.2 or later): of concurrent Takes of one key, on any nodes, exactly one
// gets the value and the others get broker.ErrNotFound.
func (b *Broker) Take(ctx context.Context, key string) ([]byte, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	client := b.shardFor(key).client
	cctx, cancel := b.call(ctx)
	defer cancel()
	return b.value(ctx, "take", client.Do(cctx, client.B().Getdel().Key(b.names.kv(key)).Build()))
}

// value converts the reply of GET or GETDEL.
func (b *Broker) value(ctx context.Context, op string, res rueidis.RedisResult) ([]byte, error) {
	v, err := res.AsBytes()
	switch {
	case rueidis.IsRedisNil(err):
		return nil, broker.ErrNotFound
	case err != nil:
		return nil, b.fail(ctx, op, err)
	case v == nil:
		v = []byte{}
	}
	return v, nil
}

// Delete removes key; a missing key is not an error.
func (b *Broker) Delete(ctx context.Context, key string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	client := b.shardFor(key).client
	cctx, cancel := b.call(ctx)
	defer cancel()
	if err := client.Do(cctx, client.B().Del().Key(b.names.kv(key)).Build()).Error(); err != nil {
		return b.fail(ctx, fmt.Sprintf("delete %q", key), err)
	}
	return nil
}
