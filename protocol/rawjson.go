package protocol

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// RawJSON is a payload as JSON bytes: Ferry's one representation of the
// data of a publication, whatever codec it arrived in or leaves by.
//
// In JSON it is written as it is (nil or empty as null) and read by copying
// the raw bytes. In MessagePack it is written as the equivalent MessagePack
// value and read by converting the value to JSON:
//   - objects, arrays, strings, booleans and null map to maps, arrays, str,
//     bool and nil;
//   - a JSON number without fraction or exponent that fits int64 or uint64
//     is a MessagePack integer (no precision is lost); other numbers are
//     float64; a MessagePack float is written back with a fraction (1.0), so
//     it stays a float;
//   - MessagePack bin becomes a JSON string with the bytes in standard
//     base64. This is how the bytes of an upload.chunk arrive from a
//     MessagePack client: as the same base64 string a JSON client sends (see
//     DecodeBytes);
//   - a map key that is not a string becomes its JSON text as a string
//     (1 -> "1", true -> "true"; bin -> base64);
//   - ext values, NaN, infinities and map keys that are maps or arrays have
//     no JSON form: reading them fails with an error wrapping ErrNoJSONForm.
//
// A RawJSON read by this package is a fresh copy, never a view of the input.
type RawJSON []byte

var (
	_ json.Marshaler        = RawJSON(nil)
	_ json.Unmarshaler      = (*RawJSON)(nil)
	_ msgpack.CustomEncoder = RawJSON(nil)
	_ msgpack.CustomDecoder = (*RawJSON)(nil)
)

// MarshalJSON returns r itself, or null when r is empty.
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON sets *r to a copy of b.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	*r = append(RawJSON(nil), b...)
	return nil
}

// EncodeMsgpack writes r as the equivalent MessagePack value (nil when r is
// empty). It fails when r is not valid JSON.
func (r RawJSON) EncodeMsgpack(enc *msgpack.Encoder) error {
	if len(r) == 0 {
		return enc.EncodeNil()
	}
	b, err := JSONToMsgpack(nil, r)
	if err != nil {
		return fmt.Errorf("protocol.RawJSON: %w", err)
	}
	_, err = enc.Writer().Write(b)
	return err
}

// DecodeMsgpack reads the next MessagePack value as JSON. (A nil read as a
// struct field by the msgpack package leaves r nil without calling this;
// MarshalJSON turns that back into null.)
func (r *RawJSON) DecodeMsgpack(dec *msgpack.Decoder) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return err
	}
	js, err := MsgpackToJSON(nil, raw)
	if err != nil {
		return fmt.Errorf("protocol.RawJSON: %w", err)
	}
	*r = js
	return nil
}

// String returns the JSON text.
func (r RawJSON) String() string {
	if len(r) == 0 {
		return "null"
	}
	return string(r)
}

// AppendTo appends the JSON text to dst.
func (r RawJSON) AppendTo(dst []byte) []byte {
	if len(r) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, r...)
}

// IsNull reports whether r is empty or the JSON null.
func (r RawJSON) IsNull() bool {
	return len(r) == 0 || string(r) == "null"
}

// DecodeBytes appends to dst the bytes that r carries as a JSON string of
// standard (padded) base64: the data of an upload.chunk, whether it was sent
// as a base64 string in JSON or as bin in MessagePack.
func (r RawJSON) DecodeBytes(dst []byte) ([]byte, error) {
	if len(r) < 2 || r[0] != '"' || r[len(r)-1] != '"' {
		return dst, ErrNotBase64
	}
	body := []byte(r[1 : len(r)-1])
	for _, c := range body {
		if c == '\\' {
			// Escapes are legal JSON, if unusual in base64 ("\/").
			var s string
			if err := json.Unmarshal(r, &s); err != nil {
				return dst, ErrNotBase64
			}
			body = []byte(s)
			break
		}
	}
	out, err := base64.StdEncoding.AppendDecode(dst, body)
	if err != nil {
		return dst, fmt.Errorf("%w: %v", ErrNotBase64, err)
	}
	return out, nil
}
