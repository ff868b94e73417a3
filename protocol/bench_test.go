package protocol

import "testing"

// benchPublish is a typical publish frame: a chat message with a small
// object payload.
const benchPublish = `{"type":"publish","id":17,"channel":"room:lobby","data":{"user":"alice","text":"Hello everyone, how is it going?","ts":1700000000123,"tags":["greeting","chat"],"score":4.5},"priority":"critical","key":"msg-0001"}`

var benchData = RawJSON(`{"user":"alice","text":"Hello everyone, how is it going?","ts":1700000000123,"tags":["greeting","chat"],"score":4.5}`)

func benchmarkDecode(b *testing.B, codec Codec, msg []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	frames := make([]ClientFrame, 0, 1)
	for b.Loop() {
		var err error
		frames, err = codec.DecodeClient(frames[:0], msg)
		if err != nil || len(frames) != 1 || frames[0].Invalid != "" {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	benchmarkDecode(b, JSON, []byte(benchPublish))
}

func BenchmarkDecodeMsgpack(b *testing.B) {
	msg, err := JSONToMsgpack(nil, []byte(benchPublish))
	if err != nil {
		b.Fatal(err)
	}
	benchmarkDecode(b, Msgpack, msg)
}

func benchmarkAppendMessage(b *testing.B, codec Codec) {
	p := NewPreparedMessage("room:lobby", 123456, "a1b2c3", benchData, PriorityNormal, "alice")
	buf := make([]byte, 0, 1024)
	buf = codec.AppendMessage(buf, p, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	seq := uint64(1000)
	for b.Loop() {
		buf = codec.AppendMessage(buf[:0], p, seq)
		seq++
	}
}

// BenchmarkAppendMessageJSON is the per-recipient cost of a broadcast.
func BenchmarkAppendMessageJSON(b *testing.B) { benchmarkAppendMessage(b, JSON) }

// BenchmarkAppendMessageMsgpack is the per-recipient cost of a broadcast.
func BenchmarkAppendMessageMsgpack(b *testing.B) { benchmarkAppendMessage(b, Msgpack) }

// BenchmarkNewPreparedMessage is the per-publish cost (JSON body only; the
// MessagePack body is built on first use).
func BenchmarkNewPreparedMessage(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchData)))
	for b.Loop() {
		NewPreparedMessage("room:lobby", 123456, "a1b2c3", benchData, PriorityNormal, "alice")
	}
}

// BenchmarkPreparedMessageMsgpackBody is the one-time cost of the lazy
// MessagePack body.
func BenchmarkPreparedMessageMsgpackBody(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		p := NewPreparedMessage("room:lobby", 123456, "a1b2c3", benchData, PriorityNormal, "alice")
		p.msgpack()
	}
}

func BenchmarkAppendFrameJSON(b *testing.B) {
	f := &Published{ID: 17, Offset: 123456, Epoch: "a1b2c3"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = JSON.AppendFrame(buf[:0], f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrameMsgpack(b *testing.B) {
	f := &Published{ID: 17, Offset: 123456, Epoch: "a1b2c3"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Msgpack.AppendFrame(buf[:0], f); err != nil {
			b.Fatal(err)
		}
	}
}
