package rabbitmq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/rabbittest"
)

// BenchmarkPublish measures Publish against a local RabbitMQ node: one
// publisher at a time (a request round trip plus a stream confirm each),
// and many at once on channels spread over the shards.
func BenchmarkPublish(b *testing.B) {
	srv := rabbittest.Start(b)
	br, err := New(b.Context(), Config{URL: srv.URL(), NodeID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(context.Background(), nopHandler{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	ctx := context.Background()
	p := broker.Publication{Data: []byte(`{"text":"hello, world","n":12345}`), From: "user-1"}
	opts := broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := br.Publish(ctx, "bench-serial", p, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			ch := fmt.Sprintf("bench-%d", seq.Add(1)%32)
			for pb.Next() {
				if _, err := br.Publish(ctx, ch, p, opts); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
