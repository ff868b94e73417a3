package auth

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	now := t0
	b := NewTokenBucket(2, 3, now) // 2 per second, burst 3
	for i := range 3 {
		if !b.Allow(now) {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	ok, wait := b.Take(now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("Take on an empty bucket = %v, %v; want false, 500ms", ok, wait)
	}
	now = now.Add(200 * time.Millisecond)
	if ok, wait = b.Take(now); ok || wait != 300*time.Millisecond {
		t.Fatalf("after 200ms: %v, %v; want false, 300ms", ok, wait)
	}
	now = now.Add(300 * time.Millisecond)
	if !b.Allow(now) || b.Allow(now) {
		t.Fatal("after 500ms exactly one event must pass")
	}
	// Refill caps at burst.
	now = now.Add(time.Hour)
	if !b.Full(now) || b.Tokens(now) != 3 {
		t.Fatalf("after an hour: tokens %v, want 3", b.Tokens(now))
	}
	// A clock that goes back gives nothing, and does not block refills.
	for range 3 {
		b.Allow(now)
	}
	back := now.Add(-time.Minute)
	if b.Allow(back) {
		t.Fatal("clock going back refilled the bucket")
	}
	if !b.Allow(back.Add(500 * time.Millisecond)) {
		t.Fatal("refill stalled after the clock went back")
	}
}

func TestTokenBucketReserve(t *testing.T) {
	now := t0
	b := NewTokenBucket(10, 1, now)
	if d := b.Reserve(now); d != 0 {
		t.Fatalf("first Reserve wait %v, want 0", d)
	}
	if d := b.Reserve(now); d != 100*time.Millisecond {
		t.Fatalf("second Reserve wait %v, want 100ms", d)
	}
	if d := b.Reserve(now); d != 200*time.Millisecond {
		t.Fatalf("third Reserve wait %v, want 200ms (debt accumulates)", d)
	}
	if b.Allow(now.Add(150 * time.Millisecond)) {
		t.Fatal("Allow while in debt")
	}
	if !b.Allow(now.Add(300 * time.Millisecond)) {
		t.Fatal("Allow once the debt is paid")
	}

	var zero TokenBucket
	if zero.Allow(now) {
		t.Fatal("zero bucket allowed an event")
	}
	never := NewTokenBucket(0, 1, now)
	never.Allow(now)
	if ok, wait := never.Take(now.Add(time.Hour)); ok || wait <= time.Hour {
		t.Fatalf("rate 0 bucket: %v, %v; want refusal with a huge wait", ok, wait)
	}
}

func TestTokenBucketDoesNotAllocate(t *testing.T) {
	b := NewTokenBucket(1e9, 10, t0)
	now := t0
	if a := testing.AllocsPerRun(100, func() { now = now.Add(time.Nanosecond); b.Take(now) }); a != 0 {
		t.Fatalf("Take allocates %v times", a)
	}
}

func TestHandshakeLimiter(t *testing.T) {
	clock := newFakeClock(t0)
	l := NewHandshakeLimiter(20, 50, clock.Now)
	a := netip.MustParseAddr("203.0.113.5")
	b := netip.MustParseAddr("203.0.113.6")

	for i := range 50 {
		if ok, _ := l.Allow(a); !ok {
			t.Fatalf("handshake %d of the burst refused", i)
		}
	}
	ok, retry := l.Allow(a)
	if ok {
		t.Fatal("handshake 51 allowed")
	}
	if retry != 50*time.Millisecond || RetryAfterSeconds(retry) != 1 {
		t.Fatalf("retryAfter = %v (Retry-After %d), want 50ms (1)", retry, RetryAfterSeconds(retry))
	}
	if ok, _ := l.Allow(b); !ok {
		t.Fatal("another address was limited too")
	}

	clock.Advance(50 * time.Millisecond)
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("no handshake after one refill interval")
	}
	if ok, _ := l.Allow(a); ok {
		t.Fatal("two handshakes after one refill interval")
	}
	// The IPv4-mapped form is the same client.
	if ok, _ := l.Allow(netip.MustParseAddr("::ffff:203.0.113.5")); ok {
		t.Fatal("IPv4-mapped form of a limited address got through")
	}
}

func TestHandshakeLimiterIPv6Per64(t *testing.T) {
	l := NewHandshakeLimiter(1, 2, func() time.Time { return t0 })
	for _, s := range []string{"2001:db8:1:2::1", "2001:db8:1:2::ffff"} {
		if ok, _ := l.Allow(netip.MustParseAddr(s)); !ok {
			t.Fatalf("%s refused", s)
		}
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:1:2:abcd::1")); ok {
		t.Fatal("third address of the same /64 allowed past a burst of 2")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Fatal("another /64 was limited")
	}
}

func TestHandshakeLimiterOff(t *testing.T) {
	l := NewHandshakeLimiter(0, 1, nil)
	for range 1000 {
		if ok, retry := l.Allow(netip.MustParseAddr("198.51.100.1")); !ok || retry != 0 {
			t.Fatal("rate 0 limited")
		}
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("rate 0 keeps %d buckets", n)
	}
	var nilL *HandshakeLimiter
	if ok, _ := nilL.Allow(netip.Addr{}); !ok {
		t.Fatal("nil limiter limited")
	}
}

func TestHandshakeLimiterSweep(t *testing.T) {
	clock := newFakeClock(t0)
	l := NewHandshakeLimiter(10, 5, clock.Now)
	for i := range 100 {
		l.Allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	busy := netip.MustParseAddr("192.0.2.1")
	for range 5 {
		l.Allow(busy)
	}
	if n := l.Len(); n != 101 {
		t.Fatalf("Len = %d, want 101", n)
	}
	clock.Advance(100 * time.Millisecond)
	// The 100 that used one token are full again; busy is not.
	if n := l.Sweep(clock.Now()); n != 1 {
		t.Fatalf("Sweep left %d buckets, want 1", n)
	}
	if ok, _ := l.Allow(busy); !ok {
		t.Fatal("busy address: one token should have refilled")
	}
	if ok, _ := l.Allow(busy); ok {
		t.Fatal("sweep reset a bucket that was not full")
	}
	clock.Advance(time.Second)
	if n := l.Sweep(clock.Now()); n != 0 {
		t.Fatalf("Sweep left %d idle buckets, want 0", n)
	}
}

func TestHandshakeLimiterBounded(t *testing.T) {
	clock := newFakeClock(t0)
	l := NewHandshakeLimiter(1, 1, clock.Now)
	l.shardMax = 4
	for i := range 10_000 {
		l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n, max := l.Len(), 4*limiterShards; n > max {
		t.Fatalf("Len = %d, bound is %d", n, max)
	}
}

func TestHandshakeLimiterConcurrent(t *testing.T) {
	clock := newFakeClock(t0)
	l := NewHandshakeLimiter(1, 50, clock.Now)
	shared := netip.MustParseAddr("203.0.113.9")
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if ok, _ := l.Allow(shared); ok {
					allowed.Add(1)
				}
				l.Allow(netip.AddrFrom4([4]byte{198, 51, byte(g), byte(i)}))
				if i%50 == 0 {
					l.Sweep(clock.Now())
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 50 {
		t.Fatalf("%d handshakes allowed for one address with a frozen clock, want exactly the burst (50)", got)
	}
}

func TestHandshakeLimiterAllowDoesNotAllocate(t *testing.T) {
	l := NewHandshakeLimiter(1e9, 10, nil)
	ip := netip.MustParseAddr("203.0.113.5")
	l.Allow(ip)
	if a := testing.AllocsPerRun(100, func() { l.Allow(ip) }); a != 0 {
		t.Fatalf("Allow for a known address allocates %v times", a)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {90 * time.Second, 90}} {
		if got := RetryAfterSeconds(tt.d); got != tt.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func BenchmarkHandshakeLimiterAllow(b *testing.B) {
	l := NewHandshakeLimiter(1e9, 1<<30, nil)
	ip := netip.MustParseAddr("203.0.113.5")
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(ip)
	}
}

func BenchmarkHandshakeLimiterAllowParallel(b *testing.B) {
	l := NewHandshakeLimiter(1e9, 1<<30, nil)
	var n atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := n.Add(1)
		ip := netip.AddrFrom4([4]byte{10, byte(id >> 8), byte(id), 1})
		for pb.Next() {
			l.Allow(ip)
		}
	})
}

func TestHandshakeLimiterBlocked(t *testing.T) {
	clock := newFakeClock(t0)
	l := NewHandshakeLimiter(2, 3, clock.Now)
	a := netip.MustParseAddr("2001:db8:5:6::1")
	if blocked, _ := l.Blocked(a); blocked {
		t.Fatal("an unknown address is blocked")
	}
	for range 3 {
		if blocked, _ := l.Blocked(a); blocked {
			t.Fatal("blocked before the bucket was empty")
		}
		l.Allow(a)
	}
	blocked, wait := l.Blocked(a)
	if !blocked || wait != 500*time.Millisecond {
		t.Fatalf("Blocked = %v, %v; want true, 500ms", blocked, wait)
	}
	// Asking takes nothing, and another host of the same /64 is blocked.
	if blocked, _ := l.Blocked(netip.MustParseAddr("2001:db8:5:6::2")); !blocked {
		t.Fatal("another address of the /64 is not blocked")
	}
	if blocked, _ := l.Blocked(netip.MustParseAddr("2001:db8:5:7::1")); blocked {
		t.Fatal("another /64 is blocked")
	}
	clock.Advance(500 * time.Millisecond)
	if blocked, _ := l.Blocked(a); blocked {
		t.Fatal("still blocked after the refill")
	}
	if blocked, _ := NewHandshakeLimiter(0, 1, clock.Now).Blocked(a); blocked {
		t.Fatal("a limiter that is off blocks")
	}
}
