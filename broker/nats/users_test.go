package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/natstest"
)

func TestUserHeadCodec(t *testing.T) {
	h := userHead{N: 300, Front: []frontEntry{{Conn: "a", Since: -5}, {Conn: "", Since: 0}, {Conn: "conn-ü", Since: 1 << 50}},
		Gen: 1<<64 - 1, Chunks: 9, Next: 3, Off: 7, W: frontEntry{Conn: "w", Since: 77}, Dirty: true}
	var got userHead
	if err := got.unmarshal(h.marshal()); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if !slices.Equal(got.Front, h.Front) {
		t.Fatalf("round trip = %+v, want %+v", got, h)
	}
	if got.N != h.N || got.Gen != h.Gen || got.Chunks != h.Chunks || got.Next != h.Next || got.Off != h.Off || got.W != h.W || got.Dirty != h.Dirty {
		t.Fatalf("round trip = %+v, want %+v", got, h)
	}
	for _, bad := range [][]byte{nil, {0x80}, {1, 2}, {1, 2, 5, 'a'}} {
		if err := new(userHead).unmarshal(bad); !errors.Is(err, errMalformed) {
			t.Errorf("unmarshal(%v) = %v, want errMalformed", bad, err)
		}
	}
}

func TestUserHeadFront(t *testing.T) {
	var h userHead
	for i := range frontSize + 5 {
		h.add(frontEntry{Conn: fmt.Sprint("c", i), Since: int64(100 + i)})
	}
	if h.N != frontSize+5 || len(h.Front) != frontSize || h.Front[0].Since != 100 || h.Front[frontSize-1].Since != 100+frontSize-1 {
		t.Fatalf("after adds: N %d, front %+v", h.N, h.Front)
	}
	h.add(frontEntry{Conn: "old", Since: 1}) // older than the front's newest: goes in, the newest out
	if h.Front[0].Conn != "old" || len(h.Front) != frontSize || h.Front[frontSize-1].Since != 100+frontSize-2 {
		t.Fatalf("after an older add: %+v", h.Front)
	}
	h.remove("old")
	h.remove("not-in-front")
	if h.N != frontSize+4 || len(h.Front) != frontSize-1 || h.Front[0].Conn != "c0" {
		t.Fatalf("after removes: N %d, front %+v", h.N, h.Front)
	}
}

// TestUserHeadDirty: a connection that falls in the range the chunks
// cover, but not in the front, cannot be placed: the head is marked for a
// rebuild; a newer one can stay out.
func TestUserHeadDirty(t *testing.T) {
	h := userHead{N: 100, Chunks: 2, W: frontEntry{Conn: "w", Since: 500}}
	for i := range frontSize {
		h.Front = append(h.Front, frontEntry{Conn: fmt.Sprint("c", i), Since: int64(i)})
	}
	h.add(frontEntry{Conn: "newer", Since: 600})
	if h.Dirty || h.N != 101 || len(h.Front) != frontSize {
		t.Fatalf("after a newer add: %+v", h)
	}
	h.add(frontEntry{Conn: "inside", Since: 400})
	if !h.Dirty {
		t.Fatal("a connection inside the chunks' range did not mark the head")
	}
	h.Dirty = false
	h.add(frontEntry{Conn: "oldest", Since: -1}) // into the front, pushing one out while chunks are left
	if !h.Dirty || h.Front[0].Conn != "oldest" {
		t.Fatalf("pushing out of a full front with chunks left: %+v", h)
	}
}

// startUsers returns brokers on srv urls (node i on urls[i%len]).
func startUsers(t *testing.T, urls []string, replicas, nodes int) []*Broker {
	t.Helper()
	var out []*Broker
	for i := range nodes {
		b, err := New(t.Context(), Config{URL: urls[i%len(urls)], NodeID: fmt.Sprint("n", i), Replicas: replicas, Timeout: testTimeout})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		out = append(out, b)
	}
	return out
}

func conns(refs []broker.ConnRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Conn
	}
	return out
}

// TestUsersFrontUsedUp: when the oldest connections (more than the front
// holds) disconnected, the head is rebuilt from the records and the
// eviction still names the oldest remaining, in order; a connection older
// than all the others added later is named first.
func TestUsersFrontUsedUp(t *testing.T) {
	b := startUsers(t, []string{natstest.Start(t).URL()}, 1, 1)[0]
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)
	const n = frontSize + 20
	for i := range n {
		ref := broker.ConnRef{Conn: fmt.Sprintf("c%03d", i), Node: "n0", Since: t0.Add(time.Duration(i) * time.Millisecond)}
		if _, err := b.AddUserConn(ctx, "u", ref, time.Minute, 0); err != nil {
			t.Fatalf("AddUserConn: %v", err)
		}
	}
	for i := range frontSize + 5 {
		if err := b.RemoveUserConn(ctx, "u", fmt.Sprintf("c%03d", i)); err != nil {
			t.Fatalf("RemoveUserConn: %v", err)
		}
	}
	// 15 left (c037..c051); one more with keep 12: the 4 oldest go.
	got, err := b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "new", Node: "n0", Since: t0.Add(time.Hour)}, time.Minute, 12)
	if want := []string{"c037", "c038", "c039", "c040"}; err != nil || !slices.Equal(conns(got), want) {
		t.Fatalf("AddUserConn after the front was used up = %v, %v; want %v", conns(got), err, want)
	}
	got, err = b.AddUserConn(ctx, "u", broker.ConnRef{Conn: "older", Node: "n0", Since: t0.Add(-time.Hour)}, time.Minute, 16)
	if want := []string{"older"}; err != nil || !slices.Equal(conns(got), want) {
		t.Fatalf("AddUserConn of the oldest = %v, %v; want %v", conns(got), err, want)
	}
}

// TestUsersManyExpired: more records than one batch expire at once (a
// node died): they are neither counted nor named.
func TestUsersManyExpired(t *testing.T) {
	b := startUsers(t, []string{natstest.Start(t).URL()}, 1, 1)[0]
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)
	for i := range expireBatch + 20 {
		ref := broker.ConnRef{Conn: fmt.Sprintf("dead%03d", i), Node: "gone", Since: t0}
		if _, err := b.AddUserConn(ctx, "u", ref, 300*time.Millisecond, 0); err != nil {
			t.Fatalf("AddUserConn: %v", err)
		}
	}
	expiredBy := time.Now().Add(300 * time.Millisecond)
	// Expiry is decided by this process's clock against the times written
	// in the records: once it passed, one call must see them all gone.
	time.Sleep(time.Until(expiredBy.Add(time.Millisecond)))
	live := broker.ConnRef{Conn: "live", Node: "n0", Since: t0.Add(time.Second)}
	got, err := b.AddUserConn(ctx, "u", live, time.Minute, 1)
	if err != nil || len(got) != 0 {
		t.Fatalf("AddUserConn after expiry = %d named, %v; want none", len(got), err)
	}
	h, _, err := b.readHead(ctx, "u")
	if err != nil || h.N != 1 || len(h.Front) != 1 || h.Front[0].Conn != "live" {
		t.Fatalf("head = %+v, %v; want live alone", h, err)
	}
}

// TestUsersConcurrentCluster: connects and disconnects of one user on
// three nodes, each on another server of a cluster, at once: the count
// stays exact.
func TestUsersConcurrentCluster(t *testing.T) {
	c := natstest.StartCluster(t)
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	nodes := startUsers(t, urls, 3, 3)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)
	const per = 8
	run := func(fn func(b *Broker, id string) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(nodes)*per)
		for k, b := range nodes {
			for i := range per {
				wg.Go(func() { errs <- fn(b, fmt.Sprintf("c%d-%d", k, i)) })
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	run(func(b *Broker, id string) error {
		_, err := b.AddUserConn(ctx, "u", broker.ConnRef{Conn: id, Node: b.cfg.NodeID, Since: t0}, time.Minute, 0)
		return err
	})
	if h, _, err := nodes[0].readHead(ctx, "u"); err != nil || h.N != len(nodes)*per {
		t.Fatalf("head after concurrent connects = %+v, %v; want N %d", h, err, len(nodes)*per)
	}
	run(func(b *Broker, id string) error { return b.RemoveUserConn(ctx, "u", id) })
	got, err := nodes[1].AddUserConn(ctx, "u", broker.ConnRef{Conn: "last", Node: "n1", Since: t0}, time.Minute, 1)
	if err != nil || len(got) != 0 {
		t.Fatalf("AddUserConn after concurrent disconnects = %v, %v; want none", conns(got), err)
	}
	if h, _, err := nodes[2].readHead(ctx, "u"); err != nil || h.N != 1 {
		t.Fatalf("head after concurrent disconnects = %+v, %v; want N 1", h, err)
	}
}

// TestUsersChurnAtLimit: a user at its limit whose evicted connections
// leave one by one: each connect names exactly the oldest, and the head is
// rebuilt from a listing about once per the connections the last rebuild
// listed, not once per front's worth.
func TestUsersChurnAtLimit(t *testing.T) {
	b := startUsers(t, []string{natstest.Start(t).URL()}, 1, 1)[0]
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)
	const limit, rounds = 150, 250
	name := func(i int) string { return fmt.Sprintf("c%04d", i) }
	add := func(i, keep int) []broker.ConnRef {
		t.Helper()
		ref := broker.ConnRef{Conn: name(i), Node: "n0", Since: t0.Add(time.Duration(i) * time.Millisecond)}
		got, err := b.AddUserConn(ctx, "u", ref, time.Minute, keep)
		if err != nil {
			t.Fatalf("AddUserConn: %v", err)
		}
		return got
	}
	for i := range limit {
		add(i, 0)
	}
	for r := range rounds {
		i := limit + r
		got := add(i, limit)
		if len(got) != 1 || got[0].Conn != name(r) || got[0].Node != "n0" {
			t.Fatalf("round %d: AddUserConn named %v, want [%s]", r, conns(got), name(r))
		}
		if err := b.RemoveUserConn(ctx, "u", name(r)); err != nil {
			t.Fatalf("RemoveUserConn: %v", err)
		}
	}
	// The front's 32, then a rebuild listing 150 that lasts 150 rounds,
	// then one more: 2. Once per front's worth would be 7.
	t.Logf("%d rebuilds in %d rounds at a limit of %d", b.userRebuilds.Load(), rounds, limit)
	if n := b.userRebuilds.Load(); n > 3 {
		t.Errorf("%d rebuilds in %d rounds", n, rounds)
	}
	h, _, err := b.readHead(ctx, "u")
	if err != nil || h.N != limit {
		t.Fatalf("head = N %d, %v; want %d", h.N, err, limit)
	}
}

// TestUsersChunks: the front is refilled from the chunks of the last
// rebuild, skipping connections gone since; a connection added out of
// order into the chunks' range makes the next refill a rebuild, whose
// order includes it.
func TestUsersChunks(t *testing.T) {
	b := startUsers(t, []string{natstest.Start(t).URL()}, 1, 1)[0]
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)
	ref := func(conn string, ms int) broker.ConnRef {
		return broker.ConnRef{Conn: conn, Node: "n0", Since: t0.Add(time.Duration(ms) * time.Millisecond)}
	}
	add := func(r broker.ConnRef, keep int) []string {
		t.Helper()
		got, err := b.AddUserConn(ctx, "u", r, time.Minute, keep)
		if err != nil {
			t.Fatalf("AddUserConn: %v", err)
		}
		return conns(got)
	}
	remove := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := b.RemoveUserConn(ctx, "u", fmt.Sprintf("c%03d", i)); err != nil {
				t.Fatalf("RemoveUserConn: %v", err)
			}
		}
	}
	var want []string
	span := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("c%03d", i))
		}
		return out
	}
	for i := range 100 {
		add(ref(fmt.Sprintf("c%03d", i), i), 0)
	}
	remove(0, 32) // the front, used up
	if got, want := add(ref("x1", 1000), 60), span(32, 41); !slices.Equal(got, want) {
		t.Fatalf("after the front was used up: %v, want %v", got, want)
	}
	remove(32, 71) // the rebuilt front, and 7 of the first chunk
	if got, want := add(ref("x2", 2000), 25), span(71, 77); !slices.Equal(got, want) {
		t.Fatalf("from the chunks: %v, want %v", got, want)
	}
	if n := b.userRebuilds.Load(); n != 1 {
		t.Fatalf("%d rebuilds, want 1 (the refill reads the chunk)", n)
	}
	add(ref("c080m", 80), 0)    // out of order, into the front
	add(ref("inrange", 999), 0) // out of order, into the chunks' range
	want = append(span(71, 81), "c080m")
	want = append(append(want, span(81, 100)...), "inrange", "x1")
	if got := add(ref("x2", 0), 1); !slices.Equal(got, want) {
		t.Fatalf("after out-of-order adds: %v, want %v", got, want)
	}
	if n := b.userRebuilds.Load(); n != 2 {
		t.Fatalf("%d rebuilds, want 2", n)
	}
}
