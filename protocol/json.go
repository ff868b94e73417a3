package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
)

// JSON is the codec of the "ferry.v1.json" subprotocol (text frames).
//
// DecodeClient accepts one object or an array of objects; each is read with
// encoding/json into a ClientFrame (unknown fields are ignored, and of
// duplicate fields the last wins). Server frames are written by
// encoding/json without HTML escaping and without a trailing newline; the
// message frame of a PreparedMessage is written byte for byte as
// AppendFrame would write the same Message.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Name() string { return SubprotocolJSON }
func (jsonCodec) Binary() bool { return false }

func (jsonCodec) DecodeClient(dst []ClientFrame, msg []byte) ([]ClientFrame, error) {
	i := 0
	for i < len(msg) && (msg[i] == ' ' || msg[i] == '\t' || msg[i] == '\n' || msg[i] == '\r') {
		i++
	}
	if i == len(msg) {
		return dst, malformed("empty message")
	}
	switch msg[i] {
	case '{':
		// Unmarshal checks the syntax of the whole input before it stores
		// anything, so a syntax error is never mistaken for a field error.
		var f ClientFrame
		err := json.Unmarshal(msg, &f)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return dst, malformed("%v", err)
		}
		return append(dst, jsonFrame(&f, err)), nil
	case '[':
		return decodeJSONArray(dst, msg)
	}
	if !validJSON(msg) {
		return dst, malformed("not JSON")
	}
	return dst, malformed("not an object or an array of objects")
}

// decodeJSONArray reads a message that is an array of frames. One pass
// checks the syntax and finds the elements, which are decoded as they are
// found.
func decodeJSONArray(dst []ClientFrame, msg []byte) ([]ClientFrame, error) {
	orig := len(dst)
	s := jsonScanner{src: msg}
	elem := 0 // where the current element started
	n := 0
	for {
		t, err := s.next()
		if err != nil {
			return dst[:orig], malformed("%v", err)
		}
		switch {
		case t.kind == jtComma:
			continue
		case s.depth == 2 && t.kind == jtBeginObject: // an element starts
			elem = t.start
			continue
		case s.depth == 2 && t.kind == jtBeginArray:
			return dst[:orig], malformed("element %d of the array is not an object", n)
		case s.depth > 1: // inside an element
			continue
		}
		switch t.kind {
		case jtBeginArray, jtEndArray, jtEOF: // the top-level array itself
			if t.kind == jtEOF {
				return dst, nil
			}
			continue
		case jtEndObject: // an element is complete
			if n++; n > MaxFramesPerMessage {
				return dst[:orig], malformed("more than %d frames in one message", MaxFramesPerMessage)
			}
			var f ClientFrame
			err := json.Unmarshal(msg[elem:t.end], &f)
			var se *json.SyntaxError
			if errors.As(err, &se) { // the scanner and encoding/json disagree
				return dst[:orig], malformed("%v", err)
			}
			dst = append(dst, jsonFrame(&f, err))
			continue
		}
		return dst[:orig], malformed("element %d of the array is not an object", n)
	}
}

// jsonFrame returns f, or, when decoding it failed with err, a frame that
// says why (keeping the type and ID when they could be read: encoding/json
// goes on past a field of the wrong type).
func jsonFrame(f *ClientFrame, err error) ClientFrame {
	if err == nil {
		return *f
	}
	reason := err.Error()
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := te.Field
		if path == "" {
			path = "(frame)"
		}
		reason = invalidField(path, wantForType(te.Type), te.Value)
	}
	return ClientFrame{Type: f.Type, ID: f.ID, Invalid: reason}
}

// wantForType says what a field of Go type t wants, in JSON terms.
func wantForType(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return wantString
	case reflect.Bool:
		return wantBool
	case reflect.Uint32:
		return wantUint32
	case reflect.Uint, reflect.Uint64:
		return wantUint64
	case reflect.Int, reflect.Int64:
		return wantInt
	case reflect.Struct, reflect.Pointer, reflect.Map:
		return wantObject
	}
	return "a " + t.String()
}

// jsonEncoder is a reusable encoder that writes into an appendWriter.
type jsonEncoder struct {
	w   appendWriter
	enc *json.Encoder
}

var jsonEncoders = sync.Pool{New: func() any {
	e := new(jsonEncoder)
	e.enc = json.NewEncoder(&e.w)
	e.enc.SetEscapeHTML(false)
	return e
}}

func (jsonCodec) AppendFrame(dst []byte, f ServerFrame) ([]byte, error) {
	f.stamp()
	e := jsonEncoders.Get().(*jsonEncoder)
	e.w.b = dst
	err := e.enc.Encode(f)
	out := e.w.b
	e.w.b = nil
	jsonEncoders.Put(e)
	if err != nil {
		return dst, fmt.Errorf("encode %s frame: %w", f.FrameType(), err)
	}
	return out[:len(out)-1], nil // Encode ends with a newline
}

func (jsonCodec) AppendMessage(dst []byte, p *PreparedMessage, seq uint64) []byte {
	dst = append(dst, p.json...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

func (jsonCodec) BeginBatch(dst []byte, n int) []byte { return append(dst, '[') }
func (jsonCodec) BatchSeparator(dst []byte) []byte    { return append(dst, ',') }
func (jsonCodec) EndBatch(dst []byte) []byte          { return append(dst, ']') }
