package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
)

// BenchmarkPublish measures Publish against a local redis-server: one
// publisher at a time, and many at once (which rueidis pipelines on shared
// connections), with and without history.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	br := newBroker(b, Config{URL: srv.URL(), NodeID: "bench"})
	ctx := context.Background()
	p := broker.Publication{Data: []byte(`{"text":"hello, world","n":12345}`), From: "user-1"}
	variants := []struct {
		name string
		opts broker.PublishOptions
	}{
		{"history", broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}},
		{"no-history", broker.PublishOptions{}},
		{"idempotent", broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Minute, IdempotencyKey: "set-below"}},
	}
	for _, v := range variants {
		b.Run(v.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			opts := v.opts
			for i := 0; b.Loop(); i++ {
				if opts.IdempotencyKey != "" {
					opts.IdempotencyKey = fmt.Sprint(i)
				}
				if _, err := br.Publish(ctx, "bench-serial", p, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(v.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16) // 16 publishers per CPU
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				ch := fmt.Sprintf("bench-%d", seq.Add(1)%32)
				opts := v.opts
				for pb.Next() {
					if opts.IdempotencyKey != "" {
						opts.IdempotencyKey = fmt.Sprint(seq.Add(1))
					}
					if _, err := br.Publish(ctx, ch, p, opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDelivery measures publish-to-handler throughput on one node
// subscribed to the channels it publishes to.
func BenchmarkDelivery(b *testing.B) {
	srv := redistest.Start(b)
	var got atomic.Int64
	br := newBroker(b, Config{URL: srv.URL(), NodeID: "bench"})
	if err := br.Start(context.Background(), countingHandler{&got}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range 32 {
		if err := br.Subscribe(ctx, fmt.Sprintf("bench-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	p := broker.Publication{Data: []byte(`{"text":"hello, world","n":12345}`)}
	b.ReportAllocs()
	b.SetParallelism(16)
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		ch := fmt.Sprintf("bench-%d", seq.Add(1)%32)
		for pb.Next() {
			if _, err := br.Publish(ctx, ch, p, broker.PublishOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	want := int64(b.N)
	waitFor(b, "every delivery", func() bool { return got.Load() >= want })
}

type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) HandlePublication(*broker.Publication) { h.n.Add(1) }
func (h countingHandler) HandleControl(broker.Control)          {}

func BenchmarkDecodePublication(b *testing.B) {
	p := broker.Publication{Data: []byte(`{"text":"hello, world","n":12345}`), Conflate: "k", From: "user-1"}
	msg := element(123456, "0123456789abcdef", 1700000000000, &p)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodePublication("chat:room", msg); err != nil {
			b.Fatal(err)
		}
	}
}
