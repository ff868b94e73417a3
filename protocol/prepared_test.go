package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

type preparedCase struct {
	name     string
	channel  string
	offset   uint64
	epoch    string
	data     RawJSON
	priority Priority
	from     string
	seq      uint64
	wantData string // the data the frame carries
}

var preparedCases = []preparedCase{
	{"plain", "room:1", 1, "e1", RawJSON(`{"text":"hi"}`), PriorityNormal, "", 1, `{"text":"hi"}`},
	{"critical from", "c", 42, "ep", RawJSON(`[1,2,3]`), PriorityCritical, "alice", 7, `[1,2,3]`},
	{"droppable", "c", 0, "", RawJSON(`"s"`), PriorityDroppable, "", 0, `"s"`},
	{"unknown priority is normal", "c", 1, "e", RawJSON(`1`), Priority(9), "", 1, `1`},
	{"max numbers", "c", math.MaxUint64, "e", RawJSON(`-9223372036854775808`), PriorityNormal, "", math.MaxUint64, `-9223372036854775808`},
	{"whitespace in data is compacted", "c", 3, "e", RawJSON(" {\n \"a\" : [ 1 , 2.50 ] ,\t\"b\":\"x y\" } "), PriorityNormal, "", 300, `{"a":[1,2.50],"b":"x y"}`},
	{"nil data", "c", 3, "e", nil, PriorityNormal, "", 2, `null`},
	{"invalid data", "c", 3, "e", RawJSON(`{"a":`), PriorityNormal, "", 2, `null`},
	{"escapes in strings", "c", 3, "ep\"och\\\n\x01", RawJSON(`{"html":"<&>","u":"\u2028"}`), PriorityCritical, "bob <b@x> \u2028 é", 65536, `{"html":"<&>","u":"\u2028"}`},
	{"invalid utf8 in strings", "c", 3, "e\xff", RawJSON(`"ok"`), PriorityNormal, "f\xc3(", 70000, `"ok"`},
	{"long strings", strings.Repeat("c", 255), 1 << 40, strings.Repeat("e", 300), RawJSON(`"` + strings.Repeat("d", 70000) + `"`), PriorityDroppable, strings.Repeat("f", 40), 1 << 33, `"` + strings.Repeat("d", 70000) + `"`},
	{"big data map", "c", 3, "e", RawJSON(`{` + strings.Repeat(`"k":1,`, 20) + `"z":{"n":[[],{}]}}`), PriorityNormal, "", 5, `{` + strings.Repeat(`"k":1,`, 20) + `"z":{"n":[[],{}]}}`},
}

func (c preparedCase) message() *Message {
	m := &Message{Type: TypeMessage, Channel: c.channel, Offset: c.offset, Epoch: c.epoch, Data: RawJSON(c.wantData), From: c.from, Seq: c.seq}
	if c.priority == PriorityCritical || c.priority == PriorityDroppable {
		m.Priority = c.priority.String()
	}
	return m
}

func TestPreparedMessageEquivalence(t *testing.T) {
	for _, c := range preparedCases {
		t.Run(c.name, func(t *testing.T) {
			p := NewPreparedMessage(c.channel, c.offset, c.epoch, c.data, c.priority, c.from)
			want := c.message()
			for _, codec := range []Codec{JSON, Msgpack} {
				got := codec.AppendMessage([]byte("pre"), p, c.seq)
				if string(got[:3]) != "pre" {
					t.Fatalf("%s: prefix lost", codec.Name())
				}
				got = got[3:]
				// Byte for byte what AppendFrame writes for the same Message.
				direct, err := codec.AppendFrame(nil, c.message())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, direct) {
					t.Errorf("%s: AppendMessage and AppendFrame differ:\n%q\n%q", codec.Name(), got, direct)
				}
				// And it decodes into the same Message.
				var back Message
				if codec == JSON {
					err = json.Unmarshal(got, &back)
				} else {
					err = msgpack.Unmarshal(got, &back)
				}
				if err != nil {
					t.Fatalf("%s: decode %q: %v", codec.Name(), got, err)
				}
				w := *want
				if codec == JSON {
					// encoding/json decodes invalid UTF-8 as U+FFFD.
					w.Epoch = strings.ToValidUTF8(w.Epoch, "\uFFFD")
					w.From = strings.ToValidUTF8(w.From, "\uFFFD")
				}
				if !sameJSONValue(back.Data, w.Data) && !(back.Data == nil && string(w.Data) == "null") {
					t.Errorf("%s: data %s, want %s", codec.Name(), back.Data, w.Data)
				}
				back.Data, w.Data = nil, nil
				if !reflect.DeepEqual(back, w) {
					t.Errorf("%s:\n got %+v\nwant %+v", codec.Name(), back, w)
				}
				if len(got) > p.Size() && codec == JSON {
					t.Errorf("%s: %d bytes, Size() = %d", codec.Name(), len(got), p.Size())
				}
			}
			if p.Channel() != c.channel || p.Offset() != c.offset || p.Epoch() != c.epoch || p.From() != c.from ||
				string(p.Data()) != c.wantData || p.Priority() != priorityOrNormal(c.priority) {
				t.Errorf("accessors: %q %d %q %q %s %v", p.Channel(), p.Offset(), p.Epoch(), p.From(), p.Data(), p.Priority())
			}
		})
	}
}

func priorityOrNormal(p Priority) Priority {
	if p == PriorityCritical || p == PriorityDroppable {
		return p
	}
	return PriorityNormal
}

func TestPreparedMessageJSONShape(t *testing.T) {
	p := NewPreparedMessage("c", 1, "e", RawJSON(`{"k":"v"}`), PriorityCritical, "alice")
	want := `{"type":"message","channel":"c","offset":1,"epoch":"e","data":{"k":"v"},"priority":"critical","from":"alice","seq":12}`
	if got := string(JSON.AppendMessage(nil, p, 12)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	p = NewPreparedMessage("c", 1, "e", RawJSON(`true`), PriorityNormal, "")
	want = `{"type":"message","channel":"c","offset":1,"epoch":"e","data":true,"seq":0}`
	if got := string(JSON.AppendMessage(nil, p, 0)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAppendMessageDoesNotAllocate(t *testing.T) {
	p := NewPreparedMessage("room:1", 12345, "epoch", RawJSON(`{"text":"hello","n":[1,2,3]}`), PriorityCritical, "alice")
	buf := make([]byte, 0, 4096)
	for _, codec := range []Codec{JSON, Msgpack} {
		codec.AppendMessage(buf, p, 1) // builds the lazy MessagePack body
		seq := uint64(1 << 40)
		allocs := testing.AllocsPerRun(100, func() {
			buf = codec.AppendMessage(buf[:0], p, seq)
			seq++
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per AppendMessage", codec.Name(), allocs)
		}
	}
}

// TestPreparedMessageConcurrent shares one PreparedMessage between
// goroutines that all ask for the lazy MessagePack body at once (run with
// -race).
func TestPreparedMessageConcurrent(t *testing.T) {
	p := NewPreparedMessage("c", 1, "e", RawJSON(`{"a":[1,2,{"b":"c"}]}`), PriorityNormal, "u")
	const workers = 8
	out := make([][]byte, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			out[i] = Msgpack.AppendMessage(nil, p, 5)
			_ = JSON.AppendMessage(nil, p, 5)
		})
	}
	wg.Wait()
	for i := 1; i < workers; i++ {
		if !bytes.Equal(out[i], out[0]) {
			t.Fatalf("worker %d got different bytes", i)
		}
	}
}
