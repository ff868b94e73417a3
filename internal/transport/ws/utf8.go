package ws

import "encoding/binary"

// utf8Validator checks UTF-8 incrementally, across fragment and read
// boundaries, and fails at the first byte that can never be part of valid
// UTF-8 (so a bad text message is refused before it is complete).
//
// The state is the number of continuation bytes still expected and the
// allowed range of the next one (narrower than 0x80..0xBF right after the
// lead bytes E0, ED, F0 and F4, which rules out overlong forms, surrogates
// and code points above U+10FFFF).
type utf8Validator struct {
	need   uint8
	lo, hi byte
}

// reset forgets any partial sequence.
func (v *utf8Validator) reset() { *v = utf8Validator{} }

// complete reports whether the bytes fed so far end on a character boundary.
func (v *utf8Validator) complete() bool { return v.need == 0 }

// feed validates the next bytes of the stream. It returns false as soon as
// the stream can no longer be valid UTF-8.
func (v *utf8Validator) feed(b []byte) bool {
	i := 0
	for i < len(b) {
		if v.need > 0 {
			c := b[i]
			if c < v.lo || c > v.hi {
				return false
			}
			i++
			v.need--
			v.lo, v.hi = 0x80, 0xBF
			continue
		}
		// ASCII fast path, eight bytes at a time.
		for i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 == 0 {
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		i++
		switch {
		case c < 0x80:
		case c < 0xC2: // continuation byte without a lead, or overlong 2-byte form
			return false
		case c < 0xE0:
			v.need, v.lo, v.hi = 1, 0x80, 0xBF
		case c == 0xE0:
			v.need, v.lo, v.hi = 2, 0xA0, 0xBF
		case c == 0xED:
			v.need, v.lo, v.hi = 2, 0x80, 0x9F
		case c < 0xF0:
			v.need, v.lo, v.hi = 2, 0x80, 0xBF
		case c == 0xF0:
			v.need, v.lo, v.hi = 3, 0x90, 0xBF
		case c < 0xF4:
			v.need, v.lo, v.hi = 3, 0x80, 0xBF
		case c == 0xF4:
			v.need, v.lo, v.hi = 3, 0x80, 0x8F
		default:
			return false
		}
	}
	return true
}
