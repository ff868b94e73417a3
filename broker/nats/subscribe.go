package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-io/ferry/broker"
)

// maxGapFill bounds how many missing messages the worker fetches from the
// stream to close one gap in a channel's deliveries.
const maxGapFill = 1000

// chanSub is this node's subscription to one channel's fan-out subject.
type chanSub struct {
	count int
	sub   *nats.Subscription
	// gen numbers the subscription; the worker's cursor of an earlier one
	// (before an Unsubscribe to zero) is not reused.
	gen uint64
	// ready is closed by the worker once it has read the channel's
	// position (err says whether that failed).
	ready chan struct{}
	err   error
}

// cursor is where the delivery of one channel stands. Only the
// publication worker touches cursors.
type cursor struct {
	gen    uint64
	epoch  string // "" while the channel had no stream
	offset uint64 // the last offset delivered (or present when subscribing)
	seq    uint64 // its stream sequence
}

// Subscribe makes this node receive ch's publications. It returns once the
// subscription is registered with the NATS server and the channel's current
// position has been read: every publication with a later offset is
// delivered (from the fan-out subject, or from the stream when a fan-out
// copy went missing), in offset order, at most once.
func (b *Broker) Subscribe(ctx context.Context, ch string) error {
	if err := b.lockStarted(); err != nil {
		return err
	}
	cs := b.subs[ch]
	if cs == nil {
		sub, err := b.nc.ChanSubscribe(b.names.fanSubj+token(ch), b.pubs)
		if err != nil {
			b.mu.Unlock()
			return b.fail(fmt.Sprintf("subscribe %q", ch), err)
		}
		b.nextGen++
		cs = &chanSub{sub: sub, gen: b.nextGen, ready: make(chan struct{})}
		b.subs[ch] = cs
		b.mu.Unlock()
		if err := b.startSubscription(ctx, ch, cs); err != nil {
			b.mu.Lock()
			if b.subs[ch] == cs {
				delete(b.subs, ch)
			}
			b.mu.Unlock()
			_ = sub.Unsubscribe()
			return b.fail(fmt.Sprintf("subscribe %q", ch), err)
		}
		b.mu.Lock()
	}
	cs.count++
	b.mu.Unlock()
	// A concurrent first Subscribe may still be reading the position.
	select {
	case <-cs.ready:
		if cs.err != nil {
			b.release(ch, cs)
			return b.fail(fmt.Sprintf("subscribe %q", ch), cs.err)
		}
		return nil
	case <-ctx.Done():
		b.release(ch, cs)
		return b.fail(fmt.Sprintf("subscribe %q", ch), ctx.Err())
	}
}

// lockStarted locks b.mu and returns nil when the broker is started and not
// closed; otherwise it returns why not, with b.mu unlocked.
func (b *Broker) lockStarted() error {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return broker.ErrClosed
	case !b.started:
		b.mu.Unlock()
		return ErrNotStarted
	}
	return nil
}

// startSubscription confirms the SUB with the server, then has the worker
// read the channel's position.
func (b *Broker) startSubscription(ctx context.Context, ch string, cs *chanSub) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	select {
	case b.baselines <- ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-cs.ready:
		return cs.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unsubscribe undoes one Subscribe.
func (b *Broker) Unsubscribe(ctx context.Context, ch string) error {
	if err := b.lockStarted(); err != nil {
		return err
	}
	cs := b.subs[ch]
	b.mu.Unlock()
	if cs == nil {
		return nil
	}
	return b.release(ch, cs)
}

// release drops one count of cs, unsubscribing at zero.
func (b *Broker) release(ch string, cs *chanSub) error {
	b.mu.Lock()
	cs.count--
	if cs.count > 0 || b.subs[ch] != cs {
		b.mu.Unlock()
		return nil
	}
	delete(b.subs, ch)
	b.mu.Unlock()
	if err := cs.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return b.fail(fmt.Sprintf("unsubscribe %q", ch), err)
	}
	return nil
}

// current returns the live subscription of ch, or nil.
func (b *Broker) current(ch string) *chanSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs[ch]
}

// deliverLoop is the publication worker: it reads positions for new
// subscriptions and hands fan-out copies to the handler in offset order.
func (b *Broker) deliverLoop() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case ch := <-b.baselines:
			cs := b.current(ch)
			if cs == nil {
				continue
			}
			_, err := b.cursorOf(ch, cs)
			select {
			case <-cs.ready:
			default:
				cs.err = err
				close(cs.ready)
			}
		case m := <-b.pubs:
			b.deliver(m)
		}
	}
}

// cursorOf returns the cursor of ch for subscription cs, reading the
// channel's position from the stream when cs has none yet.
func (b *Broker) cursorOf(ch string, cs *chanSub) (*cursor, error) {
	if c := b.pos[ch]; c != nil && c.gen == cs.gen {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Timeout)
	defer cancel()
	stream, err := b.channelStream(ctx, false)
	if err != nil {
		return nil, err
	}
	t, err := b.readTail(ctx, stream, b.names.chanSubj+token(ch))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		t, err = tail{}, nil // no stream, no channel: the next publish makes both
	}
	if err != nil {
		return nil, err
	}
	c := &cursor{gen: cs.gen, epoch: t.epoch, offset: t.offset, seq: t.seq}
	b.pos[ch] = c
	return c, nil
}

// deliver hands one fan-out copy to the handler, after any messages of the
// channel that should have come before it and did not.
func (b *Broker) deliver(m *nats.Msg) {
	e, err := decodeEntry(m.Header, m.Data, 0)
	if err != nil {
		b.cfg.Logger.Warn("nats broker: dropped a malformed message", "subject", m.Subject, "err", err)
		return
	}
	ch := e.pub.Channel
	cs := b.current(ch)
	if cs == nil {
		delete(b.pos, ch) // not subscribed (any more)
		return
	}
	c, err := b.cursorOf(ch, cs)
	if err != nil {
		b.cfg.Logger.Warn("nats broker: cannot read channel position; message dropped", "channel", ch, "err", err)
		return
	}
	if c.epoch == "" {
		c.epoch = e.pub.Epoch // the channel had no stream when subscribed
	}
	switch {
	case e.pub.Epoch != c.epoch:
		// A new stream (the old one was lost): start over from here.
	case e.pub.Offset <= c.offset:
		return // delivered already (recovered from the stream)
	case e.pub.Offset > c.offset+1:
		for _, missed := range b.fill(c, &e) {
			b.handOver(c, &missed)
		}
	}
	b.handOver(c, &e)
}

func (b *Broker) handOver(c *cursor, e *entry) {
	c.epoch, c.offset, c.seq = e.pub.Epoch, e.pub.Offset, e.seq
	b.handler.HandlePublication(&e.pub)
}

// fill fetches from the stream the messages between the cursor and e,
// walking back along each message's link to its predecessor. It returns
// them oldest first; what is no longer in the stream is skipped (the
// client learns of it from offsets).
func (b *Broker) fill(c *cursor, e *entry) []entry {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Timeout)
	defer cancel()
	stream, err := b.channelStream(ctx, false)
	if err != nil {
		return nil
	}
	var back []entry
	for seq := e.prev; seq > c.seq && len(back) < maxGapFill; {
		m, err := b.msgAt(ctx, stream, seq)
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				b.cfg.Logger.Warn("nats broker: gap fill failed", "channel", e.pub.Channel, "err", err)
			}
			break
		}
		p, err := decodeEntry(m.Header, m.Data, m.Sequence)
		if err != nil || p.pub.Epoch != c.epoch || p.pub.Offset <= c.offset {
			break
		}
		p.pub.Channel = e.pub.Channel
		back = append(back, p)
		seq = p.prev
	}
	for i, j := 0, len(back)-1; i < j; i, j = i+1, j-1 {
		back[i], back[j] = back[j], back[i]
	}
	return back
}
