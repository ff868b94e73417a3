package rabbitmq

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferry-io/ferry/broker"
)

// Message types on a node's delivery queue.
const (
	typePub = "pub"
	typeCtl = "ctl"
)

// Delivery flow: RabbitMQ sends at most deliveryPrefetch unacknowledged
// messages; the delivery loop acknowledges every deliveryAckEvery-th with
// all before it, which keeps the window open.
const (
	deliveryPrefetch = 1024
	deliveryAckEvery = 256
)

// replyQueue is RabbitMQ's direct reply-to pseudo queue: replies go
// straight to the requesting channel, with no queue declared.
const replyQueue = "amq.rabbitmq.reply-to"

// session is everything that lives on one AMQP connection. When the
// connection ends the session is dropped whole, writers' state included,
// and a new one is set up on the next connection.
type session struct {
	b    *Broker
	conn *amqp.Connection
	// done is closed when the connection has ended.
	done     chan struct{}
	failOnce sync.Once

	// node consumes this node's delivery queue and binds it; AMQP calls
	// on one channel are serialized by amqp091.
	node      *amqp.Channel
	nodeQueue string

	rpc *rpcClient
	ctl *ctlPublisher
}

// setup declares the topology on conn and starts the session's consumers:
// the delivery loop, the reply reader and one writer per shard.
func (b *Broker) setup(conn *amqp.Connection) (*session, error) {
	s := &session{b: b, conn: conn, done: make(chan struct{})}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	b.goroutine(func() {
		if err := <-closed; err != nil {
			b.log.Warn("rabbitmq broker: connection closed", slog.String("node", b.cfg.NodeID), slog.Any("err", err))
		}
		close(s.done)
	})
	if err := s.declare(); err != nil {
		s.fail(err)
		return nil, fmt.Errorf("rabbitmq broker: set up: %w: %w", broker.ErrUnavailable, err)
	}
	return s, nil
}

func (s *session) declare() error {
	b := s.b
	node, err := s.conn.Channel()
	if err != nil {
		return err
	}
	s.node = node
	for _, ex := range []string{b.names.pubExchange(), b.names.ctlExchange()} {
		if err := node.ExchangeDeclare(ex, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", ex, err)
		}
	}
	// Bounded: when this node falls behind, RabbitMQ drops the oldest
	// deliveries (delivery between nodes is at-most-once; offsets tell
	// clients what they missed) instead of growing without limit.
	q, err := node.QueueDeclare(b.names.nodeQueue(), false, true, true, false, amqp.Table{"x-max-length": int64(b.cfg.DeliveryQueue)})
	if err != nil {
		return fmt.Errorf("declare node queue: %w", err)
	}
	s.nodeQueue = q.Name
	for _, key := range []string{ctlKey(b.cfg.NodeID), ctlKey("")} {
		if err := node.QueueBind(q.Name, key, b.names.ctlExchange(), false, nil); err != nil {
			return fmt.Errorf("bind node queue: %w", err)
		}
	}
	// Acknowledged in batches with a prefetch window, so what waits for
	// the handler stays in RabbitMQ's bounded queue, not in this process.
	if err := node.Qos(deliveryPrefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := node.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume node queue: %w", err)
	}
	b.goroutine(func() { s.deliver(deliveries) })

	if s.rpc, err = s.newRPC(); err != nil {
		return err
	}
	if s.ctl, err = s.newCtl(); err != nil {
		return err
	}
	for i := range b.cfg.Shards {
		w, err := s.newWriter(i)
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
		b.goroutine(w.run)
	}
	return nil
}

// fail ends the session: the connection is closed, every consumer stops,
// and the broker reconnects. Used when a channel broke and the session's
// state can no longer be trusted.
func (s *session) fail(err error) {
	s.failOnce.Do(func() {
		if err != nil && !s.b.closed.Load() {
			s.b.log.Warn("rabbitmq broker: resetting the connection", slog.String("node", s.b.cfg.NodeID), slog.Any("err", err))
		}
		_ = s.conn.Close()
	})
}

// bind routes ch's publications to this node's queue.
func (s *session) bind(ch string) error {
	return s.node.QueueBind(s.nodeQueue, routeKey(ch), s.b.names.pubExchange(), false, nil)
}

// unbind stops routing ch's publications to this node's queue.
func (s *session) unbind(ch string) error {
	return s.node.QueueUnbind(s.nodeQueue, routeKey(ch), s.b.names.pubExchange(), nil)
}

// deliver hands what arrives on the node's queue to the handler, in the
// order it arrives: one goroutine, so a channel's publications keep the
// order their writer sent them in (offset order).
func (s *session) deliver(deliveries <-chan amqp.Delivery) {
	h := s.b.handler
	n := 0
	for d := range deliveries {
		if n++; n%deliveryAckEvery == 0 {
			_ = d.Ack(true) // a failed ack means the connection is gone
		}
		switch d.Type {
		case typePub:
			var r record
			if err := decode(d.Body, &r); err != nil {
				s.b.log.Warn("rabbitmq broker: dropped a publication", slog.Any("err", err))
				continue
			}
			if s.b.fresh(&r) {
				h.HandlePublication(r.publication())
			}
		case typeCtl:
			var c broker.Control
			if err := decode(d.Body, &c); err != nil {
				s.b.log.Warn("rabbitmq broker: dropped a control message", slog.Any("err", err))
				continue
			}
			h.HandleControl(c)
		default:
			s.b.log.Warn("rabbitmq broker: dropped a message of unknown type", slog.String("type", d.Type))
		}
	}
}

// rpcClient sends requests to shard writers and matches their replies.
type rpcClient struct {
	ch      *amqp.Channel
	mu      sync.Mutex // guards pending
	pending map[string]chan *reply
}

func (s *session) newRPC() (*rpcClient, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	// Direct reply-to: consume the pseudo queue (no ack) on the channel
	// that publishes the requests.
	replies, err := ch.Consume(replyQueue, "", true, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume replies: %w", err)
	}
	r := &rpcClient{ch: ch, pending: make(map[string]chan *reply)}
	s.b.goroutine(func() {
		for d := range replies {
			var rep reply
			if err := decode(d.Body, &rep); err != nil {
				s.b.log.Warn("rabbitmq broker: dropped a reply", slog.Any("err", err))
				continue
			}
			r.mu.Lock()
			c := r.pending[d.CorrelationId]
			delete(r.pending, d.CorrelationId)
			r.mu.Unlock()
			if c != nil {
				c <- &rep // buffered: never blocks
			}
		}
	})
	return r, nil
}

// call sends req to the writer of shard and waits for its reply, at most
// Config.Timeout. A request not yet taken by a writer when the caller
// gives up expires in its queue.
func (b *Broker) call(ctx context.Context, op string, shard int, req *request, id string) (*reply, error) {
	s, err := b.live(op)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	req.Shards = b.cfg.Shards
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq broker: %s: %w", op, err)
	}
	c := make(chan *reply, 1)
	s.rpc.mu.Lock()
	s.rpc.pending[id] = c
	s.rpc.mu.Unlock()
	defer func() {
		s.rpc.mu.Lock()
		delete(s.rpc.pending, id)
		s.rpc.mu.Unlock()
	}()
	msg := amqp.Publishing{CorrelationId: id, ReplyTo: replyQueue, Body: body}
	if dl, ok := ctx.Deadline(); ok {
		msg.Expiration = fmt.Sprint(max(1, timeUntilMS(dl)))
	}
	if err := s.rpc.ch.PublishWithContext(ctx, "", b.names.shardQueue(shard), false, false, msg); err != nil {
		return nil, b.fail(op, err)
	}
	select {
	case rep := <-c:
		if rep.Err != "" {
			return nil, fmt.Errorf("rabbitmq broker: %s: %w: %s", op, errWriter, rep.Err)
		}
		return rep, nil
	case <-s.done:
		return nil, b.fail(op, fmt.Errorf("%w: connection lost", broker.ErrUnavailable))
	case <-ctx.Done():
		return nil, b.fail(op, fmt.Errorf("%w: no answer from the shard writer: %w", broker.ErrUnavailable, ctx.Err()))
	}
}

// ctlPublisher sends control messages with publisher confirms and the
// mandatory flag, so a message for a node that has no queue comes back.
type ctlPublisher struct {
	mu      sync.Mutex // one message at a time: keeps order, pairs returns
	ch      *amqp.Channel
	returns chan amqp.Return
}

func (s *session) newCtl() (*ctlPublisher, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	return &ctlPublisher{ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 16))}, nil
}

// send publishes c and reports whether it was routed to some queue.
func (p *ctlPublisher) send(ctx context.Context, exchange string, c broker.Control) (routed bool, err error) {
	body, err := json.Marshal(c)
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := randomHex(8)
	msg := amqp.Publishing{Type: typeCtl, MessageId: id, Body: body}
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, ctlKey(c.Node), c.Node != "", false, msg)
	if err != nil {
		return false, err
	}
	if _, err := dc.WaitContext(ctx); err != nil {
		return false, err
	}
	// RabbitMQ sends basic.return before the confirm, and amqp091 hands
	// it to the returns channel before it resolves the confirm, so it is
	// there now if the message was not routed.
	routed = true
	for {
		select {
		case r := <-p.returns:
			if r.MessageId == id {
				routed = false
			}
		default:
			return routed, nil
		}
	}
}
