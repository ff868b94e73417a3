package flow

import (
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

func TestSetRateChangesTheLimitAndKeepsTheQueue(t *testing.T) {
	var q Queue
	q.Init(Config{})
	now := time.Unix(1000, 0)
	for i := 1; i <= 3; i++ {
		m := protocol.NewPreparedMessage("c", uint64(i), "e", protocol.RawJSON(`1`), protocol.PriorityNormal, "")
		if _, err := q.Push(Item{Msg: m, Size: m.Size()}, now); err != nil {
			t.Fatal(err)
		}
	}
	q.SetRate(10, 1)
	out, wait := q.Pop(nil, 0, now)
	if len(out) != 1 || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("rate 10/s burst 1: popped %d, wait %v", len(out), wait)
	}
	q.SetRate(0, 0)
	out, wait = q.Pop(out[:0], 0, now)
	if len(out) != 2 || wait != 0 {
		t.Fatalf("unlimited again: popped %d, wait %v", len(out), wait)
	}
	if out[0].Msg.Offset() != 2 || out[1].Msg.Offset() != 3 {
		t.Fatalf("order lost: %d %d", out[0].Msg.Offset(), out[1].Msg.Offset())
	}
}
