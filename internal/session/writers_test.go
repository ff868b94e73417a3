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
func writersEnv(tb testing.TB, w *Writers) *Env {
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
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (w *Writers) laterLen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.later) - w.lhead
}

// expireLater makes every delayed session due and runs the timer's work.
func (w *Writers) expireLater() {
	w.mu.Lock()
	for i := w.lhead; i < len(w.later); i++ {
		w.later[i].due = 0
	}
	w.mu.Unlock()
	w.release()
}

// windowSession is a session on a pool of n writers held at a one-hour
// coalescing window (no tuning), already written once (offset 1), so that
// what it is sent next waits for the window.
func windowSession(t *testing.T, n int) (*Writers, *Session, *recTransport) {
	t.Helper()
	w := NewWritersWith(n, Coalescing{})
	w.window.Store(int64(time.Hour))
	s, rec := recSession(t, writersEnv(t, w), "c")
	// Never written: no window to wait for.
	s.Deliver("c", message("c", 1))
	waitFor(t, "the first write", func() bool { return len(rec.frames(t)) == 1 })
	return w, s, rec
}

func TestWritersWindowGathersMessagesIntoOneWrite(t *testing.T) {
	w, s, rec := windowSession(t, 1)

	// Written just now: what follows waits for the window.
	for off := uint64(2); off <= 5; off++ {
		s.Deliver("c", message("c", off))
	}
	waitFor(t, "the session to wait for its window", func() bool { return w.laterLen() == 1 })
	s.mu.Lock()
	queued := s.queue.Len()
	s.mu.Unlock()
	if queued != 4 {
		t.Fatalf("queued %d messages while waiting, want 4", queued)
	}
	if n := len(rec.frames(t)); n != 1 {
		t.Fatalf("%d writes before the window ended, want 1", n)
	}

	w.expireLater()
	waitFor(t, "the second write", func() bool { return len(rec.frames(t)) == 2 })
	if got := rec.frames(t); got[0] != 1 || got[1] != 4 {
		t.Fatalf("frames per write %v, want [1 4]", got)
	}
	if v := s.lastWrite.Load(); v == 0 {
		t.Fatal("lastWrite not recorded")
	}
}

func TestWritersNoWindowWritesEachMessage(t *testing.T) {
	w := NewWritersWith(1, Coalescing{})
	env := writersEnv(t, w)
	s, rec := recSession(t, env, "c")
	for off := uint64(1); off <= 3; off++ {
		s.Deliver("c", message("c", off))
		want := int(off)
		waitFor(t, "a write", func() bool { return len(rec.frames(t)) == want })
	}
	if n := w.laterLen(); n != 0 {
		t.Fatalf("%d sessions delayed without a window", n)
	}
}

func TestKickWritesAtOnceDespiteTheWindow(t *testing.T) {
	w, s, rec := windowSession(t, 1)

	// Queued without scheduling, as when a write stopped on a full
	// transport: Kick (the transport drained) must not wait for the window.
	s.mu.Lock()
	err := s.queueMessageLocked(s.subFor("c"), message("c", 2))
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s.Kick()
	waitFor(t, "the kicked write", func() bool { return len(rec.frames(t)) == 2 })
	if n := w.laterLen(); n != 0 {
		t.Fatalf("%d sessions delayed after Kick", n)
	}
}

func TestFlushStopsOnABackloggedTransport(t *testing.T) {
	w := NewWritersWith(1, Coalescing{})
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
	waitFor(t, "the writer to let the session go", func() bool { return !s.scheduled.Load() })
	if n := len(rec.frames(t)); n != 2 {
		t.Fatalf("%d writes to a backlogged transport, want 2", n)
	}

	// The transport drained and says so.
	rec.set(0)
	s.Kick()
	waitFor(t, "the write after Kick", func() bool { return len(rec.frames(t)) == 3 })
}

func TestWritersCloseWithDelayedSessions(t *testing.T) {
	w, s, rec := windowSession(t, 2)
	s.Deliver("c", message("c", 2))
	waitFor(t, "the delayed session", func() bool { return w.laterLen() == 1 })
	w.Close()
	if n := w.laterLen(); n != 0 {
		t.Fatalf("Close left %d delayed sessions", n)
	}
	w.release() // a timer that fired during Close does nothing
	if n := len(rec.frames(t)); n != 1 {
		t.Fatalf("%d writes after Close, want 1", n)
	}
}

func TestWritersTune(t *testing.T) {
	const budget = 10000
	maxW := 40 * time.Millisecond
	tests := []struct {
		name    string
		cur     time.Duration
		elapsed time.Duration
		frames  int64
		active  int64
		want    time.Duration
	}{
		{"idle", 0, 100 * time.Millisecond, 0, 0, 0},
		{"under budget", 0, 100 * time.Millisecond, 900, 500, 0},
		{"over budget: N/budget", 0, 100 * time.Millisecond, 2000, 200, 20 * time.Millisecond},
		{"capped", 0, 100 * time.Millisecond, 50000, 1000, maxW},
		{"rise at once", 5 * time.Millisecond, 100 * time.Millisecond, 2000, 300, 30 * time.Millisecond},
		{"fall by halves", 30 * time.Millisecond, 100 * time.Millisecond, 500, 300, 15 * time.Millisecond},
		{"small window is none", 900 * time.Microsecond, 100 * time.Millisecond, 100, 300, 0},
		{"over budget, few sessions", 0, 100 * time.Millisecond, 5000, 2, 0},
		{"period not over", 10 * time.Millisecond, 50 * time.Millisecond, 0, 0, 10 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &Writers{budget: budget, maxWindow: int64(maxW)}
			w.window.Store(int64(tc.cur))
			w.period.Store(1)
			w.frames.Store(tc.frames)
			w.active.Store(tc.active)
			w.tune(1 + int64(tc.elapsed))
			got := w.Window()
			if d := got - tc.want; d > time.Microsecond || d < -time.Microsecond {
				t.Fatalf("window %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWritersTuneFollowsLoad(t *testing.T) {
	// The pool under load, then idle: the window opens and closes again.
	w := NewWritersWith(1, Coalescing{WriteBudget: 10, MaxWindow: time.Second})
	env := writersEnv(t, w)
	s, rec := recSession(t, env, "c")
	off := uint64(0)
	waitFor(t, "a window under load", func() bool {
		off++
		s.Deliver("c", message("c", off))
		w.expireLater()
		return w.Window() > 0
	})
	if len(rec.frames(t)) == 0 {
		t.Fatal("nothing written")
	}
	waitFor(t, "no window once idle", func() bool {
		w.expireLater()
		w.tune(w.now())
		return w.Window() == 0
	})
}

// BenchmarkBroadcastDeliver is the hub's side of a fan-out: one
// publication handed to 1,000 sessions, each queueing it (the sessions
// count as scheduled, so no writer runs). It reports ns per delivery.
func BenchmarkBroadcastDeliver(b *testing.B) {
	w := NewWritersWith(1, Coalescing{})
	env := writersEnv(b, w)
	const n = 1000
	sessions := make([]*Session, n)
	for i := range sessions {
		// The subscription keeps its own copy of the name, as one made
		// from a client's subscribe frame does.
		s, _ := recSession(b, env, string([]byte("bench:fan")))
		s.scheduled.Store(true)
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
			w := NewWritersWith(1, Coalescing{})
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
				buf, _, _ = s.flush(buf, 1)
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
	env := writersEnv(t, NewWriters(2))
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

func TestReplyDoesNotWaitForTheWindow(t *testing.T) {
	// Under load the pool holds a session back for its coalescing window,
	// but a reply to the client's request (here a pong) goes out at once,
	// with whatever was queued, and the session is written once.
	w, s, rec := windowSession(t, 1)
	s.Deliver("c", message("c", 2))
	waitFor(t, "the delivery to wait for its window", func() bool { return w.laterLen() == 1 })
	s.HandleMessage([]byte(`{"type":"ping","id":7}`))
	waitFor(t, "the pong", func() bool { return len(rec.frames(t)) == 2 })
	if got := rec.frames(t); got[1] != 2 {
		t.Fatalf("frames per write %v, want [1 2] (the waiting delivery and the pong)", got)
	}
	// The window's end finds the session promoted: no second queueing.
	w.expireLater()
	s.Deliver("c", message("c", 3))
	waitFor(t, "the third delivery to wait", func() bool { return w.laterLen() == 1 })
	if n := len(rec.frames(t)); n != 2 {
		t.Fatalf("%d writes, want 2 (the stale delayed entry must not write the session again)", n)
	}
}
