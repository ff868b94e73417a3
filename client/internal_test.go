package client

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ferry-io/ferry/protocol"
)

// TestNoLockStep: 1,000 clients dropped at once, each with the random
// source a client makes for itself, do not come back in lock-step: their
// first delays spread over the whole jitter window, and no 10 ms slot gets
// more than a small share of them.
func TestNoLockStep(t *testing.T) {
	t.Parallel()
	b, err := Backoff{}.withDefaults() // 1s +- 20%
	if err != nil {
		t.Fatal(err)
	}
	const clients = 1000
	buckets := map[int64]int{}
	lo, hi := time.Hour, time.Duration(0)
	for range clients {
		d := b.Delay(0, newRand())
		if d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("first delay %v outside the jitter window", d)
		}
		buckets[int64(d/(10*time.Millisecond))]++
		lo, hi = min(lo, d), max(hi, d)
	}
	worst := 0
	for _, n := range buckets {
		worst = max(worst, n)
	}
	// 40 slots of 10 ms: about 25 per slot; a lock-step herd puts all 1,000
	// in one.
	if worst > clients/20 {
		t.Fatalf("%d of %d clients reconnect in the same 10 ms", worst, clients)
	}
	if len(buckets) < 38 || lo > 810*time.Millisecond || hi < 1190*time.Millisecond {
		t.Fatalf("delays span only [%v, %v] in %d slots", lo, hi, len(buckets))
	}
	t.Logf("1000 clients: first reconnect in [%v, %v], %d slots of 10ms, at most %d per slot", lo, hi, len(buckets), worst)
}

func TestAckTracker(t *testing.T) {
	t.Parallel()
	a := newAckTracker(3)
	for seq := uint64(1); seq <= 6; seq++ {
		a.received(seq, seq == 4) // 4 was dropped as a duplicate
	}
	if _, ok := a.take(true); ok {
		t.Fatal("ack before anything was done")
	}
	// Done out of order: 2 and 3 wait for 1.
	a.markDone(2)
	a.markDone(3)
	if _, ok := a.take(true); ok {
		t.Fatal("ack past the undelivered 1")
	}
	if !a.markDone(1) {
		t.Fatal("3 done and unacknowledged: want an ack due")
	}
	// 4 counts as done: the ack covers 1..4.
	if seq, ok := a.take(false); !ok || seq != 4 {
		t.Fatalf("take = %d %v, want 4", seq, ok)
	}
	a.markDone(5)
	if _, ok := a.take(false); ok {
		t.Fatal("one unacknowledged is not due yet (every 3)")
	}
	if seq, ok := a.take(true); !ok || seq != 5 {
		t.Fatalf("forced take = %d %v, want 5", seq, ok)
	}
	// A sequence the server skipped counts as done; a stale one is ignored.
	a.received(9, false)
	a.received(2, false)
	a.markDone(6)
	a.markDone(9)
	if seq, ok := a.take(true); !ok || seq != 9 {
		t.Fatalf("take = %d %v, want 9", seq, ok)
	}
	if !a.acked() {
		t.Fatal("acked() false after acks")
	}
}

func TestDecodeServerBatches(t *testing.T) {
	t.Parallel()
	msg := &protocol.Message{Channel: "c", Offset: 7, Epoch: "e", Data: protocol.RawJSON(`{"k":[1,2]}`), Seq: 3}
	pong := &protocol.Pong{ID: 9}
	for _, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack, protocol.Protobuf} {
		one, err := codec.AppendFrame(nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		two, err := codec.AppendFrame(nil, pong)
		if err != nil {
			t.Fatal(err)
		}
		batch := codec.BeginBatch(nil, 2)
		batch = append(batch, one...)
		batch = codec.BatchSeparator(batch)
		batch = append(batch, two...)
		batch = codec.EndBatch(batch)
		for _, in := range [][]byte{one, batch} {
			frames, err := decodeServer(nil, in, wireFormatOf(codec))
			if err != nil {
				t.Fatalf("%s: %v", codec.Name(), err)
			}
			f := frames[0]
			if f.Type != "message" || f.Channel != "c" || f.Offset != 7 || f.Seq != 3 || string(f.Data) != `{"k":[1,2]}` {
				t.Fatalf("%s: %+v", codec.Name(), f)
			}
			if len(frames) == 2 && (frames[1].Type != "pong" || frames[1].ID != 9) {
				t.Fatalf("%s: %+v", codec.Name(), frames[1])
			}
		}
	}
	for _, bad := range []string{"", "nope", "[1,2]", `{"type":`} {
		if _, err := decodeServer(nil, []byte(bad), wireJSON); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
}

func TestEncodeClientRoundTrip(t *testing.T) {
	t.Parallel()
	frames := []protocol.ClientFrame{
		{Type: protocol.TypePublish, ID: 4, Channel: "chat:x", Data: protocol.RawJSON(`{"a":1.5,"b":[true,null,"s"]}`), Key: "k", Priority: "critical"},
		{Type: protocol.TypeSubscribe, ID: 5, Channel: "chat:y", Since: &protocol.StreamPosition{Offset: 3, Epoch: "e"}},
		{Type: protocol.TypeAck, Seq: 12},
	}
	for _, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack, protocol.Protobuf} {
		for n := 1; n <= len(frames); n++ {
			b, err := encodeClient(frames[:n], wireFormatOf(codec))
			if err != nil {
				t.Fatal(err)
			}
			got, err := codec.DecodeClient(nil, b)
			if err != nil {
				t.Fatalf("%s: server cannot read %x: %v", codec.Name(), b, err)
			}
			if len(got) != n {
				t.Fatalf("%s: %d frames, want %d", codec.Name(), len(got), n)
			}
			for i := range got {
				if perr := got[i].Validate(); perr != nil {
					t.Fatalf("%s: frame %d invalid: %v", codec.Name(), i, perr)
				}
				want, _ := json.Marshal(frames[i])
				have, _ := json.Marshal(got[i])
				if string(want) != string(have) {
					t.Fatalf("%s: frame %d\n got %s\nwant %s", codec.Name(), i, have, want)
				}
			}
		}
	}
}

// FuzzDecodeServer: bytes from the network never panic the decoder, and
// what it accepts it reads the same way twice.
func FuzzDecodeServer(f *testing.F) {
	f.Add([]byte(`{"type":"message","channel":"c","offset":1,"epoch":"e","seq":1,"data":{"x":1}}`), false)
	f.Add([]byte(`[{"type":"pong","id":1},{"type":"published","id":2,"offset":3}]`), false)
	mp, _ := msgpack.Marshal(map[string]any{"type": "message", "channel": "c", "offset": 1, "data": map[string]any{"x": []any{1, "y"}}})
	f.Add(mp, true)
	arr, _ := msgpack.Marshal([]any{map[string]any{"type": "pong", "id": 1}})
	f.Add(arr, true)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, true)
	f.Fuzz(func(t *testing.T, b []byte, binary bool) {
		wire := wireJSON
		if binary {
			wire = wireMsgpack
		}
		frames, err := decodeServer(nil, b, wire)
		if err != nil {
			return
		}
		again, err := decodeServer(nil, b, wire)
		if err != nil || len(again) != len(frames) {
			t.Fatalf("second decode differs: %v", err)
		}
		if fmt.Sprint(frames) != fmt.Sprint(again) {
			t.Fatal("second decode differs")
		}
	})
}
