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
	// token expiry, queue bounds) at now. It returns when the next check
	// is due (the zero time: never, the connection has ended), and the
	// refresh of the connection's broker records when one is due, else
	// nil; the sweep runs the refreshes after the checks it made.
	Sweep(now time.Time) (next time.Time, refresh func(context.Context))
	// SweepLink is the connection's place in the registry's timing
	// wheel; only the registry touches it.
	SweepLink() *SweepLink[C]
}

// SweepLink is a connection's place in the registry's timing wheel, kept in
// the connection (no table entry per connection): the list of its slot
// and the second of its next check.
type SweepLink[C any] struct {
	prev, next C // guarded by the shard's wmu
	// due is the second of the next check (> 0), or one of dueNone,
	// dueSweeping, dueWoken; written under the shard's wmu, read
	// without it.
	due atomic.Int64
}

// Registry holds a node's live connections, by connection id and by user,
// and runs their periodic checks (heartbeats, connect timeout, token
// expiry, presence refresh) from one sweep a second instead of a timer per
// connection. The sweep visits only the connections whose check is due: a
// timing wheel of one slot per second holds each connection in the slot of
// its next check (which the connection computes: its next ping, token
// expiry, record refresh), so an idle connection is visited about twice per
// heartbeat interval instead of every second. A connection that queues
// frames is woken into the next second's slot (Wake), for the queue's
// bounds and to release its buffers once idle.
//
// Lock order: a shard's lock is never held while calling a connection's
// methods (Close, Sweep, QueueLen take the connection's own lock); see the
// package doc.
type Registry[C Conn[C]] struct {
	seed   maphash.Seed // set by NewRegistry, read-only after
	shards [registryShards]regShard[C]

	sweepMu sync.Mutex // held by Sweep: one sweep at a time
	// swept is the last second Sweep processed (0 before the first);
	// written by Sweep under sweepMu, read without it by Add and Wake.
	swept atomic.Int64
}

// wheelSlots is the timing wheel's horizon in seconds: a check due later
// is made at the horizon and scheduled again from there.
const wheelSlots = 64

// The states of a connection's SweepDue besides a due second (> 0).
const (
	dueNone     = 0  // not in the wheel: not added yet, or removed
	dueSweeping = -1 // taken out of its slot by the sweep in progress
	dueWoken    = -2 // woken while the sweep had it: checked again next second
)

type regShard[C Conn[C]] struct {
	mu    sync.RWMutex
	conns map[string]C // guarded by mu
	// byUser holds the first of each user's connected connections; the
	// rest follow it through their UserLink (a user has one or a few,
	// and a chain costs no table per user). Guarded by mu, with the
	// links.
	byUser map[string]C

	// wmu guards slots and, for this shard's connections, every write
	// of their SweepDue (reads are atomic and lock-free). A leaf lock,
	// taken under a connection's lock by Wake.
	wmu   sync.Mutex
	slots [wheelSlots]C // the first connection of each second's list
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

// Add registers c by its connection id (before its user is known); its
// first check is in the next sweep.
func (r *Registry[C]) Add(c C) {
	sh := r.shard(c.ConnID())
	sh.mu.Lock()
	sh.conns[c.ConnID()] = c
	sh.mu.Unlock()
	sh.wmu.Lock()
	sh.place(c, r.swept.Load()+1)
	sh.wmu.Unlock()
}

// Sweep stores swept before it takes any shard's lock, so a caller that
// reads swept under a shard's wmu never places a connection in a slot
// that the sweep in progress has already emptied.

// Wake brings c's next check forward to the next sweep (c queued frames).
// It is cheap when c is already due then, which is the case of a
// connection with steady traffic.
func (r *Registry[C]) Wake(c C) {
	due := &c.SweepLink().due
	next := r.swept.Load() + 1
	if d := due.Load(); (d > 0 && d <= next) || d == dueWoken || d == dueNone {
		return
	}
	sh := r.shard(c.ConnID())
	sh.wmu.Lock()
	next = r.swept.Load() + 1 // again, under the lock (see Add)
	switch d := due.Load(); {
	case d == dueSweeping:
		due.Store(dueWoken)
	case d > next:
		sh.unlink(c, d)
		sh.place(c, next)
	}
	sh.wmu.Unlock()
}

// place puts c in the slot of second sec. Called with wmu held, for a
// connection that is in no slot.
func (sh *regShard[C]) place(c C, sec int64) {
	var zero C
	l, head := c.SweepLink(), &sh.slots[sec%wheelSlots]
	l.prev, l.next = zero, *head
	if *head != zero {
		(*head).SweepLink().prev = c
	}
	*head = c
	l.due.Store(sec)
}

// unlink takes c out of the slot of second d, where it is. Called with
// wmu held.
func (sh *regShard[C]) unlink(c C, d int64) {
	var zero C
	l := c.SweepLink()
	if l.prev != zero {
		l.prev.SweepLink().next = l.next
	} else {
		sh.slots[d%wheelSlots] = l.next
	}
	if l.next != zero {
		l.next.SweepLink().prev = l.prev
	}
	l.prev, l.next = zero, zero
}

// unplace takes c out of the wheel.
func (sh *regShard[C]) unplace(c C) {
	sh.wmu.Lock()
	if d := c.SweepLink().due.Load(); d > 0 {
		sh.unlink(c, d)
	}
	c.SweepLink().due.Store(dueNone)
	sh.wmu.Unlock()
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
	sh.unplace(c)
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

// QueueDepth returns the total number of frames queued on this node. A
// connection with frames queued is always due at the next sweep (it was
// woken when it queued them, and a sweep that finds frames still queued
// checks it again at the next), so only that second's slot is read, not
// every connection.
func (r *Registry[C]) QueueDepth() int {
	var zero C
	var due []C
	r.sweepMu.Lock() // no sweep is between taking a slot and filling the next
	next := r.swept.Load() + 1
	for i := range r.shards {
		sh := &r.shards[i]
		sh.wmu.Lock()
		for c := sh.slots[next%wheelSlots]; c != zero; c = c.SweepLink().next {
			due = append(due, c)
		}
		sh.wmu.Unlock()
	}
	r.sweepMu.Unlock()
	n := 0
	for _, c := range due {
		n += c.QueueLen()
	}
	return n
}

// Sweep runs the periodic checks that are due at now. The node calls it
// about once a second; a sweep after a gap (or the first one, or one whose
// clock went back) checks every connection.
func (r *Registry[C]) Sweep(ctx context.Context, now time.Time) {
	r.sweep(ctx, now, false)
}

// SweepAll runs the periodic checks of every connection at now, due or
// not (an idle connection gives its buffers back at once).
func (r *Registry[C]) SweepAll(ctx context.Context, now time.Time) {
	r.sweep(ctx, now, true)
}

func (r *Registry[C]) sweep(ctx context.Context, now time.Time, all bool) {
	runRefreshes(ctx, r.check(now, all))
}

// check runs the checks of the connections due at now (all: of every
// connection) and puts each back in the slot of its next check; it
// returns the record refreshes that are due.
func (r *Registry[C]) check(now time.Time, all bool) []func(context.Context) {
	r.sweepMu.Lock()
	defer r.sweepMu.Unlock()
	sec := now.Unix()
	from := r.swept.Load() + 1
	if all || from == 1 || sec < from-1 || sec-from >= wheelSlots {
		from = sec - wheelSlots + 1
	}
	// First take the due connections out of their slots, then the checks
	// that need no broker (heartbeats, timeouts, queue bounds), then the
	// record refreshes that are due, several at once: one round trip per
	// record, one after the other, would make a sweep of many connections
	// as slow as their number times the broker's latency, and delay the
	// next heartbeats by as much.
	r.swept.Store(sec)
	var batch []C
	for i := range r.shards {
		sh := &r.shards[i]
		sh.wmu.Lock()
		for t := from; t <= sec; t++ {
			var zero C
			c := sh.slots[t%wheelSlots]
			sh.slots[t%wheelSlots] = zero
			for c != zero {
				l := c.SweepLink()
				batch = append(batch, c)
				c, l.prev, l.next = l.next, zero, zero
				l.due.Store(dueSweeping)
			}
		}
		sh.wmu.Unlock()
	}
	var due []func(context.Context)
	for _, c := range batch {
		next, f := c.Sweep(now)
		if f != nil {
			due = append(due, f)
		}
		r.reschedule(c, now, next)
	}
	return due
}

// reschedule puts c, just checked at now, in the slot of its next check:
// the second next falls in, at the earliest the next sweep's and at the
// latest the wheel's horizon; the next sweep's when c was woken meanwhile.
// (A sweep may so come up to a second before next: the connection then
// finds its check not due yet and is checked again at the sweep after.) A connection that ended (next is zero) or that left the
// registry meanwhile goes in no slot.
func (r *Registry[C]) reschedule(c C, now, next time.Time) {
	sh := r.shard(c.ConnID())
	sh.wmu.Lock()
	defer sh.wmu.Unlock()
	d := c.SweepLink().due.Load()
	if d == dueNone || next.IsZero() {
		c.SweepLink().due.Store(dueNone)
		return
	}
	sec := now.Unix()
	at := min(max(next.Unix(), sec+1), sec+wheelSlots-1)
	if d == dueWoken {
		at = sec + 1
	}
	sh.place(c, at)
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
