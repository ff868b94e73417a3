package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// countingBroker records node-level subscriptions like a broker would.
type countingBroker struct {
	mu   sync.Mutex
	refs map[string]int
	fail error
}

func (b *countingBroker) Subscribe(_ context.Context, ch string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	if b.refs == nil {
		b.refs = map[string]int{}
	}
	b.refs[ch]++
	return nil
}

func (b *countingBroker) Unsubscribe(_ context.Context, ch string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refs[ch]--
	if b.refs[ch] == 0 {
		delete(b.refs, ch)
	}
	return nil
}

func (b *countingBroker) count(ch string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refs[ch]
}

type sink struct {
	n    atomic.Int64
	last atomic.Value
}

func (s *sink) Deliver(_ string, v any) {
	s.n.Add(1)
	s.last.Store(v)
}

func TestSubscribeBroadcastUnsubscribe(t *testing.T) {
	b := &countingBroker{}
	h := New(b)
	ctx := context.Background()
	a, c := &sink{}, &sink{}
	for _, s := range []*sink{a, c} {
		if err := h.Subscribe(ctx, "room", s); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Subscribe(ctx, "room", a); err != nil { // twice: no-op
		t.Fatal(err)
	}
	if got := b.count("room"); got != 1 {
		t.Fatalf("broker refs %d, want 1 (one per node, not per subscriber)", got)
	}
	if n := h.Broadcast("room", "m1"); n != 2 {
		t.Fatalf("broadcast reached %d, want 2", n)
	}
	if a.n.Load() != 1 || c.n.Load() != 1 || a.last.Load() != "m1" {
		t.Fatalf("deliveries a=%d c=%d", a.n.Load(), c.n.Load())
	}
	if h.Broadcast("other", "x") != 0 {
		t.Fatal("broadcast to a channel without subscribers reached someone")
	}
	if !h.Unsubscribe("room", a) || h.Unsubscribe("room", a) {
		t.Fatal("unsubscribe should succeed once")
	}
	h.Broadcast("room", "m2")
	if a.n.Load() != 1 || c.n.Load() != 2 {
		t.Fatalf("after unsubscribe a=%d c=%d", a.n.Load(), c.n.Load())
	}
	h.Unsubscribe("room", c)
	if b.count("room") != 0 || h.Channels() != 0 {
		t.Fatalf("last unsubscribe left broker refs %d, channels %d", b.count("room"), h.Channels())
	}
}

func TestBrokerFailureLeavesNothingBehind(t *testing.T) {
	b := &countingBroker{fail: errors.New("down")}
	h := New(b)
	if err := h.Subscribe(context.Background(), "room", &sink{}); err == nil {
		t.Fatal("want the broker's error")
	}
	if h.Channels() != 0 || h.Subscribers("room") != 0 {
		t.Fatal("a failed subscribe left state behind")
	}
}

// Concurrent subscribes and unsubscribes on few channels: at the end the
// broker holds exactly one reference per channel that still has local
// subscribers.
func TestConcurrentChurnKeepsBrokerRefsExact(t *testing.T) {
	b := &countingBroker{}
	h := New(b)
	ctx := context.Background()
	var wg sync.WaitGroup
	keep := make([]*sink, 8)
	for i := range keep {
		keep[i] = &sink{}
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				ch := fmt.Sprint("ch", i%5)
				s := &sink{}
				if err := h.Subscribe(ctx, ch, s); err != nil {
					t.Error(err)
					return
				}
				h.Broadcast(ch, i)
				h.Unsubscribe(ch, s)
			}
			_ = h.Subscribe(ctx, fmt.Sprint("ch", g%5), keep[g])
		}(g)
	}
	wg.Wait()
	for i := 0; i < 5; i++ {
		ch := fmt.Sprint("ch", i)
		want := 0
		if h.Subscribers(ch) > 0 {
			want = 1
		}
		if got := b.count(ch); got != want {
			t.Fatalf("%s: broker refs %d, want %d (local subscribers %d)", ch, got, want, h.Subscribers(ch))
		}
	}
}

// BenchmarkBroadcast10k is the hub's fan-out to 10,000 local subscribers of
// one channel (the session's Deliver is measured by the server benchmarks).
func BenchmarkBroadcast10k(b *testing.B) {
	h := New(&countingBroker{})
	ctx := context.Background()
	for i := 0; i < 10000; i++ {
		if err := h.Subscribe(ctx, "big", &sink{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Broadcast("big", i)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/delivery")
}

func TestEachChannelCountsSubscribers(t *testing.T) {
	h := New(&countingBroker{})
	ctx := context.Background()
	subs := []*sink{{}, {}, {}}
	for i, s := range subs {
		for _, ch := range []string{"a", "b", "c"}[:i+1] {
			if err := h.Subscribe(ctx, ch, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.Unsubscribe("c", subs[2])
	got := map[string]int{}
	h.EachChannel(func(ch string, n int) { got[ch] = n })
	want := map[string]int{"a": 3, "b": 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("EachChannel gave %v, want %v", got, want)
	}
}
