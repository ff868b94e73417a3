package redis

import (
	"context"
	"fmt"

	"github.com/ferry-io/ferry/broker"
)

// Subscribe makes this node receive ch's publications. Calls are counted:
// each Subscribe needs its own Unsubscribe. The first one subscribes this
// node's connection to ch's Redis server and returns only when Redis has
// confirmed the SUBSCRIBE, so every publication accepted after Subscribe
// returns is delivered (while the connection stays up).
//
// While the subscriber connection is down (Redis unreachable, or being
// reconnected), Subscribe fails with an error wrapping
// broker.ErrUnavailable and counts nothing. Before Start it returns
// ErrNotStarted.
func (b *Broker) Subscribe(ctx context.Context, ch string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	if !b.started.Load() {
		return ErrNotStarted
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	if err := b.shardFor(ch).ps.subscribe(cctx, b.names.pubsub(ch)); err != nil {
		return b.fail(ctx, fmt.Sprintf("subscribe %q", ch), err)
	}
	return nil
}

// Unsubscribe undoes one Subscribe; without a matching Subscribe it does
// nothing. When the count drops to zero, delivery of ch stops at once and
// the connection is unsubscribed; publications accepted after Unsubscribe
// returns are not delivered. Failing to reach Redis is not an error here:
// the node stops delivering ch either way.
func (b *Broker) Unsubscribe(ctx context.Context, ch string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	if !b.started.Load() {
		return ErrNotStarted
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	b.shardFor(ch).ps.unsubscribe(cctx, b.names.pubsub(ch))
	return nil
}

// PublishControl sends c to the node c.Node, or to every node when c.Node
// is "", this one included. Control messages travel over Redis pub/sub on
// one Redis server (the same for every node), so the messages of one
// publisher arrive in order; a node whose subscriber connection is down
// misses them, and a message for one node that reached nobody returns
// broker.ErrNoNode.
func (b *Broker) PublishControl(ctx context.Context, c broker.Control) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	payload, err := encodeControl(c)
	if err != nil {
		return fmt.Errorf("redis broker: control: %w", err)
	}
	client := b.ctl.client
	cctx, cancel := b.call(ctx)
	defer cancel()
	cmd := client.B().Publish().Channel(b.names.ctlFor(c.Node)).Message(string(payload)).Build()
	receivers, err := client.Do(cctx, cmd).AsInt64()
	if err != nil {
		return b.fail(ctx, "publish control", err)
	}
	if c.Node != "" && receivers == 0 {
		// PUBLISH counts the subscribers it reached: a node killed
		// outright lost its subscription with its connection.
		return fmt.Errorf("redis broker: control for node %q: %w", c.Node, broker.ErrNoNode)
	}
	return nil
}
