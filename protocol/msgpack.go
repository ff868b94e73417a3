package protocol

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Msgpack is the codec of the "ferry.v1.msgpack" subprotocol (binary
// frames). Frames are maps with the same field names as in JSON.
//
// DecodeClient accepts one map or an array of maps. It does not use
// reflection and does not trust the input: the whole message is checked
// first (every length within the input, nothing after the value), so
// garbage, truncated input and hostile length prefixes are ErrMalformed
// without allocating. Field names match exactly; unknown fields and keys
// that are not strings are ignored; of duplicate fields the last wins; nil
// leaves a field unset; a string field also takes bin. The data field is
// converted to JSON (see RawJSON).
//
// Server frames are written by github.com/vmihailenco/msgpack/v5 with the
// smallest integer encodings; the message frame of a PreparedMessage is
// written byte for byte as AppendFrame would write the same Message.
var Msgpack Codec = msgpackCodec{}

type msgpackCodec struct{}

func (msgpackCodec) Name() string { return SubprotocolMsgpack }
func (msgpackCodec) Binary() bool { return true }

func (msgpackCodec) DecodeClient(dst []ClientFrame, msg []byte) ([]ClientFrame, error) {
	if len(msg) == 0 {
		return dst, malformed("empty message")
	}
	r := mpReader{b: msg}
	if err := r.skip(); err != nil {
		return dst, malformed("%v", err)
	}
	if r.off != len(msg) {
		return dst, malformed("%d bytes after the value", len(msg)-r.off)
	}
	r.off = 0
	t, err := r.next()
	if err != nil {
		return dst, malformed("%v", err)
	}
	switch t.kind {
	case mpMap:
		f, err := decodeMsgpackFrame(&r, t.u)
		if err != nil {
			return dst, malformed("%v", err)
		}
		return append(dst, f), nil
	case mpArray:
		if t.u > MaxFramesPerMessage {
			return dst, malformed("more than %d frames in one message", MaxFramesPerMessage)
		}
		orig := len(dst)
		for k := range t.u {
			e, err := r.next()
			if err != nil {
				return dst[:orig], malformed("%v", err)
			}
			if e.kind != mpMap {
				return dst[:orig], malformed("element %d of the array is not a map", k)
			}
			f, err := decodeMsgpackFrame(&r, e.u)
			if err != nil {
				return dst[:orig], malformed("%v", err)
			}
			dst = append(dst, f)
		}
		return dst, nil
	}
	return dst, malformed("not a map or an array of maps")
}

// mpFrameReader reads the fields of one client frame.
type mpFrameReader struct {
	r       *mpReader
	invalid string // the first field of the wrong type, as a reason
	err     error  // a structural error (not after the message was checked)
}

// decodeMsgpackFrame reads a frame whose map header (of pairs pairs) was
// just read. A field of the wrong type gives a frame with Invalid set; only
// structural errors are returned.
func decodeMsgpackFrame(r *mpReader, pairs uint64) (ClientFrame, error) {
	d := mpFrameReader{r: r}
	var f ClientFrame
	for range pairs {
		key, ok := d.key()
		if !ok {
			continue
		}
		switch string(key) {
		case "type":
			if v, ok := d.str("type"); ok {
				f.Type = internType(v)
			}
		case "id":
			if v, ok := d.uint("id", math.MaxUint32, wantUint32); ok {
				f.ID = uint32(v)
			}
		case "token":
			d.setStr("token", &f.Token)
		case "client":
			d.setStr("client", &f.Client)
		case "resume":
			d.resume(&f)
		case "window":
			if v, ok := d.uint("window", math.MaxUint32, wantUint32); ok {
				f.Window = uint32(v)
			}
		case "channel":
			d.setStr("channel", &f.Channel)
		case "since":
			d.since(&f)
		case "presence":
			if v, ok := d.boolean("presence"); ok {
				f.Presence = v
			}
		case "limit":
			if v, ok := d.int("limit", math.MinInt, math.MaxInt); ok {
				f.Limit = int(v)
			}
		case "data":
			d.data(&f)
		case "key":
			d.setStr("key", &f.Key)
		case "priority":
			if v, ok := d.str("priority"); ok {
				f.Priority = internPriority(v)
			}
		case "conflate":
			d.setStr("conflate", &f.Conflate)
		case "seq":
			if v, ok := d.uint("seq", math.MaxUint64, wantUint64); ok {
				f.Seq = v
			}
		case "name":
			d.setStr("name", &f.Name)
		case "size":
			if v, ok := d.int("size", math.MinInt64, math.MaxInt64); ok {
				f.Size = v
			}
		case "sha256":
			d.setStr("sha256", &f.SHA256)
		case "chunk_size":
			if v, ok := d.int("chunk_size", math.MinInt64, math.MaxInt64); ok {
				f.ChunkSize = v
			}
		case "upload":
			d.setStr("upload", &f.Upload)
		case "method":
			d.setStr("method", &f.Method)
		case "offset":
			if v, ok := d.int("offset", math.MinInt64, math.MaxInt64); ok {
				f.Offset = v
			}
		default:
			d.skip()
		}
		if d.err != nil {
			return ClientFrame{}, d.err
		}
	}
	if d.err != nil {
		return ClientFrame{}, d.err
	}
	if d.invalid != "" {
		return ClientFrame{Type: f.Type, ID: f.ID, Invalid: d.invalid}, nil
	}
	return f, nil
}

// next reads a token; a structural error is kept in d.err.
func (d *mpFrameReader) next() (mpToken, bool) {
	if d.err != nil {
		return mpToken{}, false
	}
	t, err := d.r.next()
	if err != nil {
		d.err = err
		return mpToken{}, false
	}
	return t, true
}

// key reads a map key. For a key that is not a string, it skips the key
// and its value and returns false.
func (d *mpFrameReader) key() ([]byte, bool) {
	t, ok := d.next()
	if !ok {
		return nil, false
	}
	if t.kind != mpStr {
		d.skipContents(t)
		d.skip()
		return nil, false
	}
	return t.b, true
}

func (d *mpFrameReader) skipContents(t mpToken) {
	if d.err == nil {
		d.err = d.r.skipContents(t)
	}
}

func (d *mpFrameReader) skip() {
	if d.err == nil {
		d.err = d.r.skip()
	}
}

// wrong records that field holds t, not what it wants, and skips the rest of
// t.
func (d *mpFrameReader) wrong(field, want string, t *mpToken) {
	if d.invalid == "" {
		d.invalid = invalidField(field, want, t.describe())
	}
	d.skipContents(*t)
}

// str reads a string field; false when it is nil or of the wrong type.
func (d *mpFrameReader) str(field string) ([]byte, bool) {
	t, ok := d.next()
	if !ok {
		return nil, false
	}
	switch t.kind {
	case mpStr, mpBin:
		return t.b, true
	case mpNil:
		return nil, false
	}
	d.wrong(field, wantString, &t)
	return nil, false
}

func (d *mpFrameReader) setStr(field string, dst *string) {
	if v, ok := d.str(field); ok {
		*dst = string(v)
	}
}

// uint reads an integer in 0..max.
func (d *mpFrameReader) uint(field string, max uint64, want string) (uint64, bool) {
	t, ok := d.next()
	if !ok {
		return 0, false
	}
	switch {
	case t.kind == mpUint && t.u <= max:
		return t.u, true
	case t.kind == mpNil:
		return 0, false
	}
	d.wrong(field, want, &t)
	return 0, false
}

// int reads an integer in lo..hi (lo < 0 < hi).
func (d *mpFrameReader) int(field string, lo, hi int64) (int64, bool) {
	t, ok := d.next()
	if !ok {
		return 0, false
	}
	switch {
	case t.kind == mpUint && t.u <= uint64(hi):
		return int64(t.u), true
	case t.kind == mpInt && t.i() >= lo:
		return t.i(), true
	case t.kind == mpNil:
		return 0, false
	}
	d.wrong(field, wantInt, &t)
	return 0, false
}

func (d *mpFrameReader) boolean(field string) (bool, bool) {
	t, ok := d.next()
	if !ok {
		return false, false
	}
	switch t.kind {
	case mpBool:
		return t.u == 1, true
	case mpNil:
		return false, false
	}
	d.wrong(field, wantBool, &t)
	return false, false
}

// object reads the header of an object field: its count of pairs, or false
// when it is nil or not a map.
func (d *mpFrameReader) object(field string) (uint64, bool) {
	t, ok := d.next()
	if !ok {
		return 0, false
	}
	switch t.kind {
	case mpMap:
		return t.u, true
	case mpNil:
		return 0, false
	}
	d.wrong(field, wantObject, &t)
	return 0, false
}

func (d *mpFrameReader) resume(f *ClientFrame) {
	pairs, ok := d.object("resume")
	if !ok {
		return
	}
	if f.Resume == nil {
		f.Resume = new(Resume)
	}
	for range pairs {
		key, ok := d.key()
		if !ok {
			continue
		}
		switch string(key) {
		case "session":
			d.setStr("resume.session", &f.Resume.Session)
		case "token":
			d.setStr("resume.token", &f.Resume.Token)
		default:
			d.skip()
		}
	}
}

func (d *mpFrameReader) since(f *ClientFrame) {
	pairs, ok := d.object("since")
	if !ok {
		return
	}
	if f.Since == nil {
		f.Since = new(StreamPosition)
	}
	for range pairs {
		key, ok := d.key()
		if !ok {
			continue
		}
		switch string(key) {
		case "offset":
			if v, ok := d.uint("since.offset", math.MaxUint64, wantUint64); ok {
				f.Since.Offset = v
			}
		case "epoch":
			d.setStr("since.epoch", &f.Since.Epoch)
		default:
			d.skip()
		}
	}
}

// data converts the data field to JSON.
func (d *mpFrameReader) data(f *ClientFrame) {
	if d.err != nil {
		return
	}
	start := d.r.off
	// Convert on the stack and copy once, at the exact size: Data may be
	// kept for long (queues, history), spare capacity with it.
	var scratch [512]byte
	js, err := appendMsgpackAsJSON(scratch[:0], d.r)
	switch {
	case err == nil:
		f.Data = append(RawJSON(nil), js...)
		return
	case errors.Is(err, errMPTruncated) || errors.Is(err, errMPBadCode):
		d.err = err
		return
	}
	// A value without a JSON form, or nested too deeply.
	if d.invalid == "" {
		d.invalid = fmt.Sprintf("field %q: %v", "data", err)
	}
	d.r.off = start
	d.skip()
}

// msgpackEncoder is a reusable encoder that writes into an appendWriter.
type msgpackEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var msgpackEncoders = sync.Pool{New: func() any {
	e := new(msgpackEncoder)
	e.enc = msgpack.NewEncoder(&e.w)
	e.enc.UseCompactInts(true)
	return e
}}

func (msgpackCodec) AppendFrame(dst []byte, f ServerFrame) ([]byte, error) {
	f.stamp()
	e := msgpackEncoders.Get().(*msgpackEncoder)
	e.w.b = dst
	err := e.enc.Encode(f)
	out := e.w.b
	e.w.b = nil
	msgpackEncoders.Put(e)
	if err != nil {
		return dst, fmt.Errorf("encode %s frame: %w", f.FrameType(), err)
	}
	return out, nil
}

func (msgpackCodec) AppendMessage(dst []byte, p *PreparedMessage, seq uint64) []byte {
	dst = append(dst, p.msgpack()...)
	return appendMsgpackUint(dst, seq)
}

func (msgpackCodec) BeginBatch(dst []byte, n int) []byte {
	return appendMsgpackHeader(dst, mpArray, uint64(max(n, 0)))
}

func (msgpackCodec) BatchSeparator(dst []byte) []byte { return dst }
func (msgpackCodec) EndBatch(dst []byte) []byte       { return dst }
