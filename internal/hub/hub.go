// Package hub keeps a node's local subscriptions: which connections on this
// node subscribed to which channel. It fans a publication out to the local
// subscribers of its channel and tells the broker when the node gains its
// first subscriber of a channel or loses its last one.
//
// The map is sharded by channel so that subscribes on different channels do
// not contend, and a broadcast holds only a read lock of one shard while it
// hands the (already encoded) message to each subscriber. Subscribers never
// block: Deliver only queues.
package hub

import (
	"context"
	"hash/maphash"
	"sync"
)

// Subscriber is one local subscription's receiver (a session).
type Subscriber interface {
	// Deliver queues v for the subscriber. It must not block.
	Deliver(channel string, v any)
}

// BrokerSubscriber is what the hub needs from the broker: node-level,
// reference-counted subscriptions.
type BrokerSubscriber interface {
	Subscribe(ctx context.Context, ch string) error
	Unsubscribe(ctx context.Context, ch string) error
}

const shardCount = 64

// Hub is a node's subscription map. The zero value is not usable; use New.
type Hub struct {
	seed   maphash.Seed
	shards [shardCount]shard
	broker BrokerSubscriber
}

type shard struct {
	mu    sync.RWMutex
	chans map[string]*channel
}

// channel holds one channel's local subscribers.
//
// Lock order: shard.mu may be taken while holding channel.brokerMu, never the
// other way round.
type channel struct {
	refs int // subscribers plus subscribes in progress; guarded by shard.mu
	subs []Subscriber
	idx  map[Subscriber]int // position in subs; guarded by shard.mu

	brokerMu         sync.Mutex // serializes broker (un)subscribe of this channel
	brokerSubscribed bool       // guarded by brokerMu
}

// New returns an empty hub that subscribes the node to channels through b.
func New(b BrokerSubscriber) *Hub {
	h := &Hub{seed: maphash.MakeSeed(), broker: b}
	for i := range h.shards {
		h.shards[i].chans = make(map[string]*channel)
	}
	return h
}

func (h *Hub) shard(ch string) *shard {
	return &h.shards[maphash.String(h.seed, ch)%shardCount]
}

// Subscribe adds sub to ch. When it returns without error, the node is
// subscribed at the broker (so every later publication reaches sub).
// Subscribing the same sub twice is a no-op.
func (h *Hub) Subscribe(ctx context.Context, ch string, sub Subscriber) error {
	s := h.shard(ch)
	s.mu.Lock()
	c := s.chans[ch]
	if c == nil {
		c = &channel{idx: make(map[Subscriber]int)}
		s.chans[ch] = c
	}
	if _, ok := c.idx[sub]; ok {
		s.mu.Unlock()
		return nil
	}
	c.refs++
	s.mu.Unlock()

	c.brokerMu.Lock()
	if !c.brokerSubscribed {
		if err := h.broker.Subscribe(ctx, ch); err != nil {
			c.brokerMu.Unlock()
			h.release(ch, c)
			return err
		}
		c.brokerSubscribed = true
	}
	c.brokerMu.Unlock()

	s.mu.Lock()
	if _, ok := c.idx[sub]; ok { // a concurrent Subscribe of the same sub won
		c.refs--
	} else {
		c.idx[sub] = len(c.subs)
		c.subs = append(c.subs, sub)
	}
	s.mu.Unlock()
	return nil
}

// Unsubscribe removes sub from ch; it reports whether sub was subscribed.
func (h *Hub) Unsubscribe(ch string, sub Subscriber) bool {
	s := h.shard(ch)
	s.mu.Lock()
	c := s.chans[ch]
	if c == nil {
		s.mu.Unlock()
		return false
	}
	i, ok := c.idx[sub]
	if !ok {
		s.mu.Unlock()
		return false
	}
	last := len(c.subs) - 1
	c.subs[i] = c.subs[last]
	c.idx[c.subs[i]] = i
	c.subs[last] = nil
	c.subs = c.subs[:last]
	delete(c.idx, sub)
	s.mu.Unlock()
	h.release(ch, c)
	return true
}

// release drops one reference; the last one unsubscribes the node.
func (h *Hub) release(ch string, c *channel) {
	s := h.shard(ch)
	s.mu.Lock()
	c.refs--
	gone := c.refs == 0
	if gone && s.chans[ch] == c {
		delete(s.chans, ch)
	}
	s.mu.Unlock()
	if !gone {
		return
	}
	c.brokerMu.Lock()
	if c.brokerSubscribed {
		c.brokerSubscribed = false
		// The broker's own reference count keeps a newer subscription of
		// the same channel (a new *channel) alive.
		_ = h.broker.Unsubscribe(context.Background(), ch)
	}
	c.brokerMu.Unlock()
}

// Broadcast hands v to every local subscriber of ch and returns how many
// there were.
func (h *Hub) Broadcast(ch string, v any) int {
	s := h.shard(ch)
	s.mu.RLock()
	c := s.chans[ch]
	if c == nil {
		s.mu.RUnlock()
		return 0
	}
	n := len(c.subs)
	for _, sub := range c.subs {
		sub.Deliver(ch, v)
	}
	s.mu.RUnlock()
	return n
}

// Each calls fn for every local subscriber of ch (under the shard's read
// lock: fn must not call back into the hub).
func (h *Hub) Each(ch string, fn func(Subscriber)) {
	s := h.shard(ch)
	s.mu.RLock()
	if c := s.chans[ch]; c != nil {
		for _, sub := range c.subs {
			fn(sub)
		}
	}
	s.mu.RUnlock()
}

// Subscribers returns the number of local subscribers of ch.
func (h *Hub) Subscribers(ch string) int {
	s := h.shard(ch)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c := s.chans[ch]; c != nil {
		return len(c.subs)
	}
	return 0
}

// Channels returns the number of channels with local subscribers.
func (h *Hub) Channels() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		n += len(s.chans)
		s.mu.RUnlock()
	}
	return n
}

// EachChannel calls fn with every channel that has local subscribers and
// their number, one shard at a time under its read lock (fn must not call
// back into the hub). It is for reports (the admin page), not the
// delivery path.
func (h *Hub) EachChannel(fn func(ch string, subscribers int)) {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for ch, c := range s.chans {
			if len(c.subs) > 0 {
				fn(ch, len(c.subs))
			}
		}
		s.mu.RUnlock()
	}
}
