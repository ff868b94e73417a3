package flow

import (
	"math"
	"time"
)

// Defaults applied to zero (or out-of-range) Config fields.
const (
	DefaultMaxMessages = 1024
	DefaultMaxBytes    = 1 << 20 // 1 MiB
	DefaultGrace       = 5 * time.Second
	DefaultHardFactor  = 2
)

// Ceilings that keep the queue's internal int32 indexes and byte arithmetic
// far from overflow. Larger Config values are clamped to them.
const (
	maxMaxMessages = 1 << 20
	maxMaxBytes    = math.MaxInt32
	maxHardFactor  = 1 << 10
)

// Config sets one queue's bounds and flow control. The zero value is valid:
// every zero field means its documented default.
type Config struct {
	// MaxMessages bounds the number of queued items (channel messages and
	// replies alike). Default 1024 (DefaultMaxMessages); values above 2^20
	// are clamped.
	MaxMessages int

	// MaxBytes bounds the sum of the queued items' Size. Default 1 MiB
	// (DefaultMaxBytes); values above 2^31-1 are clamped.
	MaxBytes int

	// Window is the credit window: at most Window channel messages handed
	// out by Pop and not yet acknowledged with Ack. Default 0: unlimited.
	// It can be changed later with SetWindow (the client's connect frame
	// usually arrives after the queue is made).
	Window uint32

	// Rate limits channel messages handed out by Pop, in messages per
	// second (a token bucket of Burst tokens). Default 0: unlimited.
	// Replies are never rate limited.
	Rate float64

	// Burst is the token bucket's size. Default max(1, ceil(Rate)). Ignored
	// without Rate.
	Burst int

	// Grace is how long the queue may stay over MaxMessages or MaxBytes
	// (which only critical messages and replies can cause) before Push
	// reports ErrSlowConsumer. The clock starts at the first push that
	// leaves the queue over its bounds and stops whenever Pop brings it back
	// within them. Default 5 s (DefaultGrace); a negative value means no
	// grace at all: a push that would leave the queue over its bounds fails
	// at once.
	Grace time.Duration

	// HardFactor: a push that would leave more than MaxMessages*HardFactor
	// items or MaxBytes*HardFactor bytes queued fails with ErrSlowConsumer
	// at once, grace or not. Default 2 (DefaultHardFactor); 1 means no
	// overflow beyond the bounds is ever accepted; values above 1024 are
	// clamped.
	HardFactor int
}

// Init makes q an empty queue with configuration cfg, as if it had just been
// made by NewQueue. Whatever q held before is dropped and its counters
// (LastSeq, InFlight) start over at zero. Init does not allocate.
func (q *Queue) Init(cfg Config) {
	*q = Queue{}

	q.maxMsgs = int32(clampDefault(cfg.MaxMessages, DefaultMaxMessages, maxMaxMessages))
	q.maxBytes = clampDefault(cfg.MaxBytes, DefaultMaxBytes, maxMaxBytes)
	q.hard = int32(clampDefault(cfg.HardFactor, DefaultHardFactor, maxHardFactor))
	q.window = cfg.Window

	switch {
	case cfg.Grace == 0:
		q.grace = DefaultGrace
	case cfg.Grace < 0:
		q.grace = -1
	default:
		q.grace = cfg.Grace
	}

	q.SetRate(cfg.Rate, cfg.Burst)
}

// SetRate changes the rate limit (messages per second, 0 = unlimited) and
// its burst (0 = max(1, ceil(rate))), keeping what is queued.
func (q *Queue) SetRate(rate float64, burst int) {
	// The rate limit is kept as a generic cell rate algorithm: one message
	// per interval, with tau of tolerance allowing a burst. It needs a
	// single timestamp instead of a token count plus a refill time.
	q.interval, q.tau = 0, 0
	if r := rate; r > 0 && !math.IsInf(r, 1) && !math.IsNaN(r) {
		interval := time.Duration(float64(time.Second) / r)
		if interval > 0 { // else faster than 1/ns: no limit in practice
			if burst <= 0 {
				burst = max(1, int(math.Ceil(r)))
			}
			q.interval = interval
			q.tau = saturatingMul(interval, burst-1)
		}
	}
}

// init applies the defaults to a zero Queue that was never given a Config.
// SetWindow may have been called before: keep the window.
func (q *Queue) init() {
	w := q.window
	q.Init(Config{})
	q.window = w
}

// clampDefault returns def for v <= 0, ceiling for v > ceiling, else v.
func clampDefault(v, def, ceiling int) int {
	switch {
	case v <= 0:
		return def
	case v > ceiling:
		return ceiling
	}
	return v
}

// saturatingMul returns d*n, or the largest Duration when that overflows.
func saturatingMul(d time.Duration, n int) time.Duration {
	if n <= 0 || d <= 0 {
		return 0
	}
	if d > math.MaxInt64/time.Duration(n) {
		return math.MaxInt64
	}
	return d * time.Duration(n)
}
