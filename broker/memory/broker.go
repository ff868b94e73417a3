package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/broker"
)

var (
	_ broker.Broker   = (*Broker)(nil)
	_ broker.Presence = (*Broker)(nil)
	_ broker.Users    = (*Broker)(nil)
	_ broker.KV       = (*Broker)(nil)
	_ broker.Locker   = (*Broker)(nil)
)

// Broker is the in-memory engine. It implements broker.Broker and the
// optional capabilities broker.Presence, broker.Users and broker.KV. Create
// it with New; its methods are safe for concurrent use.
type Broker struct {
	cfg    Config
	seed   maphash.Seed
	shards [numShards]shard

	handler atomic.Pointer[handlerRef]
	closed  atomic.Bool

	// lifeMu orders Start against Close so that the sweeper is never
	// added to wg after Close began waiting.
	lifeMu  sync.Mutex
	started bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

type handlerRef struct{ h broker.Handler }

// shard is one independently locked part of the broker's state. A key (a
// channel, a user, a KV key) always maps to the same shard. Each map is
// keyed by its own kind of name, so a channel and a user of the same name
// do not collide.
//
// Lock ordering: a goroutine holds at most one shard lock at a time, and
// never holds one while calling the Handler.
type shard struct {
	mu       sync.RWMutex
	streams  map[string]*stream
	subs     map[string]*subscription
	idem     map[idemKey]idemEntry
	presence map[string]map[string]presenceEntry
	users    map[string]*userSet
	kv       map[string]kvEntry
	// The earliest deadline among the shard's records of each kind
	// (guarded by mu): the sweep walks a kind only once its earliest
	// record may have expired, not every second.
	presenceDue, usersDue, kvDue earliestDeadline
	_                            [64]byte // keeps neighbouring shards' locks off one cache line
}

// New returns a broker configured by cfg. Call Start before using it and
// Close when done.
func New(cfg Config) *Broker {
	b := &Broker{
		cfg:  cfg.withDefaults(),
		seed: maphash.MakeSeed(),
		stop: make(chan struct{}),
	}
	for i := range b.shards {
		sh := &b.shards[i]
		sh.streams = make(map[string]*stream)
		sh.subs = make(map[string]*subscription)
		sh.idem = make(map[idemKey]idemEntry)
		sh.presence = make(map[string]map[string]presenceEntry)
		sh.users = make(map[string]*userSet)
		sh.kv = make(map[string]kvEntry)
	}
	return b
}

// NodeID returns the node id this broker uses (Config.NodeID or the
// generated default).
func (b *Broker) NodeID() string { return b.cfg.NodeID }

// Start begins delivery to h and starts the sweeper. A second Start returns
// ErrAlreadyStarted; a Start after Close returns broker.ErrClosed. The
// context is not kept.
func (b *Broker) Start(ctx context.Context, h broker.Handler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h == nil {
		return ErrNilHandler
	}
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if b.started {
		return ErrAlreadyStarted
	}
	b.started = true
	b.handler.Store(&handlerRef{h: h})
	b.goroutine(b.sweepLoop)
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

// Close stops delivery and the sweeper and waits for the sweeper to return.
// Every later call fails with broker.ErrClosed. Closing twice is harmless.
// A Publish that was already running when Close began may still finish.
func (b *Broker) Close() error {
	b.lifeMu.Lock()
	if b.closed.Swap(true) {
		b.lifeMu.Unlock()
		return nil
	}
	close(b.stop)
	b.lifeMu.Unlock()
	b.wg.Wait()
	return nil
}

// Ping returns nil while the broker is open and broker.ErrClosed after
// Close.
func (b *Broker) Ping(ctx context.Context) error {
	return b.usable(ctx)
}

// PublishControl hands c to this node's handler when c.Node is "" (every
// node) or this node's id; a control message for another node returns
// broker.ErrNoNode, since a memory broker has no other nodes. The handler is called before
// PublishControl returns.
func (b *Broker) PublishControl(ctx context.Context, c broker.Control) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	if c.Node != "" && c.Node != b.cfg.NodeID {
		return fmt.Errorf("memory broker: control for node %q: %w", c.Node, broker.ErrNoNode)
	}
	if ref := b.handler.Load(); ref != nil {
		ref.h.HandleControl(c)
	}
	return nil
}

// usable reports why a call cannot proceed: the broker is closed or ctx is
// done.
func (b *Broker) usable(ctx context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return ctx.Err()
}

func (b *Broker) shardFor(key string) *shard {
	return &b.shards[maphash.String(b.seed, key)&(numShards-1)]
}

func (b *Broker) now() time.Time { return b.cfg.Clock() }

// Stats counts what the broker holds. Entries that expired but were not yet
// swept are included.
type Stats struct {
	// Streams is the number of channel streams (offset and epoch kept).
	Streams int
	// HistoryMessages is the number of messages kept across all streams.
	HistoryMessages int
	// Subscriptions is the number of channels this node subscribed to.
	Subscriptions int
	// IdempotencyKeys is the number of remembered idempotency keys.
	IdempotencyKeys int
	// PresenceEntries is the number of presence entries across channels.
	PresenceEntries int
	// UserConns is the number of tracked user connections.
	UserConns int
	// KVKeys is the number of key-value entries.
	KVKeys int
}

// Stats returns current counts, for metrics and tests. It locks each shard
// in turn, so the counts are not one atomic snapshot.
func (b *Broker) Stats() Stats {
	var s Stats
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.RLock()
		s.Streams += len(sh.streams)
		for _, st := range sh.streams {
			s.HistoryMessages += st.retained()
		}
		for _, sub := range sh.subs {
			if sub.refs > 0 {
				s.Subscriptions++
			}
		}
		s.IdempotencyKeys += len(sh.idem)
		for _, m := range sh.presence {
			s.PresenceEntries += len(m)
		}
		for _, set := range sh.users {
			s.UserConns += set.n
		}
		s.KVKeys += len(sh.kv)
		sh.mu.RUnlock()
	}
	return s
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails (it panics if the OS source does)
	return hex.EncodeToString(buf)
}

// expired reports whether an entry with deadline exp is gone at now. A zero
// deadline never expires.
func expired(exp, now time.Time) bool {
	return !exp.IsZero() && !now.Before(exp)
}

// The records kept per connection (user connections, presence entries,
// session snapshots in the KV) hold their times as unix nanoseconds, a third
// of a time.Time: a node keeps one of each for every idle connection.

// nanoOf is t in unix nanoseconds; 0 for the zero time.
func nanoOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// timeOf is the time of unix nanoseconds n; the zero time for 0.
func timeOf(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// expiredAt is expired for a deadline in unix nanoseconds (0: never).
func expiredAt(exp int64, now time.Time) bool {
	return exp != 0 && now.UnixNano() >= exp
}

// earliestDeadline is the earliest of some records' deadlines, in unix
// nanoseconds (0: none of them expires). A record whose deadline moves
// later leaves it early, which costs one sweep pass that finds nothing.
type earliestDeadline int64

// note takes a record's deadline (0: never) into account.
func (d *earliestDeadline) note(exp int64) {
	if exp != 0 && (*d == 0 || exp < int64(*d)) {
		*d = earliestDeadline(exp)
	}
}

// reached reports whether a record may have expired at now; when it
// has, the caller walks the records and notes the deadline of each one
// it keeps, from zero.
func (d earliestDeadline) reached(now time.Time) bool {
	return d != 0 && now.UnixNano() >= int64(d)
}

// deadlineAt is deadline in unix nanoseconds (0: never).
func deadlineAt(now time.Time, ttl time.Duration) int64 {
	return nanoOf(deadline(now, ttl))
}

// deadline returns when something added at now with ttl expires: the zero
// time (never) when ttl <= 0.
func deadline(now time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}
