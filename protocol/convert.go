package protocol

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file converts between JSON and MessagePack values. Both directions
// work without recursion (an explicit stack bounded by maxNesting).
//
// JSON to MessagePack: objects become maps, arrays arrays, strings str (with
// escapes resolved and invalid UTF-8 replaced by U+FFFD), true/false/null
// bool and nil. A number without fraction or exponent that fits int64 or
// uint64 becomes the smallest MessagePack integer that holds it; any other
// number becomes a float64 (one too large for float64 becomes +-Inf).
//
// MessagePack to JSON: the reverse, with these values that JSON lacks:
//   - bin becomes a string holding the bytes in standard base64 (with
//     padding). This is how the bytes of an upload.chunk sent over MessagePack
//     reach the server: as the same base64 string a JSON client sends.
//   - a map key that is not a string becomes a string: the key's JSON text
//     (1, -2, 1.5, true, null) or, for bin, its base64. A key that is an array,
//     a map or an ext value is an error.
//   - float32 and float64 are written as JSON numbers; a float with an
//     integral value keeps ".0" (1.0, not 1) so that it converts back to a
//     float. NaN and +-Inf are errors.
//   - ext values (timestamps included) are errors.

// JSONToMsgpack appends to dst the MessagePack form of the JSON value js.
// It fails when js is not exactly one valid JSON value.
func JSONToMsgpack(dst []byte, js []byte) ([]byte, error) {
	return appendJSONAsMsgpack(dst, js)
}

// MsgpackToJSON appends to dst the JSON form of the MessagePack value mp (see
// the conversion rules on RawJSON). It fails when mp is not exactly one
// complete MessagePack value or holds a value without a JSON form.
func MsgpackToJSON(dst []byte, mp []byte) ([]byte, error) {
	r := mpReader{b: mp}
	start := len(dst)
	dst, err := appendMsgpackAsJSON(dst, &r)
	if err != nil {
		return dst[:start], err
	}
	if r.off != len(mp) {
		return dst[:start], fmt.Errorf("msgpack: %d bytes after the value", len(mp)-r.off)
	}
	return dst, nil
}

// ---- MessagePack writers ----

func appendMsgpackUint(dst []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

func appendMsgpackInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendMsgpackUint(dst, uint64(v))
	case v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
}

func appendMsgpackFloat64(dst []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(f))
}

// appendMsgpackHeader appends the smallest header for a str of n bytes, an
// array of n elements or a map of n pairs.
func appendMsgpackHeader(dst []byte, kind mpKind, n uint64) []byte {
	var b [5]byte
	k := putMsgpackHeader(b[:], kind, n)
	return append(dst, b[:k]...)
}

// putMsgpackHeader writes the header into b (at least 5 bytes) and returns
// its length.
func putMsgpackHeader(b []byte, kind mpKind, n uint64) int {
	// The fix form's base and limit, and the 16-bit form's code (the 32-bit
	// form's code follows it).
	fix, fixLimit, code16 := byte(0x80), uint64(16), byte(0xde) // map
	switch kind {
	case mpStr:
		fix, fixLimit, code16 = 0xa0, 32, 0xda
		if n >= fixLimit && n <= math.MaxUint8 {
			b[0], b[1] = 0xd9, byte(n) // str 8
			return 2
		}
	case mpArray:
		fix, fixLimit, code16 = 0x90, 16, 0xdc
	}
	switch {
	case n < fixLimit:
		b[0] = fix | byte(n)
		return 1
	case n <= math.MaxUint16:
		b[0] = code16
		binary.BigEndian.PutUint16(b[1:], uint16(n))
		return 3
	}
	b[0] = code16 + 1
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	return 5
}

func appendMsgpackString(dst []byte, s string) []byte {
	dst = appendMsgpackHeader(dst, mpStr, uint64(len(s)))
	return append(dst, s...)
}

// ---- JSON to MessagePack ----

// mpFix is a MessagePack header whose size was not known when its place
// came: a 5-byte placeholder at pos, rewritten by compactHeaders.
type mpFix struct {
	pos  int
	kind mpKind
	n    uint64
}

func appendJSONAsMsgpack(dst, src []byte) ([]byte, error) {
	s := jsonScanner{src: src}
	start := len(dst)
	var fixBuf [16]mpFix
	fixes := fixBuf[:0]
	var openBuf [16]int
	open := openBuf[:0] // indexes in fixes of the open containers
	for {
		t, err := s.next()
		if err != nil {
			return dst[:start], err
		}
		switch t.kind {
		case jtEOF:
			return compactHeaders(dst, fixes)
		case jtComma, jtColon:
			continue
		case jtEndObject, jtEndArray:
			open = open[:len(open)-1]
			continue
		case jtKey:
			fixes[open[len(open)-1]].n++
		default: // a value
			if len(open) > 0 && fixes[open[len(open)-1]].kind == mpArray {
				fixes[open[len(open)-1]].n++
			}
		}
		switch t.kind {
		case jtBeginObject, jtBeginArray:
			kind := mpMap
			if t.kind == jtBeginArray {
				kind = mpArray
			}
			open = append(open, len(fixes))
			fixes = append(fixes, mpFix{pos: len(dst), kind: kind})
			dst = append(dst, 0, 0, 0, 0, 0)
		case jtKey, jtString:
			body := src[t.start+1 : t.end-1]
			if t.simple {
				dst = appendMsgpackHeader(dst, mpStr, uint64(len(body)))
				dst = append(dst, body...)
				break
			}
			pos := len(dst)
			dst = appendUnescaped(append(dst, 0, 0, 0, 0, 0), body)
			fixes = append(fixes, mpFix{pos: pos, kind: mpStr, n: uint64(len(dst) - pos - 5)})
		case jtNumber:
			dst = appendJSONNumberAsMsgpack(dst, src[t.start:t.end], t.integer)
		case jtTrue:
			dst = append(dst, 0xc3)
		case jtFalse:
			dst = append(dst, 0xc2)
		case jtNull:
			dst = append(dst, 0xc0)
		}
	}
}

// compactHeaders replaces the 5-byte placeholders by headers of their final
// size, moving what follows each one to the left, in one pass.
func compactHeaders(dst []byte, fixes []mpFix) ([]byte, error) {
	if len(fixes) == 0 {
		return dst, nil
	}
	w := fixes[0].pos // where the next byte goes
	r := w            // where the next byte comes from; w <= r
	for _, f := range fixes {
		if f.n > math.MaxUint32 {
			return nil, fmt.Errorf("json: more than %d elements in one value", uint64(math.MaxUint32))
		}
		w += copy(dst[w:], dst[r:f.pos])
		w += putMsgpackHeader(dst[w:], f.kind, f.n)
		r = f.pos + 5
	}
	w += copy(dst[w:], dst[r:])
	return dst[:w], nil
}

func appendJSONNumberAsMsgpack(dst, num []byte, integer bool) []byte {
	if integer {
		neg := num[0] == '-'
		digits := num
		if neg {
			digits = num[1:]
		}
		var v uint64
		fits := true
		for _, c := range digits {
			d := uint64(c - '0')
			if v > (math.MaxUint64-d)/10 {
				fits = false
				break
			}
			v = v*10 + d
		}
		switch {
		case fits && !neg:
			return appendMsgpackUint(dst, v)
		case fits && v <= 1<<63:
			return appendMsgpackInt(dst, int64(-v)) // two's complement: -v fits int64
		}
	}
	// The syntax was checked; out of range gives +-Inf, which is kept.
	f, _ := strconv.ParseFloat(string(num), 64)
	return appendMsgpackFloat64(dst, f)
}

// appendUnescaped appends the contents of a JSON string (without its
// quotes, already checked by the scanner) with escapes resolved. Invalid
// UTF-8 and unpaired surrogates become U+FFFD, as encoding/json does.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			switch e := s[i+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := hex4(s[i+2:])
				if !ok { // not after the scanner
					dst = append(dst, string(utf8.RuneError)...)
					i += 2
					continue
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok2 := rune(0), false
					if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2, ok2 = hex4(s[i+2:])
					}
					if pair := utf16.DecodeRune(r, r2); ok2 && pair != utf8.RuneError {
						r = pair
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			i += 2
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, string(utf8.RuneError)...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// hex4 reads four hex digits.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// ---- MessagePack to JSON ----

// mpLevel is an open array or map while converting MessagePack to JSON.
type mpLevel struct {
	left  uint64 // values still to come (a map counts keys and values)
	isMap bool
}

// appendMsgpackAsJSON converts the one value at r to JSON.
func appendMsgpackAsJSON(dst []byte, r *mpReader) ([]byte, error) {
	var stackBuf [16]mpLevel
	stack := stackBuf[:0]
	for {
		t, err := r.next()
		if err != nil {
			return dst, err
		}
		// A key of a map: a value with an even count of values left.
		if n := len(stack); n > 0 && stack[n-1].isMap && stack[n-1].left%2 == 0 && t.kind != mpStr {
			if dst, err = appendMsgpackKey(dst, &t); err != nil {
				return dst, err
			}
		} else {
			switch t.kind {
			case mpArray, mpMap:
				open, closer := byte('['), byte(']')
				if t.kind == mpMap {
					open, closer = '{', '}'
				}
				if t.u == 0 {
					dst = append(dst, open, closer)
					break
				}
				if len(stack) >= maxNesting {
					return dst, errTooDeep
				}
				dst = append(dst, open)
				left := t.u
				if t.kind == mpMap {
					left *= 2
				}
				stack = append(stack, mpLevel{left: left, isMap: t.kind == mpMap})
				continue // the container is not complete yet
			default:
				if dst, err = appendMsgpackScalar(dst, &t); err != nil {
					return dst, err
				}
			}
		}
		// A value is complete: write what follows it, closing every
		// container it completes.
		for {
			n := len(stack)
			if n == 0 {
				return dst, nil
			}
			top := &stack[n-1]
			top.left--
			if top.left > 0 {
				if top.isMap && top.left%2 == 1 {
					dst = append(dst, ':')
				} else {
					dst = append(dst, ',')
				}
				break
			}
			if top.isMap {
				dst = append(dst, '}')
			} else {
				dst = append(dst, ']')
			}
			stack = stack[:n-1]
		}
	}
}

// appendMsgpackScalar appends a scalar token (not an array or map) as JSON.
func appendMsgpackScalar(dst []byte, t *mpToken) ([]byte, error) {
	switch t.kind {
	case mpNil:
		return append(dst, "null"...), nil
	case mpBool:
		if t.u == 1 {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case mpUint:
		return strconv.AppendUint(dst, t.u, 10), nil
	case mpInt:
		return strconv.AppendInt(dst, t.i(), 10), nil
	case mpFloat:
		f := t.f()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, fmt.Errorf("%w: float %v", ErrNoJSONForm, f)
		}
		return appendJSONFloat(dst, f, int(t.bits)), nil
	case mpStr:
		return appendJSONString(dst, t.b), nil
	case mpBin:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, t.b)
		return append(dst, '"'), nil
	case mpExt:
		return dst, fmt.Errorf("%w: ext type %d", ErrNoJSONForm, t.ext)
	}
	return dst, fmt.Errorf("%w: map or array in scalar position", ErrNoJSONForm)
}

// appendMsgpackKey appends a map key that is not a str as a JSON string.
func appendMsgpackKey(dst []byte, t *mpToken) ([]byte, error) {
	switch t.kind {
	case mpArray, mpMap, mpExt:
		return dst, fmt.Errorf("%w: map key of type %s", ErrNoJSONForm, t.describe())
	case mpBin:
		return appendMsgpackScalar(dst, t) // base64 is already a JSON string
	}
	// The JSON text of nil, bools and numbers needs no escaping.
	dst = append(dst, '"')
	dst, err := appendMsgpackScalar(dst, t)
	return append(dst, '"'), err
}
