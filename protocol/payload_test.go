package protocol

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferry-io/ferry/protocol/ferry/v1"
)

func TestPayloadFromBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want RawJSON
	}{
		{"empty is no payload", nil, nil},
		{"JSON object", []byte(`{"a":1}`), RawJSON(`{"a":1}`)},
		{"JSON is compacted", []byte(" {\"a\" : [1, 2]}\n"), RawJSON(`{"a":[1,2]}`)},
		{"JSON scalar", []byte(`42`), RawJSON(`42`)},
		{"text that is not JSON", []byte("hello"), RawJSON(`{"$bin":"aGVsbG8="}`)},
		{"binary", []byte{0, 1, 2, 0xff}, RawJSON(`{"$bin":"AAEC/w=="}`)},
		{"JSON string with bytes that are not UTF-8", []byte("\"\xff\""), RawJSON(`{"$bin":"Iv8i"}`)},
		{"the wrapper itself stays the wrapper", []byte(`{"$bin":"AAE="}`), RawJSON(`{"$bin":"AAE="}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PayloadFromBytes(tc.in)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("PayloadFromBytes(%q) = %s, want %s", tc.in, got, tc.want)
			}
			if got != nil && !json.Valid(got) {
				t.Fatalf("%s is not JSON", got)
			}
		})
	}
}

func TestRawJSONBinary(t *testing.T) {
	for _, tc := range []struct {
		in   RawJSON
		want []byte
		ok   bool
	}{
		{RawJSON(`{"$bin":"AAEC/w=="}`), []byte{0, 1, 2, 0xff}, true},
		{RawJSON(`{"$bin":""}`), []byte{}, true},
		{RawJSON(`{"$bin":"AAEC"}`), []byte{0, 1, 2}, true},
		{RawJSON(`{"$bin":"not base64!"}`), nil, false},
		{RawJSON(`{"$bin":"AAEC","x":1}`), nil, false},
		{RawJSON(`{"bin":"AAEC"}`), nil, false},
		{RawJSON(`"AAEC"`), nil, false},
		{nil, nil, false},
	} {
		got, ok := tc.in.Binary()
		if ok != tc.ok || !bytes.Equal(got, tc.want) {
			t.Errorf("%s.Binary() = %x, %v; want %x, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// publishAndDeliver decodes a publish frame sent with codec in, prepares
// the message as the server does and returns the data each codec's
// subscriber receives: the JSON text, the MessagePack value (decoded by the
// msgpack package) and the protobuf bytes.
func publishAndDeliver(t *testing.T, in Codec, msg []byte) (js RawJSON, mp any, pb []byte) {
	t.Helper()
	frames, err := in.DecodeClient(nil, msg)
	if err != nil || len(frames) != 1 {
		t.Fatalf("%s decode: %+v, %v", in.Name(), frames, err)
	}
	if e := frames[0].Validate(); e != nil {
		t.Fatalf("%s: %v", in.Name(), e)
	}
	p := NewPreparedMessage("room:1", 1, "e", frames[0].Data, PriorityNormal, "")

	var jm Message
	if err := json.Unmarshal(JSON.AppendMessage(nil, p, 1), &jm); err != nil {
		t.Fatal(err)
	}
	var mm map[string]any
	if err := msgpack.Unmarshal(Msgpack.AppendMessage(nil, p, 1), &mm); err != nil {
		t.Fatal(err)
	}
	var batch ferryv1.Batch
	if err := proto.Unmarshal(Protobuf.AppendMessage(nil, p, 1), &batch); err != nil {
		t.Fatal(err)
	}
	return jm.Data, mm["data"], batch.GetFrames()[0].GetMessage().GetData()
}

func protobufPublish(t *testing.T, data []byte) []byte {
	t.Helper()
	b, err := proto.Marshal(&ferryv1.Batch{Frames: []*ferryv1.Frame{{Id: 1, Kind: &ferryv1.Frame_Publish{
		Publish: &ferryv1.Publish{Channel: "room:1", Data: data}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPayloadBridging is the contract of docs/protocol.md ("Payloads across
// codecs"): what each codec's subscriber gets for what each codec's
// publisher sent.
func TestPayloadBridging(t *testing.T) {
	bin := []byte{0x00, 0x01, 0xfe, 0xff, 'y', 'j', 's'}
	binB64 := "AAH+/3lqcw=="
	wrapper := `{"$bin":"` + binB64 + `"}`

	t.Run("JSON publisher: a protobuf subscriber gets the same bytes", func(t *testing.T) {
		js, mp, pb := publishAndDeliver(t, JSON, []byte(`{"type":"publish","id":1,"channel":"room:1","data":{"text":"hi","n":[1,2]}}`))
		want := `{"text":"hi","n":[1,2]}`
		if string(js) != want || string(pb) != want {
			t.Fatalf("json %s, protobuf %q; want %s", js, pb, want)
		}
		if m, ok := mp.(map[string]any); !ok || m["text"] != "hi" {
			t.Fatalf("msgpack %#v", mp)
		}
	})
	t.Run("protobuf publisher of JSON text: a JSON subscriber gets the same bytes", func(t *testing.T) {
		js, _, pb := publishAndDeliver(t, Protobuf, protobufPublish(t, []byte(`{"text":"hi"}`)))
		if string(js) != `{"text":"hi"}` || string(pb) != `{"text":"hi"}` {
			t.Fatalf("json %s, protobuf %q", js, pb)
		}
	})
	t.Run("protobuf publisher of binary: the wrapper for JSON and MessagePack, the bytes for protobuf", func(t *testing.T) {
		js, mp, pb := publishAndDeliver(t, Protobuf, protobufPublish(t, bin))
		if string(js) != wrapper {
			t.Fatalf("json %s, want %s", js, wrapper)
		}
		if m, ok := mp.(map[string]any); !ok || len(m) != 1 || m[BinaryKey] != binB64 {
			t.Fatalf("msgpack %#v", mp)
		}
		if !bytes.Equal(pb, bin) {
			t.Fatalf("protobuf %x, want %x", pb, bin)
		}
	})
	t.Run("JSON publisher of the wrapper: a protobuf subscriber gets the bytes", func(t *testing.T) {
		_, _, pb := publishAndDeliver(t, JSON, []byte(`{"type":"publish","id":1,"channel":"room:1","data":`+wrapper+`}`))
		if !bytes.Equal(pb, bin) {
			t.Fatalf("protobuf %x, want %x", pb, bin)
		}
	})
	t.Run("MessagePack publisher of the wrapper map: a protobuf subscriber gets the bytes", func(t *testing.T) {
		msg, err := msgpack.Marshal(map[string]any{"type": "publish", "id": 1, "channel": "room:1",
			"data": map[string]any{BinaryKey: binB64}})
		if err != nil {
			t.Fatal(err)
		}
		_, _, pb := publishAndDeliver(t, Msgpack, msg)
		if !bytes.Equal(pb, bin) {
			t.Fatalf("protobuf %x, want %x", pb, bin)
		}
	})
	t.Run("MessagePack bin stays a base64 string (section 13)", func(t *testing.T) {
		msg, err := msgpack.Marshal(map[string]any{"type": "publish", "id": 1, "channel": "room:1", "data": bin})
		if err != nil {
			t.Fatal(err)
		}
		js, _, pb := publishAndDeliver(t, Msgpack, msg)
		if string(js) != `"`+binB64+`"` || string(pb) != `"`+binB64+`"` {
			t.Fatalf("json %s, protobuf %q", js, pb)
		}
	})
	t.Run("history carries binary the same way", func(t *testing.T) {
		h := &History{ID: 1, Channel: "room:1", Messages: []HistoryMessage{{Offset: 1, Epoch: "e", Data: BinaryJSON(bin)}}}
		b, err := Protobuf.AppendFrame(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		var batch ferryv1.Batch
		if err := proto.Unmarshal(b, &batch); err != nil {
			t.Fatal(err)
		}
		if got := batch.GetFrames()[0].GetHistory().GetMessages()[0].GetData(); !bytes.Equal(got, bin) {
			t.Fatalf("history data %x, want %x", got, bin)
		}
	})
}
