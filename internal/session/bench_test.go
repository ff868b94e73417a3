package session

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/hub"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// sinkTransport is a wire that takes every write at once (a fast client):
// it counts what the writer pool sends.
type sinkTransport struct {
	bytes  atomic.Int64
	writes atomic.Int64
}

func (t *sinkTransport) Name() string { return "ws" }
func (t *sinkTransport) Send(b []byte) (int, error) {
	t.bytes.Add(int64(len(b)))
	t.writes.Add(1)
	return 0, nil
}
func (t *sinkTransport) Pending() int                  { return 0 }
func (t *sinkTransport) Ping() error                   { return nil }
func (t *sinkTransport) Close(code int, reason string) {}
func (t *sinkTransport) LastActivity() time.Time       { return time.Now() }

// benchEnv is a node's session environment on a memory broker.
func benchEnv(tb testing.TB) (*Env, func()) {
	b := memory.New(memory.Config{NodeID: "bench"})
	h := hub.New(b)
	env := &Env{
		NodeID:   "bench",
		Broker:   b,
		KV:       b,
		Hub:      h,
		Limits:   Limits{QueueMessages: 1024, QueueBytes: 1 << 20, HeartbeatInterval: time.Minute, HeartbeatTimeout: time.Minute},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: node.NewRegistry[*Session](),
		Writers:  flow.NewWriters(runtime.GOMAXPROCS(0)),
	}
	env.Node = testNode(b, h, env.Registry, node.Rules{Subscribe: true})
	return env, func() { env.Writers.Close(); _ = b.Close() }
}

// connected makes a session that is connected and subscribed to ch.
func connected(tb testing.TB, env *Env, ch string) (*Session, *sinkTransport) {
	t := &sinkTransport{}
	s := New(env, t, Handshake{Codec: protocol.JSON})
	s.mu.Lock()
	s.state, s.user, s.id = stateConnected, "u", newID(8)
	s.addSubLocked(&subscription{ch: ch})
	s.mu.Unlock()
	if err := env.Hub.Subscribe(context.Background(), ch, s); err != nil {
		tb.Fatal(err)
	}
	return s, t
}

// BenchmarkFanoutThroughSessions is the node's delivery path without the
// network: one publication, encoded once, handed by the hub to N sessions,
// queued, and written by the writer pool (into a transport that takes
// everything). It reports ns and allocations per delivery.
func BenchmarkFanoutThroughSessions(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			env, done := benchEnv(b)
			defer done()
			sinks := make([]*sinkTransport, n)
			for i := range sinks {
				_, sinks[i] = connected(b, env, "fan")
			}
			data := protocol.RawJSON(`{"price":101.25,"sym":"ACME"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o := &node.Outgoing{Msg: protocol.NewPreparedMessage("fan", uint64(i+1), "e", data, protocol.PriorityNormal, "")}
				env.Hub.Broadcast("fan", o)
			}
			// Wait until the writers have taken every delivery.
			for env.Registry.QueueDepth() > 0 {
				runtime.Gosched()
			}
			b.StopTimer()
			var writes int64
			for _, t := range sinks {
				writes += t.writes.Load()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			b.ReportMetric(float64(b.N*n)/float64(max(writes, 1)), "frames/write")
		})
	}
}
