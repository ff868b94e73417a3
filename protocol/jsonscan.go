package protocol

import (
	"errors"
	"fmt"
)

// This file holds a small validating JSON tokenizer. It accepts exactly what
// encoding/json accepts (RFC 8259, including strings with invalid UTF-8, with
// the same nesting limit) and hands out tokens as views of the input, so
// compacting JSON and converting it to MessagePack need no allocation per
// token. It works without recursion.

// maxNesting bounds how deeply arrays and objects nest, in JSON and in
// MessagePack. It is encoding/json's own limit, so whatever encoding/json
// accepts can be converted.
const maxNesting = 10000

// errTooDeep is returned for values nested more deeply than maxNesting.
var errTooDeep = fmt.Errorf("nested more than %d levels deep", maxNesting)

type jsonTokKind uint8

const (
	jtEOF jsonTokKind = iota // the end of the input, after one complete value
	jtBeginObject
	jtEndObject
	jtBeginArray
	jtEndArray
	jtComma
	jtColon
	jtKey    // a string in key position, quotes included
	jtString // a string in value position, quotes included
	jtNumber
	jtTrue
	jtFalse
	jtNull
)

// jsonTok is one token: its kind and where it is in the input.
type jsonTok struct {
	kind       jsonTokKind
	start, end int
	// simple is set for a string without escapes and with valid UTF-8: its
	// contents are src[start+1:end-1] as they are.
	simple bool
	// integer is set for a number without fraction and exponent.
	integer bool
}

// What the scanner accepts next.
const (
	stValue      = iota // a value (at the start, after ':', after ',' in an array)
	stValueOrEnd        // a value or ']' (after '[')
	stKeyOrEnd          // a key or '}' (after '{')
	stKey               // a key (after ',' in an object)
	stColon             // ':' (after a key)
	stCommaOrEnd        // ',' or the container's end (after a value in a container)
	stDone              // nothing but the end of the input
)

// jsonScanner tokenizes one JSON value.
type jsonScanner struct {
	src   []byte
	off   int
	state uint8
	// The open containers, '{' or '[': the outermost ones in near, the
	// rest (rare) in far. depth counts them all.
	depth int
	near  [32]byte
	far   []byte
}

func (s *jsonScanner) push(c byte) {
	if s.depth < len(s.near) {
		s.near[s.depth] = c
	} else {
		s.far = append(s.far[:s.depth-len(s.near)], c)
	}
	s.depth++
}

// top returns the innermost open container; depth must not be 0.
func (s *jsonScanner) top() byte {
	d := s.depth - 1
	if d < len(s.near) {
		return s.near[d]
	}
	return s.far[d-len(s.near)]
}

func (s *jsonScanner) syntaxError(what string) error {
	if s.off >= len(s.src) {
		return fmt.Errorf("json: %s: unexpected end of input", what)
	}
	return fmt.Errorf("json: %s: unexpected %q at offset %d", what, s.src[s.off], s.off)
}

var errJSONEmpty = errors.New("json: empty input")

// next returns the next token; whitespace is skipped.
func (s *jsonScanner) next() (jsonTok, error) {
	src := s.src
	for s.off < len(src) {
		if c := src[s.off]; c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			s.off++
			continue
		}
		break
	}
	if s.off >= len(src) {
		if s.state == stDone {
			return jsonTok{kind: jtEOF, start: s.off, end: s.off}, nil
		}
		if s.off == 0 || s.depth == 0 && s.state == stValue {
			return jsonTok{}, errJSONEmpty
		}
		return jsonTok{}, s.syntaxError("incomplete value")
	}
	c := src[s.off]
	start := s.off
	switch s.state {
	case stDone:
		return jsonTok{}, s.syntaxError("after the top-level value")
	case stColon:
		if c != ':' {
			return jsonTok{}, s.syntaxError("after an object key")
		}
		s.off++
		s.state = stValue
		return jsonTok{kind: jtColon, start: start, end: s.off}, nil
	case stCommaOrEnd:
		inObject := s.top() == '{'
		switch {
		case c == ',':
			s.off++
			if inObject {
				s.state = stKey
			} else {
				s.state = stValue
			}
			return jsonTok{kind: jtComma, start: start, end: s.off}, nil
		case c == '}' && inObject:
			s.off++
			return s.closed(jtEndObject, start), nil
		case c == ']' && !inObject:
			s.off++
			return s.closed(jtEndArray, start), nil
		}
		return jsonTok{}, s.syntaxError("after a value")
	case stKeyOrEnd, stKey:
		if c == '}' && s.state == stKeyOrEnd {
			s.off++
			return s.closed(jtEndObject, start), nil
		}
		if c != '"' {
			return jsonTok{}, s.syntaxError("looking for an object key")
		}
		t, err := s.scanString()
		t.kind = jtKey
		s.state = stColon
		return t, err
	case stValueOrEnd:
		if c == ']' {
			s.off++
			return s.closed(jtEndArray, start), nil
		}
	}

	// A value.
	var t jsonTok
	switch {
	case c == '{' || c == '[':
		if s.depth >= maxNesting {
			return jsonTok{}, errTooDeep
		}
		s.push(c)
		s.off++
		if c == '{' {
			s.state = stKeyOrEnd
			return jsonTok{kind: jtBeginObject, start: start, end: s.off}, nil
		}
		s.state = stValueOrEnd
		return jsonTok{kind: jtBeginArray, start: start, end: s.off}, nil
	case c == '"':
		var err error
		if t, err = s.scanString(); err != nil {
			return t, err
		}
		t.kind = jtString
	case c == '-' || c >= '0' && c <= '9':
		var err error
		if t, err = s.scanNumber(); err != nil {
			return t, err
		}
	case c == 't':
		if !s.literal("true") {
			return jsonTok{}, s.syntaxError("in literal true")
		}
		t = jsonTok{kind: jtTrue, start: start, end: s.off}
	case c == 'f':
		if !s.literal("false") {
			return jsonTok{}, s.syntaxError("in literal false")
		}
		t = jsonTok{kind: jtFalse, start: start, end: s.off}
	case c == 'n':
		if !s.literal("null") {
			return jsonTok{}, s.syntaxError("in literal null")
		}
		t = jsonTok{kind: jtNull, start: start, end: s.off}
	default:
		return jsonTok{}, s.syntaxError("looking for a value")
	}
	s.valueDone()
	return t, nil
}

// closed pops the innermost container, whose end token started at start.
func (s *jsonScanner) closed(kind jsonTokKind, start int) jsonTok {
	s.depth--
	s.valueDone()
	return jsonTok{kind: kind, start: start, end: s.off}
}

// valueDone sets the state after a complete value.
func (s *jsonScanner) valueDone() {
	if s.depth == 0 {
		s.state = stDone
	} else {
		s.state = stCommaOrEnd
	}
}

func (s *jsonScanner) literal(word string) bool {
	if len(s.src)-s.off < len(word) || string(s.src[s.off:s.off+len(word)]) != word {
		return false
	}
	s.off += len(word)
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanString scans the string that starts at s.off (a quote).
func (s *jsonScanner) scanString() (jsonTok, error) {
	src := s.src
	start := s.off
	simple := true
	i := start + 1
	for i < len(src) {
		c := src[i]
		switch {
		case jsonSafe[c]:
			i++
		case c == '"':
			s.off = i + 1
			return jsonTok{start: start, end: s.off, simple: simple}, nil
		case c == '\\':
			simple = false
			if i+1 >= len(src) {
				s.off = len(src)
				return jsonTok{}, s.syntaxError("in string escape")
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := 2; k < 6; k++ {
					if i+k >= len(src) || !isHex(src[i+k]) {
						s.off = min(i+k, len(src))
						return jsonTok{}, s.syntaxError(`in \u escape`)
					}
				}
				i += 6
			default:
				s.off = i + 1
				return jsonTok{}, s.syntaxError("in string escape")
			}
		case c < 0x20:
			s.off = i
			return jsonTok{}, s.syntaxError("in string (control character)")
		default:
			r, size := decodeRune(src[i:])
			if r == 0xFFFD && size == 1 {
				simple = false
			}
			i += size
		}
	}
	s.off = len(src)
	return jsonTok{}, s.syntaxError("in string")
}

// scanNumber scans the number that starts at s.off.
func (s *jsonScanner) scanNumber() (jsonTok, error) {
	src := s.src
	start := s.off
	i := start
	if src[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		return i > j
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case !digits():
		s.off = i
		return jsonTok{}, s.syntaxError("in number")
	}
	integer := true
	if i < len(src) && src[i] == '.' {
		integer = false
		i++
		if !digits() {
			s.off = i
			return jsonTok{}, s.syntaxError("after decimal point in number")
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		integer = false
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if !digits() {
			s.off = i
			return jsonTok{}, s.syntaxError("in exponent of number")
		}
	}
	s.off = i
	return jsonTok{kind: jtNumber, start: start, end: i, integer: integer}, nil
}

// appendCompactJSON appends src without insignificant whitespace, the way
// json.Compact does, and fails when src is not exactly one valid JSON value.
func appendCompactJSON(dst, src []byte) ([]byte, error) {
	s := jsonScanner{src: src}
	start := len(dst)
	// Tokens are copied in runs: a run ends where whitespace was skipped.
	runStart, runEnd := -1, 0
	for {
		t, err := s.next()
		if err != nil {
			return dst[:start], err
		}
		if t.kind == jtEOF {
			if runStart >= 0 {
				dst = append(dst, src[runStart:runEnd]...)
			}
			return dst, nil
		}
		if t.start != runEnd || runStart < 0 {
			if runStart >= 0 {
				dst = append(dst, src[runStart:runEnd]...)
			}
			runStart = t.start
		}
		runEnd = t.end
	}
}

// validJSON reports whether src is exactly one valid JSON value.
func validJSON(src []byte) bool {
	s := jsonScanner{src: src}
	for {
		t, err := s.next()
		if err != nil {
			return false
		}
		if t.kind == jtEOF {
			return true
		}
	}
}
