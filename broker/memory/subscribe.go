package memory

import (
	"context"

	"github.com/ferry-io/ferry/broker"
)

// subscription is this node's interest in one channel, and the channel's
// delivery state.
//
// At most one goroutine delivers a channel's publications at a time (the
// one that set delivering); publishers that find a delivery in progress
// append to queue instead. queue and delivering are guarded by the shard
// lock; the handler is only called with the lock released.
type subscription struct {
	refs       int
	delivering bool
	queue      []*broker.Publication
	// spare is an emptied earlier queue, reused to avoid allocations.
	spare []*broker.Publication
}

// Subscribe makes this node receive ch's publications. Calls are counted:
// each Subscribe needs its own Unsubscribe. Every publication accepted after
// Subscribe returns is delivered.
func (b *Broker) Subscribe(ctx context.Context, ch string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	sh := b.shardFor(ch)
	sh.mu.Lock()
	s := sh.subs[ch]
	if s == nil {
		s = &subscription{}
		sh.subs[ch] = s
	}
	s.refs++
	sh.mu.Unlock()
	return nil
}

// Unsubscribe undoes one Subscribe; without a matching Subscribe it does
// nothing. Once the count drops to zero, publications accepted after
// Unsubscribe returns are not delivered; one that was accepted before may
// still be handed over by a delivery already in progress.
func (b *Broker) Unsubscribe(ctx context.Context, ch string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	sh := b.shardFor(ch)
	sh.mu.Lock()
	if s := sh.subs[ch]; s != nil && s.refs > 0 {
		s.refs--
		if s.refs == 0 && !s.delivering {
			delete(sh.subs, ch)
		}
	}
	sh.mu.Unlock()
	return nil
}

// deliver hands first, then everything other publishers queued meanwhile,
// to h in offset order. The caller set s.delivering under the shard lock;
// deliver clears it when the queue is empty, the channel was unsubscribed
// or the broker closed.
func (b *Broker) deliver(h broker.Handler, sh *shard, ch string, s *subscription, first *broker.Publication) {
	finished := false
	defer func() {
		if !finished {
			// The handler panicked: release the channel so later
			// publishes are delivered again, then let the panic go on.
			sh.mu.Lock()
			clear(s.queue)
			s.queue = s.queue[:0]
			b.endDelivery(sh, ch, s)
			sh.mu.Unlock()
		}
	}()

	if !b.closed.Load() {
		h.HandlePublication(first)
	}
	var batch []*broker.Publication
	for {
		sh.mu.Lock()
		if batch != nil {
			clear(batch)
			s.spare = batch[:0]
		}
		if len(s.queue) == 0 || s.refs == 0 || b.closed.Load() {
			clear(s.queue)
			s.queue = s.queue[:0]
			b.endDelivery(sh, ch, s)
			sh.mu.Unlock()
			finished = true
			return
		}
		batch, s.queue, s.spare = s.queue, s.spare, nil
		sh.mu.Unlock()

		for _, p := range batch {
			if b.closed.Load() {
				break
			}
			h.HandlePublication(p)
		}
	}
}

// endDelivery marks s idle and forgets it when nobody is subscribed. The
// caller holds sh.mu.
func (b *Broker) endDelivery(sh *shard, ch string, s *subscription) {
	s.delivering = false
	if s.refs == 0 && sh.subs[ch] == s {
		delete(sh.subs, ch)
	}
}
