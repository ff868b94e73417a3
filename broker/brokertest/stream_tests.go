package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// keep is history options that retain everything a test publishes.
var keep = broker.PublishOptions{HistorySize: 10000, HistoryTTL: time.Hour}

func testOffsets(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	var epoch string
	for i := 1; i <= 5; i++ {
		p := broker.Publication{
			Data:     fmt.Appendf(nil, `{"i":%d}`, i),
			Priority: uint8(i % 3),
			Conflate: fmt.Sprintf("k%d", i),
			From:     "user-a",
		}
		res, err := n.b.Publish(context.Background(), ch, p, keep)
		if err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		if res.Offset != uint64(i) {
			t.Fatalf("publish %d got offset %d", i, res.Offset)
		}
		if res.Duplicate {
			t.Fatalf("publish %d reported Duplicate", i)
		}
		if res.Epoch == "" {
			t.Fatalf("publish %d got an empty epoch", i)
		}
		if i == 1 {
			epoch = res.Epoch
		} else if res.Epoch != epoch {
			t.Fatalf("epoch changed from %q to %q within one stream", epoch, res.Epoch)
		}
	}

	h := history(t, n.b, ch, broker.HistoryQuery{})
	if h.Offset != 5 || h.Epoch != epoch || !h.Complete {
		t.Fatalf("History position = (%d, %q, complete=%v), want (5, %q, true)", h.Offset, h.Epoch, h.Complete, epoch)
	}
	checkRun(t, "history", h.Messages, 1, epoch)
	if len(h.Messages) != 5 {
		t.Fatalf("History returned %d messages, want 5", len(h.Messages))
	}
	for i, m := range h.Messages {
		want := broker.Publication{
			Channel:  ch,
			Offset:   uint64(i + 1),
			Epoch:    epoch,
			Data:     fmt.Appendf(nil, `{"i":%d}`, i+1),
			Priority: uint8((i + 1) % 3),
			Conflate: fmt.Sprintf("k%d", i+1),
			From:     "user-a",
		}
		if m.Time <= 0 {
			t.Errorf("message %d has Time %d, want unix milliseconds", i, m.Time)
		}
		want.Time = m.Time
		if !samePublication(m, want) {
			t.Errorf("message %d = %+v, want %+v", i, m, want)
		}
	}

	// Another channel has a stream of its own.
	other := publish(t, n.b, s.name("ch"), `{}`, keep)
	if other.Offset != 1 {
		t.Fatalf("first publish on a second channel got offset %d, want 1", other.Offset)
	}
}

func samePublication(a, b broker.Publication) bool {
	return a.Channel == b.Channel && a.Offset == b.Offset && a.Epoch == b.Epoch &&
		bytes.Equal(a.Data, b.Data) && a.Priority == b.Priority && a.Conflate == b.Conflate &&
		a.From == b.From && a.Time == b.Time
}

func testConcurrentPublishers(t *testing.T, s *suite) {
	const publishers, each = 8, 500
	n := s.node(t, s.name("node"))
	ch := s.name("ch")

	got := make([][]uint64, publishers) // offsets each publisher received, in its order
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for g := range publishers {
		wg.Go(func() {
			for i := range each {
				data := fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)
				res, err := n.b.Publish(context.Background(), ch, broker.Publication{Data: data}, keep)
				if err != nil {
					errs <- err
					return
				}
				got[g] = append(got[g], res.Offset)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}

	seen := make(map[uint64]bool, publishers*each)
	for g, offs := range got {
		for i, o := range offs {
			if seen[o] {
				t.Fatalf("offset %d assigned twice", o)
			}
			seen[o] = true
			if i > 0 && o <= offs[i-1] {
				t.Fatalf("publisher %d: offset %d after %d (one publisher's messages must keep their order)", g, o, offs[i-1])
			}
		}
	}
	for o := uint64(1); o <= publishers*each; o++ {
		if !seen[o] {
			t.Fatalf("offset %d never assigned", o)
		}
	}

	h := history(t, n.b, ch, broker.HistoryQuery{})
	if h.Offset != publishers*each || len(h.Messages) != publishers*each {
		t.Fatalf("History: offset %d with %d messages, want %d of each", h.Offset, len(h.Messages), publishers*each)
	}
	checkRun(t, "history", h.Messages, 1, h.Epoch)
	// The history holds what each publish was told: offset -> data.
	for g, offs := range got {
		for i, o := range offs {
			want := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
			if d := string(h.Messages[o-1].Data); d != want {
				t.Fatalf("message at offset %d is %s, want %s", o, d, want)
			}
		}
	}
}

func testHistorySize(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	opts := broker.PublishOptions{HistorySize: 5, HistoryTTL: time.Hour}
	var epoch string
	for i := 1; i <= 12; i++ {
		epoch = publish(t, n.b, ch, fmt.Sprintf(`{"i":%d}`, i), opts).Epoch
	}
	h := history(t, n.b, ch, broker.HistoryQuery{})
	if h.Offset != 12 || h.Epoch != epoch {
		t.Fatalf("History position = (%d, %q), want (12, %q)", h.Offset, h.Epoch, epoch)
	}
	if !slices.Equal(offsets(h.Messages), span(8, 12)) {
		t.Fatalf("History offsets = %v, want %v", offsets(h.Messages), span(8, 12))
	}
	checkRun(t, "history", h.Messages, 8, epoch)
	if string(h.Messages[0].Data) != `{"i":8}` {
		t.Fatalf("oldest retained message is %s, want {\"i\":8}", h.Messages[0].Data)
	}

	// A smaller size on a later publish applies to the whole history.
	publish(t, n.b, ch, `{"i":13}`, broker.PublishOptions{HistorySize: 2, HistoryTTL: time.Hour})
	h = history(t, n.b, ch, broker.HistoryQuery{})
	if !slices.Equal(offsets(h.Messages), span(12, 13)) {
		t.Fatalf("after shrinking to 2: offsets = %v, want [12 13]", offsets(h.Messages))
	}
}

func testHistoryZeroSize(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	var last broker.PublishResult
	for i := 1; i <= 3; i++ {
		last = publish(t, n.b, ch, `{}`, broker.PublishOptions{})
		if last.Offset != uint64(i) {
			t.Fatalf("publish %d without history got offset %d", i, last.Offset)
		}
	}
	h := history(t, n.b, ch, broker.HistoryQuery{})
	if len(h.Messages) != 0 {
		t.Fatalf("History without history size returned %d messages", len(h.Messages))
	}
	if h.Offset != 3 || h.Epoch != last.Epoch {
		t.Fatalf("History position = (%d, %q), want (3, %q)", h.Offset, h.Epoch, last.Epoch)
	}
	// Nothing retained: a client at offset 1 missed messages it cannot get.
	h = history(t, n.b, ch, broker.HistoryQuery{Since: &broker.Position{Offset: 1, Epoch: last.Epoch}})
	if h.Complete {
		t.Fatal("History since 1 with nothing retained reported Complete")
	}
	// A client at the latest offset missed nothing.
	h = history(t, n.b, ch, broker.HistoryQuery{Since: &broker.Position{Offset: 3, Epoch: last.Epoch}})
	if !h.Complete || len(h.Messages) != 0 {
		t.Fatalf("History since latest = %d messages, complete=%v; want none, complete", len(h.Messages), h.Complete)
	}
}

func testHistoryTTL(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	opts := broker.PublishOptions{HistorySize: 100, HistoryTTL: 300 * time.Millisecond}
	var epoch string
	for range 3 {
		epoch = publish(t, n.b, ch, `{}`, opts).Epoch
	}
	var h broker.HistoryResult
	waitFor(t, "history to expire", func() bool {
		h = history(t, n.b, ch, broker.HistoryQuery{})
		// Whatever is left is still a consistent suffix.
		checkRun(t, "history while expiring", h.Messages, h.Offset+1-uint64(len(h.Messages)), epoch)
		return len(h.Messages) == 0
	})
	// The stream outlives its messages: offset and epoch stay.
	if h.Offset != 3 || h.Epoch != epoch {
		t.Fatalf("after expiry History position = (%d, %q), want (3, %q)", h.Offset, h.Epoch, epoch)
	}
	h = history(t, n.b, ch, broker.HistoryQuery{Since: &broker.Position{Offset: 1, Epoch: epoch}})
	if h.Complete {
		t.Fatal("History since 1 after expiry reported Complete")
	}
	res := publish(t, n.b, ch, `{}`, broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Hour})
	if res.Offset != 4 || res.Epoch != epoch {
		t.Fatalf("publish after expiry = (%d, %q), want (4, %q)", res.Offset, res.Epoch, epoch)
	}
	h = history(t, n.b, ch, broker.HistoryQuery{})
	if !slices.Equal(offsets(h.Messages), []uint64{4}) {
		t.Fatalf("History after a new publish = %v, want [4]", offsets(h.Messages))
	}
}

func testHistoryQuery(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	var epoch string
	for i := 1; i <= 10; i++ {
		epoch = publish(t, n.b, ch, fmt.Sprintf(`{"i":%d}`, i), keep).Epoch
	}
	at := func(o uint64, e string) *broker.Position { return &broker.Position{Offset: o, Epoch: e} }
	tests := []struct {
		name     string
		q        broker.HistoryQuery
		want     []uint64
		complete bool
	}{
		{"all", broker.HistoryQuery{}, span(1, 10), true},
		{"limit", broker.HistoryQuery{Limit: 3}, span(1, 3), true},
		{"limit above count", broker.HistoryQuery{Limit: 50}, span(1, 10), true},
		{"position only", broker.HistoryQuery{Limit: -1}, nil, true},
		{"position only since", broker.HistoryQuery{Since: at(3, epoch), Limit: -1}, nil, true},
		{"since zero any epoch", broker.HistoryQuery{Since: at(0, "whatever")}, span(1, 10), true},
		{"since 3", broker.HistoryQuery{Since: at(3, epoch)}, span(4, 10), true},
		{"since 3 limit 2", broker.HistoryQuery{Since: at(3, epoch), Limit: 2}, span(4, 5), true},
		{"since 9", broker.HistoryQuery{Since: at(9, epoch)}, span(10, 10), true},
		{"since latest", broker.HistoryQuery{Since: at(10, epoch)}, nil, true},
		{"ahead of stream", broker.HistoryQuery{Since: at(11, epoch)}, nil, false},
		{"epoch mismatch", broker.HistoryQuery{Since: at(3, epoch+"-old")}, span(1, 10), false},
		{"epoch mismatch limit", broker.HistoryQuery{Since: at(3, "other"), Limit: 4}, span(1, 4), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := history(t, n.b, ch, tc.q)
			if !slices.Equal(offsets(h.Messages), tc.want) {
				t.Errorf("offsets = %v, want %v", offsets(h.Messages), tc.want)
			}
			checkRun(t, "history", h.Messages, firstOf(tc.want), epoch)
			if h.Complete != tc.complete {
				t.Errorf("Complete = %v, want %v", h.Complete, tc.complete)
			}
			if h.Offset != 10 || h.Epoch != epoch {
				t.Errorf("position = (%d, %q), want (10, %q)", h.Offset, h.Epoch, epoch)
			}
			for _, m := range h.Messages {
				if want := fmt.Sprintf(`{"i":%d}`, m.Offset); string(m.Data) != want {
					t.Errorf("message %d has data %s, want %s", m.Offset, m.Data, want)
				}
			}
		})
	}
}

func firstOf(offs []uint64) uint64 {
	if len(offs) == 0 {
		return 0
	}
	return offs[0]
}

func testHistoryOverflow(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	opts := broker.PublishOptions{HistorySize: 5, HistoryTTL: time.Hour}
	var epoch string
	for range 12 {
		epoch = publish(t, n.b, ch, `{}`, opts).Epoch
	}
	tests := []struct {
		since    uint64
		want     []uint64
		complete bool
	}{
		{since: 0, want: span(8, 12), complete: false}, // 1..7 lost: from the beginning is not complete
		{since: 2, want: span(8, 12), complete: false}, // 3..7 lost
		{since: 6, want: span(8, 12), complete: false}, // 7 lost
		{since: 7, want: span(8, 12), complete: true},  // 8 is the oldest retained
		{since: 10, want: span(11, 12), complete: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("since %d", tc.since), func(t *testing.T) {
			h := history(t, n.b, ch, broker.HistoryQuery{Since: &broker.Position{Offset: tc.since, Epoch: epoch}})
			if !slices.Equal(offsets(h.Messages), tc.want) {
				t.Fatalf("offsets = %v, want %v", offsets(h.Messages), tc.want)
			}
			if h.Complete != tc.complete {
				t.Fatalf("Complete = %v, want %v", h.Complete, tc.complete)
			}
			// What the client missed follows from offsets alone.
			missed := h.Offset - tc.since
			lost := h.Messages[0].Offset - tc.since - 1
			if missed != 12-tc.since || lost != missed-uint64(len(h.Messages)) {
				t.Fatalf("missed %d, lost %d from offsets; want %d missed and %d lost", missed, lost, 12-tc.since, 12-tc.since-uint64(len(tc.want)))
			}
		})
	}
}

func testHistoryEmptyChannel(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("never-published")
	h := history(t, n.b, ch, broker.HistoryQuery{})
	if h.Offset != 0 || h.Epoch != "" || len(h.Messages) != 0 || !h.Complete {
		t.Fatalf("History of an empty channel = %+v, want offset 0, epoch \"\", no messages, complete", h)
	}
	h = history(t, n.b, ch, broker.HistoryQuery{Since: &broker.Position{Offset: 0}})
	if !h.Complete {
		t.Fatal("History since 0 of an empty channel is not Complete")
	}
	// A client that knew an earlier stream of this channel missed history.
	h = history(t, n.b, ch, broker.HistoryQuery{Since: &broker.Position{Offset: 5, Epoch: "gone"}})
	if h.Complete || h.Offset != 0 || len(h.Messages) != 0 {
		t.Fatalf("History since an unknown stream = %+v, want offset 0, incomplete", h)
	}
}

// testHistoryConsistent reads history while publishers append: every read
// must be a contiguous run ending at the position it reports, and positions
// never go back.
func testHistoryConsistent(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	channels := []struct {
		ch   string
		opts broker.PublishOptions
	}{
		{s.name("big"), keep},
		{s.name("small"), broker.PublishOptions{HistorySize: 20, HistoryTTL: time.Hour}},
	}
	const publishers, each = 4, 250
	for _, c := range channels {
		publish(t, n.b, c.ch, `{}`, c.opts) // fixes the epoch before reading
	}
	var pubs sync.WaitGroup
	done := make(chan struct{})
	for _, c := range channels {
		for range publishers {
			pubs.Go(func() {
				for range each {
					if _, err := n.b.Publish(context.Background(), c.ch, broker.Publication{Data: []byte(`{}`)}, c.opts); err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
				}
			})
		}
	}
	go func() { pubs.Wait(); close(done) }()

	var readers sync.WaitGroup
	for _, c := range channels {
		readers.Go(func() {
			var last uint64
			var epoch string
			for reads := 0; ; reads++ {
				finished := false
				select {
				case <-done:
					finished = true
				default:
				}
				q := broker.HistoryQuery{}
				if reads%2 == 1 && last > 0 {
					q.Since = &broker.Position{Offset: last, Epoch: epoch}
				}
				h, err := n.b.History(context.Background(), c.ch, q)
				if err != nil {
					t.Errorf("History: %v", err)
					return
				}
				if epoch == "" {
					epoch = h.Epoch
				}
				if h.Epoch != epoch || h.Offset < last {
					t.Errorf("%s: position went from (%d, %q) to (%d, %q)", c.ch, last, epoch, h.Offset, h.Epoch)
					return
				}
				if k := len(h.Messages); k > 0 {
					first := h.Messages[0].Offset
					for i, m := range h.Messages {
						if m.Offset != first+uint64(i) || m.Epoch != epoch {
							t.Errorf("%s: read not contiguous: %v", c.ch, offsets(h.Messages))
							return
						}
					}
					if end := h.Messages[k-1].Offset; end > h.Offset {
						t.Errorf("%s: read ends at %d beyond reported offset %d", c.ch, end, h.Offset)
						return
					}
					if q.Since == nil && c.opts.HistorySize == keep.HistorySize && first != 1 {
						t.Errorf("%s: full read starts at %d, want 1", c.ch, first)
						return
					}
					if q.Since != nil && h.Complete && first != q.Since.Offset+1 {
						t.Errorf("%s: complete read since %d starts at %d", c.ch, q.Since.Offset, first)
						return
					}
				}
				// On the big channel nothing is ever pushed out.
				if q.Since != nil && c.opts.HistorySize == keep.HistorySize && !h.Complete {
					t.Errorf("%s: read since %d not complete", c.ch, q.Since.Offset)
					return
				}
				last = h.Offset
				if finished {
					if want := uint64(publishers*each + 1); last != want {
						t.Errorf("%s: final offset %d, want %d", c.ch, last, want)
					}
					return
				}
			}
		})
	}
	readers.Wait()
}

func testIdempotency(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	opts := keep
	opts.IdempotencyKey = "key-1"
	opts.IdempotencyWindow = time.Minute

	const tries = 10
	results := make([]broker.PublishResult, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			res, err := n.b.Publish(context.Background(), ch, broker.Publication{Data: []byte(`{"once":true}`)}, opts)
			if err != nil {
				t.Errorf("Publish: %v", err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	fresh := 0
	for _, r := range results {
		if !r.Duplicate {
			fresh++
		}
		if r.Offset != 1 || r.Epoch != results[0].Epoch || r.Epoch == "" {
			t.Fatalf("results disagree: %+v", results)
		}
	}
	if fresh != 1 {
		t.Fatalf("%d of %d publishes with one key were not duplicates, want 1: %+v", fresh, tries, results)
	}
	h := history(t, n.b, ch, broker.HistoryQuery{})
	if h.Offset != 1 || len(h.Messages) != 1 {
		t.Fatalf("History after idempotent publishes: offset %d, %d messages; want 1 and 1", h.Offset, len(h.Messages))
	}

	// A repeat later is still a duplicate of the first.
	if r := publish(t, n.b, ch, `{}`, opts); !r.Duplicate || r.Offset != 1 {
		t.Fatalf("repeat = %+v, want duplicate of offset 1", r)
	}
	// A different key publishes.
	other := opts
	other.IdempotencyKey = "key-2"
	if r := publish(t, n.b, ch, `{}`, other); r.Duplicate || r.Offset != 2 {
		t.Fatalf("publish with another key = %+v, want offset 2", r)
	}
	// No key publishes.
	if r := publish(t, n.b, ch, `{}`, keep); r.Duplicate || r.Offset != 3 {
		t.Fatalf("publish without key = %+v, want offset 3", r)
	}
	// The same key on another channel publishes there.
	if r := publish(t, n.b, s.name("ch"), `{}`, opts); r.Duplicate || r.Offset != 1 {
		t.Fatalf("same key on another channel = %+v, want offset 1", r)
	}
}

func testIdempotencyWindow(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ch := s.name("ch")
	opts := keep
	opts.IdempotencyKey = "short"
	opts.IdempotencyWindow = 300 * time.Millisecond
	first := publish(t, n.b, ch, `{}`, opts)
	if first.Duplicate || first.Offset != 1 {
		t.Fatalf("first publish = %+v", first)
	}
	var again broker.PublishResult
	waitFor(t, "the idempotency window to pass", func() bool {
		again = publish(t, n.b, ch, `{}`, opts)
		if again.Duplicate && (again.Offset != first.Offset || again.Epoch != first.Epoch) {
			t.Fatalf("duplicate = %+v, want the original %+v", again, first)
		}
		return !again.Duplicate
	})
	if again.Offset != 2 || again.Epoch != first.Epoch {
		t.Fatalf("publish after the window = %+v, want offset 2 in epoch %q", again, first.Epoch)
	}
}
