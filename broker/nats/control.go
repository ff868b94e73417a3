package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ferry-io/ferry/broker"
)

// noNodeAttempts and noNodePause shape the retries of a control request
// that found no listener (see PublishControl).
const (
	noNodeAttempts = 4
	noNodePause    = 50 * time.Millisecond
)

// PublishControl sends c to the node c.Node, or to every node when it is
// empty. A message to one node is a request its broker answers on receipt,
// so a node that is not listening is noticed: NATS answers "no responders"
// and the call returns broker.ErrNoNode.
func (b *Broker) PublishControl(ctx context.Context, c broker.Control) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("nats broker: control: %w", err)
	}
	if c.Node == "" {
		if err := b.nc.Publish(b.names.ctlAll, data); err != nil {
			return b.fail("control", err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		_, err = b.nc.RequestWithContext(ctx, b.names.ctlNode+token(c.Node), data)
		if !errors.Is(err, nats.ErrNoResponders) {
			break
		}
		// In a cluster, a node's subscription reaches the other servers a
		// moment after it was made: ask again a few times before deciding
		// the node is not there.
		if attempt == noNodeAttempts {
			return fmt.Errorf("nats broker: control to %q: %w", c.Node, broker.ErrNoNode)
		}
		select {
		case <-ctx.Done():
			return b.fail("control", ctx.Err())
		case <-time.After(noNodePause):
		}
	}
	if err != nil {
		return b.fail("control", err)
	}
	return nil
}

// controlLoop is the control worker: it acknowledges requests and hands
// control messages to the handler in the order they arrive.
func (b *Broker) controlLoop() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case m := <-b.ctls:
			if m.Reply != "" {
				_ = m.Respond(nil)
			}
			var c broker.Control
			if err := json.Unmarshal(m.Data, &c); err != nil {
				b.cfg.Logger.Warn("nats broker: dropped a malformed control message", "subject", m.Subject, "err", err)
				continue
			}
			b.handler.HandleControl(c)
		}
	}
}
