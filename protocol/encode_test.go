package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// serverFrames returns one filled-in frame of every server type (with the
// wrong or no type set: AppendFrame must stamp it).
func serverFrames() []ServerFrame {
	return []ServerFrame{
		&Connected{Type: "wrong", ID: 1, Session: "s", ResumeToken: "rt", Node: "n1", User: "u",
			Heartbeat: Heartbeat{IntervalMS: 25000, TimeoutMS: 10000},
			Limits:    Limits{MaxFrameBytes: 65536, Window: 64, Rate: 2.5},
			Resumed:   true, ExpiresAt: 1700000000, SessionToken: "st", StreamTicket: "tk"},
		&Connected{ID: 2, Session: "s"},
		&Subscribed{ID: 2, Channel: "room:1", Offset: 18446744073709551615, Epoch: "e", Recovered: true, Missed: 3},
		&Unsubscribed{ID: 3, Channel: "c", Reason: "kicked"},
		&Message{Channel: "c", Offset: 5, Epoch: "e", Data: RawJSON(`{"a":[1,-2,3.5,"<&>"],"b":null}`), Priority: "critical", From: "alice", Seq: 99},
		&Message{Channel: "c", Offset: 1, Epoch: "e", Data: RawJSON(`null`), Seq: 1},
		&Published{ID: 4, Offset: 7, Epoch: "e", Duplicate: true},
		&Pong{ID: 5},
		&Refreshed{ID: 6, ExpiresAt: -1},
		&History{ID: 7, Channel: "c", Messages: []HistoryMessage{
			{Offset: 1, Epoch: "e", Data: RawJSON(`"x"`), Priority: "droppable", From: "bob", Time: 1700000000123},
			{Offset: 2, Epoch: "e", Data: RawJSON(`[true,false]`)},
		}, Offset: 2, Epoch: "e"},
		&History{ID: 8, Channel: "c", Messages: []HistoryMessage{}, Epoch: "e"},
		&Presence{ID: 9, Channel: "c", Clients: []ClientInfo{{User: "u1", Conn: "c1"}, {User: "u2", Conn: "c2"}}, Count: 2},
		&PresenceEvent{Channel: "c", User: "u", Conn: "k"},
		&PresenceEvent{Channel: "c", User: "u", Conn: "k", Leave: true},
		&ErrorFrame{ID: 10, Code: CodeBadRequest, Reason: `bad "thing" \ <tag>`, Retry: false},
		&ErrorFrame{Code: CodeUnavailable, Reason: "later", Retry: true},
		&Disconnect{Code: CloseDraining, Reason: "draining", Reconnect: true, RetryAfterMS: 1500},
		&UploadReady{ID: 11, Upload: "up", Offset: 1 << 40},
		&UploadProgress{ID: 12, Upload: "up", Offset: 4096},
		&UploadDone{ID: 13, Upload: "up", Size: 1 << 33, SHA256: strings.Repeat("ab", 32), URL: "https://x/y"},
	}
}

func TestAppendFrameRoundTrip(t *testing.T) {
	for _, codec := range []Codec{JSON, Msgpack} {
		for _, f := range serverFrames() {
			typ := reflect.TypeOf(f).Elem()
			t.Run(codec.Name()+"/"+typ.Name(), func(t *testing.T) {
				prefix := []byte("pre")
				out, err := codec.AppendFrame(prefix, f)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(out, prefix) {
					t.Fatalf("prefix lost: %q", out)
				}
				out = out[len(prefix):]
				back := reflect.New(typ).Interface().(ServerFrame)
				if codec == JSON {
					if bytes.HasSuffix(out, []byte("\n")) {
						t.Errorf("trailing newline in %q", out)
					}
					if bytes.Contains(out, []byte(`\u003c`)) {
						t.Errorf("HTML escaped: %s", out)
					}
					err = json.Unmarshal(out, back)
				} else {
					err = msgpack.Unmarshal(out, back)
				}
				if err != nil {
					t.Fatalf("decode %q: %v", out, err)
				}
				// The type field is stamped, whatever it held.
				wantType := f.FrameType()
				if got := reflect.ValueOf(back).Elem().FieldByName("Type").String(); got != wantType {
					t.Errorf("type %q, want %q", got, wantType)
				}
				if pe, ok := back.(*PresenceEvent); ok {
					pe.Leave = pe.Type == TypeLeave
				}
				// The msgpack package stores a nil value as a nil RawJSON
				// without asking RawJSON; both mean null.
				if m, ok := back.(*Message); ok && m.Data == nil {
					m.Data = RawJSON("null")
				}
				if !reflect.DeepEqual(back, f) {
					t.Errorf("round trip:\n got %+v\nwant %+v", back, f)
				}
				// Every frame is something a client decoder can read as a
				// generic object with a "type".
				var generic map[string]any
				if codec == JSON {
					err = json.Unmarshal(out, &generic)
				} else {
					err = msgpack.Unmarshal(out, &generic)
				}
				if err != nil || generic["type"] != wantType {
					t.Errorf("generic decode: %v, type %v", err, generic["type"])
				}
			})
		}
	}
}

func TestAppendFrameErrorLeavesDst(t *testing.T) {
	for _, codec := range []Codec{JSON, Msgpack} {
		bad := &Message{Channel: "c", Data: RawJSON(`{"unterminated"`)}
		out, err := codec.AppendFrame([]byte("pre"), bad)
		if err == nil {
			t.Errorf("%s: no error for invalid data", codec.Name())
		}
		if string(out) != "pre" {
			t.Errorf("%s: dst = %q after an error", codec.Name(), out)
		}
	}
}

func TestBatch(t *testing.T) {
	frames := []ServerFrame{&Pong{ID: 1}, &Published{ID: 2, Offset: 3, Epoch: "e"}}
	p := NewPreparedMessage("c", 9, "e", RawJSON(`{"x":1}`), PriorityNormal, "")
	for _, codec := range []Codec{JSON, Msgpack} {
		var b []byte
		b = codec.BeginBatch(b, len(frames)+1)
		var err error
		for i, f := range frames {
			if i > 0 {
				b = codec.BatchSeparator(b)
			}
			if b, err = codec.AppendFrame(b, f); err != nil {
				t.Fatal(err)
			}
		}
		b = codec.BatchSeparator(b)
		b = codec.AppendMessage(b, p, 4)
		b = codec.EndBatch(b)

		var got []map[string]any
		if codec == JSON {
			err = json.Unmarshal(b, &got)
		} else {
			err = msgpack.Unmarshal(b, &got)
		}
		if err != nil {
			t.Fatalf("%s: %q: %v", codec.Name(), b, err)
		}
		if len(got) != 3 || got[0]["type"] != TypePong || got[1]["type"] != TypePublished || got[2]["type"] != TypeMessage {
			t.Errorf("%s: batch decoded as %v", codec.Name(), got)
		}
	}
	// A large MessagePack batch uses a 16-bit array header.
	if b := Msgpack.BeginBatch(nil, 300); !bytes.Equal(b, []byte{0xdc, 0x01, 0x2c}) {
		t.Errorf("BeginBatch(300) = % x", b)
	}
}

func TestCodecFor(t *testing.T) {
	cases := []struct {
		name   string
		want   Codec
		binary bool
	}{
		{"", JSON, false},
		{SubprotocolJSON, JSON, false},
		{SubprotocolMsgpack, Msgpack, true},
	}
	for _, c := range cases {
		got := CodecFor(c.name)
		if got != c.want || got.Binary() != c.binary {
			t.Errorf("CodecFor(%q) = %v", c.name, got)
		}
		if c.name != "" && got.Name() != c.name {
			t.Errorf("Name() = %q, want %q", got.Name(), c.name)
		}
	}
	if CodecFor("ferry.v2.json") != nil {
		t.Error("CodecFor of an unknown subprotocol is not nil")
	}
}
