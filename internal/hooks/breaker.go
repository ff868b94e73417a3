package hooks

import (
	"sync"
	"time"
)

// Breaker is a circuit breaker for one back-end URL. Closed, it lets every
// call through and counts failures in a row; at threshold it opens and
// refuses calls for cooldown; then it lets one probe through (half-open):
// a success closes it, a failure opens it again. Safe for concurrent use.
type Breaker struct {
	threshold int
	cooldown  time.Duration

	mu       sync.Mutex // guards the fields below
	failures int        // in a row, while closed
	open     bool
	openedAt time.Time
	probing  bool // half-open: one probe is out
}

// NewBreaker returns a closed breaker that opens after threshold failures
// in a row (threshold <= 0: never) and stays open for cooldown.
func NewBreaker(threshold int, cooldown time.Duration) *Breaker {
	return &Breaker{threshold: threshold, cooldown: cooldown}
}

// Allow reports whether a call may go now. A true answer while half-open
// makes that call the probe: the caller must report its outcome with Done.
func (b *Breaker) Allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	if b.probing || now.Sub(b.openedAt) < b.cooldown {
		return false
	}
	b.probing = true
	return true
}

// Done records the outcome of a call that Allow let through.
func (b *Breaker) Done(ok bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.failures, b.open, b.probing = 0, false, false
		return
	}
	if b.open { // the probe failed
		b.openedAt, b.probing = now, false
		return
	}
	b.failures++
	if b.threshold > 0 && b.failures >= b.threshold {
		b.open, b.openedAt = true, now
	}
}

// Cancel gives back a call that Allow let through but that was not made:
// nothing is recorded, and a half-open breaker may probe again.
func (b *Breaker) Cancel() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
}

// Open reports whether the breaker refuses calls now (open and not yet
// due for a probe, or its probe is out).
func (b *Breaker) Open(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open && (b.probing || now.Sub(b.openedAt) < b.cooldown)
}
