package nats

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/natstest"
)

// appendWithoutFanOut appends to ch's stream as Publish does but sends no
// fan-out copy, as when the copy is lost on its way.
func appendWithoutFanOut(t *testing.T, b *Broker, ch string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	stream, err := b.channelStream(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	subj := b.names.chanSubj + token(ch)
	tl, err := b.readTail(ctx, stream, subj)
	if err != nil {
		t.Fatal(err)
	}
	e := entry{pub: broker.Publication{Channel: ch, Offset: tl.offset + 1, Epoch: tl.epoch, Data: []byte(`{"lost":true}`), Time: time.Now().UnixMilli()}, prev: tl.seq, size: 100}
	msg := &nats.Msg{Subject: subj, Header: e.header(), Data: e.pub.Data}
	if _, err := b.casPublish(ctx, msg, tl.seq, fmt.Sprintf("%s:%d", token(ch), e.pub.Offset)); err != nil {
		t.Fatal(err)
	}
}

// TestGapFilledFromStream: when the fan-out copies of some publications
// never arrive, a subscribed node gets them from the stream as soon as a
// later publication shows the gap, in offset order, each once.
func TestGapFilledFromStream(t *testing.T) {
	srv := natstest.Start(t)
	newNode := func(h broker.Handler) *Broker {
		b, err := New(t.Context(), Config{URL: srv.URL(), Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if err := b.Start(t.Context(), h); err != nil {
			t.Fatal(err)
		}
		return b
	}
	got := &collector{}
	sub, pub := newNode(got), newNode(&collector{})
	ctx := context.Background()
	const ch = "gappy"
	opts := broker.PublishOptions{HistorySize: 100}
	if _, err := pub.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, opts); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, opts); err != nil { // offset 2
		t.Fatal(err)
	}
	appendWithoutFanOut(t, pub, ch) // 3
	appendWithoutFanOut(t, pub, ch) // 4
	last, err := pub.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if last.Offset != 5 {
		t.Fatalf("last publish got offset %d, want 5", last.Offset)
	}
	poll(t, "offset 5 delivered", func() bool {
		g := got.got(ch)
		return len(g) > 0 && g[len(g)-1] == 5
	})
	if g := got.got(ch); !slices.Equal(g, []uint64{2, 3, 4, 5}) {
		t.Fatalf("delivered %v, want [2 3 4 5] (1 was before Subscribe)", g)
	}
}
