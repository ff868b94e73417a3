package nats

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-io/ferry/broker"
)

// Compile-time checks: the broker and every optional capability.
var (
	_ broker.Broker   = (*Broker)(nil)
	_ broker.Presence = (*Broker)(nil)
	_ broker.Users    = (*Broker)(nil)
	_ broker.KV       = (*Broker)(nil)
	_ broker.Locker   = (*Broker)(nil)
)

// setupAttempts and setupPause bound how long New waits for JetStream to
// accept the stream and buckets (a fresh cluster elects its leaders first).
const (
	setupAttempts = 50
	setupPause    = 200 * time.Millisecond
)

// dedupWindow is how long JetStream remembers the message ids of the
// conditional writes (see slot.go). It only has to outlast writes in
// flight and their retries.
const dedupWindow = 2 * time.Minute

// lockShards is the number of per-channel publish locks (see chanLock).
const lockShards = 256

// Broker is the NATS JetStream engine. Its methods are safe for concurrent
// use.
//
// Lock order: a publish lock (shard.mu) may be held while taking b.mu, never
// the other way around.
type Broker struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	names  names
	seed   maphash.Seed
	shards [lockShards]shard

	// ctx is cancelled by Close; it bounds the workers' requests.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pubs      chan *nats.Msg     // fan-out copies, to the publication worker
	ctls      chan *nats.Msg     // control messages, to the control worker
	baselines chan string        // channels whose position the worker must read
	pos       map[string]*cursor // worker-owned: where each channel's delivery is

	userRebuilds atomic.Int64 // user heads rebuilt from a listing (users.go), for the tests

	mu      sync.Mutex // guards what follows
	stream  jetstream.Stream
	buckets map[string]jetstream.Stream // by bucket name
	handler broker.Handler
	started bool
	closed  bool
	subs    map[string]*chanSub
	nextGen uint64
	ctlSubs []*nats.Subscription
}

// shard serializes this node's publishes to the channels hashed to it and
// caches each channel's tail, so that a node's own publishes to one channel
// do not race each other for the stream's compare-and-set.
type shard struct {
	mu    sync.Mutex
	tails map[string]tail
}

// tail is what a publish must know of a channel's latest message.
type tail struct {
	seq    uint64 // stream sequence (0: the channel has no message)
	offset uint64
	epoch  string
}

// names are the subjects, stream and buckets of one Config.Prefix.
type names struct {
	stream   string // the channel stream
	chanSubj string // prefix of a channel's stream subject; + token(channel)
	fanSubj  string // prefix of a channel's fan-out subject; + token(channel)
	ctlAll   string // control messages for every node
	ctlNode  string // prefix of one node's control subject; + token(node)
	presence string // bucket names
	users    string
	kv       string
}

func newNames(prefix string) names {
	return names{
		stream:   prefix + "_channels",
		chanSubj: prefix + ".ch.",
		fanSubj:  prefix + ".fan.",
		ctlAll:   prefix + ".ctl.all",
		ctlNode:  prefix + ".ctl.node.",
		presence: prefix + "_presence",
		users:    prefix + "_users",
		kv:       prefix + "_kv",
	}
}

// New connects to NATS and makes sure the channel stream and the key-value
// buckets exist (creating them with Config.Replicas when missing). It fails
// with an error wrapping broker.ErrUnavailable when NATS cannot be reached,
// ErrInvalidURL or ErrInvalidConfig when cfg is wrong.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	servers, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if servers.replicas != 0 && cfg.Replicas == DefaultReplicas {
		cfg.Replicas = servers.replicas
	}
	b := &Broker{
		cfg:       cfg,
		names:     newNames(cfg.Prefix),
		seed:      maphash.MakeSeed(),
		pubs:      make(chan *nats.Msg, cfg.DeliveryQueue),
		ctls:      make(chan *nats.Msg, cfg.DeliveryQueue),
		baselines: make(chan string, 64),
		pos:       make(map[string]*cursor),
		buckets:   make(map[string]jetstream.Stream),
		subs:      make(map[string]*chanSub),
	}
	for i := range b.shards {
		b.shards[i].tails = make(map[string]tail)
	}
	log := cfg.Logger
	b.nc, err = nats.Connect(joinURLs(servers.urls),
		nats.Name("ferry "+cfg.NodeID),
		nats.Timeout(cfg.Timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// Without a reconnect buffer a publish while disconnected fails at
		// once instead of being queued for later: calls fail fast.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed by Close
				log.Warn("nats broker: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats broker: reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("nats broker: connect: %w (%w)", broker.ErrUnavailable, err)
	}
	b.js, err = jetstream.New(b.nc, jetstream.WithDefaultTimeout(cfg.Timeout))
	if err != nil {
		b.nc.Close()
		return nil, fmt.Errorf("nats broker: jetstream: %w", err)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if err := b.setup(ctx); err != nil {
		b.cancel()
		b.nc.Close()
		return nil, err
	}
	return b, nil
}

func joinURLs(urls []string) string {
	out := ""
	for i, u := range urls {
		if i > 0 {
			out += ","
		}
		out += u
	}
	return out
}

// setup creates (or finds) the stream and buckets, retrying while a fresh
// JetStream cluster is not ready yet.
func (b *Broker) setup(ctx context.Context) error {
	var err error
	for range setupAttempts {
		err = b.setupOnce(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return b.fail("setup", ctx.Err())
		case <-time.After(setupPause):
		}
	}
	return b.fail("setup", err)
}

// setupOnce creates (or finds) the stream and buckets and checks that each
// has a leader answering reads: another node may have created one a moment
// ago, and until its leader is elected every read of it goes unanswered.
// The attempt is bounded by a fraction of Config.Timeout: a request the
// JetStream cluster drops while it elects a leader is never answered, and
// creating what exists already with the same config is harmless, so setup
// tries again instead of waiting for that answer.
func (b *Broker) setupOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(b.cfg.Timeout/2, time.Second))
	defer cancel()
	s, err := b.channelStream(ctx, true)
	if err != nil {
		return err
	}
	if err := b.awaitLeader(ctx, s, b.names.chanSubj+"leader.probe"); err != nil {
		return err
	}
	for _, name := range []string{b.names.presence, b.names.users, b.names.kv} {
		s, err := b.bucket(ctx, name)
		if err != nil {
			return err
		}
		if err := b.awaitLeader(ctx, s, kvSubject(name, "leader.probe")); err != nil {
			return err
		}
	}
	return nil
}

// channelStream returns the stream holding every channel's messages. With
// fresh set it asks JetStream again (creating the stream when it is gone)
// instead of using the handle it has.
func (b *Broker) channelStream(ctx context.Context, fresh bool) (jetstream.Stream, error) {
	b.mu.Lock()
	s := b.stream
	b.mu.Unlock()
	if s != nil && !fresh {
		return s, nil
	}
	had := s != nil
	cfg := jetstream.StreamConfig{
		Name:        b.names.stream,
		Description: "Ferry channel streams (offset, epoch and history per subject)",
		Subjects:    []string{b.names.chanSubj + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  dedupWindow,
	}
	s, err := b.js.CreateStream(ctx, cfg)
	switch {
	case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
		s, err = b.js.Stream(ctx, b.names.stream)
	case err == nil && had:
		b.cfg.Logger.Warn("nats broker: the channel stream was lost and is created again; channels start new epochs", "stream", b.names.stream)
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.stream = s
	b.mu.Unlock()
	return s, nil
}

// bucket returns the stream of the key-value bucket name, creating it when
// missing. The stream has the layout of a JetStream KV bucket (stream
// KV_<name>, subjects $KV.<name>.<key>, one message per key, deletions
// marked by the KV-Operation header), so NATS' own KV tools can read it;
// the broker creates it itself to turn direct gets off: a direct get may be
// answered by a replica that lags the leader, and the compare-and-set
// writes need the latest revision.
func (b *Broker) bucket(ctx context.Context, name string) (jetstream.Stream, error) {
	b.mu.Lock()
	s := b.buckets[name]
	b.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := b.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              "KV_" + name,
		Subjects:          []string{kvSubject(name, ">")},
		MaxMsgsPerSubject: 1,
		MaxAge:            b.cfg.MaxRecordTTL,
		Duplicates:        min(dedupWindow, b.cfg.MaxRecordTTL),
		Storage:           jetstream.FileStorage,
		Replicas:          b.cfg.Replicas,
		Discard:           jetstream.DiscardNew,
		AllowRollup:       true,
		DenyDelete:        true,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = b.js.Stream(ctx, "KV_"+name)
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.buckets[name] = s
	b.mu.Unlock()
	return s, nil
}

// forgetBucket drops the cached handle of a bucket whose stream is gone, so
// that the next bucket call creates it again.
func (b *Broker) forgetBucket(name string) {
	b.mu.Lock()
	delete(b.buckets, name)
	b.mu.Unlock()
}

// Start begins delivery to h: it subscribes to this node's control subjects
// and starts the workers that call h.
func (b *Broker) Start(ctx context.Context, h broker.Handler) error {
	if h == nil {
		return ErrNilHandler
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return broker.ErrClosed
	case b.started:
		return ErrAlreadyStarted
	}
	for _, subj := range []string{b.names.ctlAll, b.names.ctlNode + token(b.cfg.NodeID)} {
		sub, err := b.nc.ChanSubscribe(subj, b.ctls)
		if err != nil {
			return b.fail("start", err)
		}
		b.ctlSubs = append(b.ctlSubs, sub)
	}
	fctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := b.nc.FlushWithContext(fctx); err != nil {
		return b.fail("start", err)
	}
	b.handler = h
	b.started = true
	b.goWorker(b.deliverLoop)
	b.goWorker(b.controlLoop)
	return nil
}

// goWorker runs fn on a goroutine Close waits for.
func (b *Broker) goWorker(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// Ping reports whether the NATS connection is up and JetStream answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	if !b.nc.IsConnected() {
		return fmt.Errorf("nats broker: ping: %w (%v)", broker.ErrUnavailable, b.nc.Status())
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return b.fail("ping", err)
	}
	return nil
}

// Close stops delivery, closes the connection and waits for the workers.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.nc.Close()
	b.wg.Wait()
	return nil
}

func (b *Broker) checkOpen() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return broker.ErrClosed
	}
	return nil
}

// fail wraps err from operation op: ErrClosed after Close, ErrUnavailable
// when NATS did not answer or is not connected, the error itself otherwise.
func (b *Broker) fail(op string, err error) error {
	if b.checkOpen() != nil || errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("nats broker: %s: %w", op, broker.ErrClosed)
	}
	if unavailable(err) {
		return fmt.Errorf("nats broker: %s: %w (%w)", op, broker.ErrUnavailable, err)
	}
	return fmt.Errorf("nats broker: %s: %w", op, err)
}

// unavailable reports whether err says that NATS or JetStream could not
// be reached, as opposed to a refusal of the request itself.
func unavailable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503: JetStream not ready (no leader, no quorum).
		return apiErr.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrNoServers) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// streamGone reports whether err says that a stream does not exist (it
// was deleted, or a server came back without its store).
func streamGone(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// casConflict reports whether err is a lost compare-and-set: the subject's
// (or key's) last sequence was not the one expected.
func casConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// chanLock returns the shard of channel ch.
func (b *Broker) chanLock(ch string) *shard {
	return &b.shards[maphash.String(b.seed, ch)%lockShards]
}
