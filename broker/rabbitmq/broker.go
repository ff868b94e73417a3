package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferry-io/ferry/broker"
)

var _ broker.Broker = (*Broker)(nil)

// Broker is the RabbitMQ engine. See the package documentation.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	names names
	// idBase makes this broker's request ids unique among all nodes and
	// restarts; seq numbers the requests.
	idBase string
	seq    atomic.Uint64
	// served counts the requests this node's writers answered.
	served atomic.Uint64

	handler broker.Handler // set by Start, read-only after
	started atomic.Bool
	closed  atomic.Bool
	quit    chan struct{}
	wg      sync.WaitGroup // every goroutine the broker starts

	// first is the connection New made, used by Start.
	first *amqp.Connection

	mu   sync.Mutex // guards sess
	sess *session   // nil while disconnected

	// subMu guards refs and is held across binding calls, so the bindings
	// of a new connection and Subscribe/Unsubscribe never interleave. Lock
	// order: subMu before mu.
	subMu sync.Mutex
	refs  map[string]int
	// active holds the channels this node delivers (string -> struct{}).
	// It is set before the binding is made and cleared before it is
	// removed, so the delivery loop never drops a publication routed while
	// a subscription exists.
	active sync.Map

	// deliverMu guards last and, with it, the decision to deliver: a
	// publication is handed over only when its channel is active and it
	// is newer than the last one delivered. A writer that took over a
	// shard sends the previous writer's last publication again (it cannot
	// know whether that one went out); this is where the copy is dropped.
	// Lock order: subMu before deliverMu.
	deliverMu sync.Mutex
	last      map[string]broker.Position
}

// New checks cfg and connects to RabbitMQ. It fails with ErrInvalidURL
// for a bad URL, and with an error wrapping broker.ErrUnavailable when the
// server cannot be reached before ctx ends or Config.DialTimeout passes.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := checkURL(cfg.URL); err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:    cfg,
		log:    cfg.Logger,
		names:  names{prefix: cfg.Prefix, node: cfg.NodeID},
		idBase: cfg.NodeID + "-" + randomHex(4),
		quit:   make(chan struct{}),
		refs:   make(map[string]int),
		last:   make(map[string]broker.Position),
	}
	conn, err := b.dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	b.first = conn
	return b, nil
}

// dial opens one AMQP connection.
func (b *Broker) dial(ctx context.Context) (*amqp.Connection, error) {
	dctx, cancel := context.WithTimeout(ctx, b.cfg.DialTimeout)
	defer cancel()
	conn, err := amqp.DialConfig(b.cfg.URL, amqp.Config{
		TLSClientConfig: b.cfg.TLS,
		Heartbeat:       5 * time.Second,
		Properties:      amqp.Table{"connection_name": "ferry " + b.cfg.NodeID},
		Dial: func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The deadline bounds the handshake; amqp091 clears it after.
			if dl, ok := dctx.Deadline(); ok {
				_ = c.SetDeadline(dl)
			}
			return c, nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("rabbitmq broker: connect: %w: %w", broker.ErrUnavailable, err)
	}
	return conn, nil
}

// Start sets up this node's queues and writers on the connection New made
// and begins delivery to h. When the connection is lost later, the broker
// reconnects on its own (see the package documentation).
func (b *Broker) Start(ctx context.Context, h broker.Handler) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if h == nil {
		return ErrNilHandler
	}
	if !b.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	b.handler = h
	conn := b.first
	b.first = nil
	if conn == nil || conn.IsClosed() {
		var err error
		if conn, err = b.dial(ctx); err != nil {
			return err
		}
	}
	if err := b.connect(conn); err != nil {
		_ = conn.Close()
		return err
	}
	b.goroutine(b.supervise)
	return nil
}

// goroutine runs fn on a goroutine Close waits for.
func (b *Broker) goroutine(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// connect sets up a session on conn and makes it current, binding every
// subscribed channel again.
func (b *Broker) connect(conn *amqp.Connection) error {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	s, err := b.setup(conn)
	if err != nil {
		return err
	}
	for ch := range b.refs {
		if err := s.bind(ch); err != nil {
			s.fail(err)
			return fmt.Errorf("rabbitmq broker: bind %q: %w: %w", ch, broker.ErrUnavailable, err)
		}
	}
	// Close reads the session under mu after marking the broker closed,
	// so either it sees this session or this sees the mark.
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		s.fail(broker.ErrClosed)
		return broker.ErrClosed
	}
	b.sess = s
	return nil
}

// supervise waits for the current session to end and reconnects, with
// exponential backoff and jitter, until Close.
func (b *Broker) supervise() {
	for {
		s := b.current()
		if s == nil {
			return
		}
		select {
		case <-b.quit:
			return
		case <-s.done:
		}
		b.mu.Lock()
		b.sess = nil
		b.mu.Unlock()
		b.log.Warn("rabbitmq broker: connection lost; reconnecting", slog.String("node", b.cfg.NodeID))
		pause := b.cfg.ReconnectMin
		for {
			jitter := time.Duration(rand.Int64N(int64(pause)/2 + 1))
			select {
			case <-b.quit:
				return
			case <-time.After(pause/2 + jitter):
			}
			pause = min(2*pause, b.cfg.ReconnectMax)
			conn, err := b.dial(context.Background())
			if err == nil {
				if err = b.connect(conn); err != nil {
					// Reached RabbitMQ but could not set up: likely a
					// setting that disagrees with what is declared.
					b.log.Warn("rabbitmq broker: set up after reconnecting failed", slog.String("node", b.cfg.NodeID), slog.Any("err", err))
					_ = conn.Close()
				}
			}
			if err == nil {
				b.log.Info("rabbitmq broker: reconnected", slog.String("node", b.cfg.NodeID))
				break
			}
			b.log.Debug("rabbitmq broker: reconnect failed", slog.Any("err", err))
		}
	}
}

// current returns the live session, or nil while disconnected.
func (b *Broker) current() *session {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sess
}

// usable returns the error a call must fail with before it starts: closed,
// not started, or ctx already done.
func (b *Broker) usable(ctx context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if !b.started.Load() {
		return ErrNotStarted
	}
	return ctx.Err()
}

// live returns the current session or an error wrapping
// broker.ErrUnavailable.
func (b *Broker) live(op string) (*session, error) {
	s := b.current()
	if s == nil || s.conn.IsClosed() {
		return nil, fmt.Errorf("rabbitmq broker: %s: %w: not connected", op, broker.ErrUnavailable)
	}
	return s, nil
}

// fail turns an error of a call into the broker's error.
func (b *Broker) fail(op string, err error) error {
	switch {
	case b.closed.Load():
		return broker.ErrClosed
	case errors.Is(err, broker.ErrUnavailable), errors.Is(err, errWriter), errors.Is(err, errMalformed):
		return fmt.Errorf("rabbitmq broker: %s: %w", op, err)
	}
	return fmt.Errorf("rabbitmq broker: %s: %w: %w", op, broker.ErrUnavailable, err)
}

// Ping reports whether this node is connected to RabbitMQ.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	_, err := b.live("ping")
	return err
}

// Close stops delivery, closes the connection and waits for the broker's
// goroutines. Later calls return nil.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(b.quit)
	if b.first != nil {
		_ = b.first.Close()
	}
	if s := b.current(); s != nil {
		_ = s.conn.Close()
	}
	b.wg.Wait()
	return nil
}

// fresh reports whether p should be handed to the handler: its channel is
// subscribed and p is not a publication already delivered.
func (b *Broker) fresh(p *record) bool {
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	if _, ok := b.active.Load(p.Channel); !ok {
		return false
	}
	if last, ok := b.last[p.Channel]; ok && last.Epoch == p.Epoch && p.Offset <= last.Offset {
		return false
	}
	b.last[p.Channel] = broker.Position{Offset: p.Offset, Epoch: p.Epoch}
	return true
}

// forget stops delivering ch.
func (b *Broker) forget(ch string) {
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	b.active.Delete(ch)
	delete(b.last, ch)
}
