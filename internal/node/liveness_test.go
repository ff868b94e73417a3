package node

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/internal/hub"
)

func TestLivenessRecord(t *testing.T) {
	ctx := context.Background()
	b := memory.New(memory.Config{})
	defer b.Close()
	a := New(Config{ID: "a", Broker: b, Hub: hub.New(b)})
	other := New(Config{ID: "b", Broker: b, Hub: hub.New(b)})

	if other.Alive(ctx, "a") {
		t.Fatal("a node that never wrote its record is alive")
	}
	now := time.Now()
	if !a.Beating(now) {
		t.Fatal("a node not yet tried counts as lapsed")
	}
	lapsed, err := a.Beat(ctx, now)
	if err != nil || lapsed {
		t.Fatalf("first beat: lapsed %v, err %v", lapsed, err)
	}
	if !other.Alive(ctx, "a") {
		t.Fatal("a node that just wrote its record is not alive")
	}
	if lapsed, _ := a.Beat(ctx, now.Add(LivenessEvery)); lapsed {
		t.Fatal("a beat one interval after the last one reported a lapse")
	}
	// Frozen: the next beat comes long after the record expired.
	later := now.Add(LivenessEvery + LivenessTTL + time.Second)
	if a.Beating(later) {
		t.Fatal("Beating is true with the last write older than the TTL")
	}
	if lapsed, _ := a.Beat(ctx, later); !lapsed {
		t.Fatal("a beat after a freeze longer than the TTL did not report the lapse")
	}
	if !a.Beating(later) {
		t.Fatal("Beating is false right after a write")
	}
	a.Forget(ctx)
	if other.Alive(ctx, "a") {
		t.Fatal("a node that deleted its record is alive")
	}
	if !a.Alive(ctx, "a") {
		t.Fatal("a node asked about itself must answer alive")
	}
}
