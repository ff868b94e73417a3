package session

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/hub"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/internal/testutil/wait"
	"github.com/ferry-io/ferry/protocol"
)

// idleEnv is a node's session environment as the server builds it on the
// memory broker: snapshots in its KV, user connection records, presence.
func idleEnv(tb testing.TB) (*Env, func()) {
	tb.Helper()
	return memoryEnv(flow.NewWriters(2))
}

// memoryEnv is idleEnv with the writer pool w; the function it returns
// closes w and the broker.
func memoryEnv(w *flow.Writers) (*Env, func()) {
	b := memory.New(memory.Config{NodeID: "idle"})
	env := &Env{
		NodeID: "idle",
		Broker: b,
		KV:     b,
		Hub:    hub.New(b),
		Limits: Limits{
			MaxSubscriptions:  128,
			QueueMessages:     1024,
			QueueBytes:        1 << 20,
			SlowConsumerGrace: 10 * time.Second,
			HeartbeatInterval: 25 * time.Second,
			HeartbeatTimeout:  10 * time.Second,
			SessionTTL:        2 * time.Minute,
			PerUser:           8,
		},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: node.NewRegistry[*Session](),
		Writers:  w,
	}
	env.Node = testNode(b, env.Hub, env.Registry, node.Rules{Subscribe: true, Publish: true})
	env.Presence, _ = broker.Broker(b).(broker.Presence)
	env.Users, _ = broker.Broker(b).(broker.Users)
	return env, func() { w.Close(); _ = b.Close() }
}

// openIdle opens n sessions the way the server does for `ferry bench --mode
// idle`: each its own user (claims verified at the handshake), a connect
// frame, a subscribe frame to channel i mod channels, the replies written.
func openIdle(tb testing.TB, env *Env, t Transport, n, channels int) []*Session {
	tb.Helper()
	out := make([]*Session, n)
	for i := range out {
		// Fresh strings, as a decoded token and frame would have.
		claims := &auth.Claims{Subject: fmt.Sprintf("bench-run-%d", i)}
		s := New(env, t, Handshake{Codec: protocol.JSON, RemoteAddr: "127.0.0.1", Claims: claims, ResumeSeq: -1})
		s.HandleMessage([]byte(`{"type":"connect","id":1,"client":"bench"}`))
		s.HandleMessage(fmt.Appendf(nil, `{"type":"subscribe","id":2,"channel":"bench:c%d"}`, i%channels))
		out[i] = s
	}
	for _, s := range out {
		s.mu.Lock()
		ok := s.state == stateConnected && s.subFor(fmt.Sprintf("bench:c%d", indexOf(out, s)%channels)) != nil
		s.mu.Unlock()
		if !ok {
			tb.Fatalf("session %s is not connected and subscribed", s.connID)
		}
	}
	waitUntil(tb, func() bool { return env.Registry.QueueDepth() == 0 })
	// The node's sweep checks a session the second after it queued
	// frames: an idle one gives its buffers back there (all of them at
	// once here).
	env.Registry.SweepAll(context.Background(), time.Now())
	return out
}

func indexOf(ss []*Session, s *Session) int {
	for i := range ss {
		if ss[i] == s {
			return i
		}
	}
	return -1
}

// waitUntil polls cond until it holds (the test's own timeout bounds it).
func waitUntil(tb testing.TB, cond func() bool) {
	tb.Helper()
	wait.For(tb, "the queues to drain", cond)
}

// liveHeap is the heap in use by reachable objects after a full collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// idleBytesPerConn measures the live heap an idle, subscribed connection
// costs outside its transport: the session and everything the node keeps
// for it (registry, hub, the memory broker's snapshot, user and presence
// records).
func idleBytesPerConn(tb testing.TB, n int) float64 {
	tb.Helper()
	env, done := idleEnv(tb)
	defer done()
	t := &sinkTransport{}
	// Warm up: the channels, the hub's and the broker's tables exist
	// before the measurement (one per hundred connections, as in the
	// bench).
	channels := max(1, n/100)
	warm := openIdle(tb, env, t, channels, channels)
	before := liveHeap()
	sessions := openIdle(tb, env, t, n, channels)
	after := liveHeap()
	runtime.KeepAlive(sessions)
	for _, s := range append(warm, sessions...) {
		s.Closed(1000, "")
	}
	return float64(int64(after)-int64(before)) / float64(n)
}

// TestIdleSessionMemory bounds the heap an idle connection costs. The bound
// is generous (the measured figure is printed with -v): it catches a
// per-connection buffer or table that is allocated eagerly again.
func TestIdleSessionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	// 2.4 KB before the session, the registry and the memory broker's
	// records were made compact; 1.1 KB after.
	const bound = 1536
	per := idleBytesPerConn(t, 2000)
	t.Logf("idle session: %.0f bytes of heap per connection (Session %d bytes, subscription %d)",
		per, unsafe.Sizeof(Session{}), unsafe.Sizeof(subscription{}))
	if per > bound {
		t.Fatalf("idle session costs %.0f bytes of heap, want at most %d", per, bound)
	}
}

// BenchmarkIdleSessionMemory reports the heap per idle, subscribed
// connection (bytes/conn) for a few connection counts.
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var per float64
			for i := 0; i < b.N; i++ {
				per = idleBytesPerConn(b, n)
			}
			b.ReportMetric(per, "bytes/conn")
		})
	}
}

// testNode is the node of a test environment: every channel has rules.
func testNode(b broker.Broker, h *hub.Hub, reg *node.Registry[*Session], rules node.Rules) *node.Node {
	return node.New(node.Config{
		ID:         b.(*memory.Broker).NodeID(),
		Broker:     b,
		Hub:        h,
		Namespaces: node.Namespaces{Fallback: &rules},
		Local:      reg,
	})
}
