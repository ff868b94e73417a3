package redis

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/ferry-io/ferry/broker"
)

// element builds what the publish script stores: its header, then body.
func element(offset uint64, epoch string, ms int64, p *broker.Publication) string {
	return fmt.Sprintf("%d %s %d ", offset, epoch, ms) + string(appendBody(nil, p))
}

func TestPublicationRoundTrip(t *testing.T) {
	tests := []broker.Publication{
		{Data: []byte(`{"a":1}`)},
		{Data: []byte(`{}`), Priority: 2, Conflate: "cursor", From: "user 7"},
		{Data: nil, From: "only-from"},
		{Data: []byte("line1\nline 2 with spaces"), Conflate: "k k", Priority: 1},
		{Data: []byte("123 456 789"), Conflate: "1", From: "2"},
	}
	for i, p := range tests {
		msg := element(uint64(i+1), "0123abcd", 1700000000123, &p)
		got, err := decodePublication("ch", msg)
		if err != nil {
			t.Fatalf("%d: decode %q: %v", i, msg, err)
		}
		if got.Channel != "ch" || got.Offset != uint64(i+1) || got.Epoch != "0123abcd" || got.Time != 1700000000123 ||
			got.Priority != p.Priority || got.Conflate != p.Conflate || got.From != p.From || !bytes.Equal(got.Data, p.Data) {
			t.Errorf("%d: decoded %+v from %+v", i, got, p)
		}
	}
}

func TestDecodePublicationRejects(t *testing.T) {
	tests := []string{
		"",
		"1",
		"1 e",
		"x e 1 0 0 0 ",
		"1 e t 0 0 0 ",
		"1 e 1 300 0 0 ",
		"1 e 1 0 5 0 abc",
		"1 e 1 0 0 -1 ",
		"1 e 1 0 99999999999 0 ",
	}
	for _, in := range tests {
		if _, err := decodePublication("ch", in); !errors.Is(err, errMalformed) {
			t.Errorf("decode %q: %v, want errMalformed", in, err)
		}
	}
}

func TestPresenceAndControlCodecs(t *testing.T) {
	in := broker.PresenceInfo{User: "u 1", Conn: "c", Node: "node 9"}
	got, err := decodePresence("c", encodePresence(in))
	if err != nil || got != in {
		t.Fatalf("presence round trip = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "x u", "5 ab", "-1 "} {
		if _, err := decodePresence("c", bad); !errors.Is(err, errMalformed) {
			t.Errorf("decodePresence(%q) = %v, want errMalformed", bad, err)
		}
	}

	c := broker.Control{Node: "n", Kind: broker.ControlEvict, Channel: "ch", User: "u", Conn: "c", Code: 4001, Reason: "why"}
	payload, err := encodeControl(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeControl(string(payload)); err != nil || got != c {
		t.Fatalf("control round trip = %+v, %v", got, err)
	}
	if _, err := decodeControl("{"); !errors.Is(err, errMalformed) {
		t.Fatalf("decodeControl of bad JSON: %v", err)
	}
}

// FuzzDecodePublication feeds arbitrary pub/sub payloads to the decoder:
// it must not panic, and what it accepts must encode back to the same
// bytes.
func FuzzDecodePublication(f *testing.F) {
	p := broker.Publication{Data: []byte(`{"x":1}`), Priority: 1, Conflate: "k", From: "u"}
	f.Add(element(1, "ab", 17, &p))
	f.Add("1 e 1 0 0 0 ")
	f.Add("18446744073709551615 e -5 255 1 1 ab")
	f.Add("1 e 1 0 5 0 abc")
	f.Fuzz(func(t *testing.T, msg string) {
		got, err := decodePublication("ch", msg)
		if err != nil {
			return
		}
		again := element(got.Offset, got.Epoch, got.Time, &got)
		if again != msg {
			// Numbers may have had leading zeros or a plus sign; the
			// decoded values must survive a second round trip.
			back, err := decodePublication("ch", again)
			if err != nil || back.Offset != got.Offset || back.Epoch != got.Epoch || back.Time != got.Time ||
				back.Priority != got.Priority || back.Conflate != got.Conflate || back.From != got.From || !bytes.Equal(back.Data, got.Data) {
				t.Fatalf("re-encoding %q gave %q, which decodes to %+v, %v", msg, again, back, err)
			}
		}
	})
}

func FuzzDecodeControl(f *testing.F) {
	f.Add(`{"k":"evict","n":"a","c":"c1","code":4000}`)
	f.Add(`{}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, msg string) {
		c, err := decodeControl(msg)
		if err != nil {
			return
		}
		payload, err := encodeControl(c)
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		if back, err := decodeControl(string(payload)); err != nil || back != c {
			t.Fatalf("round trip of %+v gave %+v, %v", c, back, err)
		}
	})
}
