package node

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

const registryShards = 32

// Conn is what the registry asks of one connection (a session). C is the
// connection's own type (a pointer), so that the registry's maps hold it
// without an interface's extra word.
type Conn[C any] interface {
	comparable
	// ConnID is the connection's id; it never changes.
	ConnID() string
	// UserLink is the connection's link to the next connection of the
	// same user. The registry reads and writes it only under the lock of
	// the user's shard; nothing else may touch it.
	UserLink() *C
	// Close ends the connection with a close code and a reason.
	Close(code int, reason string)
	// QueueLen is the number of frames the connection has queued.
	QueueLen() int
	// Sweep runs the connection's periodic checks (heartbeat, timeouts,
	// token expiry, queue bounds) at now. It returns the refresh of the
	// connection's broker records when one is due, else nil; the sweep
	// runs the refreshes after the checks of every connection.
	Sweep(now time.Time) func(context.Context)
}

// Registry holds a node's live connections, by connection id and by user,
// and runs the periodic checks (heartbeats, connect timeout, token
// expiry, presence refresh) in one sweep over all of them instead of a timer
// per connection.
//
// Lock order: a shard's lock is never held while calling a connection's
// methods (Close, Sweep, QueueLen take the connection's own lock); see the
// package doc.
type Registry[C Conn[C]] struct {
	seed   maphash.Seed // set by NewRegistry, read-only after
	shards [registryShards]regShard[C]
}

type regShard[C Conn[C]] struct {
	mu    sync.RWMutex
	conns map[string]C // guarded by mu
	// byUser holds the first of each user's connected connections; the
	// rest follow it through their UserLink (a user has one or a few,
	// and a chain costs no table per user). Guarded by mu, with the
	// links.
	byUser map[string]C
}

// NewRegistry returns an empty registry.
func NewRegistry[C Conn[C]]() *Registry[C] {
	r := &Registry[C]{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i] = regShard[C]{
			conns:  make(map[string]C),
			byUser: make(map[string]C),
		}
	}
	return r
}

func (r *Registry[C]) shard(key string) *regShard[C] {
	return &r.shards[maphash.String(r.seed, key)%registryShards]
}

// Add registers c by its connection id (before its user is known).
func (r *Registry[C]) Add(c C) {
	sh := r.shard(c.ConnID())
	sh.mu.Lock()
	sh.conns[c.ConnID()] = c
	sh.mu.Unlock()
}

// Connected indexes c by user once its connect succeeded. A connection that
// ended meanwhile may have left the index before it was in it: the caller
// checks that after Connected and, if so, calls RemoveUser.
func (r *Registry[C]) Connected(c C, user string) {
	sh := r.shard(user)
	sh.mu.Lock()
	*c.UserLink() = sh.byUser[user]
	sh.byUser[user] = c
	sh.mu.Unlock()
}

// Remove takes c out of the registry; indexed says whether it was indexed
// by user (it connected), under user.
func (r *Registry[C]) Remove(c C, user string, indexed bool) {
	sh := r.shard(c.ConnID())
	sh.mu.Lock()
	if sh.conns[c.ConnID()] == c {
		delete(sh.conns, c.ConnID())
	}
	sh.mu.Unlock()
	if indexed {
		r.RemoveUser(c, user)
	}
}

// RemoveUser takes c out of user's connections, if it is there.
func (r *Registry[C]) RemoveUser(c C, user string) {
	var zero C
	sh := r.shard(user)
	sh.mu.Lock()
	for p, cur := zero, sh.byUser[user]; cur != zero; p, cur = cur, *cur.UserLink() {
		if cur != c {
			continue
		}
		next := *cur.UserLink()
		switch {
		case p != zero:
			*p.UserLink() = next
		case next != zero:
			sh.byUser[user] = next
		default:
			delete(sh.byUser, user)
		}
		*cur.UserLink() = zero
		break
	}
	sh.mu.Unlock()
}

// ByConn returns the live connection with id conn; ok is false when there
// is none.
func (r *Registry[C]) ByConn(conn string) (c C, ok bool) {
	sh := r.shard(conn)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	c, ok = sh.conns[conn]
	return c, ok
}

// ByUser returns the live connections of a user on this node.
func (r *Registry[C]) ByUser(user string) []C {
	var zero C
	sh := r.shard(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	var out []C
	for c := sh.byUser[user]; c != zero; c = *c.UserLink() {
		out = append(out, c)
	}
	return out
}

// CloseConn closes the connection conn if this node holds it (LocalConns).
func (r *Registry[C]) CloseConn(conn string, code int, reason string) {
	if c, ok := r.ByConn(conn); ok {
		c.Close(code, reason)
	}
}

// CloseUser closes every connection of user on this node (LocalConns).
func (r *Registry[C]) CloseUser(user string, code int, reason string) int {
	conns := r.ByUser(user)
	for _, c := range conns {
		c.Close(code, reason)
	}
	return len(conns)
}

// Count returns the number of live connections (connected or not yet).
func (r *Registry[C]) Count() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		n += len(sh.conns)
		sh.mu.RUnlock()
	}
	return n
}

// Each calls fn for every live connection (outside the registry's locks).
func (r *Registry[C]) Each(fn func(C)) {
	var batch []C
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		batch = batch[:0]
		for _, c := range sh.conns {
			batch = append(batch, c)
		}
		sh.mu.RUnlock()
		for _, c := range batch {
			fn(c)
		}
	}
}

// QueueDepth returns the total number of frames queued on this node.
func (r *Registry[C]) QueueDepth() int {
	n := 0
	r.Each(func(c C) { n += c.QueueLen() })
	return n
}

// Sweep runs the periodic checks on every connection. The node calls it
// about once a second.
func (r *Registry[C]) Sweep(ctx context.Context, now time.Time) {
	// First the checks that need no broker (heartbeats, timeouts, queue
	// bounds) for every connection, then the record refreshes that are
	// due, several at once: one round trip per record, one after the
	// other, would make a sweep of many connections as slow as their
	// number times the broker's latency, and delay the next heartbeats by
	// as much.
	var due []func(context.Context)
	r.Each(func(c C) {
		if f := c.Sweep(now); f != nil {
			due = append(due, f)
		}
	})
	runRefreshes(ctx, due)
}

// sweepRefreshers bounds the record refreshes a sweep runs at once (the
// Redis client pipelines concurrent calls).
const sweepRefreshers = 32

// runRefreshes runs fs on up to sweepRefreshers goroutines and waits.
func runRefreshes(ctx context.Context, fs []func(context.Context)) {
	if len(fs) == 0 {
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(sweepRefreshers, len(fs)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(fs)) {
					return
				}
				fs[i](ctx)
			}
		})
	}
	wg.Wait()
}
