package session

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/internal/testutil/wait"
	"github.com/ferry-io/ferry/protocol"
)

// recTransport records every message the writer pool sends. Its backlog
// is whatever the test sets.
type recTransport struct {
	mu       sync.Mutex
	sends    [][]byte
	backlog  int
	pendings int // calls of Pending
}

func (t *recTransport) Name() string { return "ws" }
func (t *recTransport) Send(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sends = append(t.sends, append([]byte(nil), b...))
	return t.backlog, nil
}
func (t *recTransport) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pendings++
	return t.backlog
}
func (t *recTransport) set(backlog int) (pendingCalls int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.backlog = backlog
	return t.pendings
}
func (t *recTransport) Ping() error                   { return nil }
func (t *recTransport) Close(code int, reason string) {}
func (t *recTransport) LastActivity() time.Time       { return time.Now() }

// frames returns how many frames each send carried (a JSON batch is an
// array of frames).
func (t *recTransport) frames(tb testing.TB) []int {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]int, len(t.sends))
	for i, b := range t.sends {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			tb.Fatalf("send %d is not JSON: %v: %s", i, err, b)
		}
		if a, ok := v.([]any); ok {
			out[i] = len(a)
		} else {
			out[i] = 1
		}
	}
	return out
}

// writersEnv is a session environment (memoryEnv) whose writer pool is w.
func writersEnv(tb testing.TB, w *flow.Writers) *Env {
	tb.Helper()
	env, done := memoryEnv(w)
	tb.Cleanup(done)
	return env
}

// recSession is a connected session subscribed to ch (outside the hub),
// writing to a recTransport.
func recSession(tb testing.TB, env *Env, ch string) (*Session, *recTransport) {
	tb.Helper()
	t := &recTransport{}
	s := New(env, t, Handshake{Codec: protocol.JSON})
	s.mu.Lock()
	s.state, s.user, s.id = stateConnected, "u", newID(8)
	s.addSubLocked(&subscription{ch: ch})
	s.mu.Unlock()
	return s, t
}

func message(ch string, offset uint64) *node.Outgoing {
	return &node.Outgoing{Msg: protocol.NewPreparedMessage(ch, offset, "e", protocol.RawJSON(`{"n":1}`), protocol.PriorityNormal, "")}
}

// waitFor polls cond until it holds; it fails the test after a generous
// deadline (a hang, not a slow run).
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	wait.For(tb, what, cond)
}

func TestFlushStopsOnABackloggedTransport(t *testing.T) {
	w := flow.NewWritersWith(1, flow.Coalescing{})
	env := writersEnv(t, w)
	s, rec := recSession(t, env, "c")

	s.Deliver("c", message("c", 1))
	waitFor(t, "the first write", func() bool { return len(rec.frames(t)) == 1 })
	if calls := rec.set(0); calls != 0 {
		t.Fatalf("Pending called %d times with nothing ever left unsent", calls)
	}

	// The next write leaves more than maxPendingBytes in the transport.
	rec.set(maxPendingBytes + 1)
	s.Deliver("c", message("c", 2))
	waitFor(t, "the second write", func() bool { return len(rec.frames(t)) == 2 })
	s.Deliver("c", message("c", 3))
	waitFor(t, "the writer to look at the backlog", func() bool { return rec.set(maxPendingBytes+1) > 0 })
	waitFor(t, "the writer to let the session go", func() bool { return !s.slot.Scheduled() })
	if n := len(rec.frames(t)); n != 2 {
		t.Fatalf("%d writes to a backlogged transport, want 2", n)
	}

	// The transport drained and says so.
	rec.set(0)
	s.Kick()
	waitFor(t, "the write after Kick", func() bool { return len(rec.frames(t)) == 3 })
}

// BenchmarkBroadcastDeliver is the hub's side of a fan-out: one
// publication handed to 1,000 sessions, each queueing it (the sessions
// count as scheduled, so no writer runs). It reports ns per delivery.
func BenchmarkBroadcastDeliver(b *testing.B) {
	w := flow.NewWritersWith(1, flow.Coalescing{})
	env := writersEnv(b, w)
	const n = 1000
	sessions := make([]*Session, n)
	for i := range sessions {
		// The subscription keeps its own copy of the name, as one made
		// from a client's subscribe frame does.
		s, _ := recSession(b, env, string([]byte("bench:fan")))
		s.slot.Cork()
		if err := env.Hub.Subscribe(context.Background(), "bench:fan", s); err != nil {
			b.Fatal(err)
		}
		sessions[i] = s
	}
	data := protocol.RawJSON(`{"price":101.25,"sym":"ACME"}`)
	var scratch []flow.Item
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Each publication brings its own copy of the channel name.
		ch := string([]byte("bench:fan"))
		o := &node.Outgoing{Msg: protocol.NewPreparedMessage(ch, uint64(i+1), "e", data, protocol.PriorityNormal, "")}
		env.Hub.Broadcast(ch, o)
		if i%16 == 15 {
			b.StopTimer()
			for _, s := range sessions {
				s.mu.Lock()
				scratch, _ = s.queue.Pop(scratch[:0], 0, time.Now())
				clear(scratch)
				s.mu.Unlock()
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
}

// BenchmarkFlush is a session's side of a write with frames messages
// queued: queue them, then pop, encode, write (to a transport that takes
// everything) and record what was written.
func BenchmarkFlush(b *testing.B) {
	for _, frames := range []int{1, 4} {
		b.Run(strconv.Itoa(frames), func(b *testing.B) {
			w := flow.NewWritersWith(1, flow.Coalescing{})
			env := writersEnv(b, w)
			t := &sinkTransport{}
			s := New(env, t, Handshake{Codec: protocol.JSON})
			s.mu.Lock()
			s.state, s.user, s.id = stateConnected, "u", newID(8)
			s.addSubLocked(&subscription{ch: "c"})
			sub := s.subFor("c")
			s.mu.Unlock()
			data := protocol.RawJSON(`{"price":101.25,"sym":"ACME"}`)
			msgs := make([]*node.Outgoing, 1024)
			for k := range msgs {
				msgs[k] = &node.Outgoing{Msg: protocol.NewPreparedMessage("c", uint64(k+1), "e", data, protocol.PriorityNormal, "")}
			}
			var buf []byte
			next := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.mu.Lock()
				for range frames {
					if next == len(msgs) {
						next, sub.epoch, sub.offset = 0, "", 0 // start over
					}
					if err := s.queueMessageLocked(sub, msgs[next]); err != nil {
						b.Fatal(err)
					}
					next++
				}
				s.mu.Unlock()
				buf, _, _ = s.Flush(buf, 1)
			}
			if t.writes.Load() != int64(b.N) {
				b.Fatalf("%d writes for %d flushes", t.writes.Load(), b.N)
			}
		})
	}
}

func TestPipelinedFramesRepliesShareOneWrite(t *testing.T) {
	// A client that sends several frames before any answer (connect then
	// subscribes) gets the replies of the messages handled together in one
	// write, not one write per reply.
	env := writersEnv(t, flow.NewWriters(2))
	tr := &recTransport{}
	s := New(env, tr, Handshake{Codec: protocol.JSON, Token: "t", Claims: &auth.Claims{Subject: "u"}})
	s.HandleMessages([][]byte{
		[]byte(`{"type":"connect","id":1}`),
		[]byte(`{"type":"subscribe","id":2,"channel":"room:a"}`),
		[]byte(`{"type":"subscribe","id":3,"channel":"room:b"}`),
	})
	waitFor(t, "the replies", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.sends) > 0
	})
	env.Writers.Close() // no more writes: what was sent is all there is
	if got := tr.frames(t); len(got) != 1 || got[0] != 3 {
		t.Fatalf("frames per write = %v, want [3] (connected and two subscribed in one write): %q", got, tr.sends)
	}
}
