package brokertest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

func sortedPresence(in []broker.PresenceInfo) []broker.PresenceInfo {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b broker.PresenceInfo) int { return strings.Compare(a.Conn, b.Conn) })
	return out
}

func presence(t testing.TB, p broker.Presence, ch string) []broker.PresenceInfo {
	t.Helper()
	got, err := p.Presence(context.Background(), ch)
	if err != nil {
		t.Fatalf("Presence: %v", err)
	}
	return sortedPresence(got)
}

func testPresence(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	p := capability[broker.Presence](t, n)
	ctx := context.Background()
	ch := s.name("ch")
	if got := presence(t, p, ch); len(got) != 0 {
		t.Fatalf("Presence of an empty channel = %+v", got)
	}
	infos := []broker.PresenceInfo{
		{User: "u1", Conn: "c1", Node: n.id},
		{User: "u2", Conn: "c2", Node: n.id},
		{User: "u1", Conn: "c3", Node: "elsewhere"},
	}
	for _, in := range infos {
		if err := p.AddPresence(ctx, ch, in, time.Minute); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
	}
	// Adding again refreshes, it does not duplicate.
	if err := p.AddPresence(ctx, ch, infos[0], time.Minute); err != nil {
		t.Fatalf("AddPresence: %v", err)
	}
	if got := presence(t, p, ch); !slices.Equal(got, infos) {
		t.Fatalf("Presence = %+v, want %+v", got, infos)
	}
	if err := p.RemovePresence(ctx, ch, "c2"); err != nil {
		t.Fatalf("RemovePresence: %v", err)
	}
	if err := p.RemovePresence(ctx, ch, "never-added"); err != nil {
		t.Fatalf("RemovePresence of an unknown conn: %v", err)
	}
	want := []broker.PresenceInfo{infos[0], infos[2]}
	if got := presence(t, p, ch); !slices.Equal(got, want) {
		t.Fatalf("after remove Presence = %+v, want %+v", got, want)
	}
	if got := presence(t, p, s.name("ch")); len(got) != 0 {
		t.Fatalf("Presence of another channel = %+v", got)
	}
}

func testPresenceExpiry(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	p := capability[broker.Presence](t, n)
	ctx := context.Background()
	ch := s.name("ch")
	stays := broker.PresenceInfo{User: "u1", Conn: "c1", Node: n.id}
	goes := broker.PresenceInfo{User: "u2", Conn: "c2", Node: n.id}
	if err := p.AddPresence(ctx, ch, stays, time.Minute); err != nil {
		t.Fatalf("AddPresence: %v", err)
	}
	if err := p.AddPresence(ctx, ch, goes, 200*time.Millisecond); err != nil {
		t.Fatalf("AddPresence: %v", err)
	}
	waitFor(t, "presence entry to expire", func() bool {
		got := presence(t, p, ch)
		if !slices.Contains(got, stays) {
			t.Fatalf("entry with a long ttl is gone: %+v", got)
		}
		return !slices.Contains(got, goes)
	})
}

// addUserConn adds ref and returns the connections AddUserConn names for
// eviction with keep.
func addUserConn(t testing.TB, u broker.Users, user string, ref broker.ConnRef, ttl time.Duration, keep int) []string {
	t.Helper()
	got, err := u.AddUserConn(context.Background(), user, ref, ttl, keep)
	if err != nil {
		t.Fatalf("AddUserConn: %v", err)
	}
	conns := make([]string, len(got))
	for i, r := range got {
		conns[i] = r.Conn
		if r.Conn == ref.Conn && r.Node != ref.Node {
			t.Fatalf("AddUserConn returned %+v for %+v", r, ref)
		}
	}
	return conns
}

func testUsers(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	u := capability[broker.Users](t, n)
	ctx := context.Background()
	user := s.name("user")
	// Millisecond precision: engines may not keep more.
	t0 := time.Now().Truncate(time.Millisecond)
	ref := func(conn string, since time.Duration) broker.ConnRef {
		return broker.ConnRef{Conn: conn, Node: n.id, Since: t0.Add(since)}
	}
	steps := []struct {
		ref  broker.ConnRef
		keep int
		want []string
	}{
		{ref("c1", 0), 1, nil},
		{ref("c2", time.Second), 1, []string{"c1"}},
		{ref("c0", -time.Second), 1, []string{"c0", "c1"}},  // oldest first, by Since
		{ref("c1", 0), 1, []string{"c0", "c1"}},             // again: no duplicate
		{ref("c1", 5*time.Second), 1, []string{"c0", "c1"}}, // again: keeps its first Since
		{ref("c1", 0), 2, []string{"c0"}},
		{ref("c1", 0), 3, nil},
		{ref("c1", 0), 0, nil}, // no limit
	}
	for _, st := range steps {
		if got := addUserConn(t, u, user, st.ref, time.Minute, st.keep); !slices.Equal(got, st.want) {
			t.Fatalf("AddUserConn(%s, keep %d) = %v, want %v", st.ref.Conn, st.keep, got, st.want)
		}
	}
	got, err := u.AddUserConn(ctx, user, ref("c2", time.Second), time.Minute, 2)
	if err != nil || len(got) != 1 || got[0].Conn != "c0" || !got[0].Since.Equal(t0.Add(-time.Second)) || got[0].Node != n.id {
		t.Fatalf("AddUserConn(keep 2) = %+v, %v; want c0 with its Since and Node", got, err)
	}
	if err := u.RemoveUserConn(ctx, user, "c1"); err != nil {
		t.Fatalf("RemoveUserConn: %v", err)
	}
	if err := u.RemoveUserConn(ctx, user, "never-added"); err != nil {
		t.Fatalf("RemoveUserConn of an unknown conn: %v", err)
	}
	if got := addUserConn(t, u, user, ref("c3", 2*time.Second), time.Minute, 1); !slices.Equal(got, []string{"c0", "c2"}) {
		t.Fatalf("after remove AddUserConn = %v, want [c0 c2]", got)
	}
	other := s.name("user")
	if got := addUserConn(t, u, other, ref("c9", 0), time.Minute, 1); len(got) != 0 {
		t.Fatalf("another user's AddUserConn = %v, want none", got)
	}
}

func testUsersExpiry(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	u := capability[broker.Users](t, n)
	user := s.name("user")
	t0 := time.Now().Truncate(time.Millisecond)
	addUserConn(t, u, user, broker.ConnRef{Conn: "short", Node: n.id, Since: t0}, 200*time.Millisecond, 1)
	long := broker.ConnRef{Conn: "long", Node: n.id, Since: t0.Add(time.Millisecond)}
	if got := addUserConn(t, u, user, long, time.Minute, 1); !slices.Equal(got, []string{"short"}) {
		t.Fatalf("AddUserConn = %v, want [short]", got)
	}
	// The count is exact: an expired connection is neither counted nor
	// named.
	waitFor(t, "user connection to expire", func() bool {
		return len(addUserConn(t, u, user, long, time.Minute, 1)) == 0
	})
}

func testKV(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	kv := capability[broker.KV](t, n)
	ctx := context.Background()
	key := s.name("key")

	if _, err := kv.Get(ctx, key); !isNotFound(err) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	val := []byte("value-1")
	if err := kv.Set(ctx, key, val, time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	val[0] = 'X' // the store keeps its own copy
	got, err := kv.Get(ctx, key)
	if err != nil || string(got) != "value-1" {
		t.Fatalf("Get = %q, %v; want value-1", got, err)
	}
	got[0] = 'Y' // and hands out copies
	if got, _ := kv.Get(ctx, key); string(got) != "value-1" {
		t.Fatalf("Get after changing a returned value = %q", got)
	}
	if err := kv.Set(ctx, key, []byte("value-2"), time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, err := kv.Get(ctx, key); err != nil || string(got) != "value-2" {
		t.Fatalf("Get after overwrite = %q, %v", got, err)
	}
	if err := kv.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := kv.Get(ctx, key); !isNotFound(err) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := kv.Delete(ctx, key); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}

	if err := kv.Set(ctx, key, []byte("ticket"), time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, err := kv.Take(ctx, key); err != nil || string(got) != "ticket" {
		t.Fatalf("Take = %q, %v; want ticket", got, err)
	}
	if _, err := kv.Take(ctx, key); !isNotFound(err) {
		t.Fatalf("second Take: %v, want ErrNotFound", err)
	}
	if _, err := kv.Get(ctx, key); !isNotFound(err) {
		t.Fatalf("Get after Take: %v, want ErrNotFound", err)
	}

	empty := s.name("key")
	if err := kv.Set(ctx, empty, nil, time.Minute); err != nil {
		t.Fatalf("Set of an empty value: %v", err)
	}
	if got, err := kv.Get(ctx, empty); err != nil || len(got) != 0 {
		t.Fatalf("Get of an empty value = %q, %v", got, err)
	}
}

func testKVConcurrentTake(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	kv := capability[broker.KV](t, n)
	ctx := context.Background()
	for round := range 5 {
		key := s.name("key")
		if err := kv.Set(ctx, key, []byte("prize"), time.Minute); err != nil {
			t.Fatalf("Set: %v", err)
		}
		const takers = 16
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners, losers := 0, 0
		for range takers {
			wg.Go(func() {
				v, err := kv.Take(ctx, key)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && string(v) == "prize":
					winners++
				case errors.Is(err, broker.ErrNotFound):
					losers++
				default:
					t.Errorf("Take = %q, %v", v, err)
				}
			})
		}
		wg.Wait()
		if winners != 1 || losers != takers-1 {
			t.Fatalf("round %d: %d winners and %d losers of %d Takes, want exactly one winner", round, winners, losers, takers)
		}
	}
}

func testKVExpiry(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	kv := capability[broker.KV](t, n)
	ctx := context.Background()
	short, long := s.name("key"), s.name("key")
	if err := kv.Set(ctx, long, []byte("l"), time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := kv.Set(ctx, short, []byte("s"), 200*time.Millisecond); err != nil {
		t.Fatalf("Set: %v", err)
	}
	waitFor(t, "key to expire", func() bool {
		_, err := kv.Get(ctx, short)
		if err != nil && !isNotFound(err) {
			t.Fatalf("Get: %v", err)
		}
		return isNotFound(err)
	})
	if _, err := kv.Take(ctx, short); !isNotFound(err) {
		t.Fatalf("Take of an expired key: %v, want ErrNotFound", err)
	}
	if got, err := kv.Get(ctx, long); err != nil || string(got) != "l" {
		t.Fatalf("Get of the long-lived key = %q, %v", got, err)
	}
}

func testMultiNodeCapabilities(t *testing.T, s *suite) {
	nodes := s.nodes(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()

	t.Run("Presence", func(t *testing.T) {
		pa, pb := capability[broker.Presence](t, a), capability[broker.Presence](t, b)
		ch := s.name("ch")
		ia := broker.PresenceInfo{User: "u1", Conn: "ca", Node: a.id}
		ib := broker.PresenceInfo{User: "u2", Conn: "cb", Node: b.id}
		if err := pa.AddPresence(ctx, ch, ia, time.Minute); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
		if err := pb.AddPresence(ctx, ch, ib, time.Minute); err != nil {
			t.Fatalf("AddPresence: %v", err)
		}
		want := []broker.PresenceInfo{ia, ib}
		for _, p := range []broker.Presence{pa, pb} {
			if got := presence(t, p, ch); !slices.Equal(got, want) {
				t.Fatalf("Presence = %+v, want %+v", got, want)
			}
		}
		if err := pb.RemovePresence(ctx, ch, "ca"); err != nil {
			t.Fatalf("RemovePresence: %v", err)
		}
		if got := presence(t, pa, ch); !slices.Equal(got, want[1:]) {
			t.Fatalf("Presence after remove on the other node = %+v", got)
		}
	})
	t.Run("Users", func(t *testing.T) {
		ua, ub := capability[broker.Users](t, a), capability[broker.Users](t, b)
		user := s.name("user")
		t0 := time.Now().Truncate(time.Millisecond)
		addUserConn(t, ua, user, broker.ConnRef{Conn: "ca", Node: a.id, Since: t0}, time.Minute, 1)
		got, err := ub.AddUserConn(ctx, user, broker.ConnRef{Conn: "cb", Node: b.id, Since: t0.Add(time.Millisecond)}, time.Minute, 1)
		if err != nil {
			t.Fatalf("AddUserConn: %v", err)
		}
		if len(got) != 1 || got[0].Conn != "ca" || got[0].Node != a.id {
			t.Fatalf("AddUserConn on the second node = %+v", got)
		}
	})
	t.Run("KV", func(t *testing.T) {
		ka, kb := capability[broker.KV](t, a), capability[broker.KV](t, b)
		key := s.name("key")
		if err := ka.Set(ctx, key, []byte("v"), time.Minute); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if got, err := kb.Take(ctx, key); err != nil || string(got) != "v" {
			t.Fatalf("Take on the other node = %q, %v", got, err)
		}
		if _, err := ka.Get(ctx, key); !isNotFound(err) {
			t.Fatalf("Get after Take on the other node: %v, want ErrNotFound", err)
		}
	})
}
