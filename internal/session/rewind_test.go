package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// pullT is a pull transport that does nothing: the test pulls.
type pullT struct{}

func (pullT) Name() string             { return "pulltest" }
func (pullT) Send([]byte) (int, error) { return 0, nil }
func (pullT) Pending() int             { return 0 }
func (pullT) Ping() error              { return nil }
func (pullT) Close(int, string)        {}
func (pullT) LastActivity() time.Time  { return time.Now() }
func (pullT) Wake()                    {}

// pullOffsets pulls what s has ready and returns the messages' offsets and
// the number of frames pulled; it notes each message's seq -> offset in
// offsetOf.
func pullOffsets(t *testing.T, s *Session, offsetOf map[uint64]uint64) (offs []uint64, frames int) {
	t.Helper()
	buf, fs := s.Pull(nil, nil, 0)
	for _, f := range fs {
		if f.Seq == 0 {
			continue
		}
		var m struct{ Offset uint64 }
		if err := json.Unmarshal(buf[f.Start:f.End], &m); err != nil {
			t.Fatal(err)
		}
		offsetOf[f.Seq] = m.Offset
		offs = append(offs, m.Offset)
	}
	return offs, len(fs)
}

// A replay page read before a rewind and queued after it (the replay
// goroutine a Pull starts, racing the Rewind of a new SSE stream) must not
// leave a gap: the rewound session replays every message after the one the
// client has, in order. The race is played step by step: the replay
// goroutine is not started (env.Go drops it) and the test reads the pages.
func TestRewindDropsStaleReplayPage(t *testing.T) {
	env, done := memoryEnv(flow.NewWriters(1))
	defer done()
	env.Limits.QueueMessages = 8
	env.Go = func(func()) {} // the test runs the replays
	ctx := context.Background()
	const ch, total = "rw:c", 60
	var epoch string
	for i := 1; i <= total; i++ {
		res, err := env.Node.Publish(ctx, node.Rules{Publish: true, HistorySize: 1000}, node.PublishArgs{Channel: ch, Data: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		epoch = res.Epoch
	}
	s := New(env, pullT{}, Handshake{Codec: protocol.JSON, Claims: &auth.Claims{Subject: "rw"}, ResumeSeq: -1})
	s.HandleMessage([]byte(`{"type":"connect","id":1}`))
	s.HandleMessage(fmt.Appendf(nil, `{"type":"subscribe","id":2,"channel":%q,"since":{"offset":0,"epoch":%q}}`, ch, epoch))

	offsetOf := map[uint64]uint64{} // seq -> offset
	// pull takes what is ready, reading the next replay page when the
	// queue is empty; it returns the messages' offsets.
	pull := func() []uint64 {
		offs, n := pullOffsets(t, s, offsetOf)
		if n == 0 {
			s.continueReplays(ctx)
		}
		return offs
	}
	var lastSeq uint64
	for i := 0; i < 100 && offsetOf[20] == 0; i++ {
		pull()
	}
	for seq := range offsetOf {
		lastSeq = max(lastSeq, seq)
	}
	if lastSeq < 20 {
		t.Fatalf("only %d messages written", lastSeq)
	}
	// The replay goroutine reads the next page...
	s.mu.Lock()
	sub := s.subFor(ch)
	due, from, gen := sub.replayDue, broker.Position{Offset: sub.replayFrom, Epoch: sub.epoch}, sub.replayGen
	s.mu.Unlock()
	if !due {
		t.Fatalf("no replay page due after %d messages (queue of 8)", lastSeq)
	}
	// ... while a new stream comes with Last-Event-ID 10: the client never
	// got seqs 11 and later.
	if err := s.Rewind(ctx, 10); err != nil {
		t.Fatal(err)
	}
	// The page read before the rewind arrives now.
	s.replayFrom(ctx, ch, sub, from, gen)
	var got []uint64
	for i := 0; i < 200; i++ {
		offs := pull()
		got = append(got, offs...)
		if len(got) > 0 && got[len(got)-1] == total {
			break
		}
	}
	want := offsetOf[10] + 1
	for _, o := range got {
		if o != want {
			t.Fatalf("after the rewind to seq 10 (offset %d): offsets %v, want %d..%d in order", offsetOf[10], got, offsetOf[10]+1, total)
		}
		want++
	}
	if want != total+1 {
		t.Fatalf("after the rewind: offsets %v, want up to %d", got, total)
	}
}

// flakyHistory is a broker whose History fails while fail is set (the
// broker unreachable for a moment: a reset link).
type flakyHistory struct {
	broker.Broker
	fail atomic.Bool
}

func (b *flakyHistory) History(ctx context.Context, ch string, q broker.HistoryQuery) (broker.HistoryResult, error) {
	if b.fail.Load() {
		return broker.HistoryResult{}, errors.New("flaky: history unavailable")
	}
	return b.Broker.History(ctx, ch, q)
}

// A rewound session whose replay page cannot be read (the broker's link
// was reset) must not go live past the messages the page was to bring:
// the client, which deduplicates by offset, would never see the hole (the
// likely cause of a long-poll client in the chaos resets row missing
// offsets 37-44, then receiving 45 on). It stays recovering and reads the
// page again.
func TestRewindReplayRetriesAfterHistoryFailure(t *testing.T) {
	env, done := memoryEnv(flow.NewWriters(1))
	defer done()
	env.Go = func(func()) {} // the test runs the replays
	flaky := &flakyHistory{Broker: env.Broker}
	env.Broker = flaky
	ctx := context.Background()
	const ch = "rw:flaky"
	rules := node.Rules{Publish: true, HistorySize: 1000}
	var epoch string
	publish := func(i int) {
		t.Helper()
		res, err := env.Node.Publish(ctx, rules, node.PublishArgs{Channel: ch, Data: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		epoch = res.Epoch
	}
	for i := 1; i <= 10; i++ {
		publish(i)
	}
	s := New(env, pullT{}, Handshake{Codec: protocol.JSON, Claims: &auth.Claims{Subject: "rw"}, ResumeSeq: -1})
	s.HandleMessage([]byte(`{"type":"connect","id":1}`))
	s.HandleMessage(fmt.Appendf(nil, `{"type":"subscribe","id":2,"channel":%q,"since":{"offset":0,"epoch":%q}}`, ch, epoch))
	offsetOf := map[uint64]uint64{} // seq -> offset
	pull := func() []uint64 {
		offs, _ := pullOffsets(t, s, offsetOf)
		return offs
	}
	if got := pull(); len(got) != 10 {
		t.Fatalf("first pull: offsets %v, want 1..10", got)
	}
	var seq3 uint64
	for seq, off := range offsetOf {
		if off == 3 {
			seq3 = seq
		}
	}
	// The client got up to offset 3 only; the replay from there fails.
	flaky.fail.Store(true)
	if err := s.Rewind(ctx, seq3); err != nil {
		t.Fatal(err)
	}
	// A live message comes meanwhile, and the replay is tried again while
	// the broker still fails.
	// (Delivered as the hub would: this node runs no broker consumer.)
	publish(11)
	res, err := flaky.Broker.History(ctx, ch, broker.HistoryQuery{Since: &broker.Position{Offset: 10, Epoch: epoch}, Limit: 1})
	if err != nil || len(res.Messages) != 1 {
		t.Fatalf("history after 10: %+v, %v", res, err)
	}
	s.Deliver(ch, node.OutgoingOf(&res.Messages[0]))
	s.continueReplays(ctx)
	if got := pull(); len(got) != 0 {
		t.Fatalf("while history fails: offsets %v, want none (the replay is not done)", got)
	}
	flaky.fail.Store(false)
	s.continueReplays(ctx)
	var got []uint64
	for i := 0; i < 20 && (len(got) == 0 || got[len(got)-1] != 11); i++ {
		got = append(got, pull()...)
		s.continueReplays(ctx)
	}
	want := uint64(4)
	for _, o := range got {
		if o != want {
			t.Fatalf("after the rewind to offset 3: offsets %v, want 4..11 in order", got)
		}
		want++
	}
	if want != 12 {
		t.Fatalf("after the rewind to offset 3: offsets %v, want 4..11", got)
	}
}
