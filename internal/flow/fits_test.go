package flow

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

func fitsMsg(i int) *protocol.PreparedMessage {
	return protocol.NewPreparedMessage("c", uint64(i+1), "e", protocol.RawJSON(`1`), protocol.PriorityNormal, "")
}

func TestFits(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		queued []int // sizes of queued messages
		size   int
		want   bool
	}{
		{"never pushed", Config{MaxMessages: 4, MaxBytes: 100}, nil, 10, false},
		{"empty after use", Config{MaxMessages: 4, MaxBytes: 100}, []int{}, 10, true},
		{"room", Config{MaxMessages: 4, MaxBytes: 100}, []int{10, 10}, 80, true},
		{"bytes full", Config{MaxMessages: 4, MaxBytes: 100}, []int{10, 10}, 81, false},
		{"count full", Config{MaxMessages: 2, MaxBytes: 100}, []int{10, 10}, 1, false},
		{"negative", Config{MaxMessages: 4, MaxBytes: 100}, []int{}, -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(tc.cfg)
			if tc.queued != nil {
				// A queue that has been used: push and pop one item.
				if _, err := q.Push(Item{Frame: []byte("x")}, t0); err != nil {
					t.Fatal(err)
				}
				q.Pop(nil, 1, t0)
			} else {
				q = &Queue{} // the zero value: not initialized before the first push
			}
			for i, sz := range tc.queued {
				if _, err := q.Push(Item{Msg: fitsMsg(i), Size: sz}, t0); err != nil {
					t.Fatal(err)
				}
			}
			if got := q.Fits(tc.size); got != tc.want {
				t.Fatalf("Fits(%d) = %v, want %v", tc.size, got, tc.want)
			}
		})
	}
}

// TestFitsPushNeedsNoClock checks the promise callers rely on: when Fits
// reports true, a Push with the zero time does exactly what a Push with
// the real time does, and drops nothing.
func TestFitsPushNeedsNoClock(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		cfg := Config{MaxMessages: 1 + r.IntN(8), MaxBytes: 1 + r.IntN(64), Grace: time.Second}
		a, b := NewQueue(cfg), NewQueue(cfg)
		now := t0
		for step := 0; step < 40; step++ {
			now = now.Add(time.Duration(r.IntN(3)) * time.Second)
			if r.IntN(3) == 0 {
				k := 1 + r.IntN(3)
				a.Pop(nil, k, now)
				b.Pop(nil, k, now)
				if a.Len() != b.Len() {
					t.Fatalf("round %d: queues diverged", round)
				}
				continue
			}
			it := Item{Msg: fitsMsg(step), Size: 1 + r.IntN(16), Priority: protocol.Priority(r.IntN(3))}
			if r.IntN(4) == 0 {
				it = Item{Frame: []byte("reply"), Size: 1 + r.IntN(16)}
			}
			fits := a.Fits(it.Size)
			if fits != b.Fits(it.Size) {
				t.Fatalf("round %d: Fits differs on equal queues", round)
			}
			ra, ea := a.Push(it, now)
			pushAt := now
			if fits {
				pushAt = time.Time{}
			}
			rb, eb := b.Push(it, pushAt)
			if ra != rb || (ea == nil) != (eb == nil) || a.Len() != b.Len() || a.Bytes() != b.Bytes() {
				t.Fatalf("round %d step %d: push with the real time %+v %v, with the zero time %+v %v", round, step, ra, ea, rb, eb)
			}
			if fits && (ea != nil || ra.Dropped != [3]int{} || a.Len() > cfg.MaxMessages || a.Bytes() > cfg.MaxBytes) {
				t.Fatalf("round %d step %d: Fits was true but the push gave %+v %v (len %d bytes %d)", round, step, ra, ea, a.Len(), a.Bytes())
			}
		}
	}
}
