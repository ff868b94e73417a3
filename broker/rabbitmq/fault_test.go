package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/rabbittest"
)

// outage is how long RabbitMQ stays down in TestOutage.
const outage = 10 * time.Second

// recorder keeps what a broker delivers.
type recorder struct {
	mu   sync.Mutex
	pubs []broker.Publication
}

func (r *recorder) HandlePublication(p *broker.Publication) {
	r.mu.Lock()
	r.pubs = append(r.pubs, *p)
	r.mu.Unlock()
}

func (r *recorder) HandleControl(broker.Control) {}

func (r *recorder) offsets() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint64, len(r.pubs))
	for i, p := range r.pubs {
		out[i] = p.Offset
	}
	return out
}

// waitUntil polls cond until it holds, failing the test after timeout (a
// safety net; RabbitMQ takes a while to boot on a loaded machine).
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startNode(t *testing.T, url, id string) (*Broker, *recorder) {
	t.Helper()
	return startNodeWith(t, Config{URL: url, NodeID: id,
		Timeout: 15 * time.Second, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond})
}

// startNodeWith starts a broker with cfg (its Logger set to the test's),
// closed when the test ends.
func startNodeWith(t *testing.T, cfg Config) (*Broker, *recorder) {
	t.Helper()
	cfg.Logger = testLogger(t)
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rec := &recorder{}
	if err := b.Start(context.Background(), rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, rec
}

// TestOutage takes RabbitMQ down for a while: every call fails with
// ErrUnavailable and Ping reports it; when RabbitMQ is back both nodes
// reconnect on their own, the subscription is restored, and the channel
// goes on from its last offset in the same epoch (streams are durable).
func TestOutage(t *testing.T) {
	srv := rabbittest.Start(t)
	pub, _ := startNode(t, srv.URL(), "pub")
	sub, rec := startNode(t, srv.URL(), "sub")
	ctx := context.Background()
	ch := "room"
	keep := broker.PublishOptions{HistorySize: 100}
	if err := sub.Subscribe(ctx, ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var epoch string
	for i := 1; i <= 2; i++ {
		res, err := pub.Publish(ctx, ch, broker.Publication{Data: fmt.Appendf(nil, `{"n":%d}`, i)}, keep)
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		epoch = res.Epoch
	}
	waitUntil(t, 10*time.Second, "two deliveries", func() bool { return len(rec.offsets()) == 2 })

	down := time.Now()
	srv.Down()
	for _, b := range []*Broker{pub, sub} {
		waitUntil(t, 30*time.Second, "Ping to fail", func() bool { return errors.Is(b.Ping(ctx), broker.ErrUnavailable) })
	}
	calls := map[string]func() error{
		"Publish": func() error {
			_, err := pub.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, keep)
			return err
		},
		"History":        func() error { _, err := pub.History(ctx, ch, broker.HistoryQuery{}); return err },
		"Subscribe":      func() error { return pub.Subscribe(ctx, "other") },
		"PublishControl": func() error { return pub.PublishControl(ctx, broker.Control{Kind: "disconnect", User: "u"}) },
		"AddPresence": func() error {
			return pub.AddPresence(ctx, ch, broker.PresenceInfo{User: "u", Conn: "c"}, time.Minute)
		},
		"Set": func() error { return pub.Set(ctx, "k", []byte("v"), time.Minute) },
	}
	// Keep RabbitMQ down for the whole outage, checking the calls.
	for time.Since(down) < outage {
		for name, call := range calls {
			if err := call(); !errors.Is(err, broker.ErrUnavailable) {
				t.Fatalf("%s with RabbitMQ down: %v, want ErrUnavailable", name, err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}

	srv.Restart()
	for _, b := range []*Broker{pub, sub} {
		waitUntil(t, 60*time.Second, "Ping to succeed after the restart", func() bool { return b.Ping(ctx) == nil })
	}
	res, err := pub.Publish(ctx, ch, broker.Publication{Data: []byte(`{"n":3}`)}, keep)
	if err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	if res.Offset != 3 || res.Epoch != epoch {
		t.Fatalf("Publish after the restart = (%d, %q), want (3, %q): the stream must survive", res.Offset, res.Epoch, epoch)
	}
	waitUntil(t, 10*time.Second, "the delivery after the restart", func() bool { return len(rec.offsets()) == 3 })
	if got := rec.offsets(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("delivered %v, want [1 2 3]", got)
	}
	h, err := sub.History(ctx, ch, broker.HistoryQuery{})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if h.Offset != 3 || len(h.Messages) != 3 || h.Epoch != epoch {
		t.Fatalf("History after the restart: offset %d, %d messages, epoch %q", h.Offset, len(h.Messages), h.Epoch)
	}
	// A Subscribe that failed during the outage was not restored.
	if err := pub.Unsubscribe(ctx, "other"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	pub.subMu.Lock()
	n := len(pub.refs)
	pub.subMu.Unlock()
	if n != 0 {
		t.Fatalf("pub holds %d subscriptions, want 0", n)
	}
}

// TestWriterFailover closes the node that is every shard's writer while
// another node publishes: the other node takes over, and every publish
// lands exactly once, with gapless offsets, in history and in deliveries;
// a key and a presence entry set before are still there.
func TestWriterFailover(t *testing.T) {
	srv := rabbittest.Start(t)
	first, _ := startNode(t, srv.URL(), "first") // consumes first: the writer of every shard
	second, rec := startNode(t, srv.URL(), "second")
	ctx := context.Background()
	ch := "failover"
	keep := broker.PublishOptions{HistorySize: 10000}
	if err := second.Subscribe(ctx, ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	// Records the first node's writers keep, to be found after the failover.
	if err := second.Set(ctx, "session-1", []byte("state"), time.Hour); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := second.AddPresence(ctx, ch, broker.PresenceInfo{User: "u", Conn: "c1", Node: "second"}, time.Hour); err != nil {
		t.Fatalf("AddPresence: %v", err)
	}
	const publishers, each = 4, 150
	var mu sync.Mutex
	seen := map[uint64]string{}
	var wg sync.WaitGroup
	started := make(chan struct{})
	var once sync.Once
	for g := range publishers {
		wg.Go(func() {
			for i := range each {
				data := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				res, err := second.Publish(ctx, ch, broker.Publication{Data: []byte(data)}, keep)
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := seen[res.Offset]; dup {
					t.Errorf("offset %d given to %s and %s", res.Offset, prev, data)
				}
				seen[res.Offset] = data
				n := len(seen)
				mu.Unlock()
				if n == 100 {
					once.Do(func() { close(started) })
				}
			}
		})
	}
	<-started
	if err := first.Close(); err != nil {
		t.Fatalf("Close of the writer node: %v", err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if a, b := first.served.Load(), second.served.Load(); a == 0 || b == 0 {
		t.Fatalf("requests served: %d by the first node, %d by the second; want both, or nothing failed over", a, b)
	}
	const total = publishers * each
	if v, err := second.Get(ctx, "session-1"); err != nil || string(v) != "state" {
		t.Fatalf("Get after the failover = %q, %v; want the value set before", v, err)
	}
	if p, err := second.Presence(ctx, ch); err != nil || len(p) != 1 || p[0].Conn != "c1" {
		t.Fatalf("Presence after the failover = %+v, %v; want c1", p, err)
	}
	h, err := second.History(ctx, ch, broker.HistoryQuery{})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if h.Offset != total || len(h.Messages) != total {
		t.Fatalf("History: offset %d with %d messages, want %d of each", h.Offset, len(h.Messages), total)
	}
	for i, m := range h.Messages {
		if m.Offset != uint64(i+1) || string(m.Data) != seen[m.Offset] {
			t.Fatalf("history message %d: offset %d data %s, want offset %d data %s", i, m.Offset, m.Data, i+1, seen[uint64(i+1)])
		}
	}
	waitUntil(t, 30*time.Second, "every delivery", func() bool { return len(rec.offsets()) >= total })
	got := rec.offsets()
	for i, o := range got {
		if o != uint64(i+1) {
			t.Fatalf("delivery %d has offset %d (deliveries must be 1..%d once each, in order)", i, o, total)
		}
	}
	if len(got) != total {
		t.Fatalf("%d deliveries, want %d", len(got), total)
	}
}
