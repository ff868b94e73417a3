package protocol

import (
	"bytes"
	"encoding/base64"
	"unicode/utf8"
)

// BinaryKey is the one member of the JSON object that stands for a binary
// payload: {"$bin":"<standard, padded base64>"}. Ferry carries payloads as
// JSON (RawJSON); bytes that are not a JSON text travel in this wrapper.
//
// Every codec agrees on it:
//   - a protobuf publisher's data bytes that are UTF-8 JSON text are that
//     JSON value; any other bytes become the wrapper (PayloadFromBytes);
//   - a protobuf subscriber gets a wrapper's bytes, and the JSON text of
//     every other payload (AppendPayloadBytes);
//   - JSON and MessagePack subscribers get the wrapper as it is: an object
//     (a map) with one member "$bin" holding a base64 string. A JSON or
//     MessagePack publisher that sends that object publishes those bytes.
//
// So a payload keeps its bytes across every pair of codecs; only a JSON
// text sent by protobuf loses insignificant whitespace, as it does when it
// comes by JSON.
const BinaryKey = "$bin"

const (
	binaryPrefix = `{"` + BinaryKey + `":"`
	binarySuffix = `"}`
)

// BinaryJSON returns the payload that carries b as binary, whatever b
// holds: {"$bin":"<base64 of b>"}.
func BinaryJSON(b []byte) RawJSON {
	out := make([]byte, 0, len(binaryPrefix)+base64.StdEncoding.EncodedLen(len(b))+len(binarySuffix))
	out = append(out, binaryPrefix...)
	out = base64.StdEncoding.AppendEncode(out, b)
	return append(out, binarySuffix...)
}

// PayloadFromBytes returns the payload that the bytes of a protobuf data
// field stand for, as a fresh copy: b itself in compact form when b is one
// JSON value in valid UTF-8 (within the nesting limit), else BinaryJSON(b).
// Empty b is no payload (nil).
func PayloadFromBytes(b []byte) RawJSON {
	if len(b) == 0 {
		return nil
	}
	if utf8.Valid(b) {
		if js, err := appendCompactJSON(make([]byte, 0, len(b)), b); err == nil {
			return js
		}
	}
	return BinaryJSON(b)
}

// binaryBody returns the base64 text of r when r has the shape of a
// binary payload (see BinaryKey); whether it decodes is for the caller.
func (r RawJSON) binaryBody() ([]byte, bool) {
	if len(r) < len(binaryPrefix)+len(binarySuffix) ||
		!bytes.HasPrefix(r, []byte(binaryPrefix)) || !bytes.HasSuffix(r, []byte(binarySuffix)) {
		return nil, false
	}
	return r[len(binaryPrefix) : len(r)-len(binarySuffix)], true
}

// Binary returns the bytes of a binary payload (see BinaryKey), and false
// when r is not one: not the wrapper, or its string is not standard padded
// base64 written without escapes.
func (r RawJSON) Binary() ([]byte, bool) {
	b, ok := r.appendBinary(nil)
	return b, ok
}

// appendBinary appends the bytes of a binary payload to dst; false (and dst
// unchanged) when r is not one.
func (r RawJSON) appendBinary(dst []byte) ([]byte, bool) {
	enc, ok := r.binaryBody()
	if !ok {
		return dst, false
	}
	out, err := base64.StdEncoding.AppendDecode(dst, enc)
	if err != nil {
		return dst, false
	}
	return out, true
}

// AppendPayloadBytes appends the bytes that a protobuf peer gets for
// payload r: the decoded bytes of a binary payload, else the JSON text
// (nothing for an empty r).
func (r RawJSON) AppendPayloadBytes(dst []byte) []byte {
	if out, ok := r.appendBinary(dst); ok {
		return out
	}
	return append(dst, r...)
}
