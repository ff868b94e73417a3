package node

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeConn is a connection as the registry sees it.
type fakeConn struct {
	id     string
	next   *fakeConn
	closed int // close code, 0 while open
	link   SweepLink[*fakeConn]

	// What Sweep reports: the next check after the one made (zero: the
	// connection ended), and what it does during the check.
	after  time.Duration
	ended  bool
	during func()
	swept  []time.Time // when Sweep ran
}

func (c *fakeConn) ConnID() string                   { return c.id }
func (c *fakeConn) UserLink() **fakeConn             { return &c.next }
func (c *fakeConn) Close(code int, _ string)         { c.closed = code }
func (c *fakeConn) QueueLen() int                    { return 1 }
func (c *fakeConn) SweepLink() *SweepLink[*fakeConn] { return &c.link }
func (c *fakeConn) Sweep(now time.Time) (time.Time, func(context.Context)) {
	c.swept = append(c.swept, now)
	if c.during != nil {
		c.during()
	}
	if c.ended {
		return time.Time{}, nil
	}
	return now.Add(c.after), nil
}

func TestRegistryByUser(t *testing.T) {
	r := NewRegistry[*fakeConn]()
	n := 0
	open := func(user string) *fakeConn {
		n++
		c := &fakeConn{id: "c" + strconv.Itoa(n)}
		r.Add(c)
		r.Connected(c, user)
		return c
	}
	a1, a2, a3, b1 := open("alice"), open("alice"), open("alice"), open("bob")
	same := func(got []*fakeConn, want ...*fakeConn) bool {
		return len(got) == len(want) && !slices.ContainsFunc(want, func(c *fakeConn) bool { return !slices.Contains(got, c) })
	}
	if got := r.ByUser("alice"); !same(got, a1, a2, a3) {
		t.Fatalf("ByUser(alice) = %v", got)
	}
	if r.Count() != 4 || r.QueueDepth() != 4 {
		t.Fatalf("Count %d, QueueDepth %d, want 4 and 4", r.Count(), r.QueueDepth())
	}
	steps := []struct {
		remove *fakeConn
		alice  []*fakeConn
	}{
		{a2, []*fakeConn{a1, a3}}, // the middle of the chain
		{a3, []*fakeConn{a1}},     // its head (the last connected)
		{a1, nil},                 // the last one
	}
	for _, st := range steps {
		r.Remove(st.remove, "alice", true)
		if got := r.ByUser("alice"); !same(got, st.alice...) {
			t.Fatalf("after removing %s: ByUser(alice) = %v, want %v", st.remove.id, got, st.alice)
		}
		if _, ok := r.ByConn(st.remove.id); ok {
			t.Fatalf("removed connection %s still found by id", st.remove.id)
		}
		if st.remove.next != nil {
			t.Fatalf("removed connection %s still linked", st.remove.id)
		}
	}
	if _, ok := r.shard("alice").byUser["alice"]; ok {
		t.Fatal("a user without connections keeps an entry")
	}
	if got := r.ByUser("bob"); !same(got, b1) {
		t.Fatalf("ByUser(bob) = %v", got)
	}
	if closed := r.CloseUser("bob", 4001, "bye"); closed != 1 || b1.closed != 4001 {
		t.Fatalf("CloseUser(bob) closed %d, code %d", closed, b1.closed)
	}
	r.CloseConn("nobody", 4002, "") // an unknown connection is not an error
}

func TestRegistrySweepVisitsWhatIsDue(t *testing.T) {
	r := NewRegistry[*fakeConn]()
	t0 := time.Unix(1_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// The wheel visits a connection at the second after its next check.
	slow := &fakeConn{id: "slow", after: 10 * time.Second}
	fast := &fakeConn{id: "fast", after: 0}
	ended := &fakeConn{id: "ended", ended: true}
	gone := &fakeConn{id: "gone", after: time.Second}
	woken := &fakeConn{id: "woken", after: 30 * time.Second}
	far := &fakeConn{id: "far", after: time.Hour}
	all := []*fakeConn{slow, fast, ended, gone, woken, far}
	for _, c := range all {
		r.Add(c)
	}
	// A connection woken while the sweep has it is checked again at the
	// next second, whatever it said its next check was.
	wokenInSweep := &fakeConn{id: "woken-in-sweep", after: 30 * time.Second}
	wokenInSweep.during = func() {
		if len(wokenInSweep.swept) == 1 {
			r.Wake(wokenInSweep)
		}
	}
	r.Add(wokenInSweep)
	all = append(all, wokenInSweep)

	for s := 0; s <= 20; s++ {
		switch s {
		case 3:
			r.Remove(gone, "", false)
		case 5:
			r.Wake(woken)
		}
		r.Sweep(context.Background(), at(s))
	}
	seconds := func(c *fakeConn) []int {
		var out []int
		for _, w := range c.swept {
			out = append(out, int(w.Sub(t0)/time.Second))
		}
		return out
	}
	want := map[*fakeConn][]int{
		slow:         {0, 10, 20},                                                                // every 10 s
		fast:         {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, // at the latest the next sweep
		ended:        {0},                                                                        // never again
		gone:         {0, 1, 2},                                                                  // removed before its check at 3
		woken:        {0, 5},                                                                     // woken before the sweep at 5
		far:          {0},                                                                        // at the horizon, later
		wokenInSweep: {0, 1},
	}
	for _, c := range all {
		if got := seconds(c); !slices.Equal(got, want[c]) {
			t.Errorf("%s swept at seconds %v, want %v", c.id, got, want[c])
		}
	}
	// Only the connections due at the next sweep are asked for their
	// queue (a connection with frames queued is): fast, and woken-in-sweep
	// was due at 31, woken at 35, far at 63.
	if n := r.QueueDepth(); n != 1 {
		t.Errorf("QueueDepth = %d, want 1 (fast's)", n)
	}
	// A gap longer than the wheel (a stalled node, or a clock that
	// jumped) checks every connection still registered.
	for _, c := range all {
		c.swept = nil
	}
	r.Sweep(context.Background(), at(500))
	for _, c := range []*fakeConn{slow, fast, woken, far, wokenInSweep} {
		if len(c.swept) != 1 {
			t.Errorf("%s swept %d times after a gap, want 1", c.id, len(c.swept))
		}
	}
	if len(ended.swept)+len(gone.swept) != 0 {
		t.Errorf("an ended or removed connection was swept after the gap")
	}
}

func TestRegistryWheelUnderConcurrency(t *testing.T) {
	// Connections are added, woken and removed while sweeps run; after
	// it, every registered connection is in exactly the slot of its due
	// second and every removed one is in none.
	r := NewRegistry[*fakeConn]()
	t0 := time.Unix(2_000_000, 0)
	const n = 400
	conns := make([]*fakeConn, n)
	for i := range conns {
		conns[i] = &fakeConn{id: "c" + strconv.Itoa(i), after: time.Duration(i%40) * time.Second}
		r.Add(conns[i])
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i = (i + 7) % n {
				select {
				case <-stop:
					return
				default:
				}
				if i%50 == 3 {
					r.Remove(conns[i], "", false)
				} else {
					r.Wake(conns[i])
				}
			}
		})
	}
	for s := range 200 { // fakeConn.swept is only touched here, by Sweep
		r.Sweep(context.Background(), t0.Add(time.Duration(s)*time.Second))
	}
	close(stop)
	wg.Wait()
	where := map[*fakeConn]int64{}
	for i := range r.shards {
		sh := &r.shards[i]
		for slot, c := range sh.slots {
			for ; c != nil; c = c.link.next {
				if _, twice := where[c]; twice {
					t.Fatalf("%s is in two slots", c.id)
				}
				where[c] = int64(slot)
				if c.link.next != nil && c.link.next.link.prev != c {
					t.Fatalf("%s: broken back link", c.id)
				}
			}
		}
	}
	for i, c := range conns {
		d := c.link.due.Load()
		slot, placed := where[c]
		switch {
		case i%50 == 3:
			if placed || d != dueNone {
				t.Errorf("removed %s: due %d, in a slot: %v", c.id, d, placed)
			}
		case !placed || d <= 0 || d%wheelSlots != slot:
			t.Errorf("%s: due %d, in slot %d (placed: %v)", c.id, d, slot, placed)
		}
	}
}
