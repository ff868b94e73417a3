package protocol

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

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
	benchmarkAppendMessageOf(b, codec, benchData)
}

// benchmarkAppendMessageOf is the per-recipient cost of a broadcast of
// data.
func benchmarkAppendMessageOf(b *testing.B, codec Codec, data RawJSON) {
	p := NewPreparedMessage("room:lobby", 123456, "a1b2c3", data, PriorityNormal, "alice")
	buf := make([]byte, 0, 8192)
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

// The three codecs side by side, on a typical message (benchData) and on a
// 4 KiB binary payload (a Yjs update, a file chunk): decode of a publish,
// and the per-recipient encoding of the message frame.

var benchBinary = bytes.Repeat([]byte{0x00, 0x9c, 0xff, 0x41}, 1024)

// benchPublishFrame is a publish of data, encoded by codec as a client
// would.
func benchPublishFrame(b *testing.B, codec Codec, data RawJSON) []byte {
	f := ClientFrame{Type: TypePublish, ID: 17, Channel: "room:lobby", Data: data, Priority: "critical", Key: "msg-0001"}
	var msg []byte
	var err error
	switch codec {
	case JSON:
		msg, err = json.Marshal(&f)
	case Msgpack:
		msg, err = msgpack.Marshal(&f)
	case Protobuf:
		msg, err = AppendProtobufClientFrame(nil, &f)
	}
	if err != nil {
		b.Fatal(err)
	}
	return msg
}

func BenchmarkCodecs(b *testing.B) {
	payloads := []struct {
		name string
		data RawJSON
	}{
		{"typical", benchData},
		{"binary4KiB", BinaryJSON(benchBinary)},
	}
	for _, codec := range []Codec{JSON, Msgpack, Protobuf} {
		for _, pl := range payloads {
			b.Run("decode/"+codec.Name()+"/"+pl.name, func(b *testing.B) {
				benchmarkDecode(b, codec, benchPublishFrame(b, codec, pl.data))
			})
			b.Run("encode/"+codec.Name()+"/"+pl.name, func(b *testing.B) {
				benchmarkAppendMessageOf(b, codec, pl.data)
			})
			b.Run("prepare/"+codec.Name()+"/"+pl.name, func(b *testing.B) {
				// The per-publication cost: the JSON body, plus the lazy
				// body of this codec.
				b.ReportAllocs()
				for b.Loop() {
					p := NewPreparedMessage("room:lobby", 123456, "a1b2c3", pl.data, PriorityNormal, "alice")
					codec.AppendMessage(nil, p, 1)
				}
			})
		}
	}
}
