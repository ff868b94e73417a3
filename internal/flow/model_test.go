package flow

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/ferry-io/ferry/protocol"
)

// This file holds a deliberately naive reference model of the queue policy
// (a slice, linear scans) and a harness that drives a real Queue and the
// model with the same operations, comparing every observable result and the
// queue's internal lists after every step. The invariants the package
// promises are asserted on the model's decisions, which the harness proves
// identical to the queue's.

// ids gives test items identities: messages by pointer into a pool,
// replies by their frame's text.
type ids struct {
	pool  []protocol.PreparedMessage
	index map[*protocol.PreparedMessage]int
}

func newIDs(tb testing.TB, n int) *ids {
	tb.Helper()
	var zero protocol.PreparedMessage
	if unsafe.Sizeof(zero) == 0 {
		tb.Fatal("protocol.PreparedMessage has size 0: pointers to distinct values may be equal; give the test another identity")
	}
	x := &ids{pool: make([]protocol.PreparedMessage, n), index: make(map[*protocol.PreparedMessage]int, n)}
	for i := range x.pool {
		x.index[&x.pool[i]] = i
	}
	return x
}

// msg returns the message whose identity is id.
func (x *ids) msg(id int) *protocol.PreparedMessage { return &x.pool[id] }

// frame returns a reply frame whose identity is id.
func frameFor(id int) []byte { return []byte("r" + strconv.Itoa(id)) }

// idOf returns an item's identity.
func (x *ids) idOf(tb testing.TB, msg *protocol.PreparedMessage, frame []byte) int {
	tb.Helper()
	if msg != nil {
		id, ok := x.index[msg]
		if !ok {
			tb.Fatalf("unknown message %p", msg)
		}
		return id
	}
	if len(frame) < 2 || frame[0] != 'r' {
		tb.Fatalf("unknown frame %q", frame)
	}
	id, err := strconv.Atoi(string(frame[1:]))
	if err != nil {
		tb.Fatalf("unknown frame %q", frame)
	}
	return id
}

// mItem is an item in the model.
type mItem struct {
	id   int
	msg  bool
	prio protocol.Priority // normalized; replies carry what was pushed
	key  string            // "" for replies
	size int
}

// removal records why the model took an item out without sending it, and
// what was queued at that moment.
type removal struct {
	item      mItem
	incoming  mItem
	conflated bool
	queued    []mItem // queue just before this removal (incoming not included)
}

type model struct {
	maxMsgs, maxBytes, hard int
	grace                   time.Duration // < 0: none
	interval, tau           time.Duration
	window                  uint32
	tat                     time.Time
	lastSeq, acked          uint64
	items                   []mItem
	overSince               time.Time
	removals                []removal
}

func newModel(cfg Config) *model {
	var q Queue // borrow the normalization, which config tests check separately
	q.Init(cfg)
	return &model{
		maxMsgs: int(q.maxMsgs), maxBytes: q.maxBytes, hard: int(q.hard), grace: q.grace,
		interval: q.interval, tau: q.tau, window: q.window,
	}
}

func (m *model) bytes() int {
	n := 0
	for _, it := range m.items {
		n += it.size
	}
	return n
}

func (m *model) isOver(n, bytes int) bool { return n > m.maxMsgs || bytes > m.maxBytes }

func (m *model) take(j int, incoming mItem, conflated bool) {
	m.removals = append(m.removals, removal{
		item: m.items[j], incoming: incoming, conflated: conflated, queued: slices.Clone(m.items),
	})
	m.items = slices.Delete(m.items, j, j+1)
}

// graceErr mirrors the slow-consumer verdict on the queue as it stands.
func (m *model) graceErr(now time.Time) error {
	if !m.isOver(len(m.items), m.bytes()) {
		m.overSince = time.Time{}
		return nil
	}
	if m.grace < 0 || now.Sub(m.overSince) > m.grace {
		return ErrSlowConsumer
	}
	return nil
}

func (m *model) push(it mItem, now time.Time) (PushResult, error) {
	var res PushResult
	if it.msg && it.key != "" {
		for j, x := range m.items {
			if x.msg && x.key == it.key {
				m.take(j, it, true)
				res.Conflated = true
				break
			}
		}
	}
	fits := func(items []mItem) bool {
		b := 0
		for _, x := range items {
			b += x.size
		}
		return len(items)+1 <= m.maxMsgs && b+it.size <= m.maxBytes
	}
	// Which classes this item may displace, in order.
	victims := []protocol.Priority{protocol.PriorityDroppable, protocol.PriorityNormal}
	if it.msg && it.prio == protocol.PriorityDroppable {
		victims = victims[:1]
	}
	if it.msg && it.prio != protocol.PriorityCritical && !fits(m.items) {
		var rest []mItem
		for _, x := range m.items {
			if !x.msg || !slices.Contains(victims, x.prio) {
				rest = append(rest, x)
			}
		}
		if !fits(rest) {
			res.Dropped[it.prio]++
			res.DroppedBytes += it.size
			m.removals = append(m.removals, removal{item: it, incoming: it, queued: slices.Clone(m.items)})
			return res, m.graceErr(now)
		}
	}
	for _, c := range victims {
		for !fits(m.items) {
			j := slices.IndexFunc(m.items, func(x mItem) bool { return x.msg && x.prio == c })
			if j < 0 {
				break
			}
			res.Dropped[c]++
			res.DroppedBytes += m.items[j].size
			m.take(j, it, false)
		}
	}
	n, b := len(m.items)+1, m.bytes()+it.size
	if m.isOver(n, b) {
		since := m.overSince
		if since.IsZero() {
			since = now
		}
		if n > m.maxMsgs*m.hard || b > m.maxBytes*m.hard || m.grace < 0 || now.Sub(since) > m.grace {
			_ = m.graceErr(now)
			return res, ErrSlowConsumer
		}
		m.overSince = since
	} else {
		m.overSince = time.Time{}
	}
	m.items = append(m.items, it)
	return res, nil
}

type popped struct {
	id  int
	msg bool
	seq uint64
}

func (m *model) pop(max int, now time.Time) ([]popped, time.Duration) {
	if max <= 0 {
		max = 1 << 30
	}
	var out []popped
	var keep []mItem
	var wait time.Duration
	held := false
	for _, x := range m.items {
		switch {
		case len(out) >= max:
		case !x.msg:
			out = append(out, popped{id: x.id})
			continue
		case held:
		case m.window != 0 && m.lastSeq-m.acked >= uint64(m.window):
			held = true
		case m.interval > 0 && now.Before(m.tat.Add(-m.tau)):
			wait = m.tat.Add(-m.tau).Sub(now)
			held = true
		default:
			if m.interval > 0 {
				if m.tat.Before(now) {
					m.tat = now
				}
				m.tat = m.tat.Add(m.interval)
			}
			m.lastSeq++
			out = append(out, popped{id: x.id, msg: true, seq: m.lastSeq})
			continue
		}
		keep = append(keep, x)
	}
	m.items = keep
	if !m.isOver(len(m.items), m.bytes()) {
		m.overSince = time.Time{}
	}
	return out, wait
}

func (m *model) ack(seq uint64) {
	seq = min(seq, m.lastSeq)
	m.acked = max(m.acked, seq)
}

// harness drives a Queue and a model side by side.
type harness struct {
	tb  testing.TB
	q   *Queue
	m   *model
	ids *ids
	now time.Time

	nextID      int
	maxMsgOut   int // highest message id handed out
	maxReplyOut int // highest reply id handed out
	delivered   map[int]bool
	accepted    map[int]mItem // pushed without error (may be dropped or conflated later)
	scratch     []Item
	lastSeqSeen uint64
}

func newHarness(tb testing.TB, cfg Config, maxItems int) *harness {
	tb.Helper()
	return &harness{
		tb: tb, q: NewQueue(cfg), m: newModel(cfg), ids: newIDs(tb, maxItems),
		now:       time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		maxMsgOut: -1, maxReplyOut: -1,
		delivered: make(map[int]bool), accepted: make(map[int]mItem),
	}
}

func (h *harness) fail(format string, args ...any) {
	h.tb.Helper()
	h.tb.Fatalf("step at %v: %s", h.now.Format("15:04:05.000000"), fmt.Sprintf(format, args...))
}

// push pushes a new message (msg true) or reply and compares outcomes.
func (h *harness) push(msg bool, prio protocol.Priority, key string, size int) {
	h.tb.Helper()
	id := h.nextID
	h.nextID++
	it := Item{Priority: prio, Size: size}
	mi := mItem{id: id, msg: msg, prio: prio, size: size}
	if msg {
		it.Msg = h.ids.msg(id)
		it.Conflate = key
		mi.key = key
		if prio > protocol.PriorityDroppable {
			mi.prio = protocol.PriorityNormal
		}
	} else {
		it.Frame = frameFor(id)
		if size == 0 {
			mi.size = len(it.Frame)
		}
	}
	before := len(h.m.removals)
	gotRes, gotErr := h.q.Push(it, h.now)
	wantRes, wantErr := h.m.push(mi, h.now)
	if gotRes != wantRes || gotErr != wantErr {
		h.fail("push %+v: got %+v, %v; model %+v, %v", mi, gotRes, gotErr, wantRes, wantErr)
	}
	if wantErr == nil && (len(h.m.removals) == before || h.m.removals[len(h.m.removals)-1].item.id != id) {
		h.accepted[id] = mi
	}
	h.checkRemovals(h.m.removals[before:])
	h.compare()
}

// checkRemovals asserts the drop rules on what one push removed.
func (h *harness) checkRemovals(rs []removal) {
	h.tb.Helper()
	for _, r := range rs {
		x, in := r.item, r.incoming
		if r.conflated {
			if !x.msg || !in.msg || x.key != in.key || x.key == "" {
				h.fail("conflation removed %+v for %+v", x, in)
			}
			continue
		}
		if !x.msg {
			h.fail("a reply was dropped: %+v", x)
		}
		if x.prio == protocol.PriorityCritical {
			h.fail("a critical message was dropped: %+v", x)
		}
		if in.msg && in.prio == protocol.PriorityDroppable && x.prio != protocol.PriorityDroppable {
			h.fail("%v message %d dropped for a droppable one", x.prio, x.id)
		}
		if x.id == in.id {
			// The pushed message itself: only when dropping every queued
			// message it may displace would still not make room.
			n, bytes := 0, 0
			for _, y := range r.queued {
				mayGo := y.msg && (y.prio == protocol.PriorityDroppable ||
					(x.prio == protocol.PriorityNormal && y.prio == protocol.PriorityNormal))
				if !mayGo {
					n++
					bytes += y.size
				}
			}
			if n+1 <= h.m.maxMsgs && bytes+x.size <= h.m.maxBytes {
				h.fail("pushed %v message %d dropped although older ones could make room", x.prio, x.id)
			}
			continue
		}
		for _, y := range r.queued {
			if y.msg && y.prio == protocol.PriorityDroppable && x.prio == protocol.PriorityNormal {
				h.fail("normal message %d dropped while droppable %d was queued", x.id, y.id)
			}
			if y.msg && y.prio == x.prio && y.id < x.id {
				h.fail("%v message %d dropped before older %d", x.prio, x.id, y.id)
			}
		}
	}
}

func (h *harness) pop(max int) {
	h.tb.Helper()
	got, gotWait := h.q.Pop(h.scratch[:0], max, h.now)
	want, wantWait := h.m.pop(max, h.now)
	if gotWait != wantWait || len(got) != len(want) {
		h.fail("pop %d: got %d items, wait %v; model %d items, wait %v", max, len(got), gotWait, len(want), wantWait)
	}
	for i, it := range got {
		id := h.ids.idOf(h.tb, it.Msg, it.Frame)
		if id != want[i].id || it.Seq != want[i].seq || (it.Msg != nil) != want[i].msg {
			h.fail("pop item %d: got id %d seq %d; model %+v", i, id, it.Seq, want[i])
		}
		if h.delivered[id] {
			h.fail("item %d delivered twice", id)
		}
		h.delivered[id] = true
		acc, ok := h.accepted[id]
		if !ok {
			h.fail("item %d delivered but never accepted", id)
		}
		if it.Size != acc.size || it.Conflate != acc.key {
			h.fail("item %d came back as size %d key %q, pushed %d %q", id, it.Size, it.Conflate, acc.size, acc.key)
		}
		if it.Msg != nil {
			// Messages keep push order and take consecutive sequence numbers.
			if id <= h.maxMsgOut {
				h.fail("message %d handed out after message %d", id, h.maxMsgOut)
			}
			if it.Seq != h.lastSeqSeen+1 {
				h.fail("message %d got seq %d after %d", id, it.Seq, h.lastSeqSeen)
			}
			h.lastSeqSeen = it.Seq
			h.maxMsgOut = id
			if h.q.window != 0 && h.q.InFlight() > int(h.q.window) {
				h.fail("in flight %d over window %d", h.q.InFlight(), h.q.window)
			}
		} else {
			// Replies keep push order and never come after a later message.
			if id <= h.maxReplyOut || id <= h.maxMsgOut {
				h.fail("reply %d handed out after reply %d / message %d", id, h.maxReplyOut, h.maxMsgOut)
			}
			h.maxReplyOut = id
			if it.Seq != 0 {
				h.fail("reply %d got seq %d", id, it.Seq)
			}
		}
	}
	clear(got)
	h.scratch = got[:0]
	h.compare()
}

func (h *harness) ack(seq uint64) {
	h.q.Ack(seq)
	h.m.ack(seq)
	h.compare()
}

func (h *harness) setWindow(w uint32) {
	h.q.SetWindow(w)
	h.m.window = w
}

func (h *harness) check() {
	h.tb.Helper()
	if got, want := h.q.Check(h.now), h.m.graceErr(h.now); got != want {
		h.fail("check: got %v, model %v", got, want)
	}
	h.compare()
}

// compare checks the counters, the bounds, and that the queue's lists hold
// exactly the model's items in order.
func (h *harness) compare() {
	h.tb.Helper()
	q, m := h.q, h.m
	if q.Len() != len(m.items) || q.Bytes() != m.bytes() || q.LastSeq() != m.lastSeq || q.InFlight() != int(m.lastSeq-m.acked) {
		h.fail("counters: len %d bytes %d seq %d inflight %d; model %d %d %d %d",
			q.Len(), q.Bytes(), q.LastSeq(), q.InFlight(), len(m.items), m.bytes(), m.lastSeq, m.lastSeq-m.acked)
	}
	if m.isOver(len(m.items), m.bytes()) {
		// Over the bounds: only critical messages and replies may be queued.
		for _, x := range m.items {
			if x.msg && x.prio != protocol.PriorityCritical {
				h.fail("queue over its bounds holds %v message %d", x.prio, x.id)
			}
		}
		if len(m.items) > m.maxMsgs*m.hard || m.bytes() > m.maxBytes*m.hard {
			h.fail("queue over the hard bounds: %d items, %d bytes", len(m.items), m.bytes())
		}
	}
	checkStructure(h.tb, q, func(nd *node) int { return h.ids.idOf(h.tb, nd.msg, nd.frame) }, m.items)
}

// checkStructure walks the queue's lists and checks their links, counters
// and conflation map, and that the send list holds want (by id) in order.
func checkStructure(tb testing.TB, q *Queue, idOf func(*node) int, want []mItem) {
	tb.Helper()
	b := q.b
	if b == nil {
		if len(want) != 0 {
			tb.Fatalf("no buffer, want %d items", len(want))
		}
		return
	}
	var got []int
	var counts [numLists]int
	var bytes [numLists]int
	keyed, total := 0, 0
	prev := nilIdx
	for i := b.head; i != nilIdx; i = b.nodes[i].next {
		nd := &b.nodes[i]
		if nd.prev != prev {
			tb.Fatalf("node %d: prev %d, want %d", i, nd.prev, prev)
		}
		prev = i
		id := idOf(nd)
		got = append(got, id)
		total += int(nd.size)
		if nd.list != listNone {
			counts[nd.list]++
			bytes[nd.list] += int(nd.size)
		}
		if nd.key != "" {
			keyed++
			if j, ok := b.keys[nd.key]; !ok || j != i {
				tb.Fatalf("key %q maps to %d (%v), want node %d", nd.key, j, ok, i)
			}
		}
		if len(got) > len(b.nodes) {
			tb.Fatal("send list loops")
		}
	}
	if b.tail != prev {
		tb.Fatalf("tail %d, want %d", b.tail, prev)
	}
	ids := make([]int, len(want))
	for i, x := range want {
		ids[i] = x.id
	}
	if !slices.Equal(got, ids) {
		tb.Fatalf("queue holds %v, model %v", got, ids)
	}
	if int(b.n) != len(got) || b.bytes != total || len(b.keys) != keyed {
		tb.Fatalf("buffer counts n %d bytes %d keys %d; walked %d %d %d", b.n, b.bytes, len(b.keys), len(got), total, keyed)
	}
	for l := range numLists {
		ls := &b.lists[l]
		n, p := 0, nilIdx
		for i := ls.head; i != nilIdx; i = b.nodes[i].cnext {
			nd := &b.nodes[i]
			if nd.cprev != p || int(nd.list) != l {
				tb.Fatalf("class list %d broken at node %d", l, i)
			}
			if p != nilIdx && idOf(&b.nodes[p]) >= idOf(nd) {
				tb.Fatalf("class list %d out of push order at node %d", l, i)
			}
			p = i
			n++
		}
		if ls.tail != p || n != counts[l] || int(ls.n) != n || ls.bytes != bytes[l] {
			tb.Fatalf("class list %d: n %d/%d walked %d, bytes %d/%d", l, ls.n, counts[l], n, ls.bytes, bytes[l])
		}
	}
	free := 0
	for i := b.free; i != nilIdx; i = b.nodes[i].next {
		nd := &b.nodes[i]
		if nd.msg != nil || nd.frame != nil || nd.key != "" {
			tb.Fatalf("free node %d still holds references", i)
		}
		free++
		if free > len(b.nodes) {
			tb.Fatal("free list loops")
		}
	}
	if free+len(got) != len(b.nodes) {
		tb.Fatalf("%d free + %d used != %d nodes", free, len(got), len(b.nodes))
	}
}

// drain hands out everything left (lifting credit and waiting out the rate
// limit) and checks that nothing critical and no reply was lost.
func (h *harness) drain() {
	h.tb.Helper()
	h.setWindow(0)
	for i := 0; h.q.Len() > 0; i++ {
		if i > 10000 {
			h.fail("queue does not drain: %d left", h.q.Len())
		}
		h.now = h.now.Add(time.Second)
		h.pop(0)
	}
	superseded := make(map[int]bool)
	for _, r := range h.m.removals {
		if r.conflated {
			superseded[r.item.id] = true
		}
	}
	for id, it := range h.accepted {
		if h.delivered[id] || superseded[id] {
			continue
		}
		if !it.msg {
			h.fail("reply %d was never delivered", id)
		}
		if it.prio == protocol.PriorityCritical {
			h.fail("critical message %d was never delivered", id)
		}
	}
}
