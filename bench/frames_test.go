package bench

import (
	"strings"
	"testing"
)

func TestEachFrame(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`{"type":"message"}`, []string{`{"type":"message"}`}},
		{`[{"type":"a"},{"type":"b","data":{"x":"}]{["}}]`, []string{`{"type":"a"}`, `{"type":"b","data":{"x":"}]{["}}`}},
		{`[{"s":"\"}"},{"t":1}]`, []string{`{"s":"\"}"}`, `{"t":1}`}},
		{`[]`, nil},
	}
	for _, tt := range tests {
		var got []string
		eachFrame([]byte(tt.in), func(f []byte) { got = append(got, string(f)) })
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("eachFrame(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFields(t *testing.T) {
	f := []byte(`{"type":"message","channel":"bench:x","offset":42,"epoch":"e","data":{"ts":1700000000123456789,"p":"xx"},"seq":7}`)
	if string(frameType(f)) != "message" {
		t.Errorf("type %q", frameType(f))
	}
	if v, ok := intField(f, offsetKey); !ok || v != 42 {
		t.Errorf("offset %d %v", v, ok)
	}
	if v, ok := intField(f, tsKey); !ok || v != 1700000000123456789 {
		t.Errorf("ts %d %v", v, ok)
	}
	if _, ok := intField(f, codeKey); ok {
		t.Error("found a code that is not there")
	}
	e := []byte(`{"type":"error","id":2,"code":403,"reason":"no \"way\"","retry":false}`)
	if got := stringField(e, "reason"); got != `no \"way\"` {
		t.Errorf("reason %q", got)
	}
	if v, ok := leadingInt([]byte("-12x")); !ok || v != -12 {
		t.Errorf("leadingInt = %d %v", v, ok)
	}
}

func TestPayloadSize(t *testing.T) {
	for _, size := range []int{1, 28, 64, 1000} {
		p := appendPayload(nil, 1700000000123456789, size)
		if v, ok := intField(append([]byte(`"data":`), p...), tsKey); !ok || v != 1700000000123456789 {
			t.Errorf("size %d: timestamp not found in %s", size, p)
		}
		if size >= 64 && (len(p) < size-2 || len(p) > size+2) {
			t.Errorf("size %d: payload of %d bytes", size, len(p))
		}
	}
}

func TestDeliveryCountsOffsets(t *testing.T) {
	g := &group{}
	c := &conn{g: g, rc: newReadCtx(false), base: 10, now: 2_000_000}
	msg := func(off int) []byte {
		return []byte(`{"type":"message","channel":"c","offset":` + itoa(off) + `,"epoch":"e","data":{"ts":1000000,"p":""},"seq":1}`)
	}
	for _, off := range []int{11, 12, 12, 14, 5, 300} {
		c.frame(msg(off))
	}
	if c.unique != 4 || c.dups != 2 {
		t.Errorf("unique %d dups %d, want 4 and 2 (12 twice, 5 before the subscription)", c.unique, c.dups)
	}
	if c.rc.hist.TotalCount() != 6 || c.rc.hist.Max() < 1000 {
		t.Errorf("latencies: %d recorded, max %d µs", c.rc.hist.TotalCount(), c.rc.hist.Max())
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func BenchmarkDelivery(b *testing.B) {
	g := &group{}
	c := &conn{g: g, rc: newReadCtx(false), now: 2_000_000}
	frame := serverFrame(true, opText, []byte(`{"type":"message","channel":"bench:abcd-0","offset":1,"epoch":"e1","data":{"ts":1000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},"seq":1}`))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for i := 0; b.Loop(); i++ {
		c.base = uint64(i) // every frame is a new offset
		if err := c.p.feed(frame, c); err != nil {
			b.Fatal(err)
		}
	}
}
