package auth

import (
	"math"
	"time"
)

// TokenBucket is a classic token bucket: it holds up to burst tokens,
// gains rate tokens per second, and each event takes one. The zero value
// is an empty bucket that never refills; build one with NewTokenBucket. It
// is a small value type without pointers (maps of buckets stay cheap for
// the garbage collector) and is not safe for concurrent use: guard it.
//
// Time comes in as an argument (no clock inside). If now goes backwards the
// bucket simply gains nothing until time moves on past its last update.
type TokenBucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   int64 // Unix nanoseconds of the last update
}

// NewTokenBucket returns a full bucket. rate <= 0 means it never refills;
// burst < 1 is taken as 1.
func NewTokenBucket(rate float64, burst int, now time.Time) TokenBucket {
	if burst < 1 {
		burst = 1
	}
	if rate < 0 || math.IsNaN(rate) {
		rate = 0
	}
	return TokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now.UnixNano()}
}

// refill adds the tokens gained since the last update, up to burst.
func (b *TokenBucket) refill(now time.Time) {
	n := now.UnixNano()
	if n <= b.last {
		if n < b.last {
			b.last = n
		}
		return
	}
	if b.tokens < b.burst {
		b.tokens += b.rate * float64(n-b.last) / float64(time.Second)
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = n
}

// Allow takes one token if there is one and reports whether it did.
func (b *TokenBucket) Allow(now time.Time) bool {
	ok, _ := b.Take(now)
	return ok
}

// Take takes one token if there is one. If not, it takes nothing and
// returns how long until one will be there.
func (b *TokenBucket) Take(now time.Time) (ok bool, retryAfter time.Duration) {
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, b.waitFor(1 - b.tokens)
}

// Reserve takes one token whether or not there is one (the bucket may go
// into debt) and returns how long the caller must wait before acting on
// it: 0 when the token was there. Callers that reserve must honour the
// wait, or the rate is not kept.
func (b *TokenBucket) Reserve(now time.Time) time.Duration {
	b.refill(now)
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return b.waitFor(-b.tokens)
}

// Full reports whether the bucket, refilled up to now, holds burst tokens:
// such a bucket behaves exactly like a new one and may be forgotten.
func (b *TokenBucket) Full(now time.Time) bool {
	b.refill(now)
	return b.tokens >= b.burst
}

// Tokens returns the tokens available at now (possibly fractional, and
// negative after Reserve).
func (b *TokenBucket) Tokens(now time.Time) float64 {
	b.refill(now)
	return b.tokens
}

// waitFor is how long it takes to gain need tokens.
func (b *TokenBucket) waitFor(need float64) time.Duration {
	if b.rate <= 0 {
		return time.Duration(math.MaxInt64)
	}
	d := math.Ceil(need / b.rate * float64(time.Second))
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
