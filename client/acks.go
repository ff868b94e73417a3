package client

import "sync"

// ackTracker turns "the application is done with the message of sequence
// s" into the cumulative ack the protocol wants (the highest sequence such
// that every message up to it is done), for one connection. Sequence
// numbers are assigned by the server per connection, 1, 2, 3...; messages of
// different channels are delivered by different goroutines, so they finish
// out of order.
type ackTracker struct {
	mu    sync.Mutex
	base  uint64 // sequence of done[0]
	done  []bool // done[i]: base+i is done
	upTo  uint64 // every sequence <= upTo is done
	sent  uint64 // the last ack sent
	every int    // ack as soon as this many are done and unacknowledged
}

func newAckTracker(every int) *ackTracker {
	return &ackTracker{base: 1, every: max(every, 1)}
}

// received records the arrival of seq, already done (dropped, duplicate)
// or not. Sequences arrive in order; a sequence skipped by the server counts
// as done.
func (a *ackTracker) received(seq uint64, done bool) {
	if seq == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	next := a.base + uint64(len(a.done))
	if seq < next {
		return
	}
	for ; next < seq; next++ {
		a.done = append(a.done, true)
	}
	a.done = append(a.done, done)
	a.advance()
}

// markDone records that the application is done with seq. It reports
// whether enough is unacknowledged to send an ack now.
func (a *ackTracker) markDone(seq uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq < a.base || seq >= a.base+uint64(len(a.done)) {
		return false
	}
	a.done[seq-a.base] = true
	a.advance()
	return a.upTo-a.sent >= uint64(a.every)
}

// advance moves upTo over the done prefix.
func (a *ackTracker) advance() {
	i := 0
	for i < len(a.done) && a.done[i] {
		i++
	}
	if i == 0 {
		return
	}
	a.upTo = a.base + uint64(i) - 1
	a.base += uint64(i)
	n := copy(a.done, a.done[i:])
	a.done = a.done[:n]
}

// take returns the sequence to acknowledge, if any: always when force is
// set, otherwise once every or more are unacknowledged.
func (a *ackTracker) take(force bool) (uint64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.upTo <= a.sent || (!force && a.upTo-a.sent < uint64(a.every)) {
		return 0, false
	}
	a.sent = a.upTo
	return a.sent, true
}

// acked reports whether an ack was sent on this connection.
func (a *ackTracker) acked() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent > 0
}
