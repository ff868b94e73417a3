package redis

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// errSubscriberDown says that the shard's subscriber connection is being
// (re)established; the broker maps it to broker.ErrUnavailable.
var errSubscriberDown = errors.New("subscriber connection is down")

// resubscribeBatch is how many channels one SUBSCRIBE carries when a
// connection is restored.
const resubscribeBatch = 256

// pubsub is one shard's subscriber side: a dedicated Redis connection in
// pub/sub mode, the channels this node subscribed to on it with their
// reference counts, and the queue between the connection's reader and the
// goroutine that calls the Handler.
//
// The connection is owned by connectLoop, which dials it, subscribes to
// every channel with a reference, and when the connection breaks drops it
// and starts over with backoff. Each connection gets a new generation
// number; Subscribe checks the generation after its SUBSCRIBE is
// confirmed, so a subscription can never be lost between a restore and a
// concurrent Subscribe.
//
// Lock ordering: a chanState's mu may be held while taking pubsub.mu
// (briefly, for reads), never the other way round; restore holds the mus
// of one batch of chanStates at once, and nothing else holds two. pubsub.mu
// is never held during network I/O.
type pubsub struct {
	b     *Broker
	sh    *shard
	log   *slog.Logger
	queue chan received
	// firstUp is closed once the first connection is up with its
	// subscriptions confirmed.
	firstUp   chan struct{}
	firstOnce sync.Once

	mu    sync.RWMutex
	conn  rueidis.DedicatedClient // nil while down
	gen   uint64                  // generation of conn
	ready bool                    // conn is up and every subscription restored
	chans map[string]*chanState   // by pub/sub channel name
}

// received is one pub/sub message with the generation of the connection
// that received it.
type received struct {
	gen uint64
	msg rueidis.PubSubMessage
}

// chanState is this node's subscription to one pub/sub channel.
type chanState struct {
	// mu serializes SUBSCRIBE and UNSUBSCRIBE of the channel; it is held
	// during them, so they reach Redis in the order they were decided.
	mu sync.Mutex
	// refs counts Subscribe calls not yet undone. Written under mu; read
	// without it when deciding whether the state can be forgotten.
	refs atomic.Int64
	// active says whether publications received on the channel are
	// delivered.
	active atomic.Bool
	// permanent marks the control channels, subscribed for the broker's
	// whole life.
	permanent bool
	// pins counts goroutines working with this state; guarded by
	// pubsub.mu. A state is forgotten when it has neither pins nor refs.
	pins int
}

func newPubsub(b *Broker, sh *shard) *pubsub {
	return &pubsub{
		b:       b,
		sh:      sh,
		log:     b.log.With(slog.String("redis", sh.ep.String())),
		queue:   make(chan received, b.cfg.DeliveryQueue),
		firstUp: make(chan struct{}),
		chans:   make(map[string]*chanState),
	}
}

// pin subscribes the connection to name for the broker's whole life.
func (ps *pubsub) pin(name string) {
	st := &chanState{permanent: true}
	st.refs.Store(1)
	st.active.Store(true)
	ps.mu.Lock()
	ps.chans[name] = st
	ps.mu.Unlock()
}

// acquire returns name's state with a pin, creating it when create is set
// (otherwise it returns nil for an unknown name). Pair with release.
func (ps *pubsub) acquire(name string, create bool) *chanState {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st := ps.chans[name]
	if st == nil {
		if !create {
			return nil
		}
		st = &chanState{}
		ps.chans[name] = st
	}
	st.pins++
	return st
}

// release drops acquire's pin and forgets the state when nobody uses it.
func (ps *pubsub) release(name string, st *chanState) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st.pins--
	if st.pins == 0 && st.refs.Load() == 0 && !st.permanent && ps.chans[name] == st {
		delete(ps.chans, name)
	}
}

// current returns the connection (nil while down) and its generation.
func (ps *pubsub) current() (rueidis.DedicatedClient, uint64) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.conn, ps.gen
}

func (ps *pubsub) isReady() bool {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.ready
}

// subscribe adds a reference to name; the first one subscribes the
// connection and returns once Redis confirmed it.
func (ps *pubsub) subscribe(ctx context.Context, name string) error {
	st := ps.acquire(name, true)
	defer ps.release(name, st)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.refs.Load() > 0 {
		st.refs.Add(1)
		return nil
	}
	// Deliver from now on: a publication that races with the SUBSCRIBE
	// was published before Subscribe returned and may be delivered.
	st.active.Store(true)
	for {
		conn, gen := ps.current()
		if conn == nil {
			st.active.Store(false)
			return errSubscriberDown
		}
		if err := conn.Do(ctx, conn.B().Subscribe().Channel(name).Build()).Error(); err != nil {
			st.active.Store(false)
			return err
		}
		if _, now := ps.current(); now == gen {
			break
		}
		// The connection was replaced while we subscribed, and the
		// restore did not see our reference yet: subscribe on the new one.
	}
	st.refs.Store(1)
	return nil
}

// unsubscribe drops a reference to name; the last one stops delivery at
// once and unsubscribes the connection. An UNSUBSCRIBE that fails is only
// logged: the node no longer delivers the channel either way, and a
// broken connection is replaced by one without the channel.
func (ps *pubsub) unsubscribe(ctx context.Context, name string) {
	st := ps.acquire(name, false)
	if st == nil {
		return
	}
	defer ps.release(name, st)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.permanent || st.refs.Load() == 0 || st.refs.Add(-1) > 0 {
		return
	}
	st.active.Store(false)
	conn, _ := ps.current()
	if conn == nil {
		return
	}
	if err := conn.Do(ctx, conn.B().Unsubscribe().Channel(name).Build()).Error(); err != nil {
		ps.log.Debug("redis unsubscribe failed; the channel is no longer delivered", slog.String("channel", name), slog.Any("error", err))
	}
}

// connectLoop keeps a subscriber connection up until the broker closes,
// pausing between attempts with exponential backoff and jitter.
func (ps *pubsub) connectLoop() {
	cfg := ps.b.cfg
	delay := cfg.ReconnectMin
	failures := 0
	for {
		wasUp, err := ps.connectOnce()
		if ps.b.ctx.Err() != nil {
			return
		}
		if wasUp {
			delay = cfg.ReconnectMin
			failures = 0
		}
		if err != nil {
			// The first failure in a row is worth a warning; the retries
			// that follow during an outage are not.
			level := slog.LevelWarn
			if failures > 0 {
				level = slog.LevelDebug
			}
			failures++
			ps.log.Log(ps.b.ctx, level, "redis subscriber connection failed; retrying", slog.Int("attempt", failures), slog.Any("error", err))
		}
		pause := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(pause)
		select {
		case <-ps.b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, cfg.ReconnectMax)
	}
}

// connectOnce opens a connection, restores every subscription on it, and
// returns when the connection breaks or the broker closes. It reports
// whether the connection was up with its subscriptions restored, and why
// it could not be set up.
func (ps *pubsub) connectOnce() (wasUp bool, err error) {
	conn, _ := ps.sh.client.Dedicate()

	ps.mu.Lock()
	ps.gen++
	gen := ps.gen
	ps.mu.Unlock()
	// The hooks are set before the connection is published for
	// Subscribe, so nothing received after a SUBSCRIBE can be missed.
	hooksDone := conn.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) { ps.enqueue(gen, m) },
	})
	ps.mu.Lock()
	ps.conn = conn
	ps.mu.Unlock()

	defer func() {
		ps.mu.Lock()
		ps.conn = nil
		ps.ready = false
		ps.mu.Unlock()
		conn.Close() // closes the connection and gives it back to rueidis
		for range hooksDone {
			// Wait until the hooks are no longer called.
		}
	}()

	n, err := ps.restore(conn)
	if err != nil {
		return false, err
	}
	ps.mu.Lock()
	ps.ready = true
	ps.mu.Unlock()
	first := false
	ps.firstOnce.Do(func() {
		first = true
		close(ps.firstUp)
	})
	if !first {
		ps.log.Info("redis subscriber connection restored", slog.Int("channels", n))
	}

	select {
	case <-ps.b.ctx.Done():
	case err := <-hooksDone:
		if ps.b.ctx.Err() == nil {
			ps.log.Warn("redis subscriber connection lost; publications to this node are lost until it is restored", slog.Any("error", err))
		}
	}
	return true, nil
}

// restore checks that conn works (a shard may have nothing to subscribe
// to), then subscribes it to every channel with a reference, in batches,
// and returns how many channels that was.
func (ps *pubsub) restore(conn rueidis.DedicatedClient) (int, error) {
	ctx, cancel := context.WithTimeout(ps.b.ctx, ps.b.cfg.Timeout)
	err := conn.Do(ctx, conn.B().Ping().Build()).Error()
	cancel()
	if err != nil {
		return 0, err
	}

	type entry struct {
		name string
		st   *chanState
	}
	ps.mu.RLock()
	all := make([]entry, 0, len(ps.chans))
	for name, st := range ps.chans {
		all = append(all, entry{name, st})
	}
	ps.mu.RUnlock()

	total := 0
	for len(all) > 0 {
		batch := all[:min(resubscribeBatch, len(all))]
		all = all[len(batch):]
		names := make([]string, 0, len(batch))
		for _, e := range batch {
			e.st.mu.Lock()
			if e.st.refs.Load() > 0 {
				names = append(names, e.name)
			}
		}
		var err error
		if len(names) > 0 {
			ctx, cancel := context.WithTimeout(ps.b.ctx, ps.b.cfg.Timeout)
			err = conn.Do(ctx, conn.B().Subscribe().Channel(names...).Build()).Error()
			cancel()
		}
		for _, e := range batch {
			e.st.mu.Unlock()
		}
		if err != nil {
			return total, err
		}
		total += len(names)
	}
	return total, nil
}

// enqueue hands a received message to the dispatcher, waiting when the
// queue is full (which pauses reading from Redis).
func (ps *pubsub) enqueue(gen uint64, m rueidis.PubSubMessage) {
	select {
	case ps.queue <- received{gen: gen, msg: m}:
	case <-ps.b.ctx.Done():
	}
}

// dispatchLoop calls the Handler for every queued message, one at a time,
// so that a channel's publications are handled in the order Redis sent
// them: offset order.
func (ps *pubsub) dispatchLoop() {
	var gen uint64
	for {
		select {
		case <-ps.b.ctx.Done():
			return
		case r := <-ps.queue:
			if r.gen < gen {
				// Received by a connection that has since been
				// replaced, after the new one delivered: handing it
				// over now could break the order.
				continue
			}
			gen = r.gen
			ps.deliver(r.msg)
		}
	}
}

// deliver decodes m and hands it to the Handler.
func (ps *pubsub) deliver(m rueidis.PubSubMessage) {
	ref := ps.b.handler.Load()
	if ref == nil || ps.b.closed.Load() {
		return
	}
	names := &ps.b.names
	if m.Channel == names.ctlAll || m.Channel == names.ctlNode {
		c, err := decodeControl(m.Message)
		if err != nil {
			ps.log.Warn("dropped a malformed control message", slog.String("redis_channel", m.Channel), slog.Any("error", err))
			return
		}
		ref.h.HandleControl(c)
		return
	}
	ch, ok := strings.CutPrefix(m.Channel, names.pub)
	if !ok {
		return
	}
	ps.mu.RLock()
	st := ps.chans[m.Channel]
	ps.mu.RUnlock()
	if st == nil || !st.active.Load() {
		return
	}
	p, err := decodePublication(ch, m.Message)
	if err != nil {
		ps.log.Warn("dropped a malformed publication", slog.String("channel", ch), slog.Any("error", err))
		return
	}
	ref.h.HandlePublication(&p)
}
