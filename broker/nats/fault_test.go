package nats

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/natstest"
)

// collector is a broker.Handler keeping the offsets delivered per channel.
type collector struct {
	mu   sync.Mutex
	offs map[string][]uint64
}

func (c *collector) HandlePublication(p *broker.Publication) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.offs == nil {
		c.offs = map[string][]uint64{}
	}
	c.offs[p.Channel] = append(c.offs[p.Channel], p.Offset)
}

func (c *collector) HandleControl(broker.Control) {}

func (c *collector) got(ch string) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.offs[ch]...)
}

// poll waits until cond holds; a guard against hangs, not a timing check.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServerDownAndBack: while the only server is down, calls fail with
// ErrUnavailable and Ping fails; once it is back (with its store), Ping
// succeeds, the stream goes on in the same epoch, and the subscription
// works again without a new Subscribe.
func TestServerDownAndBack(t *testing.T) {
	srv := natstest.Start(t)
	b, err := New(t.Context(), Config{URL: srv.URL(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := &collector{}
	if err := b.Start(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ch = "fault"
	if err := b.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	opts := broker.PublishOptions{HistorySize: 100}
	first, err := b.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, opts)
	if err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	if _, err := b.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, opts); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish with the server down: %v, want ErrUnavailable", err)
	}
	if err := b.Ping(ctx); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Ping with the server down: %v, want ErrUnavailable", err)
	}
	if _, err := b.History(ctx, ch, broker.HistoryQuery{}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("History with the server down: %v, want ErrUnavailable", err)
	}

	srv.Restart(false)
	poll(t, "Ping to succeed again", func() bool { return b.Ping(ctx) == nil })
	var last broker.PublishResult
	poll(t, "a publish to succeed again", func() bool {
		last, err = b.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, opts)
		return err == nil
	})
	if last.Epoch != first.Epoch || last.Offset != 2 {
		t.Fatalf("after the restart: %+v, want offset 2 in epoch %s", last, first.Epoch)
	}
	poll(t, "delivery of offset 2 on the old subscription", func() bool {
		got := h.got(ch)
		return len(got) > 0 && got[len(got)-1] == 2
	})
	if got := h.got(ch); len(got) != 2 || got[0] != 1 {
		t.Fatalf("delivered %v, want [1 2]", got)
	}
}

// TestStreamLost: when the server comes back without its store, the
// channel starts over at offset 1 in a new epoch.
func TestStreamLost(t *testing.T) {
	srv := natstest.Start(t)
	b, err := New(t.Context(), Config{URL: srv.URL(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(t.Context(), &collector{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := broker.PublishOptions{HistorySize: 10}
	before, err := b.Publish(ctx, "lost", broker.Publication{Data: []byte(`{}`)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart(true)
	var after broker.PublishResult
	poll(t, "a publish to succeed on the empty server", func() bool {
		after, err = b.Publish(ctx, "lost", broker.Publication{Data: []byte(`{}`)}, opts)
		if err != nil {
			t.Log(err)
		}
		return err == nil
	})
	if after.Offset != 1 || after.Epoch == before.Epoch {
		t.Fatalf("after losing the store: %+v, want offset 1 in a new epoch (was %s)", after, before.Epoch)
	}
}

// TestControlToMissingNode: a control message to a node nobody runs is
// ErrNoNode.
func TestControlToMissingNode(t *testing.T) {
	srv := natstest.Start(t)
	b, err := New(t.Context(), Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(t.Context(), &collector{}); err != nil {
		t.Fatal(err)
	}
	err = b.PublishControl(context.Background(), broker.Control{Node: "nobody", Kind: "evict"})
	if !errors.Is(err, broker.ErrNoNode) {
		t.Fatalf("PublishControl to nobody: %v, want ErrNoNode", err)
	}
}
