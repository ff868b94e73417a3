package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferry-io/ferry/protocol/ferry/v1"
)

// encodeProtobufClient encodes frames as one client message.
func encodeProtobufClient(tb testing.TB, frames []ClientFrame) []byte {
	tb.Helper()
	var msg []byte
	for i := range frames {
		var err error
		if msg, err = AppendProtobufClientFrame(msg, &frames[i]); err != nil {
			tb.Fatalf("encode %+v: %v", frames[i], err)
		}
	}
	return msg
}

// protobufEncodable reports whether every frame of c can be written by a
// protobuf client (valid frames of known types; the JSON-only oddities of
// decodeCases are left out).
func protobufEncodable(c decodeCase) bool {
	for i, f := range c.want {
		if i < len(c.invalid) && c.invalid[i] != "" {
			return false
		}
		if _, err := AppendProtobufClientFrame(nil, &f); err != nil {
			return false
		}
	}
	return len(c.want) > 0
}

func TestProtobufClientFramesRoundTrip(t *testing.T) {
	n := 0
	for _, c := range decodeCases {
		if !protobufEncodable(c) {
			continue
		}
		n++
		t.Run(c.name, func(t *testing.T) {
			got, err := Protobuf.DecodeClient(nil, encodeProtobufClient(t, c.want))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d frames, want %d", len(got), len(c.want))
			}
			for i := range got {
				sameFrame(t, got[i], c.want[i])
			}
		})
	}
	if n < 5 {
		t.Fatalf("only %d of the decode cases were tried", n)
	}
}

// serverFrameCases holds one frame of every server type.
func serverFrameCases() []ServerFrame {
	return []ServerFrame{
		&Connected{ID: 1, Session: "s", ResumeToken: "r", Node: "n", User: "alice",
			Heartbeat: Heartbeat{IntervalMS: 25000, TimeoutMS: 10000},
			Limits:    Limits{MaxFrameBytes: 65536, Window: 64, Rate: 2.5}, Resumed: true, ExpiresAt: 1795830556,
			SessionToken: "st", StreamTicket: "tk"},
		&Subscribed{ID: 2, Channel: "chat:a", Offset: 5, Epoch: "e", Recovered: true, Missed: 3},
		&Unsubscribed{Channel: "chat:a", Reason: "gone"},
		&Message{Channel: "chat:a", Offset: 6, Epoch: "e", Data: RawJSON(`{"n":1}`), Priority: "critical", From: "bob", Seq: 9},
		&Message{Channel: "chat:a", Offset: 7, Epoch: "e", Data: BinaryJSON([]byte{0, 0xff, 1}), Seq: 10},
		&Published{ID: 3, Offset: 6, Epoch: "e", Duplicate: true},
		&Pong{ID: 4},
		&Refreshed{ID: 5, ExpiresAt: 42},
		&History{ID: 6, Channel: "chat:a", Messages: []HistoryMessage{
			{Offset: 1, Epoch: "e", Data: RawJSON(`[1,2]`), Priority: "droppable", From: "x", Time: 1795744191315},
			{Offset: 2, Epoch: "e", Data: BinaryJSON([]byte("\x00bin")), Time: 1795744191316},
		}, Offset: 2, Epoch: "e"},
		&Presence{ID: 7, Channel: "chat:a", Clients: []ClientInfo{{User: "a", Conn: "c1"}, {User: "b", Conn: "c2"}}, Count: 2},
		&PresenceEvent{Channel: "chat:a", User: "a", Conn: "c1"},
		&PresenceEvent{Channel: "chat:a", User: "a", Conn: "c1", Leave: true},
		&ErrorFrame{ID: 8, Code: 400, Reason: "bad", Retry: false},
		&Disconnect{Code: 4008, Reason: "slow down", Reconnect: true, RetryAfterMS: 1000},
		&UploadReady{ID: 9, Upload: "u", Offset: 10},
		&UploadProgress{ID: 9, Upload: "u", Offset: 20},
		&UploadDone{ID: 10, Upload: "u", Size: 30, SHA256: strings.Repeat("a", 64), URL: "/x"},
	}
}

func TestProtobufServerFramesRoundTrip(t *testing.T) {
	frames := serverFrameCases()
	// One frame per message, then all of them as one batch.
	var batch []byte
	batch = Protobuf.BeginBatch(batch, len(frames))
	for i, f := range frames {
		msg, err := Protobuf.AppendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeProtobufServer(nil, msg)
		if err != nil {
			t.Fatalf("%s: %v", f.FrameType(), err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], f) {
			t.Fatalf("%s: got %+v, want %+v", f.FrameType(), got, f)
		}
		if i > 0 {
			batch = Protobuf.BatchSeparator(batch)
		}
		batch = append(batch, msg...)
	}
	batch = Protobuf.EndBatch(batch)
	got, err := DecodeProtobufServer(nil, batch)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, frames) {
		t.Fatalf("batch: got %d frames %+v", len(got), got)
	}
}

func TestProtobufAppendMessageIsAppendFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		data RawJSON
		prio Priority
		from string
	}{
		{"object", RawJSON(`{"text":"hi"}`), PriorityNormal, "alice"},
		{"binary, critical", BinaryJSON([]byte{0, 1, 2, 0xff}), PriorityCritical, ""},
		{"string, droppable", RawJSON(`"x"`), PriorityDroppable, "bob"},
		{"4 KiB binary", BinaryJSON(bytes.Repeat([]byte{0x80}, 4096)), PriorityNormal, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPreparedMessage("room:1", 300, "ep", tc.data, tc.prio, tc.from)
			for _, seq := range []uint64{1, 127, 128, 1 << 40} {
				got := Protobuf.AppendMessage(nil, p, seq)
				m := &Message{Channel: "room:1", Offset: 300, Epoch: "ep", Data: tc.data, From: tc.from, Seq: seq}
				if tc.prio != PriorityNormal {
					m.Priority = tc.prio.String()
				}
				want, err := Protobuf.AppendFrame(nil, m)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("seq %d:\n got %x\nwant %x", seq, got, want)
				}
			}
		})
	}
}

func TestProtobufMalformed(t *testing.T) {
	frame := func(kind protowire.Number, body []byte) []byte {
		var f []byte
		f = protowire.AppendTag(f, kind, protowire.BytesType)
		f = protowire.AppendBytes(f, body)
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		return protowire.AppendBytes(b, f)
	}
	var tooMany []byte
	for range MaxFramesPerMessage + 1 {
		tooMany = append(tooMany, 0x0a, 0x00)
	}
	badUTF8 := protowire.AppendTag(nil, 1, protowire.BytesType)
	badUTF8 = protowire.AppendString(badUTF8, "room\xff")
	for name, msg := range map[string][]byte{
		"empty":            {},
		"garbage":          {0xff, 0xff, 0xff},
		"truncated":        {0x0a, 0x05, 0x08},
		"wrong wire type":  {0x08, 0x01},
		"no frames":        {0x12, 0x00},
		"too many frames":  tooMany,
		"string not UTF-8": frame(8, badUTF8),
	} {
		t.Run(name, func(t *testing.T) {
			frames, err := Protobuf.DecodeClient(nil, msg)
			if !errors.Is(err, ErrMalformed) || len(frames) != 0 {
				t.Fatalf("DecodeClient(%x) = %+v, %v; want ErrMalformed", msg, frames, err)
			}
		})
	}
	// Unknown groups nested deep inside a frame are skipped, not recursed
	// into: the frame is an unknown one.
	var deep []byte
	for range 1000 {
		deep = protowire.AppendTag(deep, 90, protowire.StartGroupType)
	}
	for range 1000 {
		deep = protowire.AppendTag(deep, 90, protowire.EndGroupType)
	}
	frames, err := Protobuf.DecodeClient(nil, append(protowire.AppendVarint([]byte{0x0a}, uint64(len(deep))), deep...))
	if err != nil || len(frames) != 1 || !strings.Contains(frames[0].Invalid, "unknown frame type") {
		t.Fatalf("deep unknown groups: %+v, %v", frames, err)
	}
	// At the bound, a batch of empty frames decodes (each answers 400).
	frames, err = Protobuf.DecodeClient(nil, tooMany[2:])
	if err != nil || len(frames) != MaxFramesPerMessage {
		t.Fatalf("%d empty frames: %d, %v", MaxFramesPerMessage, len(frames), err)
	}
}

func TestProtobufFrameErrors(t *testing.T) {
	unknown, _ := proto.Marshal(&ferryv1.Frame{Id: 15})
	unknown = protowire.AppendTag(unknown, 90, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte{0x08, 0x01})
	serverKind, _ := proto.Marshal(&ferryv1.Frame{Id: 16, Kind: &ferryv1.Frame_Message{Message: &ferryv1.Message{Channel: "a"}}})
	badPrio, _ := proto.Marshal(&ferryv1.Frame{Id: 17, Kind: &ferryv1.Frame_Publish{Publish: &ferryv1.Publish{
		Channel: "a", Data: []byte("1"), Priority: 9}}})
	noData, _ := proto.Marshal(&ferryv1.Frame{Id: 18, Kind: &ferryv1.Frame_Publish{Publish: &ferryv1.Publish{Channel: "a"}}})
	empty, _ := proto.Marshal(&ferryv1.Frame{Id: 19})
	reply, _ := proto.Marshal(&ferryv1.Frame{Id: 20, Kind: &ferryv1.Frame_History{History: &ferryv1.History{Channel: "a"}}})
	var msg []byte
	for _, f := range [][]byte{unknown, serverKind, badPrio, noData, empty, reply} {
		msg = protowire.AppendTag(msg, 1, protowire.BytesType)
		msg = protowire.AppendBytes(msg, f)
	}
	frames, err := Protobuf.DecodeClient(nil, msg)
	if err != nil || len(frames) != 6 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	for i, want := range []string{
		"unknown frame type (field 90 of ferry.v1.Frame)",
		`unknown frame type "message"`,
		`publish: priority "9": want critical, normal or droppable`,
		`publish: needs "data"`,
		`frame has no "type"`,
		`unknown frame type "history" (the server's reply; the request is history_request)`,
	} {
		e := frames[i].Validate()
		if e == nil || e.Code != CodeBadRequest || e.Reason != want {
			t.Errorf("frame %d: Validate() = %+v, want 400 %q", i, e, want)
		}
		if frames[i].ID != uint32(15+i) {
			t.Errorf("frame %d: id %d, want %d", i, frames[i].ID, 15+i)
		}
	}
}
