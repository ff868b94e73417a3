package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// decodeCase is a message given as JSON; the msgpack tests use its
// MessagePack conversion.
type decodeCase struct {
	name string
	json string
	want []ClientFrame
	// invalid holds, per frame, a substring its Invalid must contain ("" =
	// valid). The rest of a frame with Invalid set is compared to want too
	// (Type and ID only).
	invalid []string
}

var decodeCases = []decodeCase{
	{
		name: "publish with every field",
		json: `{"type":"publish","id":7,"channel":"room:1","data":{"text":"hi","n":[1,2.5,null]},"key":"k1","priority":"critical","conflate":"c"}`,
		want: []ClientFrame{{Type: TypePublish, ID: 7, Channel: "room:1", Data: RawJSON(`{"text":"hi","n":[1,2.5,null]}`), Key: "k1", Priority: "critical", Conflate: "c"}},
	},
	{
		name: "connect with resume",
		json: `{"type":"connect","id":1,"token":"jwt","client":"ferry-go/1.0","resume":{"session":"s1","token":"r1"},"window":64}`,
		want: []ClientFrame{{Type: TypeConnect, ID: 1, Token: "jwt", Client: "ferry-go/1.0", Resume: &Resume{Session: "s1", Token: "r1"}, Window: 64}},
	},
	{
		name: "subscribe with since, presence; history with limit",
		json: `[{"type":"subscribe","id":2,"channel":"c","since":{"offset":18446744073709551615,"epoch":"e1"},"presence":true},{"type":"history","id":3,"channel":"c","limit":-5}]`,
		want: []ClientFrame{
			{Type: TypeSubscribe, ID: 2, Channel: "c", Since: &StreamPosition{Offset: 18446744073709551615, Epoch: "e1"}, Presence: true},
			{Type: TypeHistory, ID: 3, Channel: "c", Limit: -5},
		},
	},
	{
		name: "ack and uploads",
		json: `[{"type":"ack","seq":42},{"type":"upload.begin","id":4,"name":"a.bin","size":9007199254740993,"sha256":"ab","chunk_size":65536},{"type":"upload.chunk","id":5,"upload":"u1","offset":-1,"data":"AAEC"},{"type":"upload.commit","id":6,"upload":"u1"}]`,
		want: []ClientFrame{
			{Type: TypeAck, Seq: 42},
			{Type: TypeUploadBegin, ID: 4, Name: "a.bin", Size: 9007199254740993, SHA256: "ab", ChunkSize: 65536},
			{Type: TypeUploadChunk, ID: 5, Upload: "u1", Offset: -1, Data: RawJSON(`"AAEC"`)},
			{Type: TypeUploadCommit, ID: 6, Upload: "u1"},
		},
	},
	{
		name: "empty array",
		json: `[]`,
		want: nil,
	},
	{
		name: "empty object",
		json: `{}`,
		want: []ClientFrame{{}},
	},
	{
		name: "unknown fields ignored, duplicate fields: last wins, null leaves unset",
		json: `{"type":"ping","id":1,"extra":{"deep":[1,{"x":2}]},"id":9,"other":null,"token":null}`,
		want: []ClientFrame{{Type: TypePing, ID: 9}},
	},
	{
		name: "data null and data scalars",
		json: `[{"type":"publish","data":null},{"type":"publish","data":"s"},{"type":"publish","data":-12}]`,
		want: []ClientFrame{{Type: TypePublish, Data: RawJSON(`null`)}, {Type: TypePublish, Data: RawJSON(`"s"`)}, {Type: TypePublish, Data: RawJSON(`-12`)}},
	},
	{
		name:    "id of the wrong type",
		json:    `{"type":"ping","id":"5"}`,
		want:    []ClientFrame{{Type: TypePing}},
		invalid: []string{`field "id": want an integer from 0 to 4294967295, got string`},
	},
	{
		name:    "id out of range",
		json:    `{"type":"ping","id":4294967296}`,
		want:    []ClientFrame{{Type: TypePing}},
		invalid: []string{`field "id": want an integer from 0 to 4294967295, got number 4294967296`},
	},
	{
		name:    "negative id",
		json:    `{"type":"ping","id":-1}`,
		want:    []ClientFrame{{Type: TypePing}},
		invalid: []string{`field "id": want an integer from 0 to 4294967295, got number -1`},
	},
	{
		name:    "channel of the wrong type keeps type and id",
		json:    `{"type":"publish","id":7,"channel":5,"data":1}`,
		want:    []ClientFrame{{Type: TypePublish, ID: 7}},
		invalid: []string{`field "channel": want a string, got number`},
	},
	{
		name:    "id after the bad field is still read",
		json:    `{"type":"subscribe","channel":["x"],"id":3}`,
		want:    []ClientFrame{{Type: TypeSubscribe, ID: 3}},
		invalid: []string{`field "channel": want a string, got array`},
	},
	{
		name:    "nested field of the wrong type",
		json:    `{"type":"subscribe","id":2,"channel":"c","since":{"offset":-1,"epoch":"e"}}`,
		want:    []ClientFrame{{Type: TypeSubscribe, ID: 2}},
		invalid: []string{`field "since.offset": want a non-negative integer, got number -1`},
	},
	{
		name:    "object expected",
		json:    `{"type":"connect","resume":"s"}`,
		want:    []ClientFrame{{Type: TypeConnect}},
		invalid: []string{`field "resume": want an object, got string`},
	},
	{
		name:    "bool expected",
		json:    `{"type":"subscribe","id":1,"presence":"yes"}`,
		want:    []ClientFrame{{Type: TypeSubscribe, ID: 1}},
		invalid: []string{`field "presence": want true or false, got string`},
	},
	{
		name:    "float for an integer",
		json:    `{"type":"ack","seq":1.5}`,
		want:    []ClientFrame{{Type: TypeAck}},
		invalid: []string{`field "seq": want a non-negative integer, got number`},
	},
	{
		name:    "type of the wrong type",
		json:    `{"type":1,"id":2}`,
		want:    []ClientFrame{{ID: 2}},
		invalid: []string{`field "type": want a string, got number`},
	},
	{
		name:    "invalid element inside a valid array",
		json:    `[{"type":"ping","id":1},{"type":"ping","id":true},{"type":"ping","id":3}]`,
		want:    []ClientFrame{{Type: TypePing, ID: 1}, {Type: TypePing}, {Type: TypePing, ID: 3}},
		invalid: []string{"", `field "id": want an integer from 0 to 4294967295, got bool`, ""},
	},
}

// malformedJSON are messages JSON.DecodeClient rejects as a whole.
var malformedJSON = []string{
	``, `   `, `{`, `{"type":}`, `[{}`, `[{},]`, `{} {}`, `{"a":1}x`, `nul`,
	`"text"`, `12`, `null`, `true`, `[1]`, `[{}, 2]`, `[[{}]]`, `[{}, [{}]]`, `[null]`, `["x"]`,
	"\"\x01\"", `{"type":"ping"` + strings.Repeat(" ", 10) + `,}`,
	"[" + strings.Repeat("{},", MaxFramesPerMessage) + "{}]",
}

// malformedMsgpack are messages Msgpack.DecodeClient rejects as a whole.
var malformedMsgpack = map[string]string{
	"empty":                   "",
	"never used code":         "c1",
	"a string":                "a1 61",
	"an integer":              "01",
	"nil":                     "c0",
	"array of integers":       "91 01",
	"array with nil":          "92 80 c0",
	"nested array":            "91 91 80",
	"truncated map":           "82 a4 74 79 70 65",
	"truncated key":           "81 a4 74 79",
	"truncated value":         "81 a4 74 79 70 65 a4 70 69",
	"truncated uint64":        "81 a2 69 64 cf 00 00",
	"truncated float":         "81 a4 64 61 74 61 cb 00",
	"truncated ext":           "81 a4 64 61 74 61 c7 05 01 00",
	"trailing bytes":          "80 80",
	"0xc1 inside data":        "81 a4 64 61 74 61 91 c1",
	"huge str32 prefix":       "81 a4 74 79 70 65 db ff ff ff ff 61",
	"huge bin32 prefix":       "81 a4 64 61 74 61 c6 ff ff ff ff",
	"huge map32 prefix":       "df ff ff ff ff",
	"huge array32 prefix":     "dd ff ff ff ff 80",
	"huge nested map prefix":  "81 a4 64 61 74 61 de ff ff 01",
	"huge ext32 prefix":       "81 a4 64 61 74 61 c9 ff ff ff ff 01",
	"array count above bytes": "93 80 80",
}

func TestJSONDecodeClient(t *testing.T) {
	for _, c := range decodeCases {
		t.Run(c.name, func(t *testing.T) {
			checkDecode(t, JSON, []byte(c.json), c)
		})
	}
}

func TestMsgpackDecodeClient(t *testing.T) {
	for _, c := range decodeCases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := JSONToMsgpack(nil, []byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			checkDecode(t, Msgpack, msg, c)
		})
	}
}

func checkDecode(t *testing.T, codec Codec, msg []byte, c decodeCase) {
	t.Helper()
	prior := []ClientFrame{{Type: "prior"}}
	got, err := codec.DecodeClient(prior, msg)
	if err != nil {
		t.Fatalf("%s: %v", codec.Name(), err)
	}
	if len(got) != 1+len(c.want) || got[0].Type != "prior" {
		t.Fatalf("%s: got %d frames %+v, want the prior one and %d", codec.Name(), len(got), got, len(c.want))
	}
	for i, want := range c.want {
		g := got[1+i]
		wantInvalid := ""
		if i < len(c.invalid) {
			wantInvalid = c.invalid[i]
		}
		if wantInvalid == "" && g.Invalid != "" || wantInvalid != "" && !strings.Contains(g.Invalid, wantInvalid) {
			t.Errorf("frame %d: Invalid = %q, want it to contain %q", i, g.Invalid, wantInvalid)
		}
		if wantInvalid != "" {
			want.Invalid = g.Invalid
			if g.Validate() == nil || g.Validate().Reason != g.Invalid || g.Validate().Code != CodeBadRequest {
				t.Errorf("frame %d: Validate() = %v, want 400 with the Invalid reason", i, g.Validate())
			}
		}
		if !sameJSONValue(g.Data, want.Data) {
			t.Errorf("frame %d: data %s, want %s", i, g.Data, want.Data)
		}
		g.Data, want.Data = nil, nil
		if !reflect.DeepEqual(g, want) {
			t.Errorf("frame %d:\n got %+v\nwant %+v", i, g, want)
		}
	}
}

// sameJSONValue reports whether a and b are the same JSON value (or both
// absent), whatever their whitespace and escapes.
func sameJSONValue(a, b RawJSON) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	ma, erra := JSONToMsgpack(nil, a)
	mb, errb := JSONToMsgpack(nil, b)
	return erra == nil && errb == nil && bytes.Equal(ma, mb)
}

func TestJSONDecodeClientMalformed(t *testing.T) {
	for _, msg := range malformedJSON {
		prior := []ClientFrame{{Type: "prior"}}
		got, err := JSON.DecodeClient(prior, []byte(msg))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%.60q: err = %v, want ErrMalformed", msg, err)
		}
		if len(got) != 1 || got[0].Type != "prior" {
			t.Errorf("%.60q: dst changed: %+v", msg, got)
		}
	}
}

func TestMsgpackDecodeClientMalformed(t *testing.T) {
	cases := malformedMsgpack
	// Too many frames, valid otherwise.
	many := appendMsgpackHeader(nil, mpArray, MaxFramesPerMessage+1)
	many = append(many, bytes.Repeat([]byte{0x80}, MaxFramesPerMessage+1)...)
	for name, h := range cases {
		checkMsgpackMalformed(t, name, mustHex(t, h))
	}
	checkMsgpackMalformed(t, "too many frames", many)
}

func checkMsgpackMalformed(t *testing.T, name string, msg []byte) {
	t.Helper()
	prior := []ClientFrame{{Type: "prior"}}
	got, err := Msgpack.DecodeClient(prior, msg)
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("%s: err = %v, want ErrMalformed", name, err)
	}
	if len(got) != 1 || got[0].Type != "prior" {
		t.Errorf("%s: dst changed: %+v", name, got)
	}
}

func TestDecodeMaxFrames(t *testing.T) {
	js := "[" + strings.Repeat(`{"type":"ping","id":1},`, MaxFramesPerMessage-1) + `{"type":"ping","id":1}]`
	mp, err := JSONToMsgpack(nil, []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		codec Codec
		msg   []byte
	}{{JSON, []byte(js)}, {Msgpack, mp}} {
		got, err := tc.codec.DecodeClient(nil, tc.msg)
		if err != nil || len(got) != MaxFramesPerMessage {
			t.Errorf("%s: %d frames, %v; want %d", tc.codec.Name(), len(got), err, MaxFramesPerMessage)
		}
	}
}

// TestMsgpackDecodeSpecifics covers what JSON cannot express.
func TestMsgpackDecodeSpecifics(t *testing.T) {
	cases := []struct {
		name    string
		msg     any // encoded by the msgpack package
		raw     string
		want    ClientFrame
		invalid string
	}{
		{
			name: "bin data becomes base64",
			msg:  map[string]any{"type": "upload.chunk", "id": 1, "upload": "u", "offset": 0, "data": []byte{0xde, 0xad, 0xbe, 0xef}},
			want: ClientFrame{Type: TypeUploadChunk, ID: 1, Upload: "u", Data: RawJSON(`"3q2+7w=="`)},
		},
		{
			name: "bin accepted for a string field",
			raw:  "82 a4 74 79 70 65 c4 04 70 69 6e 67 a2 69 64 01",
			want: ClientFrame{Type: TypePing, ID: 1},
		},
		{
			name: "non-string keys are ignored",
			raw:  "83 01 02 a4 74 79 70 65 a4 70 69 6e 67 91 01 a1 78",
			want: ClientFrame{Type: TypePing},
		},
		{
			name: "wide integer encodings",
			raw:  "83 a4 74 79 70 65 a3 61 63 6b a2 69 64 d3 00 00 00 00 00 00 00 05 a3 73 65 71 cf 00 00 00 00 00 00 00 09",
			want: ClientFrame{Type: TypeAck, ID: 5, Seq: 9},
		},
		{
			name:    "ext data has no JSON form",
			raw:     "83 a4 74 79 70 65 a7 70 75 62 6c 69 73 68 a4 64 61 74 61 92 01 d4 01 00 a2 69 64 03",
			want:    ClientFrame{Type: TypePublish, ID: 3},
			invalid: `field "data": msgpack value has no JSON form: ext type 1`,
		},
		{
			name:    "NaN data",
			raw:     "82 a4 64 61 74 61 cb 7f f8 00 00 00 00 00 01 a2 69 64 02",
			want:    ClientFrame{ID: 2},
			invalid: `field "data": msgpack value has no JSON form`,
		},
		{
			name:    "data nested too deeply",
			raw:     "82 a4 64 61 74 61 " + strings.Repeat("91 ", maxNesting+1) + "01 a2 69 64 02",
			want:    ClientFrame{ID: 2},
			invalid: `field "data": nested more than 10000 levels deep`,
		},
		{
			name:    "float for an integer",
			raw:     "82 a3 73 65 71 cb 3f f8 00 00 00 00 00 00 a2 69 64 02",
			want:    ClientFrame{ID: 2},
			invalid: `field "seq": want a non-negative integer, got number 1.5`,
		},
		{
			name:    "negative for an unsigned field",
			raw:     "82 a6 77 69 6e 64 6f 77 ff a2 69 64 02",
			want:    ClientFrame{ID: 2},
			invalid: `field "window": want an integer from 0 to 4294967295, got number -1`,
		},
		{
			name:    "map where a string is wanted is skipped whole",
			raw:     "83 a7 63 68 61 6e 6e 65 6c 81 a1 61 92 01 02 a2 69 64 02 a4 74 79 70 65 a4 70 69 6e 67",
			want:    ClientFrame{ID: 2, Type: TypePing},
			invalid: `field "channel": want a string, got object`,
		},
		{
			name:    "nested resume field",
			raw:     "82 a6 72 65 73 75 6d 65 82 a7 73 65 73 73 69 6f 6e 01 a5 74 6f 6b 65 6e a1 74 a2 69 64 02",
			want:    ClientFrame{ID: 2},
			invalid: `field "resume.session": want a string, got number 1`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var msg []byte
			if c.raw != "" {
				msg = mustHex(t, c.raw)
			} else {
				msg = mustMarshalMsgpack(t, c.msg)
			}
			got, err := Msgpack.DecodeClient(nil, msg)
			if err != nil || len(got) != 1 {
				t.Fatalf("got %+v, %v", got, err)
			}
			g := got[0]
			if c.invalid == "" && g.Invalid != "" || !strings.Contains(g.Invalid, c.invalid) {
				t.Errorf("Invalid = %q, want %q", g.Invalid, c.invalid)
			}
			want := c.want
			want.Invalid = g.Invalid
			if !reflect.DeepEqual(g, want) {
				t.Errorf("\n got %+v\nwant %+v", g, want)
			}
		})
	}
}

// TestDecodedDataIsACopy checks that decoded data never aliases the
// message buffer, which transports reuse.
func TestDecodedDataIsACopy(t *testing.T) {
	js := []byte(`{"type":"publish","data":{"a":"b"},"channel":"c"}`)
	mp, err := JSONToMsgpack(nil, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		codec Codec
		msg   []byte
	}{{JSON, js}, {Msgpack, mp}} {
		got, err := tc.codec.DecodeClient(nil, tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tc.msg {
			tc.msg[i] = 'X'
		}
		if string(got[0].Data) != `{"a":"b"}` || got[0].Channel != "c" {
			t.Errorf("%s: decoded frame changed with the buffer: %+v", tc.codec.Name(), got[0])
		}
	}
}

func ExampleCodec_DecodeClient() {
	frames, err := JSON.DecodeClient(nil, []byte(`[{"type":"ping","id":1},{"type":"ping","id":"two"}]`))
	if err != nil {
		fmt.Println("close with", CloseProtocolError)
		return
	}
	for _, f := range frames {
		if e := f.Validate(); e != nil {
			fmt.Println("error frame:", f.ID, e.Code, e.Reason)
			continue
		}
		fmt.Println("frame:", f.Type, f.ID)
	}
	// Output:
	// frame: ping 1
	// error frame: 0 400 field "id": want an integer from 0 to 4294967295, got string
}
