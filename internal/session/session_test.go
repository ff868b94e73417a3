package session

import (
	"testing"

	"github.com/ferry-io/ferry/broker"
)

func TestAckRingMapsSeqsToOffsets(t *testing.T) {
	var r ackRing
	for seq := uint64(1); seq <= 10; seq++ {
		ch := "a"
		if seq%2 == 0 {
			ch = "b"
		}
		r.add(seq, ch, 100+seq)
	}
	got := r.ackUpTo(4)
	if len(got) != 4 || got[0].seq != 1 || got[3].seq != 4 || got[3].channel != "b" || got[3].offset != 104 {
		t.Fatalf("ackUpTo(4) = %+v", got)
	}
	if got := r.ackUpTo(4); len(got) != 0 {
		t.Fatalf("second ackUpTo(4) returned %d entries", len(got))
	}
	if got := r.ackUpTo(100); len(got) != 6 || got[5].seq != 10 {
		t.Fatalf("ackUpTo(100) = %+v", got)
	}
}

func TestAckRingForgetsTheOldestWhenFull(t *testing.T) {
	var r ackRing
	for seq := uint64(1); seq <= ackRingMax+10; seq++ {
		r.add(seq, "c", seq)
	}
	if r.n != ackRingMax {
		t.Fatalf("ring holds %d, want %d", r.n, ackRingMax)
	}
	got := r.ackUpTo(ackRingMax + 10)
	if len(got) != ackRingMax || got[0].seq != 11 {
		t.Fatalf("oldest kept seq %d, want 11 (%d entries)", got[0].seq, len(got))
	}
}

func TestMissedCount(t *testing.T) {
	msgs := func(first, last uint64) []broker.Publication {
		var out []broker.Publication
		for o := first; o <= last; o++ {
			out = append(out, broker.Publication{Offset: o})
		}
		return out
	}
	tests := []struct {
		name  string
		since broker.Position
		res   broker.HistoryResult
		want  uint64
	}{
		{"nothing lost", broker.Position{Offset: 5, Epoch: "e"}, broker.HistoryResult{Offset: 8, Epoch: "e", Messages: msgs(6, 8)}, 0},
		{"trimmed", broker.Position{Offset: 5, Epoch: "e"}, broker.HistoryResult{Offset: 30, Epoch: "e", Messages: msgs(21, 30)}, 15},
		{"no history kept", broker.Position{Offset: 5, Epoch: "e"}, broker.HistoryResult{Offset: 9, Epoch: "e"}, 4},
		{"new epoch", broker.Position{Offset: 50, Epoch: "old"}, broker.HistoryResult{Offset: 12, Epoch: "new", Messages: msgs(3, 12)}, 2},
		{"from the start", broker.Position{Offset: 0}, broker.HistoryResult{Offset: 12, Epoch: "e", Messages: msgs(5, 12)}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := missedCount(&tc.since, &tc.res); got != tc.want {
				t.Fatalf("missed %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSnapshotApplyResumeSeq(t *testing.T) {
	snap := &snapshot{
		Seq:  7,
		Subs: []snapshotSub{{Channel: "a", Offset: 10}, {Channel: "b", Offset: 3}},
		Unacked: []snapshotAck{
			{Seq: 5, Channel: "a", Offset: 11},
			{Seq: 6, Channel: "b", Offset: 4},
			{Seq: 7, Channel: "a", Offset: 12},
		},
	}
	snap.applyResumeSeq(6) // the client got seq 5 and 6, not 7
	if snap.Subs[0].Offset != 11 || snap.Subs[1].Offset != 4 {
		t.Fatalf("positions %+v, want a at 11 and b at 4", snap.Subs)
	}
	if snap.Seq != 7 || snap.Unacked != nil {
		t.Fatalf("seq %d unacked %v", snap.Seq, snap.Unacked)
	}
}

func TestFrameType(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"pong","id":1}`:       "pong",
		`{"type":"subscribed","id":2}`: "subscribed",
		`{"id":1}`:                     "",
		`{"type":`:                     "",
	} {
		if got := frameType([]byte(in)); got != want {
			t.Errorf("frameType(%s) = %q, want %q", in, got, want)
		}
	}
}
