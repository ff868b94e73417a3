package brokertest

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// scaleSlack is how many more bytes per call the caller may allocate with
// the large connection count than with the small one. A list returned or
// copied per call costs tens of bytes per connection, so at 10,000
// connections it overshoots this by orders of magnitude.
const scaleSlack = 1024

// UsersScale checks that the per-user bookkeeping costs the same per call
// whatever the number of connections the user already has: it fills one
// user with small connections and another with large, then compares the
// bytes the process allocates per connect+disconnect (AddUserConn with a
// limit not reached, then RemoveUserConn), per refresh (AddUserConn of a
// known connection, keep 0) and per connect over the limit (one eviction
// named). Allocation is counted, not time, so a loaded machine does not
// change the outcome. It also checks that the eviction names exactly the
// oldest connection.
//
// It is not part of Run: it needs the process to itself (no parallel
// subtests allocating meanwhile), so an engine calls it from a test of its
// own (every engine in this repository does: memory, Redis, RabbitMQ and
// NATS).
func UsersScale(t *testing.T, u broker.Users, small, large int) {
	t.Helper()
	prefix := "scale-" + randomHex(4)
	var costs [2][3]float64
	for k, n := range []int{small, large} {
		costs[k] = usersCost(t, u, fmt.Sprintf("%s-%d", prefix, n), n)
	}
	names := []string{"connect+disconnect", "refresh", "connect over the limit"}
	for i, name := range names {
		s, l := costs[0][i], costs[1][i]
		t.Logf("%s: %.0f B/call with %d connections, %.0f with %d", name, s, small, l, large)
		if l > s*1.5+scaleSlack {
			t.Errorf("%s costs %.0f B/call with %d connections of one user, %.0f with %d: it grows with the count", name, l, large, s, small)
		}
	}
}

// usersCost fills user with n connections and returns the bytes allocated
// per call of each kind UsersScale compares.
func usersCost(t *testing.T, u broker.Users, user string, n int) [3]float64 {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond).Add(-time.Hour)
	conns := make([]string, n)
	for i := range conns {
		conns[i] = fmt.Sprintf("c%07d", i)
		ref := broker.ConnRef{Conn: conns[i], Node: "n", Since: t0.Add(time.Duration(i) * time.Millisecond)}
		if _, err := u.AddUserConn(ctx, user, ref, time.Minute, 0); err != nil {
			t.Fatalf("AddUserConn: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, c := range conns {
			_ = u.RemoveUserConn(context.Background(), user, c)
		}
	})
	const runs = 200
	fresh := make([]string, runs)
	for i := range fresh {
		fresh[i] = fmt.Sprintf("x%07d", i)
	}
	newer := t0.Add(time.Duration(n+1) * time.Millisecond)
	var out [3]float64
	out[0] = bytesPerCall(runs, func(i int) {
		evict, err := u.AddUserConn(ctx, user, broker.ConnRef{Conn: fresh[i], Node: "n", Since: newer}, time.Minute, n+1)
		if err != nil || len(evict) != 0 {
			t.Fatalf("AddUserConn under the limit = %v, %v", evict, err)
		}
		if err := u.RemoveUserConn(ctx, user, fresh[i]); err != nil {
			t.Fatalf("RemoveUserConn: %v", err)
		}
	})
	out[1] = bytesPerCall(runs, func(i int) {
		if _, err := u.AddUserConn(ctx, user, broker.ConnRef{Conn: conns[i%n], Node: "n"}, time.Minute, 0); err != nil {
			t.Fatalf("AddUserConn (refresh): %v", err)
		}
	})
	out[2] = bytesPerCall(runs, func(i int) {
		evict, err := u.AddUserConn(ctx, user, broker.ConnRef{Conn: fresh[i], Node: "n", Since: newer}, time.Minute, n)
		if err != nil || len(evict) != 1 || evict[0].Conn != conns[0] || !evict[0].Since.Equal(t0) {
			t.Fatalf("AddUserConn over the limit = %+v, %v; want only %s", evict, err, conns[0])
		}
		if err := u.RemoveUserConn(ctx, user, fresh[i]); err != nil {
			t.Fatalf("RemoveUserConn: %v", err)
		}
	})
	return out
}

// bytesPerCall runs fn runs times and returns the bytes the process
// allocated per run.
func bytesPerCall(runs int, fn func(i int)) float64 {
	fn(0) // warm up: lazily made buffers, a script loaded once
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range runs {
		fn(i)
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(runs)
}
