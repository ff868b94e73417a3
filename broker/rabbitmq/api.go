package rabbitmq

import (
	"context"
	"fmt"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// Publish sends the publication to the writer of ch's shard, which assigns
// the offset, appends it to the shard's stream and fans it out, and
// returns where it landed. See the package documentation for what a
// timeout means.
func (b *Broker) Publish(ctx context.Context, ch string, p broker.Publication, opts broker.PublishOptions) (broker.PublishResult, error) {
	if err := b.usable(ctx); err != nil {
		return broker.PublishResult{}, err
	}
	if ch == "" {
		return broker.PublishResult{}, fmt.Errorf("rabbitmq broker: publish: empty channel name")
	}
	id := b.requestID()
	rep, err := b.call(ctx, "publish", shardOf(ch, b.cfg.Shards), newPublishRequest(ch, p, opts, id), id)
	if err != nil {
		return broker.PublishResult{}, fmt.Errorf("publish %q: %w", ch, err)
	}
	return broker.PublishResult{Offset: rep.Offset, Epoch: rep.Epoch, Duplicate: rep.Duplicate}, nil
}

// History asks the writer of ch's shard, which holds the channel's
// retained messages and position, so what it returns is consistent.
func (b *Broker) History(ctx context.Context, ch string, q broker.HistoryQuery) (broker.HistoryResult, error) {
	if err := b.usable(ctx); err != nil {
		return broker.HistoryResult{}, err
	}
	rep, err := b.call(ctx, "history", shardOf(ch, b.cfg.Shards), newHistoryRequest(ch, q), b.requestID())
	if err != nil {
		return broker.HistoryResult{}, fmt.Errorf("history %q: %w", ch, err)
	}
	for i := range rep.Messages {
		rep.Messages[i].Channel = ch
	}
	return broker.HistoryResult{Messages: rep.Messages, Offset: rep.Offset, Epoch: rep.Epoch, Complete: rep.Complete}, nil
}

func (b *Broker) requestID() string {
	return fmt.Sprintf("%s-%d", b.idBase, b.seq.Add(1))
}

// Subscribe makes this node receive ch's publications. Calls are counted.
// The first binds ch to this node's queue and returns after RabbitMQ
// confirmed the binding, so every publication fanned out after Subscribe
// returns reaches the node. While disconnected it fails with an error
// wrapping broker.ErrUnavailable and counts nothing.
func (b *Broker) Subscribe(ctx context.Context, ch string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	if b.refs[ch] > 0 {
		b.refs[ch]++
		return nil
	}
	s, err := b.live("subscribe")
	if err != nil {
		return err
	}
	b.active.Store(ch, struct{}{})
	if err := s.bind(ch); err != nil {
		b.forget(ch)
		s.fail(err) // a failed bind closed the channel
		return b.fail(fmt.Sprintf("subscribe %q", ch), err)
	}
	b.refs[ch] = 1
	return nil
}

// Unsubscribe undoes one Subscribe; without one it does nothing. When the
// count reaches zero, delivery of ch stops at once and the binding is
// removed. Failing to reach RabbitMQ is not an error here: the node stops
// delivering ch either way, and a new connection does not bind it again.
func (b *Broker) Unsubscribe(ctx context.Context, ch string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	n, ok := b.refs[ch]
	if !ok {
		return nil
	}
	if n > 1 {
		b.refs[ch] = n - 1
		return nil
	}
	delete(b.refs, ch)
	b.forget(ch)
	if s := b.current(); s != nil {
		if err := s.unbind(ch); err != nil {
			s.fail(err)
		}
	}
	return nil
}

// PublishControl sends c through the control exchange: to c.Node's queue,
// or to every node's when c.Node is "". A message for one node that no
// queue takes comes back from RabbitMQ and returns broker.ErrNoNode.
// Messages from one node arrive in the order they were sent.
func (b *Broker) PublishControl(ctx context.Context, c broker.Control) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	s, err := b.live("control")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	routed, err := s.ctl.send(ctx, b.names.ctlExchange(), c)
	if err != nil {
		return b.fail("control", err)
	}
	if c.Node != "" && !routed {
		return fmt.Errorf("rabbitmq broker: control for node %q: %w", c.Node, broker.ErrNoNode)
	}
	return nil
}

// timeUntilMS is the time left until t in whole milliseconds.
func timeUntilMS(t time.Time) int64 { return time.Until(t).Milliseconds() }
