package client

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	mrand "math/rand/v2"
	"sync"
	"time"
)

// Delay returns the delay before attempt n (from 0) of a series of failed
// attempts: Initial * Multiplier^n capped at Max, spread by Jitter using r
// (nil means no jitter). b must have its defaults applied: use the Backoff
// of a Config after New, or set every field.
func (b Backoff) Delay(n int, r Rand) time.Duration {
	d := float64(b.Initial)
	limit := float64(b.Max)
	for i := 0; i < n && d < limit; i++ {
		d *= b.Multiplier
	}
	d = math.Min(d, limit)
	if b.Jitter > 0 && r != nil {
		d *= 1 + b.Jitter*(2*r.Float64()-1)
	}
	return time.Duration(d)
}

// upward returns d spread upward only, over [d, d*(1+Jitter)]: for delays
// the server asked for (retry_after_ms), which must not be shortened.
func (b Backoff) upward(d time.Duration, r Rand) time.Duration {
	if b.Jitter > 0 && r != nil {
		return d + time.Duration(float64(d)*b.Jitter*r.Float64())
	}
	return d
}

// lockedRand makes a Rand safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  Rand
}

// Float64 draws from the wrapped Rand under the lock.
func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

// newRand returns a generator seeded from crypto/rand, so that clients
// started together do not share a jitter sequence.
func newRand() Rand {
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	return mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}
