package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

func FuzzDecodeJSON(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c.json))
	}
	for _, m := range malformedJSON {
		if len(m) < 1000 {
			f.Add([]byte(m))
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		frames, err := JSON.DecodeClient(nil, msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if len(frames) != 0 {
				t.Fatalf("frames %+v with an error", frames)
			}
			// Valid JSON is rejected only when it is not one object or an
			// array of at most MaxFramesPerMessage objects.
			var v any
			if json.Unmarshal(msg, &v) == nil {
				switch x := v.(type) {
				case map[string]any:
					t.Fatalf("object rejected: %v", err)
				case []any:
					allObjects := len(x) <= MaxFramesPerMessage
					for _, e := range x {
						if _, ok := e.(map[string]any); !ok {
							allObjects = false
						}
					}
					if allObjects {
						t.Fatalf("array of objects rejected: %v", err)
					}
				}
			}
			return
		}
		if !json.Valid(msg) {
			t.Fatalf("invalid JSON %q accepted", msg)
		}
		checkDecodedFrames(t, frames)
	})
}

func FuzzDecodeMsgpack(f *testing.F) {
	for _, c := range decodeCases {
		if mp, err := JSONToMsgpack(nil, []byte(c.json)); err == nil {
			f.Add(mp)
		}
	}
	for _, h := range malformedMsgpack {
		f.Add(mustHex(f, h))
	}
	f.Add(mustHex(f, "83 a4 74 79 70 65 a7 70 75 62 6c 69 73 68 a4 64 61 74 61 92 01 d4 01 00 a2 69 64 03"))
	f.Add(mustHex(f, "84 c3 01 c0 02 cb 3f f8 00 00 00 00 00 00 03 c4 01 ff 04"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		frames, err := Msgpack.DecodeClient(nil, msg)
		if checkDecodeError(t, frames, err) {
			return
		}
		if len(frames) == 0 && !(len(msg) == 1 && msg[0] == 0x90) && !(len(msg) == 3 && msg[0] == 0xdc) && !(len(msg) == 5 && msg[0] == 0xdd) {
			t.Fatalf("no frames from %x", msg)
		}
		checkDecodedFrames(t, frames)
	})
}

// checkDecodeError reports whether DecodeClient failed, checking that a
// failure wraps ErrMalformed and returns no frames.
func checkDecodeError(t *testing.T, frames []ClientFrame, err error) bool {
	t.Helper()
	if err == nil {
		return false
	}
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
	if len(frames) != 0 {
		t.Fatalf("frames %+v with an error", frames)
	}
	return true
}

// checkDecodedFrames checks the invariants of decoded frames: at most
// MaxFramesPerMessage; Validate does not panic; a frame that is not Invalid
// has valid JSON data and survives a round trip through both codecs.
func checkDecodedFrames(t *testing.T, frames []ClientFrame) {
	t.Helper()
	if len(frames) > MaxFramesPerMessage {
		t.Fatalf("%d frames", len(frames))
	}
	for _, f := range frames {
		if err := f.Validate(); err != nil && err.Code != CodeBadRequest {
			t.Fatalf("Validate() = %+v", err)
		}
		if f.Invalid != "" {
			if f.Validate() == nil {
				t.Fatal("an Invalid frame validates")
			}
			continue
		}
		if f.Data != nil {
			if !json.Valid(f.Data) {
				t.Fatalf("data %q is not valid JSON", f.Data)
			}
			if _, err := JSONToMsgpack(nil, f.Data); err != nil {
				t.Fatalf("data %q does not convert: %v", f.Data, err)
			}
		}
		// Through MessagePack (as the msgpack package encodes it, like a
		// client would) and back.
		mp, err := msgpack.Marshal(&f)
		if err != nil {
			t.Fatalf("msgpack encode %+v: %v", f, err)
		}
		back, err := Msgpack.DecodeClient(nil, mp)
		if err != nil || len(back) != 1 {
			t.Fatalf("msgpack decode of %x: %v", mp, err)
		}
		sameFrame(t, back[0], f)
		// Through JSON and back (encoding/json writes valid UTF-8 only, so
		// only frames whose strings are valid UTF-8 come back equal).
		js, err := json.Marshal(&f)
		if err != nil {
			t.Fatalf("json encode %+v: %v", f, err)
		}
		back, err = JSON.DecodeClient(nil, js)
		if err != nil || len(back) != 1 {
			t.Fatalf("json decode of %s: %v", js, err)
		}
		if validUTF8Strings(f) {
			sameFrame(t, back[0], f)
		}
	}
}

func sameFrame(t *testing.T, got, want ClientFrame) {
	t.Helper()
	if !sameJSONValue(got.Data, want.Data) {
		t.Fatalf("data %q, want %q", got.Data, want.Data)
	}
	got.Data, want.Data = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

// validUTF8Strings reports whether every string of f is valid UTF-8.
func validUTF8Strings(f ClientFrame) bool {
	ok := true
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			ok = ok && utf8.ValidString(v.String())
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		}
	}
	walk(reflect.ValueOf(f))
	return ok
}

func FuzzDecodeProtobuf(f *testing.F) {
	for _, c := range decodeCases {
		if protobufEncodable(c) {
			f.Add(encodeProtobufClient(f, c.want))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{0x0a, 0x04, 0xd2, 0x05, 0x01, 0x00}) // a frame of unknown kind 90
	f.Fuzz(func(t *testing.T, msg []byte) {
		frames, err := Protobuf.DecodeClient(nil, msg)
		if checkDecodeError(t, frames, err) {
			return
		}
		if len(frames) == 0 || len(frames) > MaxFramesPerMessage {
			t.Fatalf("%d frames from %x", len(frames), msg)
		}
		for _, fr := range frames {
			if e := fr.Validate(); e != nil && e.Code != CodeBadRequest {
				t.Fatalf("Validate() = %+v", e)
			}
			if fr.Data != nil && !json.Valid(fr.Data) {
				t.Fatalf("data %q is not valid JSON", fr.Data)
			}
			if fr.Invalid != "" || fr.Validate() != nil {
				continue
			}
			// A valid frame survives the client encoder and back.
			again, err := AppendProtobufClientFrame(nil, &fr)
			if err != nil {
				t.Fatalf("encode %+v: %v", fr, err)
			}
			back, err := Protobuf.DecodeClient(nil, again)
			if err != nil || len(back) != 1 {
				t.Fatalf("decode of %x: %v", again, err)
			}
			sameFrame(t, back[0], fr)
		}
	})
}
