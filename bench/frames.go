package bench

import (
	"bytes"
	"strconv"
)

// The bench client reads server frames by looking for the few fields it
// needs instead of decoding them: every Ferry JSON server frame starts with
// {"type":"...", and a message frame carries "offset": before "data":. A
// benchmark payload is {"ts":UNIX_NANOS,"p":"..."}.

var (
	typePrefix = []byte(`{"type":"`)
	offsetKey  = []byte(`"offset":`)
	idKey      = []byte(`"id":`)
	codeKey    = []byte(`"code":`)
	tsKey      = []byte(`"data":{"ts":`)
)

// eachFrame calls fn for each frame of a server message: the message itself,
// or each element of a JSON array (a batch).
func eachFrame(msg []byte, fn func(frame []byte)) {
	msg = bytes.TrimLeft(msg, " \t\r\n")
	if len(msg) == 0 || msg[0] != '[' {
		fn(msg)
		return
	}
	depth, start, inStr, esc := 0, -1, false, false
	for i := 1; i < len(msg); i++ {
		c := msg[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			if depth == 0 {
				start = i
			}
			depth++
		case '}', ']':
			if depth == 0 {
				return // the closing bracket of the batch
			}
			depth--
			if depth == 0 && start >= 0 {
				fn(msg[start : i+1])
				start = -1
			}
		}
	}
}

// frameType returns the value of the leading "type" field, or nil.
func frameType(f []byte) []byte {
	if !bytes.HasPrefix(f, typePrefix) {
		return nil
	}
	rest := f[len(typePrefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil
	}
	return rest[:end]
}

// intField returns the integer after the first occurrence of key (which
// includes its quotes and colon).
func intField(f, key []byte) (int64, bool) {
	i := bytes.Index(f, key)
	if i < 0 {
		return 0, false
	}
	return leadingInt(f[i+len(key):])
}

// leadingInt parses the optionally signed decimal integer at the start of b.
func leadingInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	var v int64
	n := 0
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	if n == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// stringField returns the string value after key, without unescaping (the
// bench only uses it for error reasons in reports).
func stringField(f []byte, key string) string {
	k := []byte(`"` + key + `":"`)
	i := bytes.Index(f, k)
	if i < 0 {
		return ""
	}
	rest := f[i+len(k):]
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			j++
		case '"':
			return string(rest[:j])
		}
	}
	return ""
}

// appendPayload appends a benchmark payload: {"ts":now,"p":"xxx"} padded
// with x so that the whole payload is about size bytes.
func appendPayload(dst []byte, ts int64, size int) []byte {
	dst = append(dst, `{"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"p":"`...)
	// 33 bytes of framing and a 19-digit timestamp around the padding.
	for pad := size - 33; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}
