package flow

import (
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/wait"
)

// fakeConn is a connection as the writer pool sees it: frames queued, and
// the number of frames each write carried.
type fakeConn struct {
	slot   Slot
	mu     sync.Mutex
	queued int
	writes []int
}

func (c *fakeConn) Slot() *Slot { return &c.slot }

func (c *fakeConn) Flush(buf []byte, now int64) ([]byte, int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queued == 0 {
		return buf, 0, 0
	}
	n := c.queued
	c.queued = 0
	c.writes = append(c.writes, n)
	c.slot.Wrote(now, false)
	return buf, 1, n
}

// queue adds a frame without scheduling.
func (c *fakeConn) queue() {
	c.mu.Lock()
	c.queued++
	c.mu.Unlock()
}

// frames returns the frames each write carried so far.
func (c *fakeConn) frames() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.writes...)
}

func (w *Writers) laterLen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.later) - w.lhead
}

// expireLater makes every delayed connection due and runs the timer's work.
func (w *Writers) expireLater() {
	w.mu.Lock()
	for i := w.lhead; i < len(w.later); i++ {
		w.later[i].due = 0
	}
	w.mu.Unlock()
	w.release()
}

// windowConn is a connection on a pool of n writers held at a one-hour
// coalescing window (no tuning), already written once, so that what it is
// given next waits for the window.
func windowConn(t *testing.T, n int) (*Writers, *fakeConn) {
	t.Helper()
	w := NewWritersWith(n, Coalescing{})
	t.Cleanup(w.Close)
	w.window.Store(int64(time.Hour))
	c := &fakeConn{}
	// Never written: no window to wait for.
	c.queue()
	w.Schedule(c)
	wait.For(t, "the first write", func() bool { return len(c.frames()) == 1 })
	return w, c
}

func TestWritersWindowGathersMessagesIntoOneWrite(t *testing.T) {
	w, c := windowConn(t, 1)

	// Written just now: what follows waits for the window.
	for range 4 {
		c.queue()
		w.Schedule(c)
	}
	wait.For(t, "the connection to wait for its window", func() bool { return w.laterLen() == 1 })
	if n := len(c.frames()); n != 1 {
		t.Fatalf("%d writes before the window ended, want 1", n)
	}

	w.expireLater()
	wait.For(t, "the second write", func() bool { return len(c.frames()) == 2 })
	if got := c.frames(); got[0] != 1 || got[1] != 4 {
		t.Fatalf("frames per write %v, want [1 4]", got)
	}
	if !c.slot.Written() {
		t.Fatal("lastWrite not recorded")
	}
}

func TestWritersNoWindowWritesEachMessage(t *testing.T) {
	w := NewWritersWith(1, Coalescing{})
	defer w.Close()
	c := &fakeConn{}
	for i := 1; i <= 3; i++ {
		c.queue()
		w.Schedule(c)
		wait.For(t, "a write", func() bool { return len(c.frames()) == i })
	}
	if n := w.laterLen(); n != 0 {
		t.Fatalf("%d connections delayed without a window", n)
	}
}

func TestWriteNowDespiteTheWindow(t *testing.T) {
	w, c := windowConn(t, 1)
	// Queued without scheduling, as when a write stopped on a full
	// transport: WriteNow (the transport drained) must not wait for the
	// window.
	c.queue()
	w.WriteNow(c)
	wait.For(t, "the write", func() bool { return len(c.frames()) == 2 })
	if n := w.laterLen(); n != 0 {
		t.Fatalf("%d connections delayed after WriteNow", n)
	}
}

func TestWritersCloseWithDelayedConnections(t *testing.T) {
	w, c := windowConn(t, 2)
	c.queue()
	w.Schedule(c)
	wait.For(t, "the delayed connection", func() bool { return w.laterLen() == 1 })
	w.Close()
	if n := w.laterLen(); n != 0 {
		t.Fatalf("Close left %d delayed connections", n)
	}
	w.release() // a timer that fired during Close does nothing
	if n := len(c.frames()); n != 1 {
		t.Fatalf("%d writes after Close, want 1", n)
	}
}

func TestReplyDoesNotWaitForTheWindow(t *testing.T) {
	// Under load the pool holds a connection back for its coalescing
	// window, but a reply to the client's request goes out at once, with
	// whatever was queued, and the connection is written once.
	w, c := windowConn(t, 1)
	c.queue()
	w.Schedule(c)
	wait.For(t, "the delivery to wait for its window", func() bool { return w.laterLen() == 1 })
	c.queue()
	w.Reply(c)
	wait.For(t, "the reply", func() bool { return len(c.frames()) == 2 })
	if got := c.frames(); got[1] != 2 {
		t.Fatalf("frames per write %v, want [1 2] (the waiting delivery and the reply)", got)
	}
	// The window's end finds the connection promoted: no second queueing.
	w.expireLater()
	c.queue()
	w.Schedule(c)
	wait.For(t, "the third delivery to wait", func() bool { return w.laterLen() == 1 })
	if n := len(c.frames()); n != 2 {
		t.Fatalf("%d writes, want 2 (the stale delayed entry must not write the connection again)", n)
	}
}

func TestSlotCork(t *testing.T) {
	w := NewWritersWith(1, Coalescing{})
	defer w.Close()
	c := &fakeConn{}
	if !c.slot.Cork() {
		t.Fatal("Cork of an unscheduled connection failed")
	}
	c.queue()
	w.Schedule(c) // corked: not queued
	if c.slot.Cork() {
		t.Fatal("Cork twice succeeded")
	}
	if !c.slot.Uncork() {
		t.Fatal("Uncork after Cork failed")
	}
	if n := len(c.frames()); n != 0 {
		t.Fatalf("%d writes while corked", n)
	}
	w.WriteNow(c)
	wait.For(t, "the write after Uncork", func() bool { return len(c.frames()) == 1 })
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
		{"over budget, few connections", 0, 100 * time.Millisecond, 5000, 2, 0},
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
	defer w.Close()
	c := &fakeConn{}
	wait.For(t, "a window under load", func() bool {
		c.queue()
		w.Schedule(c)
		w.expireLater()
		return w.Window() > 0
	})
	if len(c.frames()) == 0 {
		t.Fatal("nothing written")
	}
	wait.For(t, "no window once idle", func() bool {
		w.expireLater()
		w.tune(w.now())
		return w.Window() == 0
	})
}
