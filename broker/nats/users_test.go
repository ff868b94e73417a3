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
	h := userHead{N: 300, Front: []frontEntry{{Conn: "a", Since: -5}, {Conn: "", Since: 0}, {Conn: "conn-ü", Since: 1 << 50}}}
	var got userHead
	if err := got.unmarshal(h.marshal()); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if got.N != h.N || !slices.Equal(got.Front, h.Front) {
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
