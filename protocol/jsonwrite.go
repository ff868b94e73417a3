package protocol

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// jsonSafe[c] is true for the ASCII bytes that go into a JSON string as they
// are. Quote, backslash and the control characters need an escape; bytes from
// 0x80 up start a multi-byte UTF-8 sequence and are checked one rune at a
// time, so they are false here too.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string. The output is what
// encoding/json produces with HTML escaping off: quote and backslash are
// escaped, control characters become \b \f \n \r \t or \u00XX, U+2028 and
// U+2029 become \u2028 and \u2029 (JavaScript line terminators), and every
// byte that is not part of valid UTF-8 becomes \ufffd.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, to be copied as it is
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// decodeRune is utf8.DecodeRune for either a string or a byte slice: it
// returns the rune s starts with and its length, or (RuneError, 1) when s does
// not start with a valid UTF-8 sequence. s must not be empty.
func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	const cont = 0x80 // continuation bytes are 0b10xxxxxx
	isCont := func(c byte) bool { return c&0xC0 == cont }
	n := len(s)
	c0 := s[0]
	switch {
	case c0 < utf8.RuneSelf:
		return rune(c0), 1
	case c0 < 0xC2: // a continuation byte, or an overlong two-byte form
		return utf8.RuneError, 1
	case c0 < 0xE0:
		if n < 2 || !isCont(s[1]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x1F)<<6 | rune(s[1]&0x3F), 2
	case c0 < 0xF0:
		lo, hi := byte(0x80), byte(0xBF)
		switch c0 {
		case 0xE0:
			lo = 0xA0 // no overlong forms
		case 0xED:
			hi = 0x9F // no surrogates
		}
		if n < 3 || s[1] < lo || s[1] > hi || !isCont(s[2]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	case c0 < 0xF5:
		lo, hi := byte(0x80), byte(0xBF)
		switch c0 {
		case 0xF0:
			lo = 0x90 // no overlong forms
		case 0xF4:
			hi = 0x8F // nothing above U+10FFFF
		}
		if n < 4 || s[1] < lo || s[1] > hi || !isCont(s[2]) || !isCont(s[3]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F), 4
	}
	return utf8.RuneError, 1
}

// appendJSONFloat appends f (of the given bit size, 32 or 64) as a JSON
// number. It uses the shortest representation that reads back as the same
// value, in plain notation for magnitudes from 1e-6 up to 1e21 and in
// exponent notation outside that range (the ECMAScript rule that
// encoding/json follows too). A float with an integral value keeps a ".0",
// so that the number stays a float when it is converted back to MessagePack.
// f must be finite.
func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// Turn "1e-07" into "1e-7", as ECMAScript writes it.
		n := len(dst)
		if n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, '.', '0')
}
