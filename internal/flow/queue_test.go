package flow

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/ferry-io/ferry/protocol"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// script pushes items described by tokens such as "d", "n:5", "c@k" or "r"
// (droppable, normal, critical message, reply; optional size, default 1;
// optional conflation key) and labels each with its kind and push index
// ("d0", "n1", ...). "|" tokens are ignored (they separate setup from the
// push under test for the reader).
type script struct {
	tb     testing.TB
	q      *Queue
	ids    *ids
	labels map[int]string
	n      int
	res    PushResult // sums over every push
	errs   []error
}

func newScript(tb testing.TB, cfg Config) *script {
	tb.Helper()
	return &script{tb: tb, q: NewQueue(cfg), ids: newIDs(tb, 64), labels: make(map[int]string)}
}

func (s *script) push(tokens string, now time.Time) {
	s.tb.Helper()
	for tok := range strings.FieldsSeq(tokens) {
		if tok == "|" {
			continue
		}
		kind, rest := tok[0], tok[1:]
		key := ""
		if i := strings.IndexByte(rest, '@'); i >= 0 {
			rest, key = rest[:i], rest[i+1:]
		}
		size := 1
		if strings.HasPrefix(rest, ":") {
			var err error
			if size, err = strconv.Atoi(rest[1:]); err != nil {
				s.tb.Fatalf("bad token %q", tok)
			}
		}
		id := s.n
		s.n++
		s.labels[id] = fmt.Sprintf("%c%d", kind, id)
		it := Item{Size: size, Conflate: key}
		switch kind {
		case 'd':
			it.Priority = protocol.PriorityDroppable
		case 'n':
			it.Priority = protocol.PriorityNormal
		case 'c':
			it.Priority = protocol.PriorityCritical
		case 'r':
			it.Priority = protocol.PriorityCritical
		default:
			s.tb.Fatalf("bad token %q", tok)
		}
		if kind == 'r' {
			it.Frame = frameFor(id)
		} else {
			it.Msg = s.ids.msg(id)
		}
		res, err := s.q.Push(it, now)
		for p, n := range res.Dropped {
			s.res.Dropped[p] += n
		}
		s.res.DroppedBytes += res.DroppedBytes
		s.res.Conflated = s.res.Conflated || res.Conflated
		s.errs = append(s.errs, err)
	}
}

// contents lists the queued items' labels in send order.
func (s *script) contents() string {
	s.tb.Helper()
	var out []string
	if b := s.q.b; b != nil {
		for i := b.head; i != nilIdx; i = b.nodes[i].next {
			out = append(out, s.labels[s.ids.idOf(s.tb, b.nodes[i].msg, b.nodes[i].frame)])
		}
	}
	return strings.Join(out, " ")
}

// pop pops and returns the labels (with "#seq" on messages).
func (s *script) pop(max int, now time.Time) (string, time.Duration) {
	s.tb.Helper()
	items, wait := s.q.Pop(nil, max, now)
	var out []string
	for _, it := range items {
		l := s.labels[s.ids.idOf(s.tb, it.Msg, it.Frame)]
		if it.Msg != nil {
			l += "#" + strconv.FormatUint(it.Seq, 10)
		}
		out = append(out, l)
	}
	return strings.Join(out, " "), wait
}

func TestPushDropRules(t *testing.T) {
	const (
		D = protocol.PriorityDroppable
		N = protocol.PriorityNormal
	)
	tests := []struct {
		name    string
		cfg     Config
		pushes  string
		want    string
		dropped [3]int // by priority
		bytes   int    // dropped bytes
	}{
		{"room: nothing dropped", Config{MaxMessages: 3}, "d n c", "d0 n1 c2", [3]int{}, 0},
		{"oldest droppable goes first", Config{MaxMessages: 3}, "n d d | n", "n0 d2 n3", [3]int{D: 1}, 1},
		{"droppable before normal, even when newer", Config{MaxMessages: 3}, "n n d | c", "n0 n1 c3", [3]int{D: 1}, 1},
		{"then the oldest normal", Config{MaxMessages: 3}, "c n n | n", "c0 n2 n3", [3]int{N: 1}, 1},
		{"incoming droppable dropped when only normal queued", Config{MaxMessages: 3}, "n n n | d", "n0 n1 n2", [3]int{D: 1}, 1},
		{"incoming droppable dropped when only critical queued", Config{MaxMessages: 2}, "c r | d", "c0 r1", [3]int{D: 1}, 1},
		{"incoming normal dropped when only critical queued", Config{MaxMessages: 3}, "c c r | n", "c0 c1 r2", [3]int{N: 1}, 1},
		{"incoming droppable displaces an older droppable", Config{MaxMessages: 3}, "n d n | d", "n0 n2 d3", [3]int{D: 1}, 1},
		{"critical displaces droppable then normal", Config{MaxMessages: 3}, "n d c | c c", "c2 c3 c4", [3]int{D: 1, N: 1}, 2},
		{"critical overflows when only critical queued", Config{MaxMessages: 3}, "c c r | c", "c0 c1 r2 c3", [3]int{}, 0},
		{"a reply displaces like a critical message", Config{MaxMessages: 3}, "c n d | r", "c0 n1 r3", [3]int{D: 1}, 1},
		{"replies overflow like critical messages", Config{MaxMessages: 2}, "r r | r", "r0 r1 r2", [3]int{}, 0},
		{"bytes: drops until it fits", Config{MaxBytes: 10}, "d:4 d:4 n:2 | n:5", "n2 n3", [3]int{D: 2}, 8},
		{"bytes: critical drops every lower one and overflows", Config{MaxBytes: 10}, "d:3 n:3 c:3 | c:9", "c2 c3", [3]int{D: 1, N: 1}, 6},
		{"bytes: an incoming message that cannot fit is dropped alone", Config{MaxBytes: 10}, "d:2 c:6 | d:5", "d0 c1", [3]int{D: 1}, 5},
		{"bytes: normal larger than all room is dropped alone", Config{MaxBytes: 10}, "d:2 n:2 | n:11", "d0 n1", [3]int{N: 1}, 11},
		{"zero-size messages still count as messages", Config{MaxMessages: 2, MaxBytes: 1}, "d:0 n:0 | n:0", "n1 n2", [3]int{D: 1}, 0},
		{"unknown priority counts as normal", Config{MaxMessages: 2}, "n n | d", "n0 n1", [3]int{D: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, tt.cfg)
			s.push(tt.pushes, t0)
			for i, err := range s.errs {
				if err != nil {
					t.Fatalf("push %d: %v", i, err)
				}
			}
			if got := s.contents(); got != tt.want {
				t.Errorf("queue holds %q, want %q", got, tt.want)
			}
			if s.res.Dropped != tt.dropped || s.res.DroppedBytes != tt.bytes {
				t.Errorf("dropped %v (%d bytes), want %v (%d bytes)", s.res.Dropped, s.res.DroppedBytes, tt.dropped, tt.bytes)
			}
		})
	}
	t.Run("unknown priority value", func(t *testing.T) {
		q := NewQueue(Config{MaxMessages: 1})
		x := newIDs(t, 2)
		mustPush(t, q, Item{Msg: x.msg(0), Priority: protocol.Priority(9), Size: 1}, t0)
		res, err := q.Push(Item{Msg: x.msg(1), Priority: protocol.PriorityCritical, Size: 1}, t0)
		if err != nil || res.Dropped != [3]int{protocol.PriorityNormal: 1} {
			t.Fatalf("got %+v, %v: want the unknown-priority message dropped as normal", res, err)
		}
	})
}

func mustPush(tb testing.TB, q *Queue, it Item, now time.Time) PushResult {
	tb.Helper()
	res, err := q.Push(it, now)
	if err != nil {
		tb.Fatalf("push: %v", err)
	}
	return res
}

func TestConflation(t *testing.T) {
	tests := []struct {
		name, pushes, want string
		conflated          bool
	}{
		{"replaces and moves to the tail", "n@a n n@a", "n1 n2", true},
		{"keys are independent", "n@a n@b n@a n@b", "n2 n3", true},
		{"across priorities", "c@a d | d@a", "d1 d2", true},
		{"replies are never conflated", "r@a r@a", "r0 r1", false},
		{"no key, no conflation", "n n", "n0 n1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, Config{})
			s.push(tt.pushes, t0)
			if got := s.contents(); got != tt.want {
				t.Errorf("queue holds %q, want %q", got, tt.want)
			}
			if s.res.Conflated != tt.conflated || s.res.Dropped != [3]int{} {
				t.Errorf("conflated %v, dropped %v; want conflated %v, nothing dropped", s.res.Conflated, s.res.Dropped, tt.conflated)
			}
			if s.q.Bytes() != s.q.Len() {
				t.Errorf("bytes %d for %d one-byte items", s.q.Bytes(), s.q.Len())
			}
		})
	}
	t.Run("sent messages are not conflated", func(t *testing.T) {
		s := newScript(t, Config{})
		s.push("n@a", t0)
		if got, _ := s.pop(0, t0); got != "n0#1" {
			t.Fatalf("popped %q", got)
		}
		s.push("n@a", t0)
		if s.res.Conflated {
			t.Fatal("a message already handed out was conflated")
		}
		if got, _ := s.pop(0, t0); got != "n1#2" {
			t.Fatalf("popped %q", got)
		}
	})
}

// TestConflationRateLimited pushes 1,000 updates to 10 keys (one channel
// per key, offsets growing) to a rate-limited consumer: it receives far
// fewer messages, always in offset order, and ends up with the latest value
// of every key.
func TestConflationRateLimited(t *testing.T) {
	const updates, keys = 1000, 10
	q := NewQueue(Config{Rate: 50, Burst: 2})
	x := newIDs(t, updates)
	keyOf := func(id int) string { return "ch" + strconv.Itoa(id%keys) + "\x00k" }
	now := t0
	var got []Item
	conflated := 0
	for id := range updates {
		res := mustPush(t, q, Item{Msg: x.msg(id), Priority: protocol.PriorityNormal, Conflate: keyOf(id), Size: 10}, now)
		if res.Dropped != [3]int{} {
			t.Fatalf("update %d dropped %v", id, res.Dropped)
		}
		if res.Conflated {
			conflated++
		}
		if id%7 == 0 {
			got, _ = q.Pop(got, 0, now)
		}
		now = now.Add(time.Millisecond)
	}
	if q.Len() > keys {
		t.Fatalf("%d items queued after the updates, want at most one per key (%d)", q.Len(), keys)
	}
	for i := q.b.head; i != nilIdx; i = q.b.nodes[i].next {
		id := x.idOf(t, q.b.nodes[i].msg, nil)
		if id < updates-keys {
			t.Errorf("queued update %d is not the latest for its key", id)
		}
	}
	for q.Len() > 0 {
		var wait time.Duration
		got, wait = q.Pop(got, 0, now)
		if q.Len() > 0 && wait <= 0 {
			t.Fatalf("messages held by the rate limit but wait %v", wait)
		}
		now = now.Add(wait)
	}
	if len(got) >= updates/2 || len(got)+conflated != updates {
		t.Fatalf("delivered %d and conflated %d of %d updates", len(got), conflated, updates)
	}
	latest := make(map[string]int)
	prev := -1
	for i, it := range got {
		id := x.idOf(t, it.Msg, nil)
		if id <= prev {
			t.Fatalf("update %d delivered after %d", id, prev)
		}
		if it.Seq != uint64(i+1) || it.Conflate != keyOf(id) {
			t.Fatalf("update %d came back with seq %d key %q", id, it.Seq, it.Conflate)
		}
		prev = id
		latest[it.Conflate] = id
	}
	for k := range keys {
		if id := latest[keyOf(k)]; id != updates-keys+k {
			t.Errorf("key %d: last delivered update %d, want %d", k, id, updates-keys+k)
		}
	}
}

func TestCredit(t *testing.T) {
	s := newScript(t, Config{Window: 3})
	s.push("n n n n n n", t0)
	step := func(want string) {
		t.Helper()
		got, wait := s.pop(0, t0)
		if got != want || wait != 0 {
			t.Fatalf("popped %q (wait %v), want %q", got, wait, want)
		}
		if f := s.q.InFlight(); f > 3 && s.q.Window() == 3 {
			t.Fatalf("%d in flight with window 3", f)
		}
	}
	step("n0#1 n1#2 n2#3")
	step("")
	if s.q.InFlight() != 3 || s.q.LastSeq() != 3 {
		t.Fatalf("in flight %d, last seq %d", s.q.InFlight(), s.q.LastSeq())
	}
	s.q.Ack(2)
	s.q.Ack(1) // stale: ignored
	if s.q.InFlight() != 1 {
		t.Fatalf("in flight %d after ack 2", s.q.InFlight())
	}
	s.push("r n", t0) // the reply passes the held messages
	step("n3#4 n4#5 r6")
	s.q.Ack(100) // beyond LastSeq: counts as LastSeq
	if s.q.InFlight() != 0 {
		t.Fatalf("in flight %d after acking everything", s.q.InFlight())
	}
	s.q.SetWindow(1)
	step("n5#6")
	step("")
	s.q.SetWindow(0)
	step("n7#7")
	if s.q.Len() != 0 {
		t.Fatalf("%d left", s.q.Len())
	}
}

func TestRateLimit(t *testing.T) {
	s := newScript(t, Config{Rate: 10, Burst: 2})
	s.push("n n r n n", t0)
	pop := func(at time.Duration, want string, wantWait time.Duration) {
		t.Helper()
		got, wait := s.pop(0, t0.Add(at))
		if got != want || wait != wantWait {
			t.Fatalf("at %v: popped %q, wait %v; want %q, wait %v", at, got, wait, want, wantWait)
		}
	}
	pop(0, "n0#1 n1#2 r2", 100*time.Millisecond) // burst of 2, then the reply passes
	pop(40*time.Millisecond, "", 60*time.Millisecond)
	pop(100*time.Millisecond, "n3#3", 100*time.Millisecond)
	pop(250*time.Millisecond, "n4#4", 0)
	// Idle time refills the bucket up to the burst, not beyond.
	s.push("n n n", t0)
	pop(10*time.Second, "n5#5 n6#6", 100*time.Millisecond)
}

func TestPopMax(t *testing.T) {
	s := newScript(t, Config{Window: 1})
	s.push("r n r n r r", t0)
	for _, want := range []string{"r0 n1#1", "r2 r4", "r5", ""} {
		if got, _ := s.pop(2, t0); got != want {
			t.Fatalf("popped %q, want %q", got, want)
		}
	}
	dst := make([]Item, 1, 4)
	s.q.Ack(1)
	out, _ := s.q.Pop(dst, 0, t0)
	if len(out) != 2 || out[1].Seq != 2 {
		t.Fatalf("Pop did not append to dst: %+v", out)
	}
}

func TestSlowConsumerGrace(t *testing.T) {
	const grace = 5 * time.Second
	q := NewQueue(Config{MaxMessages: 2, Grace: grace, HardFactor: 10})
	x := newIDs(t, 16)
	n := 0
	push := func(prio protocol.Priority, at time.Duration) (PushResult, error) {
		n++
		return q.Push(Item{Msg: x.msg(n), Priority: prio, Size: 1}, t0.Add(at))
	}
	for range 2 {
		if _, err := push(protocol.PriorityCritical, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := push(protocol.PriorityCritical, time.Second); err != nil {
		t.Fatalf("first overflow: %v", err)
	}
	// The clock started at 1 s, at the first push over the bounds.
	if _, err := push(protocol.PriorityCritical, time.Second+grace); err != nil {
		t.Fatalf("overflow at the end of the grace period: %v", err)
	}
	if err := q.Check(t0.Add(time.Second + grace)); err != nil {
		t.Fatalf("check at the end of the grace period: %v", err)
	}
	if err := q.Check(t0.Add(time.Second + grace + 1)); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("check after the grace period: %v", err)
	}
	before := q.Len()
	if _, err := push(protocol.PriorityCritical, time.Second+grace+1); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("overflow after the grace period: %v, want ErrSlowConsumer", err)
	}
	if q.Len() != before {
		t.Fatal("the refused message was queued")
	}
	if res, err := push(protocol.PriorityDroppable, time.Second+grace+1); !errors.Is(err, ErrSlowConsumer) || res.Dropped[protocol.PriorityDroppable] != 1 {
		t.Fatalf("droppable push after the grace period: %+v, %v", res, err)
	}
	// Back within bounds: the clock restarts from the next overflow.
	q.Pop(nil, 3, t0.Add(time.Minute))
	if q.Len() != 1 {
		t.Fatalf("%d left", q.Len())
	}
	for _, at := range []time.Duration{time.Hour, time.Hour, time.Hour + grace} {
		if _, err := push(protocol.PriorityCritical, at); err != nil {
			t.Fatalf("after recovering, push at %v: %v", at, err)
		}
	}
}

func TestSlowConsumerHardFactor(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		sizes   []int // critical pushes, all at once
		refused int   // index of the first refused push, -1 = none
	}{
		{"messages: default factor 2", Config{MaxMessages: 2}, []int{1, 1, 1, 1, 1}, 4},
		{"messages: factor 3", Config{MaxMessages: 2, HardFactor: 3}, []int{1, 1, 1, 1, 1, 1, 1}, 6},
		{"messages: factor 1 allows no overflow", Config{MaxMessages: 2, HardFactor: 1}, []int{1, 1, 1}, 2},
		{"bytes", Config{MaxBytes: 10}, []int{15, 5, 1}, 2},
		{"one message over the hard bound", Config{MaxBytes: 10}, []int{21}, 0},
		{"no grace: any overflow", Config{MaxMessages: 2, Grace: -1}, []int{1, 1, 1}, 2},
		{"within bounds", Config{MaxMessages: 3}, []int{1, 1, 1}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue(tt.cfg)
			x := newIDs(t, len(tt.sizes))
			refused := -1
			for i, size := range tt.sizes {
				_, err := q.Push(Item{Msg: x.msg(i), Priority: protocol.PriorityCritical, Size: size}, t0)
				if err != nil {
					if !errors.Is(err, ErrSlowConsumer) {
						t.Fatalf("push %d: %v", i, err)
					}
					refused = i
					break
				}
			}
			if refused != tt.refused {
				t.Fatalf("first refused push %d, want %d", refused, tt.refused)
			}
		})
	}
}

func TestPushInvalid(t *testing.T) {
	x := newIDs(t, 1)
	for _, it := range []Item{
		{},
		{Frame: []byte{}},
		{Msg: x.msg(0), Size: -1},
		{Frame: []byte("x"), Size: -1},
	} {
		q := NewQueue(Config{})
		if _, err := q.Push(it, t0); !errors.Is(err, ErrInvalidItem) {
			t.Errorf("push %+v: %v, want ErrInvalidItem", it, err)
		}
		if q.Len() != 0 || q.b != nil {
			t.Errorf("push %+v queued or allocated something", it)
		}
	}
	q := NewQueue(Config{})
	mustPush(t, q, Item{Frame: []byte("abc")}, t0)
	if q.Bytes() != 3 {
		t.Fatalf("a reply without Size counts %d bytes, want len(Frame) = 3", q.Bytes())
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want Queue
	}{
		{"zero", Config{}, Queue{maxMsgs: 1024, maxBytes: 1 << 20, hard: 2, grace: 5 * time.Second}},
		{"negative", Config{MaxMessages: -1, MaxBytes: -1, HardFactor: -3, Grace: -time.Second, Rate: -1, Burst: -1},
			Queue{maxMsgs: 1024, maxBytes: 1 << 20, hard: 2, grace: -1}},
		{"clamped", Config{MaxMessages: 1 << 30, MaxBytes: 1 << 40, HardFactor: 1 << 20},
			Queue{maxMsgs: maxMaxMessages, maxBytes: maxMaxBytes, hard: maxHardFactor, grace: 5 * time.Second}},
		{"set", Config{MaxMessages: 10, MaxBytes: 100, HardFactor: 1, Grace: time.Second, Window: 7},
			Queue{maxMsgs: 10, maxBytes: 100, hard: 1, grace: time.Second, window: 7}},
		{"rate, default burst ceil(rate)", Config{Rate: 2.5},
			Queue{maxMsgs: 1024, maxBytes: 1 << 20, hard: 2, grace: 5 * time.Second, interval: 400 * time.Millisecond, tau: 800 * time.Millisecond}},
		{"rate below 1/s, default burst 1", Config{Rate: 0.5},
			Queue{maxMsgs: 1024, maxBytes: 1 << 20, hard: 2, grace: 5 * time.Second, interval: 2 * time.Second}},
		{"rate with burst", Config{Rate: 100, Burst: 10},
			Queue{maxMsgs: 1024, maxBytes: 1 << 20, hard: 2, grace: 5 * time.Second, interval: 10 * time.Millisecond, tau: 90 * time.Millisecond}},
		{"rate too high to matter", Config{Rate: 1e12},
			Queue{maxMsgs: 1024, maxBytes: 1 << 20, hard: 2, grace: 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue(tt.cfg)
			if *q != tt.want {
				t.Fatalf("got %+v, want %+v", *q, tt.want)
			}
		})
	}
}

func TestZeroValueQueue(t *testing.T) {
	var q Queue
	q.SetWindow(2)
	x := newIDs(t, 3)
	for i := range 3 {
		mustPush(t, &q, Item{Msg: x.msg(i), Size: 1}, t0)
	}
	if q.maxMsgs != DefaultMaxMessages || q.maxBytes != DefaultMaxBytes || q.grace != DefaultGrace || q.Window() != 2 {
		t.Fatalf("zero queue after a push: %+v", q)
	}
	if out, _ := q.Pop(nil, 0, t0); len(out) != 2 {
		t.Fatalf("popped %d with window 2", len(out))
	}
}

// TestIdleQueueIsSmall checks the memory promises: a small struct, nothing
// allocated before the first push, and the buffer given back by Reset,
// Shrink, and Pop after a burst.
func TestIdleQueueIsSmall(t *testing.T) {
	if size := unsafe.Sizeof(Queue{}); size > 96 {
		t.Errorf("Queue is %d bytes, want at most 96", size)
	}
	q := NewQueue(Config{})
	if q.b != nil {
		t.Fatal("a new queue allocated its buffer")
	}
	x := newIDs(t, 100)
	q.Pop(nil, 0, t0)
	q.Ack(5)
	q.SetWindow(3)
	q.SetWindow(0)
	_ = q.Check(t0)
	if q.b != nil {
		t.Fatal("calls other than Push allocated the buffer")
	}

	// A small queue keeps its buffer for reuse; Shrink gives it back.
	mustPush(t, q, Item{Msg: x.msg(0), Size: 1}, t0)
	q.Pop(nil, 0, t0)
	if q.b == nil {
		t.Fatal("a small drained queue dropped its buffer (steady traffic would allocate)")
	}
	q.Shrink()
	if q.b != nil {
		t.Fatal("Shrink kept the buffer of an empty queue")
	}
	mustPush(t, q, Item{Msg: x.msg(1), Size: 1}, t0)
	q.Shrink()
	if q.Len() != 1 {
		t.Fatal("Shrink dropped an item")
	}
	q.Pop(nil, 0, t0)

	// After a burst, Pop gives the large buffer back when it empties it.
	for i := range 100 {
		mustPush(t, q, Item{Msg: x.msg(i), Size: 1}, t0)
	}
	q.Pop(nil, 50, t0)
	if q.b == nil {
		t.Fatal("buffer dropped while items are queued")
	}
	q.Pop(nil, 0, t0)
	if q.b != nil {
		t.Fatal("the buffer grown by a burst was kept after the queue emptied")
	}
}

func TestResetReleasesMessages(t *testing.T) {
	q := NewQueue(Config{})
	var refs []weak.Pointer[protocol.PreparedMessage]
	for i := range 100 {
		m := new(protocol.PreparedMessage)
		refs = append(refs, weak.Make(m))
		mustPush(t, q, Item{Msg: m, Conflate: "k" + strconv.Itoa(i%10), Size: 1}, t0)
		mustPush(t, q, Item{Frame: []byte("reply")}, t0)
	}
	// Messages 0-89 were conflated away, some of the rest are popped, the
	// others dropped by Reset: none may stay reachable through the queue.
	out, _ := q.Pop(nil, q.Len()-5, t0)
	popped := 0
	for _, it := range out {
		if it.Msg != nil {
			popped++
		}
	}
	clear(out)
	q.Reset()
	if q.Len() != 0 || q.Bytes() != 0 || q.b != nil {
		t.Fatalf("after Reset: len %d, bytes %d, buffer %v", q.Len(), q.Bytes(), q.b != nil)
	}
	if popped == 0 || q.LastSeq() != uint64(popped) {
		t.Fatalf("after popping %d messages and Reset: LastSeq %d", popped, q.LastSeq())
	}
	alive := func() int {
		n := 0
		for _, r := range refs {
			if r.Value() != nil {
				n++
			}
		}
		return n
	}
	for i := 0; i < 10 && alive() > 0; i++ {
		runtime.GC()
	}
	if n := alive(); n > 0 {
		t.Fatalf("%d messages still reachable after Reset", n)
	}
	// The queue works again after Reset.
	m := new(protocol.PreparedMessage)
	mustPush(t, q, Item{Msg: m, Size: 1}, t0)
	if out, _ := q.Pop(nil, 0, t0); len(out) != 1 || out[0].Seq != uint64(popped)+1 {
		t.Fatalf("after Reset popped %+v", out)
	}
}

// TestSteadyStateDoesNotAllocate checks that pushes and pops reuse the
// buffer (conflation included) once it has grown.
func TestSteadyStateDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	q := NewQueue(Config{Window: 64})
	x := newIDs(t, 16)
	keys := []string{"a", "b", "c", "d"}
	pong := []byte("pong")
	dst := make([]Item, 0, 32)
	round := func() {
		for i := range 16 {
			it := Item{Msg: x.msg(i), Size: 100, Priority: protocol.Priority(i % 3)}
			if i%2 == 0 {
				it.Conflate = keys[i%4]
			}
			if _, err := q.Push(it, t0); err != nil {
				t.Fatal(err)
			}
			if i%4 == 0 {
				if _, err := q.Push(Item{Frame: pong}, t0); err != nil {
					t.Fatal(err)
				}
			}
		}
		out, _ := q.Pop(dst[:0], 0, t0)
		q.Ack(q.LastSeq())
		clear(out)
	}
	round()
	if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
		t.Fatalf("%v allocations per round in steady state", allocs)
	}
}

// DropMessages drops the messages, conflated or not, and keeps the
// replies in their order.
func TestDropMessagesKeepsReplies(t *testing.T) {
	q := NewQueue(Config{})
	for i := range 6 {
		mustPush(t, q, Item{Msg: new(protocol.PreparedMessage), Conflate: "k" + strconv.Itoa(i%2), Size: 3}, t0)
		mustPush(t, q, Item{Frame: []byte("r" + strconv.Itoa(i))}, t0)
	}
	q.DropMessages()
	if q.Len() != 6 || q.Bytes() != 12 {
		t.Fatalf("after DropMessages: len %d, bytes %d; want the 6 replies (12 bytes)", q.Len(), q.Bytes())
	}
	out, _ := q.Pop(nil, 0, t0)
	for i, it := range out {
		if it.Msg != nil || string(it.Frame) != "r"+strconv.Itoa(i) {
			t.Fatalf("item %d: %+v, want reply r%d", i, it, i)
		}
	}
	// A conflation key of a dropped message is free again.
	mustPush(t, q, Item{Msg: new(protocol.PreparedMessage), Conflate: "k0", Size: 1}, t0)
	mustPush(t, q, Item{Msg: new(protocol.PreparedMessage), Conflate: "k0", Size: 1}, t0)
	if q.Len() != 1 {
		t.Fatalf("len %d after two pushes with one key", q.Len())
	}
	q.DropMessages()
	if q.Len() != 0 || q.b != nil {
		t.Fatalf("after DropMessages of messages only: len %d, buffer %v", q.Len(), q.b != nil)
	}
}
