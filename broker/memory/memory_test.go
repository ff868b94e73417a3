package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/brokertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Factory{
		New: func(t testing.TB, nodeID string) broker.Broker {
			return New(Config{NodeID: nodeID})
		},
		MultiNode: false,
	})
}

// fakeClock is a Config.Clock moved by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// handlerFuncs adapts functions to broker.Handler.
type handlerFuncs struct {
	pub  func(*broker.Publication)
	ctrl func(broker.Control)
}

func (h handlerFuncs) HandlePublication(p *broker.Publication) {
	if h.pub != nil {
		h.pub(p)
	}
}

func (h handlerFuncs) HandleControl(c broker.Control) {
	if h.ctrl != nil {
		h.ctrl(c)
	}
}

// startBroker starts a broker with h (a no-op handler when nil), closed when
// tb ends.
func startBroker(tb testing.TB, cfg Config, h broker.Handler) *Broker {
	tb.Helper()
	if h == nil {
		h = handlerFuncs{}
	}
	b := New(cfg)
	if err := b.Start(context.Background(), h); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

func mustPublish(tb testing.TB, b *Broker, ch, data string, opts broker.PublishOptions) broker.PublishResult {
	tb.Helper()
	res, err := b.Publish(context.Background(), ch, broker.Publication{Data: []byte(data)}, opts)
	if err != nil {
		tb.Fatalf("Publish: %v", err)
	}
	return res
}

func mustHistory(tb testing.TB, b *Broker, ch string, q broker.HistoryQuery) broker.HistoryResult {
	tb.Helper()
	res, err := b.History(context.Background(), ch, q)
	if err != nil {
		tb.Fatalf("History: %v", err)
	}
	return res
}

func pubOffsets(pubs []broker.Publication) []uint64 {
	out := []uint64{}
	for _, p := range pubs {
		out = append(out, p.Offset)
	}
	return out
}

func TestStreamExpiry(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{Clock: clock.Now, SweepInterval: time.Hour}, nil)
	opts := broker.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute, StreamTTL: time.Hour}
	var first broker.PublishResult
	for range 3 {
		first = mustPublish(t, b, "ch", `{}`, opts)
	}

	steps := []struct {
		advance  time.Duration
		sweep    bool
		offset   uint64
		epoch    string
		messages int
		streams  int
	}{
		{advance: 59 * time.Second, offset: 3, epoch: first.Epoch, messages: 3, streams: 1},
		// The messages expired; the stream keeps offset and epoch.
		{advance: time.Second, offset: 3, epoch: first.Epoch, messages: 0, streams: 1},
		{advance: 0, sweep: true, offset: 3, epoch: first.Epoch, messages: 0, streams: 1},
		// StreamTTL after the last publish: the stream is gone for
		// readers at once and from memory after a sweep.
		{advance: time.Hour - time.Minute, offset: 0, epoch: "", messages: 0, streams: 1},
		{advance: 0, sweep: true, offset: 0, epoch: "", messages: 0, streams: 0},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		if st.sweep {
			b.sweep()
		}
		h := mustHistory(t, b, "ch", broker.HistoryQuery{})
		if h.Offset != st.offset || h.Epoch != st.epoch || len(h.Messages) != st.messages {
			t.Fatalf("step %d: History = (%d, %q, %d messages), want (%d, %q, %d)", i, h.Offset, h.Epoch, len(h.Messages), st.offset, st.epoch, st.messages)
		}
		if s := b.Stats(); s.Streams != st.streams {
			t.Fatalf("step %d: %d streams in memory, want %d", i, s.Streams, st.streams)
		}
	}

	again := mustPublish(t, b, "ch", `{}`, opts)
	if again.Offset != 1 || again.Epoch == first.Epoch || again.Epoch == "" {
		t.Fatalf("publish on an expired stream = %+v, want offset 1 in a new epoch (old %q)", again, first.Epoch)
	}
	h := mustHistory(t, b, "ch", broker.HistoryQuery{Since: &broker.Position{Offset: 3, Epoch: first.Epoch}})
	if h.Complete || !slices.Equal(pubOffsets(h.Messages), []uint64{1}) {
		t.Fatalf("History since the old stream = %v complete=%v, want [1] incomplete", pubOffsets(h.Messages), h.Complete)
	}
}

func TestStreamExpiredBeforeSweepGetsNewEpoch(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{Clock: clock.Now, SweepInterval: time.Hour}, nil)
	opts := broker.PublishOptions{StreamTTL: time.Minute}
	old := mustPublish(t, b, "ch", `{}`, opts)
	clock.Advance(time.Minute)
	res := mustPublish(t, b, "ch", `{}`, opts)
	if res.Offset != 1 || res.Epoch == old.Epoch {
		t.Fatalf("publish after StreamTTL = %+v, want offset 1 in a new epoch (old %q)", res, old.Epoch)
	}
}

func TestStreamLivesAsLongAsNewestMessage(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{Clock: clock.Now, SweepInterval: time.Hour}, nil)
	res := mustPublish(t, b, "ch", `{}`, broker.PublishOptions{HistorySize: 5, HistoryTTL: 2 * time.Hour, StreamTTL: time.Hour})
	clock.Advance(90 * time.Minute)
	b.sweep()
	h := mustHistory(t, b, "ch", broker.HistoryQuery{})
	if h.Offset != 1 || h.Epoch != res.Epoch || len(h.Messages) != 1 {
		t.Fatalf("History = (%d, %q, %d messages), want the stream with its message", h.Offset, h.Epoch, len(h.Messages))
	}
	clock.Advance(30 * time.Minute)
	b.sweep()
	if s := b.Stats(); s.Streams != 0 || s.HistoryMessages != 0 {
		t.Fatalf("after the message expired: %+v, want nothing kept", s)
	}
}

func TestHistoryTTLFromLatestPublish(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{Clock: clock.Now, SweepInterval: time.Hour}, nil)
	mustPublish(t, b, "ch", `{}`, broker.PublishOptions{HistorySize: 5, HistoryTTL: time.Hour})
	clock.Advance(10 * time.Minute)
	// A shorter TTL on the latest publish applies to the older message too.
	mustPublish(t, b, "ch", `{}`, broker.PublishOptions{HistorySize: 5, HistoryTTL: 5 * time.Minute})
	h := mustHistory(t, b, "ch", broker.HistoryQuery{})
	if !slices.Equal(pubOffsets(h.Messages), []uint64{2}) {
		t.Fatalf("History = %v, want [2]", pubOffsets(h.Messages))
	}
}

func TestSweeperRemovesExpired(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{Clock: clock.Now, SweepInterval: 2 * time.Millisecond}, nil)
	ctx := context.Background()
	for _, ttl := range []time.Duration{time.Minute, 0} { // 0: never expires
		sfx := fmt.Sprint(ttl)
		mustPublish(t, b, "ch"+sfx, `{}`, broker.PublishOptions{
			HistorySize: 3, HistoryTTL: ttl, StreamTTL: max(ttl, time.Nanosecond),
			IdempotencyKey: "k", IdempotencyWindow: max(ttl, time.Nanosecond),
		})
		if err := b.AddPresence(ctx, "ch"+sfx, broker.PresenceInfo{User: "u", Conn: "c"}, ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AddUserConn(ctx, "u"+sfx, broker.ConnRef{Conn: "c"}, ttl, 0); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(ctx, "k"+sfx, []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
	}
	before := b.Stats()
	want := Stats{Streams: 2, HistoryMessages: 2, IdempotencyKeys: 2, PresenceEntries: 2, UserConns: 2, KVKeys: 2}
	if before != want {
		t.Fatalf("Stats = %+v, want %+v", before, want)
	}
	clock.Advance(time.Minute)
	// The idempotency key of the never-expiring stream had a 1ns window.
	want = Stats{Streams: 1, HistoryMessages: 1, IdempotencyKeys: 0, PresenceEntries: 1, UserConns: 1, KVKeys: 1}
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats() != want {
		if time.Now().After(deadline) {
			t.Fatalf("sweeper left %+v, want %+v", b.Stats(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStartAndClose(t *testing.T) {
	ctx := context.Background()
	b := New(Config{})
	if err := b.Start(ctx, nil); !errors.Is(err, ErrNilHandler) {
		t.Fatalf("Start(nil) = %v, want ErrNilHandler", err)
	}
	if err := b.Start(ctx, handlerFuncs{}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := b.Start(ctx, handlerFuncs{}); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second Start = %v, want ErrAlreadyStarted", err)
	}
	if b.NodeID() == "" {
		t.Fatal("default NodeID is empty")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	unstarted := New(Config{})
	if err := unstarted.Close(); err != nil {
		t.Fatalf("Close without Start: %v", err)
	}
	if err := unstarted.Start(ctx, handlerFuncs{}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := New(Config{}).Start(canceled, handlerFuncs{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a canceled context = %v", err)
	}
}

func TestCanceledContext(t *testing.T) {
	b := startBroker(t, Config{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Publish(ctx, "ch", broker.Publication{}, broker.PublishOptions{HistorySize: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish = %v, want context.Canceled", err)
	}
	if h := mustHistory(t, b, "ch", broker.HistoryQuery{}); h.Offset != 0 {
		t.Fatalf("a canceled Publish published: offset %d", h.Offset)
	}
}

func TestPublishCopiesData(t *testing.T) {
	b := startBroker(t, Config{}, nil)
	data := []byte(`{"a":1}`)
	if _, err := b.Publish(context.Background(), "ch", broker.Publication{Data: data}, broker.PublishOptions{HistorySize: 1}); err != nil {
		t.Fatal(err)
	}
	data[2] = 'X'
	if h := mustHistory(t, b, "ch", broker.HistoryQuery{}); string(h.Messages[0].Data) != `{"a":1}` {
		t.Fatalf("history holds %s after the caller changed its buffer", h.Messages[0].Data)
	}
}

func TestHistoryStorageStaysBounded(t *testing.T) {
	b := startBroker(t, Config{}, nil)
	opts := broker.PublishOptions{HistorySize: 100}
	for range 10_000 {
		mustPublish(t, b, "ch", `{}`, opts)
	}
	h := mustHistory(t, b, "ch", broker.HistoryQuery{})
	if len(h.Messages) != 100 || h.Messages[0].Offset != 9901 || h.Offset != 10_000 {
		t.Fatalf("History: %d messages from %d, offset %d", len(h.Messages), h.Messages[0].Offset, h.Offset)
	}
	sh := b.shardFor("ch")
	sh.mu.RLock()
	c := cap(sh.streams["ch"].hist)
	sh.mu.RUnlock()
	if c > 4*opts.HistorySize {
		t.Fatalf("history storage has capacity %d for %d messages", c, opts.HistorySize)
	}
	if s := b.Stats(); s.HistoryMessages != 100 {
		t.Fatalf("Stats.HistoryMessages = %d", s.HistoryMessages)
	}
}

// A handler may publish (even on the channel being delivered): no lock is
// held while it runs, and order still follows offsets.
func TestReentrantHandler(t *testing.T) {
	var b *Broker
	var mu sync.Mutex
	var got []string
	h := handlerFuncs{pub: func(p *broker.Publication) {
		mu.Lock()
		got = append(got, fmt.Sprintf("%s/%d", p.Channel, p.Offset))
		mu.Unlock()
		if p.Channel == "a" && p.Offset == 1 {
			mustPublish(t, b, "a", `{}`, broker.PublishOptions{})
			mustPublish(t, b, "b", `{}`, broker.PublishOptions{})
		}
	}}
	b = startBroker(t, Config{}, h)
	for _, ch := range []string{"a", "b"} {
		if err := b.Subscribe(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
	}
	mustPublish(t, b, "a", `{}`, broker.PublishOptions{})
	want := []string{"a/1", "b/1", "a/2"}
	if !slices.Equal(got, want) {
		t.Fatalf("deliveries %v, want %v", got, want)
	}
}

func TestHandlerPanicReleasesChannel(t *testing.T) {
	var calls atomic.Int32
	h := handlerFuncs{pub: func(p *broker.Publication) {
		if calls.Add(1) == 1 {
			panic("handler failed")
		}
	}}
	b := startBroker(t, Config{}, h)
	if err := b.Subscribe(context.Background(), "ch"); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the handler's panic did not reach the publisher")
			}
		}()
		mustPublish(t, b, "ch", `{}`, broker.PublishOptions{})
	}()
	mustPublish(t, b, "ch", `{}`, broker.PublishOptions{})
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler called %d times, want 2 (delivery stuck after a panic)", n)
	}
}

func TestDuplicateNotDelivered(t *testing.T) {
	var mu sync.Mutex
	var got []uint64
	b := startBroker(t, Config{}, handlerFuncs{pub: func(p *broker.Publication) {
		mu.Lock()
		got = append(got, p.Offset)
		mu.Unlock()
	}})
	if err := b.Subscribe(context.Background(), "ch"); err != nil {
		t.Fatal(err)
	}
	opts := broker.PublishOptions{IdempotencyKey: "k"}
	mustPublish(t, b, "ch", `{}`, opts)
	if res := mustPublish(t, b, "ch", `{}`, opts); !res.Duplicate {
		t.Fatalf("repeat = %+v, want duplicate", res)
	}
	mustPublish(t, b, "ch", `{}`, broker.PublishOptions{})
	if !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("deliveries %v, want [1 2]", got)
	}
}

func TestUserConnDefaultSince(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{Clock: clock.Now}, nil)
	ctx := context.Background()
	if _, err := b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "c"}, time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	refs, err := b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "newer", Since: clock.Now().Add(time.Second)}, time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || !refs[0].Since.Equal(clock.Now()) {
		t.Fatalf("AddUserConn = %+v, want Since = now", refs)
	}
}

func TestControlDelivery(t *testing.T) {
	var got []broker.Control
	b := startBroker(t, Config{NodeID: "n1"}, handlerFuncs{ctrl: func(c broker.Control) { got = append(got, c) }})
	for _, node := range []string{"", "n1"} {
		if err := b.PublishControl(context.Background(), broker.Control{Node: node, Kind: broker.ControlDisconnect}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PublishControl(context.Background(), broker.Control{Node: "n2", Kind: broker.ControlDisconnect}); !errors.Is(err, broker.ErrNoNode) {
		t.Fatalf("control for another node: %v, want ErrNoNode (a memory broker has no other nodes)", err)
	}
	if len(got) != 2 || got[0].Node != "" || got[1].Node != "n1" {
		t.Fatalf("controls %+v, want the ones for all and for n1", got)
	}
}

// Benchmarks.

type noopHandler struct{}

func (noopHandler) HandlePublication(*broker.Publication) {}
func (noopHandler) HandleControl(broker.Control)          {}

var benchData = bytes.Repeat([]byte("x"), 128)

func BenchmarkPublish(b *testing.B) {
	cases := []struct {
		name      string
		opts      broker.PublishOptions
		subscribe bool
	}{
		{"NoHistory", broker.PublishOptions{}, false},
		{"History100", broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}, false},
		{"History100Subscribed", broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}, true},
		{"Idempotent", broker.PublishOptions{HistorySize: 100, IdempotencyKey: "k"}, false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			br := startBroker(b, Config{}, noopHandler{})
			ctx := context.Background()
			if tc.subscribe {
				if err := br.Subscribe(ctx, "ch"); err != nil {
					b.Fatal(err)
				}
			}
			p := broker.Publication{Data: benchData}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := br.Publish(ctx, "ch", p, tc.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, shared := range []bool{false, true} {
		name := "ParallelChannels"
		if shared {
			name = "ParallelOneChannel"
		}
		b.Run(name, func(b *testing.B) {
			br := startBroker(b, Config{}, noopHandler{})
			ctx := context.Background()
			opts := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ch := "shared"
				if !shared {
					ch = fmt.Sprintf("ch-%d", next.Add(1))
				}
				if err := br.Subscribe(ctx, ch); err != nil {
					b.Error(err)
					return
				}
				p := broker.Publication{Data: benchData}
				for pb.Next() {
					if _, err := br.Publish(ctx, ch, p, opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkHistory(b *testing.B) {
	br := startBroker(b, Config{}, noopHandler{})
	ctx := context.Background()
	var last broker.PublishResult
	for range 100 {
		last = mustPublish(b, br, "ch", string(benchData), broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Hour})
	}
	cases := []struct {
		name string
		q    broker.HistoryQuery
	}{
		{"All100", broker.HistoryQuery{}},
		{"Since90", broker.HistoryQuery{Since: &broker.Position{Offset: 90, Epoch: last.Epoch}}},
		{"SinceLatest", broker.HistoryQuery{Since: &broker.Position{Offset: 100, Epoch: last.Epoch}}},
		{"Limit10", broker.HistoryQuery{Limit: 10}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := br.History(ctx, "ch", tc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUsersScale: connect, disconnect, refresh and eviction cost the same
// with 10 and with 10,000 connections of one user.
func TestUsersScale(t *testing.T) {
	b := startBroker(t, Config{}, nil)
	brokertest.UsersScale(t, b, 10, 10000)
}

func TestSweeperKeepsRecordsRefreshedPastTheirFirstDeadline(t *testing.T) {
	// The sweep walks a kind of record only once the earliest deadline it
	// noted is reached; a record refreshed since must survive that pass,
	// and the pass must note its new deadline for the next one.
	clock := newFakeClock()
	b := startBroker(t, Config{Clock: clock.Now, SweepInterval: time.Hour}, nil)
	ctx := context.Background()
	add := func() {
		t.Helper()
		if err := b.AddPresence(ctx, "ch", broker.PresenceInfo{User: "u", Conn: "c"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "c"}, time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	add()
	clock.Advance(40 * time.Second)
	add() // refreshed: now due 100 s from the start
	clock.Advance(40 * time.Second)
	b.sweep()
	kept := Stats{PresenceEntries: 1, UserConns: 1, KVKeys: 1}
	if got := b.Stats(); got != kept {
		t.Fatalf("after the first deadline: Stats = %+v, want %+v", got, kept)
	}
	clock.Advance(30 * time.Second)
	b.sweep()
	if got := b.Stats(); got != (Stats{}) {
		t.Fatalf("after the refreshed deadline: Stats = %+v, want none left", got)
	}
}
