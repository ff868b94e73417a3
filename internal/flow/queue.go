package flow

import (
	"math"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// Item is one thing to send on a connection: a channel message (Msg set) or
// a reply or event already encoded for this connection (Msg nil, Frame set).
type Item struct {
	// Msg is a channel message, encoded once for all its recipients. It is
	// subject to credit, rate, the drop rules and conflation. Nil for
	// replies.
	Msg *protocol.PreparedMessage

	// Frame is a reply or event encoded for this connection alone, used
	// when Msg is nil: it is never dropped and needs no credit. The queue
	// keeps the slice until Pop hands it back: do not modify it meanwhile.
	// With Msg set, Frame is carried along untouched.
	Frame []byte

	// Priority decides what is dropped when the queue is full (never the
	// send order). Values other than the three defined ones count as
	// normal. Ignored for replies, which are never dropped.
	Priority protocol.Priority

	// Conflate is a conflation key: a message pushed with key K replaces
	// the queued, unsent message with key K. "" means none. The caller
	// scopes keys by channel (the queue compares them as opaque strings).
	// Ignored for replies.
	Conflate string

	// Size is the number of bytes the item counts against MaxBytes. For a
	// message the caller passes the encoded size; for a reply 0 means
	// len(Frame). Must not be negative; sizes above 2^31-1 are counted as
	// 2^31-1.
	Size int

	// Seq is set by Pop on channel messages: the session sequence number
	// the client acknowledges with ack. Zero on replies and ignored by Push.
	Seq uint64
}

// PushResult reports what a Push did besides queueing the item.
type PushResult struct {
	// Dropped counts the messages dropped to make room, the pushed one
	// included when it was dropped itself, indexed by protocol.Priority.
	// Dropped[protocol.PriorityCritical] is always 0.
	Dropped [3]int
	// DroppedBytes is the sum of the dropped messages' Size.
	DroppedBytes int
	// Conflated reports that the pushed message replaced a queued one with
	// the same conflation key (which is not counted in Dropped).
	Conflated bool
}

// Queue is one connection's outbound queue. See the package documentation
// for its policy.
//
// A Queue is NOT safe for concurrent use: the session serializes every call
// (it holds its mutex around the queue). The zero value is an empty queue
// with the default Config; NewQueue or Init set another. A Queue holds no
// goroutine and no timer: the caller passes the time to every call that
// needs it and schedules its own wake-ups from Pop's wait.
//
// An idle queue takes the size of this struct and nothing else: the item
// buffer is allocated on the first push and given back by Reset, by Shrink,
// and by Pop when it empties a queue whose buffer a burst made large.
type Queue struct {
	maxMsgs  int32
	hard     int32
	window   uint32
	maxBytes int
	grace    time.Duration // < 0: none
	interval time.Duration // rate limit: one message per interval; 0 = unlimited
	tau      time.Duration // rate limit: burst tolerance, (Burst-1)*interval
	tat      time.Time     // rate limit: theoretical arrival time of the next message
	lastSeq  uint64
	acked    uint64
	b        *buffer
}

// NewQueue returns an empty queue with configuration cfg. To save the
// allocation, embed a Queue in another struct and call Init instead.
func NewQueue(cfg Config) *Queue {
	q := new(Queue)
	q.Init(cfg)
	return q
}

// Push queues it at the tail, after making room by the drop rules; it may
// instead drop it (see the package documentation). now is the current time,
// used for the slow-consumer grace period.
//
// Push returns ErrSlowConsumer, with it not queued, when the queue has been
// over its bounds for longer than Config.Grace or it would take the queue
// over HardFactor times its bounds; the caller should then close the
// connection (protocol.CloseSlowConsumer). The PushResult is valid with or
// without an error.
func (q *Queue) Push(it Item, now time.Time) (PushResult, error) {
	var res PushResult
	isMsg := it.Msg != nil
	size := it.Size
	if size < 0 || (!isMsg && len(it.Frame) == 0) {
		return res, ErrInvalidItem
	}
	if !isMsg && size == 0 {
		size = len(it.Frame)
	}
	if size > math.MaxInt32 {
		size = math.MaxInt32
	}
	if q.maxMsgs == 0 {
		q.init()
	}
	b := q.b
	if b == nil {
		b = newBuffer()
		q.b = b
	}

	prio, key, cls := it.Priority, it.Conflate, uint8(listReply)
	if isMsg {
		switch prio {
		case protocol.PriorityDroppable:
			cls = listDroppable
		case protocol.PriorityCritical:
			cls = listNone
		default:
			prio, cls = protocol.PriorityNormal, listNormal
		}
		if key != "" && b.keys != nil {
			if i, ok := b.keys[key]; ok {
				// The key stays in the map, pointing at a freed node,
				// until insert below points it at the new one: that
				// spares a deletion. Paths that do not insert must
				// delete it (forget).
				b.nodes[i].key = ""
				b.remove(i)
				res.Conflated = true
			}
		}
	} else {
		key = ""
	}

	switch cls {
	case listDroppable, listNormal:
		if !q.fits(b, size) {
			if !q.canFit(b, cls, size) {
				// Even dropping every queued message of its class and
				// below would not make room: drop the pushed one alone.
				res.Dropped[prio]++
				res.DroppedBytes += size
				forget(b, key, res.Conflated)
				return res, q.settle(b, now)
			}
			q.evict(b, listDroppable, size, &res)
			if cls == listNormal {
				q.evict(b, listNormal, size, &res)
			}
		}
	default: // critical messages and replies
		q.evict(b, listDroppable, size, &res)
		q.evict(b, listNormal, size, &res)
	}

	n, bytes := int(b.n)+1, b.bytes+size
	if q.over(n, bytes) {
		since := b.overSince
		if since.IsZero() {
			since = now
		}
		if q.overHard(n, bytes) || q.grace < 0 || now.Sub(since) > q.grace {
			_ = q.settle(b, now) // restarts the clock if the queue itself is within bounds
			forget(b, key, res.Conflated)
			return res, ErrSlowConsumer
		}
		b.overSince = since
	} else {
		b.overSince = time.Time{}
	}
	b.insert(it.Msg, it.Frame, key, size, prio, cls)
	return res, nil
}

// Fits reports whether an item of size bytes can be pushed now without
// dropping anything and without taking the queue over its bounds. Push
// reads its now argument only when the queue is or goes over its bounds,
// so a caller may skip reading the clock (and pass the zero time) when
// Fits reports true; nothing may change the queue in between.
func (q *Queue) Fits(size int) bool {
	if q.maxMsgs == 0 || size < 0 || size > math.MaxInt32 {
		return false
	}
	if q.b == nil {
		return 1 <= int(q.maxMsgs) && size <= q.maxBytes
	}
	return q.fits(q.b, size)
}

// forget deletes a conflation key left in the map by Push when the message
// that replaced the key's old one is not queued after all.
func forget(b *buffer, key string, conflated bool) {
	if conflated {
		delete(b.keys, key)
	}
}

// fits reports whether an item of size bytes can be added within the bounds.
func (q *Queue) fits(b *buffer, size int) bool {
	return int(b.n) < int(q.maxMsgs) && b.bytes+size <= q.maxBytes
}

// canFit reports whether an item of size bytes and class cls would fit after
// dropping every queued message that may be dropped for it.
func (q *Queue) canFit(b *buffer, cls uint8, size int) bool {
	n, bytes := int(b.n), b.bytes
	for l := uint8(listDroppable); l <= cls; l++ {
		n -= int(b.lists[l].n)
		bytes -= b.lists[l].bytes
	}
	return n < int(q.maxMsgs) && bytes+size <= q.maxBytes
}

// evict drops the oldest messages of class list l until an item of size
// bytes fits or the class is empty.
func (q *Queue) evict(b *buffer, l uint8, size int, res *PushResult) {
	for !q.fits(b, size) {
		i := b.lists[l].head
		if i == nilIdx {
			return
		}
		nd := &b.nodes[i]
		res.Dropped[nd.prio]++
		res.DroppedBytes += int(nd.size)
		b.remove(i)
	}
}

// over reports whether n items of bytes in total exceed the bounds.
func (q *Queue) over(n, bytes int) bool {
	return n > int(q.maxMsgs) || bytes > q.maxBytes
}

// overHard reports whether n items of bytes in total exceed HardFactor times
// the bounds.
func (q *Queue) overHard(n, bytes int) bool {
	h := int(q.hard)
	return n > int(q.maxMsgs)*h || bytes > q.maxBytes*h
}

// settle restarts the grace clock when the queue is within its bounds, and
// otherwise reports ErrSlowConsumer once the grace period is over.
func (q *Queue) settle(b *buffer, now time.Time) error {
	if !q.over(int(b.n), b.bytes) {
		b.overSince = time.Time{}
		return nil
	}
	if b.overSince.IsZero() { // not reachable through Push, kept for safety
		b.overSince = now
	}
	if q.grace < 0 || now.Sub(b.overSince) > q.grace {
		return ErrSlowConsumer
	}
	return nil
}

// Check reports ErrSlowConsumer when the queue has been over its bounds for
// longer than Config.Grace. Push checks this by itself; Check lets a
// periodic task (the heartbeat) catch a consumer that stalls while nothing
// is pushed.
func (q *Queue) Check(now time.Time) error {
	if q.b == nil {
		return nil
	}
	return q.settle(q.b, now)
}

// Pop appends to dst, in push order, up to max items that may be sent now
// (max <= 0: no limit) and returns the extended slice. Channel messages get
// consecutive session sequence numbers in Seq.
//
// A message is handed out only while InFlight() is below the window and the
// rate limit has a token. The first message held back stops the messages
// behind it (channel order), but not the replies behind it: those are
// handed out past it.
//
// wait is positive when a message is held back by the rate limit: it may go
// after wait, so the caller schedules its next Pop then (or sooner when
// len(out) reached max: more replies may be ready). wait is zero when
// nothing is held back by the rate limit: the queue is empty, max was
// reached before a message was held, or messages wait for credit (an Ack
// releases them).
func (q *Queue) Pop(dst []Item, max int, now time.Time) (out []Item, wait time.Duration) {
	b := q.b
	if b == nil || b.n == 0 {
		return dst, 0
	}
	if max <= 0 {
		max = math.MaxInt
	}
	held, taken := false, 0
	for ; taken < max; taken++ {
		i := b.head
		if i == nilIdx {
			break
		}
		nd := &b.nodes[i]
		if nd.msg == nil {
			dst = append(dst, Item{Frame: nd.frame, Priority: nd.prio, Size: int(nd.size)})
			b.remove(i)
			continue
		}
		if q.window != 0 && q.lastSeq-q.acked >= uint64(q.window) {
			held = true
			break
		}
		if q.interval > 0 {
			if earliest := q.tat.Add(-q.tau); now.Before(earliest) {
				wait = earliest.Sub(now)
				held = true
				break
			}
			if q.tat.Before(now) {
				q.tat = now
			}
			q.tat = q.tat.Add(q.interval)
		}
		q.lastSeq++
		dst = append(dst, Item{
			Msg: nd.msg, Frame: nd.frame, Priority: nd.prio, Conflate: nd.key,
			Size: int(nd.size), Seq: q.lastSeq,
		})
		b.remove(i)
	}
	if held {
		// Every reply ahead of the held message went out above: the reply
		// list now holds only replies behind it.
		for ; taken < max; taken++ {
			i := b.lists[listReply].head
			if i == nilIdx {
				break
			}
			nd := &b.nodes[i]
			dst = append(dst, Item{Frame: nd.frame, Priority: nd.prio, Size: int(nd.size)})
			b.remove(i)
		}
	}
	if b.n == 0 && cap(b.nodes) > retainNodes {
		q.b = nil
	} else if !q.over(int(b.n), b.bytes) {
		b.overSince = time.Time{}
	}
	return dst, wait
}

// Ack records that the client has processed every message up to seq,
// returning their credit. An ack above LastSeq counts as LastSeq; an ack
// below an earlier one is ignored.
func (q *Queue) Ack(seq uint64) {
	seq = min(seq, q.lastSeq)
	if seq > q.acked {
		q.acked = seq
	}
}

// SetWindow sets the credit window (0 = unlimited). Lowering it below
// InFlight holds messages back until enough are acknowledged.
func (q *Queue) SetWindow(w uint32) { q.window = w }

// Window returns the credit window (0 = unlimited).
func (q *Queue) Window() uint32 { return q.window }

// Len returns the number of queued items, messages and replies.
func (q *Queue) Len() int {
	if q.b == nil {
		return 0
	}
	return int(q.b.n)
}

// Bytes returns the sum of the queued items' sizes.
func (q *Queue) Bytes() int {
	if q.b == nil {
		return 0
	}
	return q.b.bytes
}

// InFlight returns the number of messages handed out by Pop and not yet
// acknowledged: LastSeq minus the highest Ack.
func (q *Queue) InFlight() int { return int(q.lastSeq - q.acked) }

// LastSeq returns the sequence number of the last message Pop handed out
// (0 before the first).
func (q *Queue) LastSeq() uint64 { return q.lastSeq }

// SetLastSeq continues the numbering after seq, everything up to it
// acknowledged (a session resumed on another node keeps its numbers).
func (q *Queue) SetLastSeq(seq uint64) {
	if seq > q.lastSeq {
		q.lastSeq, q.acked = seq, seq
	}
}

// Reset drops every queued item and gives the queue's memory back, leaving
// an idle queue. It is for a connection that is gone. The configuration,
// the window, LastSeq and the acknowledged position are kept (Init starts
// over completely).
func (q *Queue) Reset() { q.b = nil }

// DropMessages drops every queued channel message and keeps the replies,
// in their order (a session rewound to what its client has: the messages
// come again from history, the replies would not). Like Reset it keeps
// the configuration, the window, LastSeq and the acknowledged position.
func (q *Queue) DropMessages() {
	b := q.b
	if b == nil {
		return
	}
	for i := b.head; i != nilIdx; {
		next := b.nodes[i].next
		if b.nodes[i].msg != nil {
			b.remove(i)
		}
		i = next
	}
	if b.n == 0 {
		q.b = nil
	} else if !q.over(int(b.n), b.bytes) {
		b.overSince = time.Time{}
	}
}

// Shrink gives the queue's memory back when it is empty (a no-op
// otherwise). Pop keeps a small buffer for reuse so that steady traffic does
// not allocate; a periodic task (the heartbeat) calls Shrink so that
// connections that went quiet take no more than the Queue struct.
func (q *Queue) Shrink() {
	if q.b != nil && q.b.n == 0 {
		q.b = nil
	}
}
