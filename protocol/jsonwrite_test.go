package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"unicode/utf8"
)

// stdJSONString is what encoding/json writes for s with HTML escaping off.
func stdJSONString(tb testing.TB, s string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		"",
		"plain",
		`quote " and backslash \`,
		"controls \x00\x01\x07\b\f\n\r\t\x1f end",
		"del \x7f stays",
		"html <a href='x'>&amp;</a>",
		"unicode é ü 日本 🚀",
		"line sep \u2028 para sep \u2029",
		"invalid \xff utf8 \xc3( and \xe2\x82 cut",
		"surrogate half \xed\xa0\x80",
		"overlong \xc0\xaf and \xe0\x80\xaf",
		"above max \xf4\x90\x80\x80",
		"\xf0\x9f\x98", // truncated 4-byte sequence at the end
		"ends with backslash \\",
	}
	for _, s := range cases {
		want := stdJSONString(t, s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("string %q: got %s, want %s", s, got, want)
		}
		if got := appendJSONString([]byte("pre"), []byte(s)); !bytes.Equal(got[3:], want) || string(got[:3]) != "pre" {
			t.Errorf("bytes %q: got %s, want pre%s", s, got, want)
		}
	}
}

func TestAppendJSONStringRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\"\\\x00\x1f\x7f\xc3\xa9\xe2\x80\xa8\xf0\x9f\x9a\x80\xff\xed\xa0")
	for range 5000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			if rng.IntN(3) == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		if got, want := appendJSONString(nil, b), stdJSONString(t, string(b)); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", b, got, want)
		}
	}
}

func TestDecodeRuneMatchesUTF8(t *testing.T) {
	// Every one- and two-byte input, and every three- and four-byte input
	// that starts with a lead byte and continues with interesting bytes.
	check := func(b []byte) {
		t.Helper()
		wr, wn := utf8.DecodeRune(b)
		if gr, gn := decodeRune(b); gr != wr || gn != wn {
			t.Fatalf("% x: got (%U, %d), want (%U, %d)", b, gr, gn, wr, wn)
		}
		if gr, gn := decodeRune(string(b)); gr != wr || gn != wn {
			t.Fatalf("string % x: got (%U, %d), want (%U, %d)", b, gr, gn, wr, wn)
		}
	}
	for a := range 256 {
		check([]byte{byte(a)})
		for b := range 256 {
			check([]byte{byte(a), byte(b)})
		}
	}
	edges := []byte{0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff}
	for a := 0xc0; a <= 0xff; a++ {
		for _, b := range edges {
			for _, c := range edges {
				check([]byte{byte(a), b, c})
				for _, d := range edges {
					check([]byte{byte(a), b, c, d})
				}
			}
		}
	}
}

func TestAppendJSONFloat(t *testing.T) {
	cases := []struct {
		f    float64
		bits int
		want string
	}{
		{0, 64, "0.0"},
		{1, 64, "1.0"},
		{-2, 64, "-2.0"},
		{1.5, 64, "1.5"},
		{0.1, 64, "0.1"},
		{1e20, 64, "100000000000000000000.0"},
		{1e21, 64, "1e+21"},
		{1e-7, 64, "1e-7"},
		{-1.5e-10, 64, "-1.5e-10"},
		{math.MaxFloat64, 64, "1.7976931348623157e+308"},
		{float64(float32(0.1)), 32, "0.1"},
		{float64(float32(3)), 32, "3.0"},
	}
	for _, c := range cases {
		got := string(appendJSONFloat(nil, c.f, c.bits))
		if got != c.want {
			t.Errorf("%v/%d: got %s, want %s", c.f, c.bits, got, c.want)
		}
		back, err := strconv.ParseFloat(got, c.bits)
		if err != nil || back != c.f {
			t.Errorf("%s reads back as %v, %v", got, back, err)
		}
	}
	// Non-integral values are written exactly as encoding/json writes them.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) || f == math.Trunc(f) {
			continue
		}
		want, _ := json.Marshal(f)
		if got := appendJSONFloat(nil, f, 64); !bytes.Equal(got, want) {
			t.Fatalf("%v: got %s, want %s", f, got, want)
		}
	}
}
