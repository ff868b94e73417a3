package flow

import (
	"strconv"
	"testing"

	"github.com/ferry-io/ferry/protocol"
)

// BenchmarkPushPop is the common case: a writer that keeps up, draining a
// batch of 16 messages (and a reply) at a time. One op is one item.
func BenchmarkPushPop(b *testing.B) {
	q := NewQueue(Config{})
	x := newIDs(b, 16)
	pong := []byte("pong")
	dst := make([]Item, 0, 32)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%16 == 15 {
			if _, err := q.Push(Item{Frame: pong}, t0); err != nil {
				b.Fatal(err)
			}
			dst, _ = q.Pop(dst[:0], 0, t0)
			clear(dst)
			continue
		}
		if _, err := q.Push(Item{Msg: x.msg(i % 16), Size: 200}, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPushDrop pushes into a full queue: every push drops the oldest
// droppable message.
func BenchmarkPushDrop(b *testing.B) {
	q := NewQueue(Config{MaxMessages: 1024})
	x := newIDs(b, 1024)
	for i := range 1024 {
		if _, err := q.Push(Item{Msg: x.msg(i), Priority: protocol.Priority(i % 3), Size: 200}, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		res, err := q.Push(Item{Msg: x.msg(i % 1024), Priority: protocol.PriorityDroppable, Size: 200}, t0)
		if err != nil || res.Dropped[protocol.PriorityDroppable] != 1 {
			b.Fatalf("%+v, %v", res, err)
		}
	}
}

// BenchmarkConflate pushes updates to 100 keys into a queue that a slow
// writer drains now and then: nearly every push replaces a queued message.
func BenchmarkConflate(b *testing.B) {
	q := NewQueue(Config{})
	x := newIDs(b, 100)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = "room:" + strconv.Itoa(i) + "\x00cursor"
	}
	dst := make([]Item, 0, 128)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := q.Push(Item{Msg: x.msg(i % 100), Conflate: keys[i%100], Size: 64}, t0); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			dst, _ = q.Pop(dst[:0], 0, t0)
			clear(dst)
		}
	}
}

// BenchmarkPopCredit is a client with a window of 16 that acknowledges each
// batch: Pop stops at the window every time.
func BenchmarkPopCredit(b *testing.B) {
	q := NewQueue(Config{Window: 16})
	x := newIDs(b, 64)
	for i := range 64 {
		if _, err := q.Push(Item{Msg: x.msg(i), Size: 200}, t0); err != nil {
			b.Fatal(err)
		}
	}
	dst := make([]Item, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = q.Pop(dst[:0], 0, t0)
		if len(dst) != 16 {
			b.Fatalf("popped %d", len(dst))
		}
		for _, it := range dst {
			if _, err := q.Push(Item{Msg: it.Msg, Size: it.Size}, t0); err != nil {
				b.Fatal(err)
			}
		}
		q.Ack(q.LastSeq())
		clear(dst)
	}
}
