package ws

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf8"
)

// parseAll feeds stream to a fresh parser in chunks of the given sizes
// (cycled; nil means all at once) and returns the events and the close code
// of the error, 0 for none.
func parseAll(tb testing.TB, stream []byte, chunks []int, maxMsg int64, deflate bool) ([]string, int) {
	tb.Helper()
	p := parser{maxMsg: maxMsg, tooBig: 4009, deflate: deflate}
	defer p.release()
	s := &recordingSink{}
	data := bytes.Clone(stream) // the parser unmasks in place
	code := 0
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(chunks) > 0 {
			n = min(chunks[i%len(chunks)], len(data))
		}
		// Each chunk gets its own buffer, as each read does.
		err := p.feed(bytes.Clone(data[:n]), s)
		data = data[n:]
		if err != nil {
			var pe *protoError
			if !errors.As(err, &pe) {
				tb.Fatalf("feed returned %v, want *protoError", err)
			}
			code = pe.code
			break
		}
		if bound := 2*(maxMsg+maxMsg>>4+128) + maxControlPayload; int64(p.buffered()) > bound {
			tb.Fatalf("parser buffers %d bytes, over the bound %d", p.buffered(), bound)
		}
	}
	return s.events, code
}

func TestParserChunkingInvariance(t *testing.T) {
	streams := map[string][]byte{
		"mixed": bytes.Join([][]byte{
			frame(true, 0x1, []byte("hello")),
			frame(false, 0x2, []byte{1, 2, 3}),
			frame(true, 0x9, []byte("ping")),
			frame(false, 0x0, bytes.Repeat([]byte{4}, 300)),
			frame(true, 0x0, nil),
			frame(true, 0x1, nil),
			frame(true, 0xA, nil),
			frame(true, 0x1, bytes.Repeat([]byte("€"), 20000)),
			frame(true, 0x8, closePayload(1000, "bye")),
		}, nil),
		"utf8 failure mid-fragment": bytes.Join([][]byte{
			frame(false, 0x1, []byte("abc\xe2")),
			frame(false, 0x0, []byte("\x82\xac\xc3\x28 more text")),
		}, nil),
		"too big": bytes.Join([][]byte{
			frame(false, 0x2, make([]byte, 60000)),
			frame(true, 0x0, make([]byte, 6000)),
		}, nil),
	}
	splits := [][]int{nil, {1}, {2}, {3}, {7}, {13, 1, 200}, {4096}}
	for name, stream := range streams {
		t.Run(name, func(t *testing.T) {
			wantEvents, wantCode := parseAll(t, stream, nil, 64<<10, false)
			for _, sp := range splits {
				events, code := parseAll(t, stream, sp, 64<<10, false)
				if code != wantCode || !slices.Equal(events, wantEvents) {
					t.Fatalf("split %v: events %d code %d, want events %d code %d", sp, len(events), code, len(wantEvents), wantCode)
				}
			}
		})
	}
	events, code := parseAll(t, streams["mixed"], nil, 64<<10, false)
	if code != 0 || len(events) != 7 {
		t.Fatalf("mixed stream: %d events, code %d; want 7 events, no error", len(events), code)
	}
	if _, code := parseAll(t, streams["utf8 failure mid-fragment"], []int{1}, 64<<10, false); code != CloseInvalidPayload {
		t.Fatalf("utf8 failure: code %d, want 1007", code)
	}
	if _, code := parseAll(t, streams["too big"], []int{1}, 64<<10, false); code != 4009 {
		t.Fatalf("too big: code %d, want 4009", code)
	}
}

func TestParserFailsFast(t *testing.T) {
	// Each stream is refused before it is complete: the parser must report
	// the error from a prefix alone.
	tests := []struct {
		name   string
		prefix []byte
		code   int
	}{
		{"unmasked, before the extended length", []byte{0x82, 0x7F}, 1002},
		{"too big, from the header alone", frame(true, 0x2, make([]byte, 2000))[:14], 4009},
		{"invalid UTF-8 in a partial frame", frame(true, 0x1, []byte("abc\xffdefghijk"))[:10], 1007},
		{"reserved opcode from the first two bytes", []byte{0x83, 0x80}, 1002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, code := parseAll(t, tt.prefix, []int{1}, 1024, false)
			if code != tt.code {
				t.Fatalf("code %d, want %d", code, tt.code)
			}
		})
	}
}

func TestParserDeflateRSV1(t *testing.T) {
	stream := bytes.Join([][]byte{
		buildFrame(0x40|0x1, []byte("compressed-first"), true),
		frame(true, 0x0, []byte("-rest")),
	}, nil)
	events, code := parseAll(t, stream, nil, 1024, true)
	if code != 0 || len(events) != 1 || !bytes.Contains([]byte(events[0]), []byte("z=true")) {
		t.Fatalf("events %q code %d, want one compressed message", events, code)
	}
	if _, code := parseAll(t, stream, nil, 1024, false); code != 1002 {
		t.Fatalf("RSV1 without deflate: code %d, want 1002", code)
	}
	cont := bytes.Join([][]byte{frame(false, 0x1, []byte("a")), buildFrame(0x80|0x40, []byte("b"), true)}, nil)
	if _, code := parseAll(t, cont, nil, 1024, true); code != 1002 {
		t.Fatalf("RSV1 on continuation: code %d, want 1002", code)
	}
}

func TestParserInPlaceDelivery(t *testing.T) {
	// A message that arrives within one chunk must not be copied into a
	// message buffer.
	p := parser{maxMsg: 1 << 20, tooBig: 1009}
	data := frame(true, 0x2, bytes.Repeat([]byte{1}, 5000))
	var got []byte
	sink := sinkFunc(func(op opcode, _ bool, payload []byte) error {
		if !bytes.Equal(payload, bytes.Repeat([]byte{1}, 5000)) {
			t.Fatalf("payload of %d bytes is wrong", len(payload))
		}
		got = payload
		return nil
	})
	if err := p.feed(data, sink); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5000 || &got[0] != &data[len(data)-5000] {
		t.Fatal("message was not delivered in place")
	}
	if p.msg != nil || p.buffered() != 0 {
		t.Fatalf("parser holds %d bytes after a complete message", p.buffered())
	}
	// A split message is assembled, then released.
	data = frame(true, 0x2, bytes.Repeat([]byte{1}, 5000))
	if err := p.feed(data[:100], sink); err != nil {
		t.Fatal(err)
	}
	if p.buffered() == 0 {
		t.Fatal("partial message not buffered")
	}
	if err := p.feed(data[100:], sink); err != nil {
		t.Fatal(err)
	}
	if p.buffered() != 0 || len(got) != 5000 {
		t.Fatalf("after completion: %d bytes held, payload %d bytes", p.buffered(), len(got))
	}
}

type sinkFunc func(op opcode, compressed bool, payload []byte) error

func (f sinkFunc) message(op opcode, compressed bool, payload []byte) error {
	return f(op, compressed, payload)
}
func (f sinkFunc) control(opcode, []byte) error { return nil }

func TestUnmask(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for n := range 40 {
		for pos := range uint8(4) {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(i * 7)
			}
			want := bytes.Clone(b)
			for i := range want {
				want[i] ^= key[(int(pos)+i)&3]
			}
			next := unmask(b, key, pos)
			if !bytes.Equal(b, want) || next != uint8((int(pos)+n)&3) {
				t.Fatalf("n=%d pos=%d: got %x next %d, want %x", n, pos, b, next, want)
			}
		}
	}
}

func TestUTF8Validator(t *testing.T) {
	cases := []string{
		"", "ascii only, longer than eight bytes", "é", "€", "😀", "\U0010FFFF", "\uFFFF", "\uE000",
		"\xff", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\x9f\xbf",
		"\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\x80", "a\xe2\x82", "\xce\xba\xe1\xbd\xb9\xcf\x83",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(3) == 0 {
				b[i] = 0x80 | byte(rng.IntN(64))
			}
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want := utf8.ValidString(s)
		for split := 0; split <= len(s); split++ {
			var v utf8Validator
			got := v.feed([]byte(s[:split])) && v.feed([]byte(s[split:])) && v.complete()
			if got != want {
				t.Fatalf("%q split at %d: valid=%v, want %v", s, split, got, want)
			}
		}
	}
	// Fail fast: a prefix that no continuation can repair is refused.
	for _, prefix := range []string{"\xf5", "\xe0\x80", "\xed\xa0", "\xf4\x90", "\xc1", "ok\x80"} {
		var v utf8Validator
		if v.feed([]byte(prefix)) {
			t.Fatalf("prefix %q accepted", prefix)
		}
	}
}

func FuzzParser(f *testing.F) {
	f.Add(frame(true, 0x1, []byte("hello")), uint8(3))
	f.Add(bytes.Join([][]byte{frame(false, 0x1, []byte("a\xe2")), frame(true, 0x9, nil), frame(true, 0x0, []byte("\x82\xac"))}, nil), uint8(1))
	f.Add(frame(true, 0x8, closePayload(1000, "x")), uint8(2))
	f.Add(buildFrame(0xC1, []byte("deflate"), true), uint8(5))
	f.Add([]byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 4, 1, 1, 2, 3, 4}, uint8(4))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		const maxMsg = 1024
		deflate := step&0x80 != 0
		chunk := int(step&0x7F) + 1
		wantEvents, wantCode := parseAll(t, stream, nil, maxMsg, deflate)
		events, code := parseAll(t, stream, []int{chunk, 1}, maxMsg, deflate)
		if code != wantCode || !slices.Equal(events, wantEvents) {
			t.Fatalf("chunked parse differs: %d events code %d, whole: %d events code %d", len(events), code, len(wantEvents), wantCode)
		}
	})
}
