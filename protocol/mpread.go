package protocol

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
)

// This file reads MessagePack without reflection and without trusting the
// input: every length is checked against what is left of the message before
// anything is sliced or allocated, so a hostile length prefix costs nothing.

// mpKind is the kind of a MessagePack token.
type mpKind uint8

const (
	mpNil mpKind = iota
	mpBool
	mpUint  // a non-negative integer, in u
	mpInt   // a negative integer, in i
	mpFloat // in f; bits says 32 or 64
	mpStr   // in b
	mpBin   // in b
	mpArray // u elements follow
	mpMap   // u key/value pairs follow
	mpExt   // in b, ext type in ext
)

// mpToken is one MessagePack token: a scalar, or the header of a container
// whose elements follow it.
type mpToken struct {
	kind mpKind
	bits uint8 // mpFloat: 32 or 64
	ext  int8  // mpExt: the extension type
	// u is the value of an mpUint, the count of an mpArray or mpMap, 1 for
	// a true mpBool, the two's complement of an mpInt (see i) and the bits
	// of an mpFloat (see f).
	u uint64
	b []byte // mpStr, mpBin, mpExt: the payload (a view of the input)
}

// i returns the value of an mpInt.
func (t *mpToken) i() int64 { return int64(t.u) }

// f returns the value of an mpFloat.
func (t *mpToken) f() float64 {
	if t.bits == 32 {
		return float64(math.Float32frombits(uint32(t.u)))
	}
	return math.Float64frombits(t.u)
}

var (
	errMPTruncated = errors.New("msgpack: truncated")
	errMPBadCode   = errors.New("msgpack: invalid code 0xc1")
)

// mpReader reads MessagePack tokens from b, starting at off.
type mpReader struct {
	b   []byte
	off int
}

func (r *mpReader) remaining() int { return len(r.b) - r.off }

// take returns the next n bytes, or false when fewer are left.
func (r *mpReader) take(n uint64) ([]byte, bool) {
	if n > uint64(r.remaining()) {
		return nil, false
	}
	p := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return p, true
}

// uintN reads a big-endian unsigned integer of size bytes (1, 2, 4 or 8).
func (r *mpReader) uintN(size int) (uint64, bool) {
	p, ok := r.take(uint64(size))
	if !ok {
		return 0, false
	}
	switch size {
	case 1:
		return uint64(p[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), true
	}
	return binary.BigEndian.Uint64(p), true
}

// next reads one token. For str, bin and ext the payload must be in the
// input; for arrays and maps the count must not exceed the bytes left (every
// element takes at least one byte), so a caller may size things by it.
func (r *mpReader) next() (mpToken, error) {
	if r.off >= len(r.b) {
		return mpToken{}, errMPTruncated
	}
	c := r.b[r.off]
	r.off++
	switch {
	case c <= 0x7f:
		return mpToken{kind: mpUint, u: uint64(c)}, nil
	case c <= 0x8f:
		return r.container(mpMap, uint64(c&0x0f))
	case c <= 0x9f:
		return r.container(mpArray, uint64(c&0x0f))
	case c <= 0xbf:
		return r.payload(mpStr, uint64(c&0x1f))
	case c >= 0xe0:
		return mpToken{kind: mpInt, u: uint64(int64(int8(c)))}, nil
	}
	var (
		n  uint64
		ok bool
	)
	switch c {
	case 0xc0:
		return mpToken{kind: mpNil}, nil
	case 0xc1:
		return mpToken{}, errMPBadCode
	case 0xc2, 0xc3:
		return mpToken{kind: mpBool, u: uint64(c & 1)}, nil
	case 0xc4, 0xc5, 0xc6: // bin 8, 16, 32
		if n, ok = r.uintN(1 << (c - 0xc4)); !ok {
			return mpToken{}, errMPTruncated
		}
		return r.payload(mpBin, n)
	case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32
		if n, ok = r.uintN(1 << (c - 0xc7)); !ok {
			return mpToken{}, errMPTruncated
		}
		return r.ext(n)
	case 0xca:
		if n, ok = r.uintN(4); !ok {
			return mpToken{}, errMPTruncated
		}
		return mpToken{kind: mpFloat, bits: 32, u: n}, nil
	case 0xcb:
		if n, ok = r.uintN(8); !ok {
			return mpToken{}, errMPTruncated
		}
		return mpToken{kind: mpFloat, bits: 64, u: n}, nil
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8, 16, 32, 64
		if n, ok = r.uintN(1 << (c - 0xcc)); !ok {
			return mpToken{}, errMPTruncated
		}
		return mpToken{kind: mpUint, u: n}, nil
	case 0xd0, 0xd1, 0xd2, 0xd3: // int 8, 16, 32, 64
		size := 1 << (c - 0xd0)
		if n, ok = r.uintN(size); !ok {
			return mpToken{}, errMPTruncated
		}
		// Sign-extend from size bytes.
		shift := 64 - 8*size
		v := int64(n<<shift) >> shift
		if v >= 0 {
			return mpToken{kind: mpUint, u: uint64(v)}, nil
		}
		return mpToken{kind: mpInt, u: uint64(v)}, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
		return r.ext(1 << (c - 0xd4))
	case 0xd9, 0xda, 0xdb: // str 8, 16, 32
		if n, ok = r.uintN(1 << (c - 0xd9)); !ok {
			return mpToken{}, errMPTruncated
		}
		return r.payload(mpStr, n)
	case 0xdc, 0xdd: // array 16, 32
		if n, ok = r.uintN(2 << (c - 0xdc)); !ok {
			return mpToken{}, errMPTruncated
		}
		return r.container(mpArray, n)
	}
	// 0xde, 0xdf: map 16, 32
	if n, ok = r.uintN(2 << (c - 0xde)); !ok {
		return mpToken{}, errMPTruncated
	}
	return r.container(mpMap, n)
}

func (r *mpReader) payload(kind mpKind, n uint64) (mpToken, error) {
	p, ok := r.take(n)
	if !ok {
		return mpToken{}, errMPTruncated
	}
	return mpToken{kind: kind, b: p}, nil
}

func (r *mpReader) ext(n uint64) (mpToken, error) {
	t, ok := r.take(1)
	if !ok {
		return mpToken{}, errMPTruncated
	}
	tok, err := r.payload(mpExt, n)
	tok.ext = int8(t[0])
	return tok, err
}

func (r *mpReader) container(kind mpKind, n uint64) (mpToken, error) {
	need := n
	if kind == mpMap {
		need = 2 * n // n < 2^32, no overflow
	}
	if need > uint64(r.remaining()) {
		return mpToken{}, errMPTruncated
	}
	return mpToken{kind: kind, u: n}, nil
}

// skipContents skips what follows the token t: the elements of an array or
// the pairs of a map, nested ones included, without recursion.
func (r *mpReader) skipContents(t mpToken) error {
	var pending uint64 // values still to skip; never above the bytes left
	switch t.kind {
	case mpArray:
		pending = t.u
	case mpMap:
		pending = 2 * t.u
	}
	for pending > 0 {
		t, err := r.next()
		if err != nil {
			return err
		}
		pending--
		switch t.kind {
		case mpArray:
			pending += t.u
		case mpMap:
			pending += 2 * t.u
		}
	}
	return nil
}

// skip skips one whole value.
func (r *mpReader) skip() error {
	t, err := r.next()
	if err != nil {
		return err
	}
	return r.skipContents(t)
}

// describe names the token's type the way an error reason shows it, in JSON
// terms ("string", "object", "number -1").
func (t *mpToken) describe() string {
	switch t.kind {
	case mpNil:
		return "null"
	case mpBool:
		return "bool"
	case mpUint:
		return "number " + strconv.FormatUint(t.u, 10)
	case mpInt:
		return "number " + strconv.FormatInt(t.i(), 10)
	case mpFloat:
		return "number " + strconv.FormatFloat(t.f(), 'g', -1, int(t.bits))
	case mpStr:
		return "string"
	case mpBin:
		return "binary"
	case mpArray:
		return "array"
	case mpMap:
		return "object"
	}
	return "extension"
}
