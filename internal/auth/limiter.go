package auth

import (
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"time"
)

const (
	limiterShards = 64
	// limiterMaxBuckets bounds the buckets a HandshakeLimiter keeps (about
	// 100 bytes each). At the bound a shard first forgets its full buckets
	// (at most once a second), then an arbitrary one: that address starts
	// over with a full bucket, which errs on letting handshakes in.
	limiterMaxBuckets = 1 << 18
	limiterShardMax   = limiterMaxBuckets / limiterShards
)

// HandshakeLimiter limits handshakes per client address with one token
// bucket each: IPv4 addresses one by one, IPv6 by /64 (one host usually
// holds a whole /64, so counting its addresses one by one would limit
// nothing). Safe for concurrent use; it starts no goroutine: the server
// calls Sweep now and then to forget idle addresses.
type HandshakeLimiter struct {
	rate  float64
	burst int
	clock func() time.Time
	seed  maphash.Seed
	// shardMax bounds each shard (limiterShardMax; tests lower it).
	shardMax int
	shards   [limiterShards]limiterShard
}

type limiterShard struct {
	mu        sync.Mutex
	buckets   map[[16]byte]TokenBucket
	lastSweep int64 // Unix nanoseconds of the last sweep forced by the bound
	_         [32]byte
}

// Defaults of NewFailureLimiter.
const (
	// DefaultFailureRate is how many failed authentications per second an
	// address regains.
	DefaultFailureRate = 1.0
	// DefaultFailureBurst is how many failed authentications in a row an
	// address may make before it is refused.
	DefaultFailureBurst = 20
)

// NewFailureLimiter returns the limiter of failed authentications per
// address (wrong server API keys, wrong admin secrets): each failure takes
// a token, the bucket holds burst and regains rate per second. rate 0 and
// burst <= 0 take DefaultFailureRate and DefaultFailureBurst; a negative
// rate turns the limit off (nil).
func NewFailureLimiter(rate float64, burst int, clock func() time.Time) *HandshakeLimiter {
	if rate < 0 {
		return nil
	}
	if rate == 0 {
		rate = DefaultFailureRate
	}
	if burst <= 0 {
		burst = DefaultFailureBurst
	}
	return NewHandshakeLimiter(rate, burst, clock)
}

// NewHandshakeLimiter allows rate handshakes per second per address with
// bursts of up to burst (at least 1). rate 0 (or less) turns limiting off.
// clock defaults to time.Now.
func NewHandshakeLimiter(rate float64, burst int, clock func() time.Time) *HandshakeLimiter {
	if clock == nil {
		clock = time.Now
	}
	if burst < 1 {
		burst = 1
	}
	if math.IsNaN(rate) || rate < 0 {
		rate = 0
	}
	l := &HandshakeLimiter{rate: rate, burst: burst, clock: clock, seed: maphash.MakeSeed(), shardMax: limiterShardMax}
	for i := range l.shards {
		l.shards[i].buckets = make(map[[16]byte]TokenBucket)
	}
	return l
}

// limiterKey is the bucket key of ip: the IPv4 address, or the IPv6 /64.
func limiterKey(ip netip.Addr) [16]byte {
	ip = ip.Unmap()
	k := ip.As16()
	if ip.Is6() {
		clear(k[8:])
	}
	return k
}

// shardOf returns the shard that holds ip's bucket, and the bucket's key.
func (l *HandshakeLimiter) shardOf(ip netip.Addr) (*limiterShard, [16]byte) {
	k := limiterKey(ip)
	return &l.shards[maphash.Comparable(l.seed, k)%limiterShards], k
}

// Allow takes a handshake from ip's bucket. When the bucket is empty it
// returns false and how long until the next handshake would be allowed
// (for Retry-After; see RetryAfterSeconds). The zero Addr (unknown peer)
// shares one bucket.
func (l *HandshakeLimiter) Allow(ip netip.Addr) (ok bool, retryAfter time.Duration) {
	if l == nil || l.rate == 0 {
		return true, 0
	}
	now := l.clock()
	s, k := l.shardOf(ip)
	s.mu.Lock()
	b, found := s.buckets[k]
	if !found {
		if len(s.buckets) >= l.shardMax {
			s.makeRoom(now, l.shardMax)
		}
		b = NewTokenBucket(l.rate, l.burst, now)
	}
	ok, retryAfter = b.Take(now)
	s.buckets[k] = b
	s.mu.Unlock()
	return ok, retryAfter
}

// Blocked reports, without taking anything, whether ip's bucket is empty
// and, if so, how long until it holds a token again. Callers that charge
// only some events (the server API charges failed authentications) ask it
// first, so that an address over its limit is refused before any work.
func (l *HandshakeLimiter) Blocked(ip netip.Addr) (blocked bool, retryAfter time.Duration) {
	if l == nil || l.rate == 0 {
		return false, 0
	}
	now := l.clock()
	s, k := l.shardOf(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	b, found := s.buckets[k]
	if !found {
		return false, 0
	}
	if t := b.Tokens(now); t < 1 {
		wait := b.waitFor(1 - t)
		s.buckets[k] = b // keep the refill
		return true, wait
	}
	return false, 0
}

// makeRoom frees at least one slot in a shard at its bound. Called with
// s.mu held.
func (s *limiterShard) makeRoom(now time.Time, max int) {
	if n := now.UnixNano(); n-s.lastSweep >= int64(time.Second) || n < s.lastSweep {
		s.lastSweep = n
		s.sweep(now)
	}
	if len(s.buckets) < max {
		return
	}
	for k := range s.buckets {
		delete(s.buckets, k)
		break
	}
}

func (s *limiterShard) sweep(now time.Time) {
	for k, b := range s.buckets {
		if b.Full(now) {
			delete(s.buckets, k)
		}
	}
}

// Sweep forgets the buckets that are full again at now (they behave like
// new ones, so nothing is lost) and returns how many buckets remain. The
// server calls it periodically, e.g. every minute.
func (l *HandshakeLimiter) Sweep(now time.Time) int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		s.sweep(now)
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// Len returns how many addresses the limiter currently tracks.
func (l *HandshakeLimiter) Len() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// RetryAfterSeconds turns a wait into a Retry-After value: whole seconds,
// rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	if d <= time.Second {
		return 1
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(s)
}
