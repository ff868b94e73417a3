package protocol

import (
	"errors"
	"reflect"
	"testing"
)

// TestServerRoundTrip ties the server's encoders (AppendFrame,
// AppendMessage, batches) to the decoder the SDK uses (DecodeServer), for
// every codec that has one: what the server writes is what a client reads.
func TestServerRoundTrip(t *testing.T) {
	prepared := NewPreparedMessage("chat:a", 7, "e1", RawJSON(`{"text":"hi","n":[1,2]}`), PriorityCritical, "alice")
	frames := []struct {
		name string
		f    ServerFrame
		want ServerMessage
	}{
		{"connected", &Connected{ID: 1, Session: "s1", ResumeToken: "rt", Node: "n1", User: "alice",
			Heartbeat: Heartbeat{IntervalMS: 25000, TimeoutMS: 10000}, Limits: Limits{MaxFrameBytes: 65536, Window: 64, Rate: 2.5}, Resumed: true, ExpiresAt: 1700000000},
			ServerMessage{Type: TypeConnected, ID: 1, Session: "s1", ResumeToken: "rt", Node: "n1", User: "alice",
				Heartbeat: Heartbeat{IntervalMS: 25000, TimeoutMS: 10000}, Limits: Limits{MaxFrameBytes: 65536, Window: 64, Rate: 2.5}, Resumed: true, ExpiresAt: 1700000000}},
		{"subscribed", &Subscribed{ID: 2, Channel: "chat:a", Offset: 9, Epoch: "e1", Recovered: true, Missed: 3},
			ServerMessage{Type: TypeSubscribed, ID: 2, Channel: "chat:a", Offset: 9, Epoch: "e1", Recovered: true, Missed: 3}},
		{"unsubscribed", &Unsubscribed{ID: 3, Channel: "chat:a", Reason: "gone"},
			ServerMessage{Type: TypeUnsubscribed, ID: 3, Channel: "chat:a", Reason: "gone"}},
		{"published", &Published{ID: 4, Offset: 10, Epoch: "e1", Duplicate: true},
			ServerMessage{Type: TypePublished, ID: 4, Offset: 10, Epoch: "e1", Duplicate: true}},
		{"pong", &Pong{ID: 5}, ServerMessage{Type: TypePong, ID: 5}},
		{"history", &History{ID: 6, Channel: "chat:a", Offset: 2, Epoch: "e1", Messages: []HistoryMessage{
			{Offset: 1, Epoch: "e1", Data: RawJSON(`1`), Time: 5}, {Offset: 2, Epoch: "e1", Data: RawJSON(`"x"`), Priority: "critical", From: "bob"}}},
			ServerMessage{Type: TypeHistory, ID: 6, Channel: "chat:a", Offset: 2, Epoch: "e1", Messages: []HistoryMessage{
				{Offset: 1, Epoch: "e1", Data: RawJSON(`1`), Time: 5}, {Offset: 2, Epoch: "e1", Data: RawJSON(`"x"`), Priority: "critical", From: "bob"}}}},
		{"presence", &Presence{ID: 7, Channel: "chat:a", Clients: []ClientInfo{{User: "alice", Conn: "c1"}}, Count: 1},
			ServerMessage{Type: TypePresence, ID: 7, Channel: "chat:a", Clients: []ClientInfo{{User: "alice", Conn: "c1"}}, Count: 1}},
		{"leave", &PresenceEvent{Channel: "chat:a", User: "bob", Conn: "c2", Leave: true},
			ServerMessage{Type: TypeLeave, Channel: "chat:a", User: "bob", Conn: "c2"}},
		{"error", &ErrorFrame{ID: 8, Code: CodeRateLimited, Reason: "slow down", Retry: true},
			ServerMessage{Type: TypeError, ID: 8, Code: CodeRateLimited, Reason: "slow down", Retry: true}},
		{"rpc.result", &RPCResult{ID: 9, Data: RawJSON(`{"ok":true,"n":[1,2]}`)},
			ServerMessage{Type: TypeRPCResult, ID: 9, Data: RawJSON(`{"ok":true,"n":[1,2]}`)}},
		{"disconnect", &Disconnect{Code: CloseDraining, Reason: "bye", Reconnect: true, RetryAfterMS: 500},
			ServerMessage{Type: TypeDisconnect, Code: CloseDraining, Reason: "bye", Reconnect: true, RetryAfterMS: 500}},
	}
	message := ServerMessage{Type: TypeMessage, Channel: "chat:a", Offset: 7, Epoch: "e1", Data: RawJSON(`{"text":"hi","n":[1,2]}`), Priority: "critical", From: "alice", Seq: 42}

	for _, codec := range []Codec{JSON, Msgpack, Protobuf} {
		t.Run(codec.Name(), func(t *testing.T) {
			check := func(name string, got, want ServerMessage) {
				t.Helper()
				// The payload is compared as JSON text (MessagePack
				// and protobuf carry it converted, and convert it back).
				gd, wd := got.Data, want.Data
				got.Data, want.Data = nil, nil
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: decoded %+v, want %+v", name, got, want)
				}
				if string(gd) != string(wd) {
					t.Errorf("%s: data %s, want %s", name, gd, wd)
				}
			}
			var batch []byte
			batch = codec.BeginBatch(batch, len(frames)+1)
			for i, tc := range frames {
				b, err := codec.AppendFrame(nil, tc.f)
				if err != nil {
					t.Fatalf("%s: encode: %v", tc.name, err)
				}
				got, err := DecodeServer(codec, nil, b)
				if err != nil || len(got) != 1 {
					t.Fatalf("%s: decode %q: %v (%d frames)", tc.name, b, err, len(got))
				}
				check(tc.name, got[0], tc.want)
				if i > 0 {
					batch = codec.BatchSeparator(batch)
				}
				batch = append(batch, b...)
			}
			batch = codec.BatchSeparator(batch)
			batch = codec.AppendMessage(batch, prepared, 42)
			batch = codec.EndBatch(batch)

			got, err := DecodeServer(codec, nil, codec.AppendMessage(nil, prepared, 42))
			if err != nil || len(got) != 1 {
				t.Fatalf("message: %v (%d frames)", err, len(got))
			}
			check("message", got[0], message)

			got, err = DecodeServer(codec, nil, batch)
			if err != nil || len(got) != len(frames)+1 {
				t.Fatalf("batch: %v (%d frames, want %d)", err, len(got), len(frames)+1)
			}
			for i, tc := range frames {
				check("batched "+tc.name, got[i], tc.want)
			}
			check("batched message", got[len(frames)], message)

			for _, bad := range [][]byte{nil, []byte(" "), {0xc1}} {
				if _, err := DecodeServer(codec, nil, bad); !errors.Is(err, ErrMalformed) {
					t.Errorf("decode %q: %v, want ErrMalformed", bad, err)
				}
			}
		})
	}
}

// FuzzDecodeServer: whatever bytes a client receives, DecodeServer returns
// frames or an error wrapping ErrMalformed, never panics, and never returns
// more frames than a message may carry.
func FuzzDecodeServer(f *testing.F) {
	for _, codec := range []Codec{JSON, Msgpack} {
		b, _ := codec.AppendFrame(nil, &Subscribed{ID: 2, Channel: "chat:a", Offset: 9, Epoch: "e1"})
		f.Add(codec.Binary(), b)
		f.Add(codec.Binary(), codec.AppendMessage(nil, NewPreparedMessage("c", 1, "e", RawJSON(`{"a":[1,"x"]}`), PriorityNormal, ""), 3))
	}
	f.Add(false, []byte(`[{"type":"pong","id":1},{"type":"error","code":400}]`))
	f.Fuzz(func(t *testing.T, binary bool, msg []byte) {
		var codec Codec = JSON
		if binary {
			codec = Msgpack
		}
		got, err := DecodeServer(codec, nil, msg)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if len(got) > MaxFramesPerMessage {
			t.Fatalf("%d frames from one message", len(got))
		}
	})
}

// FuzzDecodeServerProtobuf: DecodeServer's protobuf case, like
// FuzzDecodeServer for the other two.
func FuzzDecodeServerProtobuf(f *testing.F) {
	b, _ := Protobuf.AppendFrame(nil, &Subscribed{ID: 2, Channel: "chat:a", Offset: 9, Epoch: "e1"})
	f.Add(b)
	f.Add(Protobuf.AppendMessage(nil, NewPreparedMessage("c", 1, "e", RawJSON(`{"a":[1,"x"]}`), PriorityNormal, ""), 3))
	f.Add(Protobuf.AppendMessage(nil, NewPreparedMessage("c", 1, "e", BinaryJSON([]byte{0, 0xff}), PriorityNormal, ""), 3))
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := DecodeServer(Protobuf, nil, msg)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if len(got) > MaxFramesPerMessage {
			t.Fatalf("%d frames from one message", len(got))
		}
	})
}
