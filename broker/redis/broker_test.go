package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
)

// TestShardChoiceStable pins the hash and the shard choice: the shard of a
// name must never change between releases, since nodes of different
// versions share the servers during a rolling upgrade.
func TestShardChoiceStable(t *testing.T) {
	hashes := []struct {
		in   string
		want uint64
	}{
		{"", 0xf52a15e9a9b5e89b},
		{"a", 0x2c0bdbf481420f8},
		{"chat:room-1", 0x69b787b7f2d58add},
		{"news", 0x3d16b1ed7dd99a4b},
	}
	for _, tc := range hashes {
		if got := hashString(tc.in); got != tc.want {
			t.Errorf("hashString(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	shards := []struct {
		key  string
		n    int
		want int
	}{
		{"news", 2, 1},
		{"chat:1", 3, 0},
		{"user-42", 5, 3},
		{"ferry:ctl", 2, 1},
		{"room-1", 7, 4},
		{"anything", 1, 0},
	}
	for _, tc := range shards {
		if got := jumpHash(hashString(tc.key), tc.n); got != tc.want {
			t.Errorf("shard of %q among %d = %d, want %d", tc.key, tc.n, got, tc.want)
		}
	}
}

// TestJumpHashSpread checks the balance of the shard choice and that
// adding a shard moves keys only to the new shard.
func TestJumpHashSpread(t *testing.T) {
	const keys = 20000
	for _, n := range []int{1, 2, 3, 7} {
		counts := make([]int, n)
		for i := range keys {
			counts[jumpHash(hashString(fmt.Sprintf("ch-%d", i)), n)]++
		}
		for b, c := range counts {
			if share := float64(c) / keys; share < 0.8/float64(n) || share > 1.2/float64(n) {
				t.Errorf("n=%d: bucket %d got %d of %d keys", n, b, c, keys)
			}
		}
	}
	moved := 0
	for i := range keys {
		h := hashString(fmt.Sprintf("ch-%d", i))
		from, to := jumpHash(h, 3), jumpHash(h, 4)
		if from != to {
			moved++
			if to != 3 {
				t.Fatalf("key moved from %d to %d when bucket 3 was added", from, to)
			}
		}
	}
	if moved < keys/6 || moved > keys/3 {
		t.Fatalf("%d of %d keys moved when a fourth bucket was added, want about a quarter", moved, keys)
	}
}

func TestLifecycleErrors(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b := newBroker(t, Config{URL: srv.URL()})
	if !strings.HasPrefix(b.NodeID(), "redis-") {
		t.Fatalf("default NodeID = %q", b.NodeID())
	}
	if err := b.Subscribe(ctx, "ch"); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Subscribe before Start: %v, want ErrNotStarted", err)
	}
	if err := b.Start(ctx, nil); !errors.Is(err, ErrNilHandler) {
		t.Fatalf("Start(nil): %v, want ErrNilHandler", err)
	}
	if err := b.Start(ctx, &recorder{}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := b.Start(ctx, &recorder{}); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second Start: %v, want ErrAlreadyStarted", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Start(ctx, &recorder{}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

// ttlOf returns the PTTL of key in ms (-1: no expiry, -2: no key).
func ttlOf(t *testing.T, srv *redistest.Server, key string) int64 {
	t.Helper()
	v, err := srv.Do("PTTL", key)
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return v.(int64)
}

// TestKeyLayoutAndExpiry checks the keys a publish leaves behind and their
// lifetimes.
func TestKeyLayoutAndExpiry(t *testing.T) {
	srv := redistest.Start(t)
	b := newBroker(t, Config{URL: srv.URL(), Prefix: "tst"})
	type want struct{ min, max int64 } // PTTL bounds; -1 no expiry, -2 missing
	tests := []struct {
		name              string
		opts              broker.PublishOptions
		state, hist, idem want
	}{
		{
			name:  "history with ttl",
			opts:  broker.PublishOptions{HistorySize: 10, HistoryTTL: 10 * time.Second, StreamTTL: time.Minute, IdempotencyKey: "k", IdempotencyWindow: 30 * time.Second},
			state: want{50_000, 60_000}, hist: want{1, 10_000}, idem: want{20_000, 30_000},
		},
		{
			name:  "history outliving the stream ttl",
			opts:  broker.PublishOptions{HistorySize: 10, HistoryTTL: time.Hour, StreamTTL: time.Minute},
			state: want{3_500_000, 3_600_000}, hist: want{3_500_000, 3_600_000}, idem: want{-2, -2},
		},
		{
			name:  "history without ttl",
			opts:  broker.PublishOptions{HistorySize: 10},
			state: want{-1, -1}, hist: want{-1, -1}, idem: want{-2, -2},
		},
		{
			name:  "no history",
			opts:  broker.PublishOptions{StreamTTL: time.Minute, IdempotencyKey: "k"},
			state: want{50_000, 60_000}, hist: want{-2, -2}, idem: want{4 * 60_000, 5 * 60_000},
		},
		{
			name:  "defaults",
			opts:  broker.PublishOptions{},
			state: want{23 * 3_600_000, 24 * 3_600_000}, hist: want{-2, -2}, idem: want{-2, -2},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch := fmt.Sprintf("c%d", i)
			publish(t, b, ch, `{}`, tc.opts)
			check := func(what, key string, w want) {
				t.Helper()
				if got := ttlOf(t, srv, key); got < w.min || got > w.max {
					t.Errorf("%s %s: PTTL %d, want %d..%d", what, key, got, w.min, w.max)
				}
			}
			check("state", "tst:m:{"+ch+"}", tc.state)
			check("history", "tst:h:{"+ch+"}", tc.hist)
			check("idempotency", "tst:i:{"+ch+"}:k", tc.idem)
		})
	}
}

// TestStreamTTL: a stream without history is forgotten StreamTTL after its
// last publish and starts over in a new epoch.
func TestStreamTTL(t *testing.T) {
	srv := redistest.Start(t)
	b := newBroker(t, Config{URL: srv.URL()})
	ctx := context.Background()
	opts := broker.PublishOptions{StreamTTL: 200 * time.Millisecond}
	first := publish(t, b, "ch", `{}`, opts)
	publish(t, b, "ch", `{}`, opts)
	waitFor(t, "the stream to expire", func() bool {
		h, err := b.History(ctx, "ch", broker.HistoryQuery{Limit: -1})
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		return h.Offset == 0 && h.Epoch == ""
	})
	again := publish(t, b, "ch", `{}`, opts)
	if again.Offset != 1 || again.Epoch == first.Epoch {
		t.Fatalf("publish after expiry = %+v, want offset 1 in an epoch other than %q", again, first.Epoch)
	}
}

// syncBuffer is an io.Writer safe for concurrent use, for a test logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// TestMalformedMessagesDropped: a payload this broker did not write is
// logged and dropped; delivery goes on.
func TestMalformedMessagesDropped(t *testing.T) {
	srv := redistest.Start(t)
	var logs syncBuffer
	cfg := Config{URL: srv.URL(), NodeID: "n1", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	b, rec := startBroker(t, cfg)
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ch"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	for _, cmd := range [][]string{
		{"PUBLISH", b.names.pubsub("ch"), "not a publication"},
		{"PUBLISH", b.names.ctlAll, "{not json"},
	} {
		if _, err := srv.Do(cmd...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	publish(t, b, "ch", `{"ok":true}`, keep)
	if err := b.PublishControl(ctx, broker.Control{Kind: broker.ControlDisconnect, User: "u"}); err != nil {
		t.Fatalf("PublishControl: %v", err)
	}
	waitFor(t, "the valid messages", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.pubs) == 1 && len(rec.controls) == 1
	})
	if got := rec.received("ch"); string(got[0].Data) != `{"ok":true}` {
		t.Fatalf("delivered %+v", got)
	}
	for _, want := range []string{"dropped a malformed publication", "dropped a malformed control message"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestConcurrentSubscribeUnsubscribe hammers the reference counting of one
// channel and checks that Redis ends up subscribed exactly when a
// reference is left.
func TestConcurrentSubscribeUnsubscribe(t *testing.T) {
	srv := redistest.Start(t)
	b, rec := startBroker(t, Config{URL: srv.URL(), NodeID: "n1"})
	ctx := context.Background()
	name := b.names.pubsub("ch")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if err := b.Subscribe(ctx, "ch"); err != nil {
					t.Errorf("Subscribe: %v", err)
					return
				}
				if err := b.Unsubscribe(ctx, "ch"); err != nil {
					t.Errorf("Unsubscribe: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := numSub(t, srv, name); n != 0 {
		t.Fatalf("after balanced calls %d subscribers remain", n)
	}
	ps := b.shardFor("ch").ps
	ps.mu.RLock()
	_, kept := ps.chans[name]
	ps.mu.RUnlock()
	if kept {
		t.Fatal("the state of an unsubscribed channel was kept")
	}
	if err := b.Subscribe(ctx, "ch"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if n := numSub(t, srv, name); n != 1 {
		t.Fatalf("after one Subscribe %d subscribers, want 1", n)
	}
	publish(t, b, "ch", `{}`, keep)
	waitFor(t, "delivery", func() bool { return len(rec.received("ch")) == 1 })
}

// TestShardPlacement checks that a channel's keys and pub/sub traffic live
// on the shard its name hashes to, users and KV keys on theirs, and that
// control messages of all nodes go through one shard.
func TestShardPlacement(t *testing.T) {
	servers := []*redistest.Server{redistest.Start(t), redistest.Start(t)}
	url := servers[0].URL() + "," + servers[1].URL()
	a, _ := startBroker(t, Config{URL: url, NodeID: "a"})
	bb, rec := startBroker(t, Config{URL: url, NodeID: "b"})
	ctx := context.Background()
	exists := func(srv *redistest.Server, key string) bool {
		v, err := srv.Do("EXISTS", key)
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		return v.(int64) == 1
	}
	hits := make([]int, 2)
	for i := range 40 {
		ch := fmt.Sprintf("room-%d", i)
		want := jumpHash(hashString(ch), 2)
		hits[want]++
		if err := bb.Subscribe(ctx, ch); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		publish(t, a, ch, `{}`, keep)
		if err := a.AddPresence(ctx, ch, broker.PresenceInfo{User: "u", Conn: "c"}, time.Minute); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
		for s, srv := range servers {
			on := s == want
			if got := exists(srv, a.names.state(ch)); got != on {
				t.Errorf("%s: stream state on shard %d = %v, want %v", ch, s, got, on)
			}
			if got := exists(srv, a.names.presence(ch)); got != on {
				t.Errorf("%s: presence on shard %d = %v, want %v", ch, s, got, on)
			}
			if got := numSub(t, srv, a.names.pubsub(ch)) == 1; got != on {
				t.Errorf("%s: subscription on shard %d = %v, want %v", ch, s, got, on)
			}
		}
		key := fmt.Sprintf("key-%d", i)
		if err := a.Set(ctx, key, []byte("v"), time.Minute); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if !exists(servers[jumpHash(hashString(key), 2)], a.names.kv(key)) {
			t.Errorf("%s is not on its shard", key)
		}
		user := fmt.Sprintf("user-%d", i)
		if _, err := a.AddUserConn(ctx, user, broker.ConnRef{Conn: "c", Node: "a"}, time.Minute, 0); err != nil {
			t.Fatalf("AddUserConn: %v", err)
		}
		for _, k := range a.names.userKeys(user) {
			if !exists(servers[jumpHash(hashString(user), 2)], k) {
				t.Errorf("%s of %s is not on its shard", k, user)
			}
		}
	}
	if hits[0] == 0 || hits[1] == 0 {
		t.Fatalf("all 40 channels hashed to one shard: %v", hits)
	}
	waitFor(t, "40 deliveries", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.pubs) == 40
	})
	ctl := jumpHash(hashString(a.names.ctlAll), 2)
	for _, n := range []string{a.names.ctlAll, a.names.ctlNode, bb.names.ctlNode} {
		if got := numSub(t, servers[ctl], n); got == 0 {
			t.Errorf("control channel %s not subscribed on shard %d", n, ctl)
		}
		if got := numSub(t, servers[1-ctl], n); got != 0 {
			t.Errorf("control channel %s subscribed on shard %d too", n, 1-ctl)
		}
	}
}

// TestSentinel runs a node against a master found through Sentinel.
func TestSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "m1")
	url := "redis+sentinel://" + sentinel.Addr + "/m1/0"
	b, rec := startBroker(t, Config{URL: url, NodeID: "n1"})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ch"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	res := publish(t, b, "ch", `{"via":"sentinel"}`, keep)
	waitFor(t, "delivery", func() bool { return len(rec.received("ch")) == 1 })
	if v, err := master.Do("HGET", b.names.state("ch"), "e"); err != nil || v != res.Epoch {
		t.Fatalf("the master holds epoch %v (%v), want %q", v, err, res.Epoch)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// TestTLS runs a node against a TLS-only Redis.
func TestTLS(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{TLS: true})
	if _, err := New(context.Background(), Config{URL: srv.URL(), DialTimeout: 2 * time.Second}); err == nil {
		t.Fatal("New trusted a certificate from an unknown authority")
	}
	b, rec := startBroker(t, Config{URL: srv.URL(), NodeID: "n1", TLS: srv.TLSConfig(), DialTimeout: 2 * time.Second})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "ch"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	publish(t, b, "ch", `{"tls":true}`, keep)
	waitFor(t, "delivery", func() bool { return len(rec.received("ch")) == 1 })
}

// TestEntriesWithoutTTL: presence entries and user connections added with
// no ttl stay until removed, and keep their keys alive.
func TestEntriesWithoutTTL(t *testing.T) {
	srv := redistest.Start(t)
	b := newBroker(t, Config{URL: srv.URL(), NodeID: "n1"})
	ctx := context.Background()
	if err := b.AddPresence(ctx, "ch", broker.PresenceInfo{User: "u", Conn: "short", Node: "n1"}, 100*time.Millisecond); err != nil {
		t.Fatalf("AddPresence: %v", err)
	}
	if err := b.AddPresence(ctx, "ch", broker.PresenceInfo{User: "u", Conn: "forever", Node: "n1"}, 0); err != nil {
		t.Fatalf("AddPresence: %v", err)
	}
	if got := ttlOf(t, srv, b.names.presence("ch")); got != -1 {
		t.Fatalf("presence key PTTL %d with an entry without ttl, want -1", got)
	}
	waitFor(t, "the short entry to expire", func() bool {
		got, err := b.Presence(ctx, "ch")
		if err != nil {
			t.Fatalf("Presence: %v", err)
		}
		return len(got) == 1 && got[0].Conn == "forever"
	})

	if _, err := b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "c1", Node: "n1"}, 0, 0); err != nil {
		t.Fatalf("AddUserConn: %v", err)
	}
	got, err := b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "c2", Node: "n1"}, time.Minute, 1)
	if err != nil || len(got) != 1 || got[0].Conn != "c1" || got[0].Since.IsZero() {
		t.Fatalf("AddUserConn = %+v, %v; want c1 (with a Since set by Redis)", got, err)
	}
	for _, k := range b.names.userKeys("u") {
		if ttl := ttlOf(t, srv, k); ttl != -1 {
			t.Fatalf("user key %s PTTL %d with a connection without ttl, want -1", k, ttl)
		}
	}
	if err := b.RemoveUserConn(ctx, "u", "c1"); err != nil {
		t.Fatalf("RemoveUserConn: %v", err)
	}
	if got, err := b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "c2", Node: "n2"}, time.Minute, 1); err != nil || len(got) != 0 {
		t.Fatalf("AddUserConn after removing c1 = %+v, %v; want none beyond 1", got, err)
	}
	got, err = b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "c3", Node: "n1"}, time.Minute, 1)
	if err != nil || len(got) != 1 || got[0].Conn != "c2" || got[0].Node != "n2" {
		t.Fatalf("AddUserConn = %+v, %v; want c2, now on n2", got, err)
	}
	for _, k := range b.names.userKeys("u") {
		if ttl := ttlOf(t, srv, k); ttl <= 0 || ttl > 60_000 {
			t.Fatalf("user key %s PTTL %d once only expiring connections are left, want 1..60000", k, ttl)
		}
	}
}
