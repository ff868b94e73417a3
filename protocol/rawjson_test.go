package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestRawJSONJSON(t *testing.T) {
	type wrapper struct {
		D RawJSON `json:"d"`
		E RawJSON `json:"e,omitempty"`
	}
	out, err := json.Marshal(wrapper{})
	if err != nil || string(out) != `{"d":null}` {
		t.Errorf("empty RawJSON marshals as %s, %v", out, err)
	}
	out, err = json.Marshal(wrapper{D: RawJSON(`{"a":[1,2]}`)})
	if err != nil || string(out) != `{"d":{"a":[1,2]}}` {
		t.Errorf("RawJSON marshals as %s, %v", out, err)
	}
	in := []byte(`{"d": {"a" : 1}, "e": null}`)
	var w wrapper
	if err := json.Unmarshal(in, &w); err != nil {
		t.Fatal(err)
	}
	if string(w.D) != `{"a" : 1}` || string(w.E) != "null" {
		t.Errorf("unmarshalled %q %q", w.D, w.E)
	}
	in[7] = 'X' // the raw bytes were copied
	if string(w.D) != `{"a" : 1}` {
		t.Errorf("RawJSON aliases the input: %q", w.D)
	}
	if RawJSON(nil).String() != "null" || RawJSON(`1`).String() != "1" {
		t.Error("String")
	}
	if !RawJSON(nil).IsNull() || !RawJSON("null").IsNull() || RawJSON("0").IsNull() {
		t.Error("IsNull")
	}
	if got := RawJSON(nil).AppendTo([]byte("x")); string(got) != "xnull" {
		t.Errorf("AppendTo = %q", got)
	}
}

func TestRawJSONMsgpack(t *testing.T) {
	type wrapper struct {
		D RawJSON `msgpack:"d"`
		E RawJSON `msgpack:"e,omitempty"`
	}
	cases := []struct {
		json  string
		value any // what the msgpack package decodes from the encoding
	}{
		{`{"a":[1,-2,2.5,"s",true,null]}`, map[string]any{"a": []any{int8(1), int8(-2), 2.5, "s", true, nil}}},
		{`9223372036854775807`, uint64(math.MaxInt64)}, // positive values use the uint encodings
		{`-9223372036854775808`, int64(math.MinInt64)},
		{`18446744073709551615`, uint64(math.MaxUint64)},
		{`4294967296`, uint64(4294967296)},
		{`0.1`, 0.1},
		{`"\u00e9"`, "é"},
	}
	for _, c := range cases {
		b, err := msgpack.Marshal(wrapper{D: RawJSON(c.json)})
		if err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		var generic map[string]any
		if err := msgpack.Unmarshal(b, &generic); err != nil {
			t.Fatal(err)
		}
		if _, ok := generic["e"]; ok {
			t.Errorf("%s: empty RawJSON not omitted", c.json)
		}
		if !reflect.DeepEqual(generic["d"], c.value) {
			t.Errorf("%s: msgpack value %#v, want %#v", c.json, generic["d"], c.value)
		}
		var back wrapper
		if err := msgpack.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !sameJSONValue(back.D, RawJSON(c.json)) {
			t.Errorf("%s: round trip gave %s", c.json, back.D)
		}
	}
	// Values without a JSON form fail to decode.
	b, err := msgpack.Marshal(map[string]any{"d": math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	var w wrapper
	if err := msgpack.Unmarshal(b, &w); !errors.Is(err, ErrNoJSONForm) {
		t.Errorf("Inf decoded with err %v", err)
	}
	// Invalid JSON fails to encode.
	if _, err := msgpack.Marshal(wrapper{D: RawJSON(`{`)}); err == nil {
		t.Error("invalid JSON encoded")
	}
	// A nil field encodes as nil.
	b, err = msgpack.Marshal(wrapper{})
	if err != nil || !bytes.Equal(b, []byte{0x81, 0xa1, 'd', 0xc0}) {
		t.Errorf("nil RawJSON: % x, %v", b, err)
	}
}

func TestRawJSONDecodeBytes(t *testing.T) {
	cases := []struct {
		raw  string
		want []byte
		ok   bool
	}{
		{`"3q2+7w=="`, []byte{0xde, 0xad, 0xbe, 0xef}, true},
		{`""`, []byte{}, true},
		{`"3q2\/7w=="`, []byte{0xde, 0xad, 0xbf, 0xef}, true},
		{`"3q2+7w"`, nil, false}, // no padding
		{`"!!!!"`, nil, false},
		{`123`, nil, false},
		{`"`, nil, false},
		{``, nil, false},
		{`"\x"`, nil, false},
	}
	for _, c := range cases {
		got, err := RawJSON(c.raw).DecodeBytes([]byte("pre"))
		if c.ok != (err == nil) {
			t.Errorf("%s: err %v", c.raw, err)
			continue
		}
		if !c.ok {
			if !errors.Is(err, ErrNotBase64) || string(got) != "pre" {
				t.Errorf("%s: got %q, %v", c.raw, got, err)
			}
			continue
		}
		if !bytes.Equal(got[3:], c.want) || string(got[:3]) != "pre" {
			t.Errorf("%s: got % x", c.raw, got)
		}
	}
	// Bytes sent as bin over MessagePack arrive as the same base64.
	chunk := []byte{0, 1, 2, 250, 251, 252, 253, 254, 255}
	msg, err := msgpack.Marshal(map[string]any{"type": "upload.chunk", "id": 1, "upload": "u", "data": chunk})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := Msgpack.DecodeClient(nil, msg)
	if err != nil || len(frames) != 1 {
		t.Fatal(err)
	}
	if err := frames[0].Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := frames[0].Data.DecodeBytes(nil)
	if err != nil || !bytes.Equal(got, chunk) {
		t.Errorf("chunk bytes % x, %v", got, err)
	}
}
