package node

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"
)

// fakeConn is a connection as the registry sees it.
type fakeConn struct {
	id     string
	next   *fakeConn
	closed int // close code, 0 while open
}

func (c *fakeConn) ConnID() string                        { return c.id }
func (c *fakeConn) UserLink() **fakeConn                  { return &c.next }
func (c *fakeConn) Close(code int, _ string)              { c.closed = code }
func (c *fakeConn) QueueLen() int                         { return 1 }
func (c *fakeConn) Sweep(time.Time) func(context.Context) { return nil }

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
