package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/ferry-io/ferry/broker"
)

var (
	_ broker.Broker   = (*Broker)(nil)
	_ broker.Presence = (*Broker)(nil)
	_ broker.Users    = (*Broker)(nil)
	_ broker.KV       = (*Broker)(nil)
	_ broker.Locker   = (*Broker)(nil)
)

// Broker is the Redis engine. It implements broker.Broker and the optional
// capabilities broker.Presence, broker.Users and broker.KV. Create it with
// New; its methods are safe for concurrent use.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	names  names
	shards []*shard
	// ctl is the shard that carries every control message, so that the
	// control messages of one publisher keep their order.
	ctl *shard

	handler atomic.Pointer[handlerRef]
	closed  atomic.Bool
	started atomic.Bool

	// ctx is cancelled by Close; it bounds the background goroutines and
	// their calls to Redis. It is the broker's lifetime, not a call's.
	ctx    context.Context
	cancel context.CancelFunc

	// lifeMu orders Start against Close so that no goroutine is added to
	// wg after Close began waiting.
	lifeMu sync.Mutex
	wg     sync.WaitGroup
}

type handlerRef struct{ h broker.Handler }

// shard is one Redis server (or Sentinel-managed master) and this node's
// subscriber connection to it.
type shard struct {
	ep     endpoint
	client rueidis.Client
	ps     *pubsub
}

// New connects to the Redis server(s) of cfg.URL and returns a broker that
// is not started yet. It fails with an error wrapping ErrInvalidURL when
// the URL cannot be parsed, and with one wrapping broker.ErrUnavailable when
// a server cannot be reached within cfg.DialTimeout (or before ctx ends).
// Call Start before using the broker and Close when done.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	eps, err := parseURLs(cfg.URL)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:   cfg,
		log:   cfg.Logger,
		names: newNames(cfg.Prefix, cfg.NodeID),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for _, ep := range eps {
		client, err := rueidis.NewClient(b.clientOption(ep))
		if err == nil {
			err = b.ping(ctx, client)
		}
		if err != nil {
			if client != nil {
				client.Close()
			}
			b.closeClients()
			b.cancel()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("redis broker: connect to %s: %w", ep, ctx.Err())
			}
			return nil, fmt.Errorf("redis broker: connect to %s: %w: %w", ep, broker.ErrUnavailable, err)
		}
		sh := &shard{ep: ep, client: client}
		sh.ps = newPubsub(b, sh)
		b.shards = append(b.shards, sh)
	}
	b.ctl = b.shardFor(b.names.ctlAll)
	b.ctl.ps.pin(b.names.ctlAll)
	b.ctl.ps.pin(b.names.ctlNode)
	return b, nil
}

// clientOption translates an endpoint into rueidis options.
func (b *Broker) clientOption(ep endpoint) rueidis.ClientOption {
	opt := rueidis.ClientOption{
		InitAddress:       ep.addrs,
		Username:          ep.user,
		Password:          ep.password,
		SelectDB:          ep.db,
		ClientName:        clientName(b.cfg.NodeID),
		Dialer:            net.Dialer{Timeout: b.cfg.DialTimeout, KeepAlive: time.Second},
		ConnWriteTimeout:  3 * b.cfg.Timeout,
		DisableCache:      true,
		ForceSingleClient: ep.master == "",
		// Every connection gets a reader goroutine at once, so a
		// connection closed by Redis is noticed and replaced right away
		// instead of failing the next command sent on it.
		AlwaysPipelining: true,
		// Calls fail fast instead of being retried until the timeout:
		// the caller (and its client) decides whether to try again.
		DisableRetry: true,
	}
	if ep.tls {
		opt.TLSConfig = b.tlsConfig()
	}
	if ep.master != "" {
		opt.Sentinel = rueidis.SentinelOption{
			MasterSet:               ep.master,
			Username:                ep.sentinelUser,
			Password:                ep.sentinelPassword,
			Dialer:                  opt.Dialer,
			TopologyRefreshInterval: 5 * time.Second,
		}
		if ep.tls {
			opt.Sentinel.TLSConfig = b.tlsConfig()
		}
	}
	return opt
}

// tlsConfig returns the TLS configuration for rediss:// connections. The
// server name is left for the dialer to take from each address.
func (b *Broker) tlsConfig() *tls.Config {
	if b.cfg.TLS != nil {
		return b.cfg.TLS.Clone()
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// clientName makes a CLIENT SETNAME value (no spaces or control
// characters) from the node id, so CLIENT LIST shows which node a
// connection belongs to.
func clientName(node string) string {
	return "ferry-" + strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, node)
}

// NodeID returns the node id this broker uses (Config.NodeID or the
// generated default).
func (b *Broker) NodeID() string { return b.cfg.NodeID }

// Start begins delivery to h: it opens one subscriber connection per Redis
// server, subscribes to this node's control channels and waits until that
// is confirmed (or ctx ends). A second Start returns ErrAlreadyStarted; a
// Start after Close returns broker.ErrClosed. When the subscriber
// connections cannot be opened, Start returns an error wrapping
// broker.ErrUnavailable; the broker keeps trying in the background, and
// Close stops it. The context is not kept.
func (b *Broker) Start(ctx context.Context, h broker.Handler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h == nil {
		return ErrNilHandler
	}
	b.lifeMu.Lock()
	if b.closed.Load() {
		b.lifeMu.Unlock()
		return broker.ErrClosed
	}
	if b.started.Load() {
		b.lifeMu.Unlock()
		return ErrAlreadyStarted
	}
	b.handler.Store(&handlerRef{h: h})
	b.started.Store(true)
	for _, sh := range b.shards {
		b.goroutine(sh.ps.dispatchLoop)
		b.goroutine(sh.ps.connectLoop)
	}
	b.lifeMu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout+b.cfg.DialTimeout)
	defer cancel()
	for _, sh := range b.shards {
		select {
		case <-sh.ps.firstUp:
		case <-ctx.Done():
			return fmt.Errorf("redis broker: start: subscriber connection to %s: %w: %w", sh.ep, broker.ErrUnavailable, ctx.Err())
		}
	}
	return nil
}

// goroutine runs f on a goroutine that Close waits for.
func (b *Broker) goroutine(f func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
}

// Close stops delivery, closes the connections to Redis and waits for the
// broker's goroutines. Every later call fails with broker.ErrClosed.
// Closing twice is harmless.
func (b *Broker) Close() error {
	b.lifeMu.Lock()
	if b.closed.Swap(true) {
		b.lifeMu.Unlock()
		return nil
	}
	b.cancel()
	b.lifeMu.Unlock()
	b.wg.Wait()
	b.closeClients()
	return nil
}

func (b *Broker) closeClients() {
	for _, sh := range b.shards {
		sh.client.Close()
	}
}

// Ping checks that every Redis server answers and that every subscriber
// connection is up with its subscriptions restored. Otherwise it returns an
// error wrapping broker.ErrUnavailable (broker.ErrClosed after Close).
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	for _, sh := range b.shards {
		if err := b.ping(ctx, sh.client); err != nil {
			return b.fail(ctx, "ping "+sh.ep.String(), err)
		}
		if b.started.Load() && !sh.ps.isReady() {
			return fmt.Errorf("redis broker: ping %s: %w: subscriber connection is down", sh.ep, broker.ErrUnavailable)
		}
	}
	return nil
}

func (b *Broker) ping(ctx context.Context, c rueidis.Client) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	return c.Do(ctx, c.B().Ping().Build()).Error()
}

// usable reports why a call cannot proceed: the broker is closed or ctx is
// done.
func (b *Broker) usable(ctx context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return ctx.Err()
}

// call returns a context for one call to Redis, bounded by Config.Timeout.
func (b *Broker) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.Timeout)
}

// fail turns an error of a call to Redis into the broker's error: ErrClosed
// after Close, the caller's context error when the caller gave up, an error
// wrapping broker.ErrUnavailable when Redis could not be reached or did not
// answer in time (or answered that it cannot serve: loading, read-only
// replica, out of memory...), and the Redis error otherwise.
func (b *Broker) fail(ctx context.Context, op string, err error) error {
	switch {
	case b.closed.Load() || errors.Is(err, rueidis.ErrClosing):
		return broker.ErrClosed
	case ctx.Err() != nil:
		return fmt.Errorf("redis broker: %s: %w", op, ctx.Err())
	}
	if rerr, ok := rueidis.IsRedisErr(err); ok && !unavailableReply(rerr) {
		return fmt.Errorf("redis broker: %s: %w", op, rerr)
	}
	return fmt.Errorf("redis broker: %s: %w: %w", op, broker.ErrUnavailable, err)
}

// unavailableReply reports whether a Redis error reply means that the
// server cannot serve right now, rather than that the command was wrong.
func unavailableReply(err *rueidis.RedisError) bool {
	msg := err.Error()
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "BUSY", "OOM", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// shardFor returns the shard that owns routing (a channel, user or KV key).
func (b *Broker) shardFor(routing string) *shard {
	if len(b.shards) == 1 {
		return b.shards[0]
	}
	return b.shards[jumpHash(hashString(routing), len(b.shards))]
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails (it panics if the OS source does)
	return hex.EncodeToString(buf)
}

// millis converts d to whole milliseconds, rounding up so that a positive
// duration never becomes 0 ("forever" in the scripts). Negative is 0.
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
