package flow

import (
	"math"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// The queued items live in a slab of nodes ([]node) addressed by int32
// index, threaded on two intrusive doubly linked lists at once:
//
//   - the send list: every item, in push order (what Pop walks);
//   - one class list per kind of item that is ever taken out of the middle:
//     droppable messages and normal messages (the eviction order) and
//     replies (which Pop takes past messages held back by credit or rate).
//     Critical messages need no class list.
//
// Every removal, from either end or the middle, is O(1); freed nodes go on a
// free list threaded through next, so a queue in steady state reuses its
// slab and never allocates. Nothing here is safe for concurrent use.

// nilIdx marks the end of a list.
const nilIdx int32 = -1

// Class lists.
const (
	listDroppable = iota
	listNormal
	listReply
	numLists
	listNone = numLists // critical messages: on the send list only
)

// retainNodes is how many slab nodes an emptied queue keeps for reuse. A
// queue whose slab grew beyond it (a burst) gives the whole buffer back to
// the garbage collector as soon as Pop empties it.
const retainNodes = 32

// node is one queued item.
type node struct {
	msg   *protocol.PreparedMessage
	frame []byte
	key   string // conflation key; "" = none
	size  int32
	prev  int32 // send list
	next  int32 // send list; free list when unused
	cprev int32 // class list
	cnext int32 // class list
	prio  protocol.Priority
	list  uint8 // listDroppable ... listNone
}

// list is a class list's ends and totals.
type list struct {
	head, tail int32
	n          int32
	bytes      int
}

// buffer is everything a queue allocates: it exists only while the queue
// holds (or recently held) items.
type buffer struct {
	nodes     []node
	keys      map[string]int32 // conflation key -> node; nil until a key is used
	overSince time.Time        // first push that left the queue over its bounds; zero when within
	bytes     int
	n         int32
	head      int32 // send list
	tail      int32
	free      int32
	lists     [numLists]list
}

func newBuffer() *buffer {
	b := &buffer{head: nilIdx, tail: nilIdx, free: nilIdx}
	for i := range b.lists {
		b.lists[i] = list{head: nilIdx, tail: nilIdx}
	}
	return b
}

// insert appends an item at the tail of the send list and of its class list
// and returns its node index.
func (b *buffer) insert(msg *protocol.PreparedMessage, frame []byte, key string, size int, prio protocol.Priority, cls uint8) int32 {
	i := b.free
	if i != nilIdx {
		b.free = b.nodes[i].next
	} else {
		if len(b.nodes) >= math.MaxInt32 {
			panic("flow: queue slab overflow") // unreachable: bounded by maxMaxMessages*maxHardFactor
		}
		b.nodes = append(b.nodes, node{})
		i = int32(len(b.nodes) - 1)
	}
	nd := &b.nodes[i]
	*nd = node{
		msg: msg, frame: frame, key: key, size: int32(size), prio: prio, list: cls,
		prev: b.tail, next: nilIdx, cprev: nilIdx, cnext: nilIdx,
	}
	if b.tail != nilIdx {
		b.nodes[b.tail].next = i
	} else {
		b.head = i
	}
	b.tail = i
	b.n++
	b.bytes += size

	if cls != listNone {
		l := &b.lists[cls]
		nd.cprev = l.tail
		if l.tail != nilIdx {
			b.nodes[l.tail].cnext = i
		} else {
			l.head = i
		}
		l.tail = i
		l.n++
		l.bytes += size
	}
	if key != "" {
		if b.keys == nil {
			b.keys = make(map[string]int32)
		}
		b.keys[key] = i
	}
	return i
}

// remove unlinks node i from every list, forgets its conflation key, clears
// its references (so the garbage collector can take the message) and puts
// it on the free list.
func (b *buffer) remove(i int32) {
	nd := &b.nodes[i]
	if nd.prev != nilIdx {
		b.nodes[nd.prev].next = nd.next
	} else {
		b.head = nd.next
	}
	if nd.next != nilIdx {
		b.nodes[nd.next].prev = nd.prev
	} else {
		b.tail = nd.prev
	}
	size := int(nd.size)
	b.n--
	b.bytes -= size

	if nd.list != listNone {
		l := &b.lists[nd.list]
		if nd.cprev != nilIdx {
			b.nodes[nd.cprev].cnext = nd.cnext
		} else {
			l.head = nd.cnext
		}
		if nd.cnext != nilIdx {
			b.nodes[nd.cnext].cprev = nd.cprev
		} else {
			l.tail = nd.cprev
		}
		l.n--
		l.bytes -= size
	}
	if nd.key != "" {
		delete(b.keys, nd.key)
	}
	*nd = node{next: b.free}
	b.free = i
}
