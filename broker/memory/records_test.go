package memory

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// recordBytes is the live heap n connections' records take: a user
// connection, a presence entry and a session snapshot in the KV, as a node
// keeps them for every idle connection.
func recordBytes(tb testing.TB, n int) float64 {
	tb.Helper()
	b := New(Config{NodeID: "node-a"})
	defer func() { _ = b.Close() }()
	ctx := context.Background()
	users := make([]string, n)
	conns := make([]string, n)
	keys := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("user-%06d", i)
		conns[i] = fmt.Sprintf("conn-%011d", i)
		keys[i] = fmt.Sprintf("ferry:session:sess-%011d", i)
	}
	snapshot := make([]byte, 136)
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	since := time.Now()
	for i := range users {
		if _, err := b.AddUserConn(ctx, users[i], broker.ConnRef{Conn: conns[i], Node: "node-a", Since: since}, time.Minute, 0); err != nil {
			tb.Fatal(err)
		}
		if err := b.AddPresence(ctx, fmt.Sprint("room:", i%100), broker.PresenceInfo{User: users[i], Conn: conns[i], Node: "node-a"}, time.Minute); err != nil {
			tb.Fatal(err)
		}
		if err := b.Set(ctx, keys[i], snapshot, time.Minute); err != nil {
			tb.Fatal(err)
		}
	}
	after := heap()
	for i := range users {
		if _, err := b.AddUserConn(ctx, users[i], broker.ConnRef{Conn: conns[i], Node: "node-a"}, time.Minute, 0); err != nil {
			tb.Fatal(err)
		}
		// Added again without a Since, the connection kept its own.
		refs, err := b.AddUserConn(ctx, users[i], broker.ConnRef{Conn: "newer", Node: "node-a", Since: since.Add(time.Second)}, time.Minute, 1)
		if err != nil || len(refs) != 1 || refs[0].Conn != conns[i] || !refs[0].Since.Equal(since) {
			tb.Fatalf("user %s: AddUserConn = %+v, %v", users[i], refs, err)
		}
	}
	return float64(int64(after)-int64(before)) / float64(n)
}

// BenchmarkConnectionRecords reports the bytes of broker records per idle
// connection (bytes/conn): the snapshot's value, 136 bytes, included.
func BenchmarkConnectionRecords(b *testing.B) {
	var per float64
	for i := 0; i < b.N; i++ {
		per = recordBytes(b, 10000)
	}
	b.ReportMetric(per, "bytes/conn")
}
