package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
)

// fastReconnect keeps the fault tests short: the subscriber connection is
// retried every few milliseconds.
func fastReconnect(url, node string) Config {
	return Config{URL: url, NodeID: node, ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}
}

// TestRedisKilledAndRestartedEmpty: with Redis gone every call fails with
// ErrUnavailable; when it comes back empty, subscriptions are restored on
// their own and the stream starts over in a new epoch.
func TestRedisKilledAndRestartedEmpty(t *testing.T) {
	srv := redistest.Start(t)
	pub, _ := startBroker(t, fastReconnect(srv.URL(), "pub"))
	sub, rec := startBroker(t, fastReconnect(srv.URL(), "sub"))
	ctx := context.Background()
	ch := "room"
	if err := sub.Subscribe(ctx, ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	before := publish(t, pub, ch, `{"n":1}`, keep)
	publish(t, pub, ch, `{"n":2}`, keep)
	waitFor(t, "two deliveries", func() bool { return len(rec.received(ch)) == 2 })

	srv.Kill()

	calls := map[string]func() error{
		"Publish": func() error {
			_, err := pub.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, keep)
			return err
		},
		"History": func() error {
			_, err := pub.History(ctx, ch, broker.HistoryQuery{})
			return err
		},
		"Ping":      func() error { return pub.Ping(ctx) },
		"Subscribe": func() error { return pub.Subscribe(ctx, "other") },
		"PublishControl": func() error {
			return pub.PublishControl(ctx, broker.Control{Kind: broker.ControlDisconnect, User: "u"})
		},
		"AddPresence": func() error {
			return pub.AddPresence(ctx, ch, broker.PresenceInfo{User: "u", Conn: "c"}, time.Minute)
		},
		"Presence": func() error { _, err := pub.Presence(ctx, ch); return err },
		"AddUserConn": func() error {
			_, err := pub.AddUserConn(ctx, "u", broker.ConnRef{Conn: "c"}, time.Minute, 0)
			return err
		},
		"Set":  func() error { return pub.Set(ctx, "k", []byte("v"), time.Minute) },
		"Get":  func() error { _, err := pub.Get(ctx, "k"); return err },
		"Take": func() error { _, err := pub.Take(ctx, "k"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}
	waitFor(t, "Ping of the subscribing node to fail", func() bool {
		return errors.Is(sub.Ping(ctx), broker.ErrUnavailable)
	})

	srv.Restart(true)
	for _, b := range []*Broker{pub, sub} {
		waitFor(t, "Ping to succeed after the restart", func() bool { return b.Ping(ctx) == nil })
	}
	if n := numSub(t, srv, sub.names.pubsub(ch)); n != 1 {
		t.Fatalf("after the restart %d connections subscribe to the channel, want 1 (the restored one)", n)
	}
	if n := numSub(t, srv, pub.names.pubsub("other")); n != 0 {
		t.Fatalf("a Subscribe that failed during the outage was restored (%d subscribers)", n)
	}

	after := publish(t, pub, ch, `{"n":3}`, keep)
	if after.Offset != 1 || after.Epoch == before.Epoch || after.Epoch == "" {
		t.Fatalf("first publish after an empty restart = %+v, want offset 1 in a new epoch (old %q)", after, before.Epoch)
	}
	waitFor(t, "the delivery after the restart", func() bool { return len(rec.received(ch)) == 3 })
	got := rec.received(ch)[2]
	if got.Offset != 1 || got.Epoch != after.Epoch || string(got.Data) != `{"n":3}` {
		t.Fatalf("delivered %+v, want offset 1 of epoch %q", got, after.Epoch)
	}

	h, err := sub.History(ctx, ch, broker.HistoryQuery{Since: &broker.Position{Offset: 2, Epoch: before.Epoch}})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if h.Complete || h.Epoch != after.Epoch || h.Offset != 1 || len(h.Messages) != 1 {
		t.Fatalf("History since the old epoch = %+v, want incomplete, new epoch, offset 1, one message", h)
	}
}

// TestRedisRestartedWithData: after a restart that keeps the data the
// history is readable as it was, the first publish starts the stream over
// in a new epoch (the restarted process cannot prove nothing was lost
// after its snapshot), and the subscriptions come back.
func TestRedisRestartedWithData(t *testing.T) {
	srv := redistest.Start(t)
	b, rec := startBroker(t, fastReconnect(srv.URL(), "n1"))
	ctx := context.Background()
	if err := b.Subscribe(ctx, "a"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := b.Subscribe(ctx, "b"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	first := publish(t, b, "a", `{}`, keep)

	srv.Restart(false)
	waitFor(t, "Ping to succeed after the restart", func() bool { return b.Ping(ctx) == nil })
	h, err := b.History(ctx, "a", broker.HistoryQuery{Since: &broker.Position{Epoch: first.Epoch}})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if !h.Complete || h.Epoch != first.Epoch || h.Offset != 1 || len(h.Messages) != 1 {
		t.Fatalf("History after a restart with data = %+v, want the saved message in epoch %q", h, first.Epoch)
	}
	second := publish(t, b, "a", `{}`, keep)
	if second.Offset != 1 || second.Epoch == first.Epoch {
		t.Fatalf("publish after a restart with data = %+v, want offset 1 in a new epoch (old %q)", second, first.Epoch)
	}
	if third := publish(t, b, "a", `{}`, keep); third.Offset != 2 || third.Epoch != second.Epoch {
		t.Fatalf("second publish after the restart = %+v, want offset 2 in epoch %q", third, second.Epoch)
	}
	publish(t, b, "b", `{}`, keep)
	waitFor(t, "deliveries on both channels", func() bool {
		return len(rec.received("a")) == 3 && len(rec.received("b")) == 1
	})
	// Control messages come back too.
	if err := b.PublishControl(ctx, broker.Control{Node: b.NodeID(), Kind: broker.ControlEvict, Conn: "c1"}); err != nil {
		t.Fatalf("PublishControl: %v", err)
	}
	waitFor(t, "the control message", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.controls) == 1
	})
}

// TestRedisRestoredFromOlderSnapshot: Redis is killed after accepting
// publishes its last snapshot does not hold, and comes back with that
// snapshot. The offsets after the snapshot were handed out already; the
// stream must not hand them out again in the same epoch.
func TestRedisRestoredFromOlderSnapshot(t *testing.T) {
	srv := redistest.Start(t)
	b, rec := startBroker(t, fastReconnect(srv.URL(), "n1"))
	ctx := context.Background()
	if err := b.Subscribe(ctx, "a"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	first := publish(t, b, "a", `{"n":1}`, keep)
	publish(t, b, "a", `{"n":2}`, keep)
	if _, err := srv.Do("SAVE"); err != nil {
		t.Fatalf("SAVE: %v", err)
	}
	publish(t, b, "a", `{"n":3}`, keep)
	lost := publish(t, b, "a", `{"n":4}`, keep)
	waitFor(t, "four deliveries", func() bool { return len(rec.received("a")) == 4 })

	srv.Kill()
	srv.Restart(false) // back with the snapshot: offsets 1 and 2
	waitFor(t, "Ping to succeed after the restart", func() bool { return b.Ping(ctx) == nil })

	again := publish(t, b, "a", `{"n":5}`, keep)
	if again.Epoch == first.Epoch {
		t.Fatalf("publish after the restore = %+v: offset %d reused in epoch %q (offset %d was handed out before the crash)",
			again, again.Offset, again.Epoch, lost.Offset)
	}
	if again.Offset != 1 {
		t.Fatalf("publish after the restore = %+v, want offset 1 of a new stream", again)
	}
	h, err := b.History(ctx, "a", broker.HistoryQuery{Since: &broker.Position{Offset: lost.Offset, Epoch: lost.Epoch}})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if h.Complete || h.Epoch != again.Epoch {
		t.Fatalf("History since the lost position = %+v, want incomplete in epoch %q", h, again.Epoch)
	}
}

// TestRedisHung: a server that accepts connections but answers nothing
// makes calls fail with ErrUnavailable after Config.Timeout instead of
// hanging; when it answers again, so does the broker.
func TestRedisHung(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastReconnect(srv.URL(), "n1")
	cfg.Timeout = 200 * time.Millisecond
	b, _ := startBroker(t, cfg)
	ctx := context.Background()
	publish(t, b, "ch", `{}`, keep)

	srv.Pause()
	if _, err := b.Publish(ctx, "ch", broker.Publication{Data: []byte(`{}`)}, keep); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish to a hung server: %v, want ErrUnavailable", err)
	}
	if err := b.Ping(ctx); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Ping of a hung server: %v, want ErrUnavailable", err)
	}
	// The caller's own deadline is reported as such.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := b.Get(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get with an expiring context: %v, want context.DeadlineExceeded", err)
	}
	srv.Resume()

	waitFor(t, "Ping after the server resumed", func() bool { return b.Ping(ctx) == nil })
	res := publish(t, b, "ch", `{}`, keep)
	// The publish that timed out may or may not have happened.
	if res.Offset != 2 && res.Offset != 3 {
		t.Fatalf("publish after resume got offset %d, want 2 or 3", res.Offset)
	}
}

// TestSubscribeDuringOutage: Subscribe fails while the subscriber
// connection is down and counts nothing; Unsubscribe still works locally.
func TestSubscribeDuringOutage(t *testing.T) {
	srv := redistest.Start(t)
	b, rec := startBroker(t, fastReconnect(srv.URL(), "n1"))
	ctx := context.Background()
	if err := b.Subscribe(ctx, "kept"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := b.Subscribe(ctx, "dropped"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	srv.Kill()
	waitFor(t, "the subscriber connection to notice", func() bool { return b.Ping(ctx) != nil })
	if err := b.Subscribe(ctx, "failed"); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Subscribe during the outage: %v, want ErrUnavailable", err)
	}
	if err := b.Unsubscribe(ctx, "dropped"); err != nil {
		t.Fatalf("Unsubscribe during the outage: %v", err)
	}
	srv.Restart(true)
	waitFor(t, "Ping after the restart", func() bool { return b.Ping(ctx) == nil })
	for name, want := range map[string]int64{"kept": 1, "dropped": 0, "failed": 0} {
		if n := numSub(t, srv, b.names.pubsub(name)); n != want {
			t.Errorf("channel %s has %d subscribers after the restart, want %d", name, n, want)
		}
	}
	for _, ch := range []string{"dropped", "failed", "kept"} {
		publish(t, b, ch, `{}`, keep)
	}
	waitFor(t, "delivery on kept", func() bool { return len(rec.received("kept")) == 1 })
	if n := len(rec.received("dropped")) + len(rec.received("failed")); n != 0 {
		t.Fatalf("%d deliveries on channels not subscribed", n)
	}
}

// TestNewUnreachable: New fails with ErrUnavailable when Redis cannot be
// reached, and with ErrInvalidURL for a URL it cannot parse.
func TestNewUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL()
	srv.Stop()
	if _, err := New(context.Background(), Config{URL: url}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("New with Redis down: %v, want ErrUnavailable", err)
	}
	if _, err := New(context.Background(), Config{URL: "http://x"}); !errors.Is(err, ErrInvalidURL) {
		t.Fatalf("New with a bad URL: %v, want ErrInvalidURL", err)
	}
}

// TestOneShardDown: with one of two shards gone, the channels of the other
// keep working, the ones of the lost shard fail with ErrUnavailable, and
// the broker still closes cleanly.
func TestOneShardDown(t *testing.T) {
	servers := []*redistest.Server{redistest.Start(t), redistest.Start(t)}
	b, rec := startBroker(t, fastReconnect(servers[0].URL()+","+servers[1].URL(), "n1"))
	ctx := context.Background()
	// One channel on each shard.
	var on [2]string
	for i := 0; on[0] == "" || on[1] == ""; i++ {
		ch := "ch-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if s := jumpHash(hashString(ch), 2); on[s] == "" {
			on[s] = ch
		}
	}
	for _, ch := range on {
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	servers[1].Kill()
	if _, err := b.Publish(ctx, on[1], broker.Publication{Data: []byte(`{}`)}, keep); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish to the lost shard: %v, want ErrUnavailable", err)
	}
	if err := b.Ping(ctx); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Ping with a shard down: %v, want ErrUnavailable", err)
	}
	publish(t, b, on[0], `{"alive":true}`, keep)
	waitFor(t, "delivery on the live shard", func() bool { return len(rec.received(on[0])) == 1 })
}
