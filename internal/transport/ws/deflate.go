package ws

import (
	"compress/flate"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
)

// permessage-deflate (RFC 7692), always negotiated with
// server_no_context_takeover and client_no_context_takeover: every message
// is compressed and decompressed on its own, so compressor and decompressor
// state (hundreds of KiB) lives in pools and is never held by a connection.

// deflateResponse is the extension header value sent when a client's offer is
// accepted.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// deflateTail ends a message's compressed bytes for the decompressor: the
// 0x00 0x00 0xff 0xff removed by the sender (RFC 7692 section 7.2.2), then an
// empty final stored block so that the reader stops with io.EOF.
const deflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// negotiateDeflate reports whether one of the client's
// Sec-WebSocket-Extensions offers is a permessage-deflate offer this server
// can accept.
func negotiateDeflate(values []string) bool {
	for _, v := range values {
		for offer := range strings.SplitSeq(v, ",") {
			if acceptableDeflateOffer(offer) {
				return true
			}
		}
	}
	return false
}

func acceptableDeflateOffer(offer string) bool {
	name, params, _ := strings.Cut(offer, ";")
	if !strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
		return false
	}
	var seen [4]bool
	for params != "" {
		var param string
		param, params, _ = strings.Cut(params, ";")
		key, val, hasVal := strings.Cut(param, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		idx := -1
		switch key {
		case "server_no_context_takeover":
			idx = 0
			if hasVal {
				return false
			}
		case "client_no_context_takeover":
			idx = 1
			if hasVal {
				return false
			}
		case "server_max_window_bits":
			// Go's compressor always uses a 32 KiB window: only 15 can be honoured.
			idx = 2
			if !hasVal || val != "15" {
				return false
			}
		case "client_max_window_bits":
			// Any window the client uses can be inflated with a 32 KiB window.
			idx = 3
			if hasVal {
				n, err := strconv.Atoi(val)
				if err != nil || n < 8 || n > 15 {
					return false
				}
			}
		default:
			return false
		}
		if seen[idx] {
			return false
		}
		seen[idx] = true
	}
	return true
}

// sliceWriter appends to a pooled buffer.
type sliceWriter struct{ bp *[]byte }

func (w *sliceWriter) Write(b []byte) (int, error) {
	w.bp = growBuf(w.bp, len(b))
	*w.bp = append(*w.bp, b...)
	return len(b), nil
}

type deflater struct {
	fw  *flate.Writer
	out sliceWriter
}

var deflaterPool sync.Pool // *deflater

// compressMessage returns the permessage-deflate payload of the
// concatenated parts in a pooled buffer.
func compressMessage(parts [][]byte, total int) (*[]byte, error) {
	d, _ := deflaterPool.Get().(*deflater)
	if d == nil {
		fw, err := flate.NewWriter(nil, flate.BestSpeed)
		if err != nil {
			return nil, err
		}
		d = &deflater{fw: fw}
	}
	d.out.bp = getBuf(total/2 + 64)
	d.fw.Reset(&d.out)
	var err error
	for _, p := range parts {
		if _, err = d.fw.Write(p); err != nil {
			break
		}
	}
	if err == nil {
		err = d.fw.Flush()
	}
	bp := d.out.bp
	d.out.bp = nil
	deflaterPool.Put(d)
	if err != nil {
		putBuf(bp)
		return nil, err
	}
	b := *bp
	if n := len(b); n >= 4 && b[n-4] == 0 && b[n-3] == 0 && b[n-2] == 0xff && b[n-1] == 0xff {
		*bp = b[:n-4]
	}
	return bp, nil
}

// inflateSrc reads a compressed payload followed by deflateTail. It
// implements io.ByteReader so that the decompressor reads it directly,
// without a bufio.Reader of its own.
type inflateSrc struct {
	payload []byte
	tail    string
}

func (s *inflateSrc) Read(b []byte) (int, error) {
	if len(s.payload) > 0 {
		n := copy(b, s.payload)
		s.payload = s.payload[n:]
		return n, nil
	}
	if s.tail != "" {
		n := copy(b, s.tail)
		s.tail = s.tail[n:]
		return n, nil
	}
	return 0, io.EOF
}

func (s *inflateSrc) ReadByte() (byte, error) {
	if len(s.payload) > 0 {
		c := s.payload[0]
		s.payload = s.payload[1:]
		return c, nil
	}
	if s.tail != "" {
		c := s.tail[0]
		s.tail = s.tail[1:]
		return c, nil
	}
	return 0, io.EOF
}

type inflater struct {
	fr  io.ReadCloser
	src inflateSrc
}

var inflaterPool sync.Pool // *inflater

// errTooBig is returned by inflateMessage when the output passes the limit.
var errTooBig = errors.New("websocket: decompressed message too big")

// inflateMessage decompresses a permessage-deflate payload into a pooled
// buffer, stopping with errTooBig as soon as the output would exceed limit
// bytes (so a small payload cannot expand without bound).
func inflateMessage(payload []byte, limit int64) (*[]byte, error) {
	f, _ := inflaterPool.Get().(*inflater)
	if f == nil {
		f = &inflater{}
	}
	f.src = inflateSrc{payload: payload, tail: deflateTail}
	if f.fr == nil {
		f.fr = flate.NewReader(&f.src)
	} else if err := f.fr.(flate.Resetter).Reset(&f.src, nil); err != nil {
		return nil, err
	}
	size := int64(2*len(payload) + 64)
	if size > limit+1 {
		size = limit + 1
	}
	out := getBuf(int(size))
	var err error
	for {
		b := *out
		if int64(len(b)) > limit {
			err = errTooBig
			break
		}
		if len(b) == cap(b) {
			grow := int64(cap(b))
			if int64(len(b))+grow > limit+1 {
				grow = limit + 1 - int64(len(b))
			}
			out = growBuf(out, int(grow))
			b = *out
		}
		room := b[len(b):cap(b)]
		if int64(len(b)+len(room)) > limit+1 {
			room = room[:limit+1-int64(len(b))]
		}
		var n int
		n, err = f.fr.Read(room)
		*out = b[:len(b)+n]
		if err == io.EOF {
			err = nil
			break
		}
		if err != nil {
			break
		}
	}
	if err == nil && int64(len(*out)) > limit {
		err = errTooBig
	}
	f.src = inflateSrc{}
	inflaterPool.Put(f)
	if err != nil {
		putBuf(out)
		return nil, err
	}
	return out, nil
}
