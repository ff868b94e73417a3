package client

import (
	"testing"

	"github.com/ferry-io/ferry/protocol"
)

// BenchmarkDecodeMessage is the client's receive path for one batch of 16
// message frames.
func BenchmarkDecodeMessage(b *testing.B) {
	for _, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack, protocol.Protobuf} {
		b.Run(codec.Name(), func(b *testing.B) {
			p := protocol.NewPreparedMessage("chat:bench", 42, "e1", protocol.RawJSON(`{"user":"alice","text":"hello, world","n":[1,2,3]}`), protocol.PriorityNormal, "alice")
			msg := codec.BeginBatch(nil, 16)
			for i := range 16 {
				if i > 0 {
					msg = codec.BatchSeparator(msg)
				}
				msg = codec.AppendMessage(msg, p, uint64(i+1))
			}
			msg = codec.EndBatch(msg)
			var frames []protocol.ServerMessage
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				var err error
				frames, err = decodeServer(frames[:0], msg, wireFormatOf(codec))
				if err != nil || len(frames) != 16 {
					b.Fatal(err)
				}
				for i := range frames {
					_ = messageOf(&frames[i])
				}
				clear(frames)
			}
		})
	}
}

// BenchmarkAckTracker is the bookkeeping per delivered message.
func BenchmarkAckTracker(b *testing.B) {
	a := newAckTracker(64)
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		a.received(seq, false)
		if a.markDone(seq) {
			a.take(false)
		}
	}
}
