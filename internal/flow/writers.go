package flow

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Writable is what the writer pool asks of one connection (a session).
type Writable interface {
	// Slot returns the connection's bookkeeping in the pool. It is the
	// same slot on every call; only the pool and the connection's own
	// Flush touch it.
	Slot() *Slot
	// Flush writes what the connection's queue allows to its transport. It
	// runs on a writer goroutine; buf is that goroutine's scratch buffer
	// and now the pool's clock (pass it to Slot.Wrote). It returns buf, the
	// number of writes it made and the number of frames they carried.
	Flush(buf []byte, now int64) (_ []byte, writes, frames int)
}

// Slot is a connection's place in the writer pool. Its zero value is a
// connection never scheduled nor written. It is kept in the connection
// (not in a table of the pool) so that scheduling costs no lookup; every
// field is an atomic.
type Slot struct {
	// lastWrite is when the pool last wrote to the connection, on the
	// pool's clock (Writers.now); 0 = never. Under load the pool holds a
	// connection back until its coalescing window after lastWrite is
	// over. Its lowest bit (pendingBit) is set when that write left bytes
	// unsent in the transport. Written by Flush (Wrote), read by the pool.
	lastWrite atomic.Int64
	// laterGen is odd while the connection waits in the pool's delayed
	// list (see Writers.delay); changed only under the pool's lock.
	laterGen atomic.Uint32
	// scheduled: the connection is queued at the pool (or corked); set by
	// whoever schedules it, cleared by the pool before Flush.
	scheduled atomic.Bool
}

// pendingBit is the flag bit of Slot.lastWrite.
const pendingBit = 1

// Wrote records a write made at now (the pool's clock, as given to
// Flush); pending says whether it left bytes unsent in the transport.
func (s *Slot) Wrote(now int64, pending bool) {
	lw := now &^ pendingBit
	if pending {
		lw |= pendingBit
	}
	s.lastWrite.Store(lw)
}

// Backlogged reports whether the last write left bytes unsent in the
// transport (while it did not, Flush need not ask the transport for its
// backlog).
func (s *Slot) Backlogged() bool { return s.lastWrite.Load()&pendingBit != 0 }

// Written reports whether the pool ever wrote to the connection.
func (s *Slot) Written() bool { return s.lastWrite.Load() != 0 }

// Scheduled reports whether the connection is queued at the pool (or
// corked).
func (s *Slot) Scheduled() bool { return s.scheduled.Load() }

// Cork marks the connection as scheduled without queuing it, so that what
// it is given meanwhile is not scheduled piece by piece; false when it was
// scheduled already (then there is nothing to uncork).
func (s *Slot) Cork() bool { return s.scheduled.CompareAndSwap(false, true) }

// Uncork clears the mark Cork set and reports whether the caller must now
// schedule the connection; false when a flush cleared it meanwhile (the
// connection was written, and anything newer scheduled it again).
func (s *Slot) Uncork() bool { return s.scheduled.CompareAndSwap(true, false) }

// Writers is the node's pool of writer goroutines. A connection with
// something to send is queued here once (its slot's scheduled flag keeps it
// from being queued twice), so the queue never holds more entries than
// there are connections and enqueue never blocks. No connection has a
// writer goroutine of its own.
//
// # Adaptive coalescing
//
// Each write costs about the same whatever it carries (the syscall and the
// TCP segment dominate), so under load the pool makes each write carry
// more: it keeps a coalescing window W and writes to a session at most once
// per W. A session whose last write was less than W ago waits until W has
// passed, and everything queued for it meanwhile goes out in that one
// write; a session that has not been written for W or longer is written at
// once. W is 0 while the frames the node writes per second (the writes it
// would make without coalescing) stay within its write budget, so an idle
// or lightly loaded node adds no latency at all; above the budget W is the
// sessions written in a tuning period divided by the budget (so that the
// writes fit in it), never more than the maximum window. A message
// therefore waits at most W more than it would without coalescing, and
// only on a session that receives more often than 1/W. Replies to a
// client's requests do not wait (Reply); a session whose transport drained (Kick) or whose rate limit
// timer fired is written at once.
type Writers struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []Writable
	head   int // q[head:] is waiting
	closed bool
	wg     sync.WaitGroup

	// Adaptive coalescing (see the type's documentation).
	budget    float64      // writes per second; 0 = coalescing off
	maxWindow int64        // ns
	base      time.Time    // origin of the pool's clock (see now)
	window    atomic.Int64 // ns; 0 = write at once
	period    atomic.Int64 // pool clock at the start of the tuning period
	frames    atomic.Int64 // frames written in the tuning period
	active    atomic.Int64 // sessions written in the tuning period
	timer     *time.Timer  // moves sessions whose window is over from later to q
	later     []delayed    // guarded by mu: sessions waiting for their window, FIFO
	lhead     int          // guarded by mu: later[lhead:] is waiting
	armed     bool         // guarded by mu: timer is set for later[lhead]
}

// delayed is a connection waiting for its coalescing window to end.
type delayed struct {
	c   Writable
	due int64  // pool clock
	gen uint32 // the slot's laterGen when delayed: a different one means promoted
}

// Coalescing sets the writer pool's adaptive coalescing.
type Coalescing struct {
	// WriteBudget is the writes per second the pool may make before it
	// starts to gather messages into fewer writes. 0 turns coalescing off
	// (every session is written as soon as a writer is free).
	WriteBudget float64
	// MaxWindow caps the coalescing window: the most a message waits for
	// later ones to share its write. 0 turns coalescing off.
	MaxWindow time.Duration
}

const (
	// DefaultWriteBudgetPerCPU is the default write budget per CPU
	// (GOMAXPROCS).
	DefaultWriteBudgetPerCPU = 15000
	// DefaultMaxWindow is the default cap of the coalescing window.
	DefaultMaxWindow = 40 * time.Millisecond

	// tunePeriod is how often the window is recomputed (while the pool
	// writes).
	tunePeriod = 100 * time.Millisecond
	// minWindow: a computed window below it counts as 0 (not worth a
	// timer).
	minWindow = int64(500 * time.Microsecond)
	// windowSlack: sessions due within it are released together.
	windowSlack = int64(500 * time.Microsecond)
	// takeMax is the most sessions a writer takes from the queue at once.
	takeMax = 16
)

// DefaultCoalescing returns the default coalescing for a node with
// GOMAXPROCS CPUs.
func DefaultCoalescing() Coalescing {
	return Coalescing{
		WriteBudget: float64(DefaultWriteBudgetPerCPU * runtime.GOMAXPROCS(0)),
		MaxWindow:   DefaultMaxWindow,
	}
}

// NewWriters starts n writer goroutines with the default coalescing.
func NewWriters(n int) *Writers { return NewWritersWith(n, DefaultCoalescing()) }

// NewWritersWith starts n writer goroutines with coalescing c.
func NewWritersWith(n int, c Coalescing) *Writers {
	w := &Writers{base: time.Now()}
	if c.WriteBudget > 0 && c.MaxWindow > 0 {
		w.budget, w.maxWindow = c.WriteBudget, int64(c.MaxWindow)
	}
	w.cond = sync.NewCond(&w.mu)
	w.timer = time.AfterFunc(time.Hour, w.release)
	w.timer.Stop()
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go w.run()
	}
	return w
}

// now is the pool's monotonic clock in nanoseconds (at least 2, so that a
// time stored without its lowest bit is never 0).
func (w *Writers) now() int64 { return int64(time.Since(w.base)) + 2 }

// Now is the pool's clock (see now), the one Flush is given: a connection
// that stamps when something was queued compares it with Flush's now.
func (w *Writers) Now() int64 { return w.now() }

// Window returns the current coalescing window (0 when writes go out at
// once).
func (w *Writers) Window() time.Duration { return time.Duration(w.window.Load()) }

// Schedule asks the pool to write c, at most once at a time: at once, or
// when its coalescing window ends if it was written less than the window
// ago. It does nothing while c is already scheduled.
func (w *Writers) Schedule(c Writable) {
	sl := c.Slot()
	if !sl.scheduled.CompareAndSwap(false, true) {
		return
	}
	if win := w.window.Load(); win > 0 {
		if last := sl.lastWrite.Load(); last != 0 {
			now := w.now()
			if due := last + win; due > now+windowSlack {
				w.delay(c, sl, due, now)
				return
			}
		}
	}
	w.enqueue(c)
}

// WriteNow asks the pool to write c without the coalescing window (for a
// connection that already waited: a drained backlog, a rate timer, a flush
// that stopped to let others have the writer). It does nothing while c is
// already scheduled.
func (w *Writers) WriteNow(c Writable) {
	if c.Slot().scheduled.CompareAndSwap(false, true) {
		w.enqueue(c)
	}
}

// Reply asks the pool to write c at once for a reply the client waits
// for: queued now if it was not scheduled, or moved out of the delayed
// list if it waits there for its window.
func (w *Writers) Reply(c Writable) {
	sl := c.Slot()
	if sl.scheduled.CompareAndSwap(false, true) {
		w.enqueue(c)
		return
	}
	w.promote(c, sl)
}

// enqueue queues c for a write at once; its scheduled flag is set.
func (w *Writers) enqueue(c Writable) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.q = append(w.q, c)
	w.mu.Unlock()
	w.cond.Signal()
}

// delay queues c to be written at due. The list is first in, first out:
// the window changes slowly, so dues come nearly in order, and a
// connection behind a later one waits at most that much longer.
func (w *Writers) delay(c Writable, sl *Slot, due, now int64) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.later = append(w.later, delayed{c: c, due: due, gen: sl.laterGen.Add(1)})
	if !w.armed {
		w.armed = true
		w.timer.Reset(time.Duration(due - now))
	}
	w.mu.Unlock()
}

// promote moves c from the delayed list to the write queue, if it waits
// there (its scheduled flag stays set: it is queued exactly once).
func (w *Writers) promote(c Writable, sl *Slot) {
	w.mu.Lock()
	if g := sl.laterGen.Load(); g%2 == 1 && !w.closed {
		sl.laterGen.Store(g + 1)
		w.q = append(w.q, c)
		w.mu.Unlock()
		w.cond.Signal()
		return
	}
	w.mu.Unlock()
}

// release runs on the timer: it moves the sessions whose window is over to
// the write queue and sets the timer for the next one.
func (w *Writers) release() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	now := w.now()
	moved := 0
	for w.lhead < len(w.later) && w.later[w.lhead].due <= now+windowSlack {
		if e := w.later[w.lhead]; e.c.Slot().laterGen.Load() == e.gen {
			e.c.Slot().laterGen.Add(1) // even: out of the delayed list
			w.q = append(w.q, e.c)
		} // else promote moved it to the queue already
		w.later[w.lhead] = delayed{}
		w.lhead++
		moved++
	}
	if w.lhead == len(w.later) {
		w.later, w.lhead = w.later[:0], 0
		if cap(w.later) > 4096 {
			w.later = nil // do not keep a burst's array
		}
		w.armed = false
	} else {
		if w.lhead > 1024 && w.lhead > len(w.later)/2 {
			m := copy(w.later, w.later[w.lhead:])
			clear(w.later[m:])
			w.later, w.lhead = w.later[:m], 0
		}
		w.timer.Reset(time.Duration(w.later[w.lhead].due - now))
	}
	w.mu.Unlock()
	switch {
	case moved > 1:
		w.cond.Broadcast()
	case moved == 1:
		w.cond.Signal()
	}
}

func (w *Writers) run() {
	defer w.wg.Done()
	var buf []byte
	var batch []Writable
	for {
		w.mu.Lock()
		for len(w.q) == w.head && !w.closed {
			w.cond.Wait()
		}
		if w.closed {
			w.mu.Unlock()
			return
		}
		// Take a few sessions at once to cut lock traffic.
		n := min(len(w.q)-w.head, takeMax)
		batch = append(batch[:0], w.q[w.head:w.head+n]...)
		clear(w.q[w.head : w.head+n])
		w.head += n
		if w.head == len(w.q) {
			w.q, w.head = w.q[:0], 0
		} else if w.head > 4096 && w.head > len(w.q)/2 {
			m := copy(w.q, w.q[w.head:])
			clear(w.q[m:])
			w.q, w.head = w.q[:m], 0
		}
		w.mu.Unlock()
		now := w.now()
		period := w.period.Load()
		frames, active := 0, 0
		for _, c := range batch {
			sl := c.Slot()
			prev := sl.lastWrite.Load()
			sl.scheduled.Store(false) // what arrives during Flush schedules it again
			var writes, f int
			buf, writes, f = c.Flush(buf, now)
			if writes > 0 {
				frames += f
				if prev < period {
					active++
				}
			}
		}
		clear(batch)
		if cap(buf) > 1<<20 {
			buf = nil // do not keep a huge buffer after a burst
		}
		if w.budget > 0 {
			w.frames.Add(int64(frames))
			w.active.Add(int64(active))
			w.tune(w.now())
		}
	}
}

// tune recomputes the coalescing window once per tuning period.
//
// With the window W, a session receiving r messages per second is written
// min(r, 1/W) times a second, so the N sessions written in a period make at
// most N/W writes a second: W = N/budget keeps the node within its budget
// whatever the sessions receive. The window is that while the frames
// written (the writes there would be without coalescing) exceed the
// budget, and 0 otherwise. It follows a rise at once and a fall by halves,
// so that a period in which the writers were held up (and wrote little)
// does not throw the node back to one write per frame (a fall by one half
// per period that passed, when several passed without a write).
func (w *Writers) tune(now int64) {
	start := w.period.Load()
	el := now - start
	if el < int64(tunePeriod) || !w.period.CompareAndSwap(start, now) {
		return
	}
	frames := float64(w.frames.Swap(0))
	active := float64(w.active.Swap(0))
	rate := frames * float64(time.Second) / float64(el)
	var target int64
	if rate > w.budget {
		target = min(int64(active/w.budget*float64(time.Second)), w.maxWindow)
	}
	next := target
	if cur := w.window.Load(); target < cur {
		// Half per period that passed: after a quiet spell (no writes, so
		// no tuning) the window is not still what the last burst needed.
		halvings := min(el/int64(tunePeriod), 62)
		next = max(target, cur>>halvings)
	}
	if next < minWindow {
		next = 0
	}
	w.window.Store(next)
}

// Close stops the writers and waits for them.
func (w *Writers) Close() {
	w.mu.Lock()
	w.closed = true
	w.q, w.head = nil, 0
	w.later, w.lhead = nil, 0
	w.timer.Stop()
	w.mu.Unlock()
	w.cond.Broadcast()
	w.wg.Wait()
}
