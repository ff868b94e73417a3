package brokertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ferry-io/ferry/broker"
)

func testDelivery(t *testing.T, s *suite) {
	const publishers, each = 4, 100
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	ctx := context.Background()
	if err := n.b.Subscribe(ctx, ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	// A channel the node did not subscribe to gets no deliveries.
	quiet := s.name("quiet")
	publish(t, n.b, quiet, `{}`, keep)

	var mu sync.Mutex
	sent := make(map[uint64]string) // offset -> data
	var wg sync.WaitGroup
	for g := range publishers {
		wg.Go(func() {
			for i := range each {
				data := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				res, err := n.b.Publish(ctx, ch, broker.Publication{Data: []byte(data), From: "u"}, keep)
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				sent[res.Offset] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	last, err := n.b.Publish(ctx, ch, broker.Publication{Data: []byte(`{"last":true}`), From: "u"}, keep)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	sent[last.Offset] = `{"last":true}`

	got := waitReceived(t, n, ch, publishers*each+1)
	if len(got) != publishers*each+1 {
		t.Fatalf("received %d publications, want %d (duplicates?)", len(got), publishers*each+1)
	}
	checkRun(t, "deliveries", got, 1, last.Epoch)
	for _, p := range got {
		if p.Channel != ch || string(p.Data) != sent[p.Offset] || p.From != "u" || p.Time <= 0 {
			t.Fatalf("delivered %+v, want channel %s, data %s, from u", p, ch, sent[p.Offset])
		}
	}
	if q := n.rec.received(quiet); len(q) != 0 {
		t.Fatalf("received %d publications of a channel never subscribed", len(q))
	}
}

func testSubscribeRefcount(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	ctx := context.Background()
	sub := func() {
		t.Helper()
		if err := n.b.Subscribe(ctx, ch); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	unsub := func() {
		t.Helper()
		if err := n.b.Unsubscribe(ctx, ch); err != nil {
			t.Fatalf("Unsubscribe: %v", err)
		}
	}

	sub()
	sub()
	publish(t, n.b, ch, `{"n":1}`, keep)
	waitReceived(t, n, ch, 1)
	unsub() // one subscription left
	publish(t, n.b, ch, `{"n":2}`, keep)
	waitReceived(t, n, ch, 2)
	unsub() // none left
	publish(t, n.b, ch, `{"n":3}`, keep)
	sub()
	publish(t, n.b, ch, `{"n":4}`, keep)
	// Offset 4 arriving proves offset 3 was not delivered: deliveries of a
	// channel come in offset order.
	waitFor(t, "offset 4", func() bool {
		got := n.rec.received(ch)
		return len(got) > 0 && got[len(got)-1].Offset == 4
	})
	if got := offsets(n.rec.received(ch)); !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Fatalf("delivered offsets %v, want [1 2 4] (one delivery per node however many Subscribes, none while unsubscribed)", got)
	}

	// An Unsubscribe without a Subscribe changes nothing.
	other := s.name("ch")
	if err := n.b.Unsubscribe(ctx, other); err != nil {
		t.Fatalf("Unsubscribe of a channel never subscribed: %v", err)
	}
	if err := n.b.Subscribe(ctx, other); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	publish(t, n.b, other, `{}`, keep)
	waitReceived(t, n, other, 1)
}

func testControl(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ctx := context.Background()
	send := func(c broker.Control) {
		t.Helper()
		if err := n.b.PublishControl(ctx, c); err != nil {
			t.Fatalf("PublishControl: %v", err)
		}
	}
	all := broker.Control{Kind: broker.ControlDisconnect, User: s.name("u"), Code: 4001, Reason: "banned"}
	mine := broker.Control{Node: n.id, Kind: broker.ControlEvict, User: s.name("u"), Conn: "c1", Code: 4002, Reason: "limit", Data: `{"body":"eyJ0eXBlIjoicGluZyJ9"}`}
	elsewhere := broker.Control{Node: s.name("other-node"), Kind: broker.ControlEvict, User: s.name("u"), Conn: "c2"}
	after := broker.Control{Node: n.id, Kind: broker.ControlTakeover, User: s.name("u"), Conn: "c3", Code: 4016}
	send(all)
	send(mine)
	if err := n.b.PublishControl(ctx, elsewhere); !errors.Is(err, broker.ErrNoNode) {
		t.Fatalf("PublishControl to a node nobody runs: %v, want ErrNoNode", err)
	}
	send(after)
	for _, want := range []broker.Control{all, mine, after} {
		var got []broker.Control
		waitFor(t, "control for "+want.User, func() bool {
			got = n.rec.controlsFor(want.User)
			return len(got) > 0
		})
		if len(got) != 1 || got[0] != want {
			t.Fatalf("received %+v, want exactly %+v", got, want)
		}
	}
	// "after" was sent later than "elsewhere" and has arrived.
	if got := n.rec.controlsFor(elsewhere.User); len(got) != 0 {
		t.Fatalf("received a control message addressed to another node: %+v", got)
	}
}

func testMultiNodeStream(t *testing.T, s *suite) {
	nodes := s.nodes(t, 2)
	ch := s.name("ch")
	var epoch string
	for i := 1; i <= 6; i++ {
		res := publish(t, nodes[i%2].b, ch, fmt.Sprintf(`{"i":%d}`, i), keep)
		if res.Offset != uint64(i) {
			t.Fatalf("publish %d (node %d) got offset %d", i, i%2, res.Offset)
		}
		if epoch == "" {
			epoch = res.Epoch
		} else if res.Epoch != epoch {
			t.Fatalf("nodes see different epochs: %q and %q", epoch, res.Epoch)
		}
	}
	for _, n := range nodes {
		h := history(t, n.b, ch, broker.HistoryQuery{})
		if h.Offset != 6 || h.Epoch != epoch || len(h.Messages) != 6 {
			t.Fatalf("History on %s: offset %d, epoch %q, %d messages", n.id, h.Offset, h.Epoch, len(h.Messages))
		}
		checkRun(t, "history on "+n.id, h.Messages, 1, epoch)
	}

	// Concurrent publishers on both nodes share one offset sequence.
	const perNode, each = 4, 250
	ch2 := s.name("ch")
	var mu sync.Mutex
	seen := make(map[uint64]int)
	var wg sync.WaitGroup
	for _, n := range nodes {
		for range perNode {
			wg.Go(func() {
				for range each {
					res, err := n.b.Publish(context.Background(), ch2, broker.Publication{Data: []byte(`{}`)}, keep)
					if err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
					mu.Lock()
					seen[res.Offset]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	const total = 2 * perNode * each
	for o := uint64(1); o <= total; o++ {
		if seen[o] != 1 {
			t.Fatalf("offset %d assigned %d times", o, seen[o])
		}
	}
	if len(seen) != total {
		t.Fatalf("%d distinct offsets, want %d", len(seen), total)
	}
	h := history(t, nodes[1].b, ch2, broker.HistoryQuery{})
	if len(h.Messages) != total {
		t.Fatalf("History has %d messages, want %d", len(h.Messages), total)
	}
	checkRun(t, "history", h.Messages, 1, h.Epoch)
}

func testMultiNodeDelivery(t *testing.T, s *suite) {
	nodes := s.nodes(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ch := s.name("ch")
	ctx := context.Background()
	for _, n := range []*node{b, c} {
		if err := n.b.Subscribe(ctx, ch); err != nil {
			t.Fatalf("Subscribe on %s: %v", n.id, err)
		}
	}
	const each = 200
	var wg sync.WaitGroup
	for _, n := range []*node{a, b} {
		wg.Go(func() {
			for range each {
				if _, err := n.b.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, keep); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	epoch := history(t, a.b, ch, broker.HistoryQuery{Limit: 1}).Epoch
	for _, n := range []*node{b, c} {
		got := waitReceived(t, n, ch, 2*each)
		checkRun(t, "deliveries on "+n.id, got, 1, epoch)
	}

	// a subscribes late: it gets what follows, nothing before.
	if err := a.b.Subscribe(ctx, ch); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	publish(t, b.b, ch, `{"late":true}`, keep)
	got := waitReceived(t, a, ch, 1)
	if !slices.Equal(offsets(got), []uint64{2*each + 1}) {
		t.Fatalf("late subscriber received %v, want [%d]", offsets(got), 2*each+1)
	}
	for _, n := range []*node{b, c} {
		got := waitReceived(t, n, ch, 2*each+1)
		if len(got) != 2*each+1 {
			t.Fatalf("%s received %d publications, want %d", n.id, len(got), 2*each+1)
		}
		checkRun(t, "deliveries on "+n.id, got, 1, epoch)
	}
}

func testMultiNodeControl(t *testing.T, s *suite) {
	nodes := s.nodes(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	toB := broker.Control{Node: b.id, Kind: broker.ControlRoute, User: s.name("u"), Conn: "c1", Code: 4000, Data: `{"id":"r1","body":"W3sidHlwZSI6InBpbmcifV0="}`}
	toAll := broker.Control{Kind: broker.ControlDisconnect, User: s.name("u")}
	toA := broker.Control{Node: a.id, Kind: broker.ControlTakeover, User: s.name("u"), Conn: "c2"}
	for _, c := range []broker.Control{toB, toAll} {
		if err := a.b.PublishControl(ctx, c); err != nil {
			t.Fatalf("PublishControl: %v", err)
		}
	}
	if err := b.b.PublishControl(ctx, toA); err != nil {
		t.Fatalf("PublishControl: %v", err)
	}
	expect := func(n *node, c broker.Control) {
		t.Helper()
		var got []broker.Control
		waitFor(t, fmt.Sprintf("control %s on %s", c.Kind, n.id), func() bool {
			got = n.rec.controlsFor(c.User)
			return len(got) > 0
		})
		if len(got) != 1 || got[0] != c {
			t.Fatalf("%s received %+v, want exactly %+v", n.id, got, c)
		}
	}
	expect(b, toB)
	expect(a, toAll)
	expect(b, toAll)
	expect(a, toA)
	// Each node has now received a message sent after the ones addressed
	// to the other node.
	if got := a.rec.controlsFor(toB.User); len(got) != 0 {
		t.Fatalf("%s received a control for %s: %+v", a.id, b.id, got)
	}
	if err := a.b.PublishControl(ctx, broker.Control{Node: b.id, Kind: broker.ControlDisconnect, User: toA.User}); err != nil {
		t.Fatalf("PublishControl: %v", err)
	}
	waitFor(t, "second control on "+b.id, func() bool { return len(b.rec.controlsFor(toA.User)) == 1 })
	if got := b.rec.controlsFor(toA.User); got[0].Kind != broker.ControlDisconnect {
		t.Fatalf("%s received a control for %s: %+v", b.id, a.id, got)
	}
}

func testMultiNodeIdempotency(t *testing.T, s *suite) {
	nodes := s.nodes(t, 2)
	ch := s.name("ch")
	opts := keep
	opts.IdempotencyKey = "k"
	opts.IdempotencyWindow = 60e9
	const each = 5
	var mu sync.Mutex
	var results []broker.PublishResult
	var wg sync.WaitGroup
	for _, n := range nodes {
		for range each {
			wg.Go(func() {
				res, err := n.b.Publish(context.Background(), ch, broker.Publication{Data: []byte(`{}`)}, opts)
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	fresh := 0
	for _, r := range results {
		if !r.Duplicate {
			fresh++
		}
		if r.Offset != 1 || r.Epoch != results[0].Epoch {
			t.Fatalf("results disagree: %+v", results)
		}
	}
	if fresh != 1 || len(results) != 2*each {
		t.Fatalf("%d fresh publishes of %d, want 1: %+v", fresh, len(results), results)
	}
}
