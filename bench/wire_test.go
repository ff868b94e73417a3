package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// recorder is a frameSink that keeps copies of what it gets.
type recorder struct {
	msgs     []string
	controls []string
}

func (r *recorder) message(p []byte) { r.msgs = append(r.msgs, string(p)) }
func (r *recorder) control(op byte, p []byte) {
	r.controls = append(r.controls, fmt.Sprintf("%d:%s", op, p))
}

// serverFrame builds an unmasked frame as a server sends it.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	return append(out, payload...)
}

func TestParserSplitsAnywhere(t *testing.T) {
	big := strings.Repeat("y", 70000) // 64-bit length
	mid := strings.Repeat("m", 300)   // 16-bit length
	var stream []byte
	stream = append(stream, serverFrame(true, opText, []byte(`{"type":"connected"}`))...)
	stream = append(stream, serverFrame(true, opPing, []byte("hb"))...)
	stream = append(stream, serverFrame(false, opText, []byte("frag-"))...)
	stream = append(stream, serverFrame(true, opPong, nil)...) // control inside a fragmented message
	stream = append(stream, serverFrame(true, opContinuation, []byte("ment"))...)
	stream = append(stream, serverFrame(true, opText, []byte(mid))...)
	stream = append(stream, serverFrame(true, opBinary, []byte(big))...)
	stream = append(stream, serverFrame(true, opClose, []byte{0x0f, 0xa4})...)
	wantMsgs := []string{`{"type":"connected"}`, "frag-ment", mid, big}
	wantCtl := []string{"9:hb", "10:", "8:\x0f\xa4"}

	for _, chunk := range []int{1, 2, 3, 7, 100, 4096, len(stream)} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			var p parser
			var r recorder
			for i := 0; i < len(stream); i += chunk {
				if err := p.feed(stream[i:min(i+chunk, len(stream))], &r); err != nil {
					t.Fatalf("feed at %d: %v", i, err)
				}
			}
			if len(r.msgs) != len(wantMsgs) {
				t.Fatalf("%d messages, want %d", len(r.msgs), len(wantMsgs))
			}
			for i := range wantMsgs {
				if r.msgs[i] != wantMsgs[i] {
					t.Errorf("message %d: %.40q, want %.40q", i, r.msgs[i], wantMsgs[i])
				}
			}
			if strings.Join(r.controls, ",") != strings.Join(wantCtl, ",") {
				t.Errorf("controls %q, want %q", r.controls, wantCtl)
			}
			if len(p.pend) != 0 || p.frag != nil {
				t.Errorf("parser keeps %d pending bytes, frag %v", len(p.pend), p.frag != nil)
			}
		})
	}
}

func TestParserRejects(t *testing.T) {
	tests := []struct {
		name  string
		bytes []byte
	}{
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}},
		{"reserved bits", []byte{0xc1, 0x00}},
		{"reserved opcode", []byte{0x83, 0x00}},
		{"fragmented ping", []byte{0x09, 0x00}},
		{"long control", append([]byte{0x89, 126, 0, 126}, make([]byte, 126)...)},
		{"lone continuation", []byte{0x80, 0x00}},
		{"text inside fragments", append(serverFrame(false, opText, []byte("a")), serverFrame(true, opText, []byte("b"))...)},
		{"too large", []byte{0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p parser
			if err := p.feed(tt.bytes, &recorder{}); !errors.Is(err, errProtocol) {
				t.Errorf("err = %v, want errProtocol", err)
			}
		})
	}
}

func TestClientFrameIsMaskedAndRoundTrips(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'a'}, n)
		f := appendClientFrame(nil, opText, payload, 0x01020304)
		if f[0] != 0x81 || f[1]&0x80 == 0 {
			t.Fatalf("n=%d: header %x, want FIN+text and the mask bit", n, f[:2])
		}
		// Unmask by hand and parse as a server frame.
		hl := 2
		switch f[1] & 0x7f {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		key := f[hl : hl+4]
		body := append([]byte(nil), f[hl+4:]...)
		for i := range body {
			body[i] ^= key[i&3]
		}
		if !bytes.Equal(body, payload) {
			t.Fatalf("n=%d: payload does not round-trip", n)
		}
		var p parser
		var r recorder
		unmasked := append(append([]byte{f[0], f[1] &^ 0x80}, f[2:hl]...), body...)
		if err := p.feed(unmasked, &r); err != nil || len(r.msgs) != 1 || len(r.msgs[0]) != n {
			t.Fatalf("n=%d: parse %v, %d messages", n, err, len(r.msgs))
		}
	}
}

func FuzzParser(f *testing.F) {
	f.Add(serverFrame(true, opText, []byte(`{"type":"message","offset":3,"data":{"ts":1}}`)), 3)
	f.Add(append(serverFrame(false, opText, []byte("a")), serverFrame(true, opContinuation, []byte("b"))...), 1)
	f.Add([]byte{0x82, 126, 0, 200}, 2)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		if chunk <= 0 || chunk > len(data) {
			chunk = len(data) + 1
		}
		var whole, parts recorder
		var p1, p2 parser
		err1 := p1.feed(data, &whole)
		var err2 error
		for i := 0; i < len(data) && err2 == nil; i += chunk {
			err2 = p2.feed(data[i:min(i+chunk, len(data))], &parts)
		}
		// Fed whole or in pieces, the parser must see the same frames, and
		// fail on the same input.
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("whole: %v, in chunks of %d: %v", err1, chunk, err2)
		}
		if err1 == nil && (strings.Join(whole.msgs, "\x00") != strings.Join(parts.msgs, "\x00") ||
			strings.Join(whole.controls, "\x00") != strings.Join(parts.controls, "\x00")) {
			t.Fatalf("whole and chunked parses differ")
		}
		// The frame readers never panic on what a message holds.
		for _, m := range whole.msgs {
			eachFrame([]byte(m), func(fr []byte) {
				_ = frameType(fr)
				_, _ = intField(fr, offsetKey)
				_ = stringField(fr, "reason")
			})
		}
	})
}
