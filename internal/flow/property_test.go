package flow

import (
	"math/rand"
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// randomConfig returns a small configuration, so that random operations hit
// the bounds, the window, the rate limit and the grace period often.
func randomConfig(r *rand.Rand) Config {
	cfg := Config{
		MaxMessages: 1 + r.Intn(8),
		MaxBytes:    8 + r.Intn(120),
		HardFactor:  r.Intn(4), // 0 = default 2
	}
	if r.Intn(3) > 0 {
		cfg.Window = uint32(r.Intn(5))
	}
	if r.Intn(3) == 0 {
		cfg.Rate = 5 + 500*r.Float64()
		cfg.Burst = r.Intn(4)
	}
	switch r.Intn(4) {
	case 0:
		cfg.Grace = -1
	case 1:
		cfg.Grace = 0 // default, 5 s
	default:
		cfg.Grace = time.Duration(1+r.Intn(60)) * time.Millisecond
	}
	return cfg
}

var randomPriorities = []protocol.Priority{
	protocol.PriorityDroppable, protocol.PriorityDroppable, protocol.PriorityNormal,
	protocol.PriorityNormal, protocol.PriorityCritical, protocol.Priority(7), // unknown: normal
}

var randomKeys = []string{"", "", "", "", "a", "b", "c"}

// runRandom drives a harness with ops operations drawn from r.
func runRandom(tb testing.TB, r *rand.Rand, ops int) {
	tb.Helper()
	cfg := randomConfig(r)
	h := newHarness(tb, cfg, ops+1)
	size := func() int {
		switch r.Intn(20) {
		case 0:
			return 0
		case 1:
			return h.m.maxBytes + r.Intn(h.m.maxBytes*3) // too large for the bounds
		}
		return 1 + r.Intn(max(1, h.m.maxBytes/3))
	}
	for range ops {
		switch op := r.Intn(100); {
		case op < 45:
			h.push(true, randomPriorities[r.Intn(len(randomPriorities))], randomKeys[r.Intn(len(randomKeys))], size())
		case op < 55:
			h.push(false, protocol.PriorityCritical, "", size()%8)
		case op < 80:
			h.pop(r.Intn(5)) // 0 = no limit
		case op < 90:
			if s := h.q.LastSeq(); s > 0 {
				h.ack(uint64(r.Int63n(int64(s) + 2))) // sometimes beyond LastSeq
			}
		case op < 93:
			h.setWindow(uint32(r.Intn(4)))
		default:
			h.check()
		}
		h.now = h.now.Add(time.Duration(r.Intn(20)) * time.Millisecond)
	}
	h.drain()
}

// TestQueueRandomAgainstModel runs many random operation sequences against
// the queue and the reference model, checking after every step that they
// agree exactly and that the policy's invariants hold: no critical message
// or reply is ever dropped, a normal message is dropped only when no
// droppable one is queued, drops go oldest first within a class, output
// keeps push order (replies may pass held-back messages, never the reverse),
// sequence numbers are consecutive, the window is never exceeded, the bounds
// hold except for critical overflow, and byte accounting is exact.
func TestQueueRandomAgainstModel(t *testing.T) {
	iterations := 2000
	switch {
	case testing.Short():
		iterations = 200
	case raceEnabled: // about ten times slower; the race detector has nothing to find here
		iterations = 400
	}
	for seed := range iterations {
		func() {
			defer func() {
				if t.Failed() {
					t.Logf("failed with seed %d", seed)
				}
			}()
			runRandom(t, rand.New(rand.NewSource(int64(seed))), 150)
		}()
	}
}

// FuzzQueue lets the fuzzer choose the random sequences.
func FuzzQueue(f *testing.F) {
	for _, s := range []int64{0, 1, 42, 1 << 40} {
		f.Add(s, uint8(100))
	}
	f.Fuzz(func(t *testing.T, seed int64, ops uint8) {
		runRandom(t, rand.New(rand.NewSource(seed)), int(ops))
	})
}
