package client

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// Config configures a Client. The zero value of every field means its
// documented default.
type Config struct {
	// Token is the connection token (a JWT), sent in the Authorization
	// header of the handshake, never in the URL. Default "": no token
	// (for servers with anonymous access), unless GetToken is set.
	Token string

	// GetToken returns a connection token. When set, it is called before
	// the first connection when Token is empty, after the server closed
	// with 4015 (token expired) or refused a handshake with HTTP 401 (once
	// in a row), and shortly before the token expires (see RefreshBefore)
	// to send a refresh frame on the open connection. Default nil: Token
	// is used as it is, and an expired token ends the client.
	GetToken func(ctx context.Context) (string, error)

	// RefreshBefore is how long before the token's expiry (connected's
	// expires_at) GetToken is called for a refresh, at most half of the
	// token's remaining lifetime. Default 30s.
	RefreshBefore time.Duration

	// Codec selects the subprotocol: protocol.JSON ("ferry.v1.json"),
	// protocol.Msgpack ("ferry.v1.msgpack") or protocol.Protobuf
	// ("ferry.v1.protobuf"). Default protocol.JSON.
	Codec protocol.Codec

	// Window is the credit window sent in connect: the server keeps at
	// most this many unacknowledged messages in flight. It bounds the
	// memory a slow application can make the client hold. At most
	// protocol.MaxWindow. Default 0: no window.
	Window uint32

	// DisableAutoAck turns off acknowledgements. Without acks a resumed
	// session replays only after the last message the server wrote, so a
	// message in flight at a cut may be lost; it cannot be combined with a
	// Window. Default false: messages are acknowledged once delivered to
	// the application.
	DisableAutoAck bool

	// AckEvery sends an ack as soon as this many delivered messages are
	// unacknowledged. Default: half the window the server granted (at
	// least 1), or 64 without a window.
	AckEvery int

	// AckInterval sends an ack for the delivered messages at least this
	// often. Default 100ms.
	AckInterval time.Duration

	// Backoff sets the delays between connection attempts.
	Backoff Backoff

	// ConnectTimeout bounds one attempt: the handshake and the connected
	// reply. Default 10s.
	ConnectTimeout time.Duration

	// WriteTimeout bounds one write to the socket; a write that takes
	// longer drops the connection. Default 10s.
	WriteTimeout time.Duration

	// ReadLimit is the largest message the client accepts from the server,
	// in bytes. Default 16 MiB.
	ReadLimit int64

	// ClientName is sent in connect as the client's "name/version".
	// Default "ferry-go/1".
	ClientName string

	// Header holds extra handshake headers (Origin, say). The client sets
	// Authorization itself. Default none.
	Header http.Header

	// HTTPClient performs the handshakes. Default: a client of its own
	// whose idle connections Close releases.
	HTTPClient *http.Client

	// OnState is called on every state change, in order, on a goroutine of
	// the client. Default nil.
	OnState func(StateChange)

	// OnError is called with errors not returned by any call: error frames
	// not tied to a request, a subscription the server ended or refused
	// after a reconnect, a failed token refresh, and the error that closed
	// the client. Same goroutine as OnState. Default nil.
	OnError func(error)

	// OnGap is called when a subscription lost messages (see Gap), on the
	// subscription's delivery goroutine, before its next message, unless
	// the subscription has its own (WithGapHandler). Default nil.
	OnGap func(Gap)

	// Logger receives the client's logs. Default: discarded.
	Logger *slog.Logger

	// Clock provides the time and the timers of backoff, acks, token
	// refresh and the heartbeat check (tests inject a fake one). Default:
	// the system clock.
	Clock Clock

	// Rand provides the jitter of the backoff. It is only called from one
	// goroutine at a time. Default: a generator of the client's own,
	// seeded from crypto/rand.
	Rand Rand
}

// Backoff sets the delay before each connection attempt after the first:
// Initial * Multiplier^n for the n-th attempt in a row that follows a
// failure (n from 0), capped at Max, then spread by +/- Jitter. A connection
// that reached connected resets n.
type Backoff struct {
	// Initial is the first delay. Default 1s.
	Initial time.Duration
	// Max caps the delay before jitter. Default 30s.
	Max time.Duration
	// Multiplier grows the delay after each failed attempt. Default 2.
	Multiplier float64
	// Jitter spreads each delay uniformly over [d*(1-Jitter), d*(1+Jitter)]
	// so that clients dropped together do not come back together. At most
	// 1. Default 0.2; a negative value means no jitter.
	Jitter float64
	// MaxAttempts is how many attempts in a row may fail before the client
	// gives up (StateClosed, ErrGaveUp). Default 0: unlimited.
	MaxAttempts int
}

// Clock is the time source of a Client.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C delivers the time once the duration has passed.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// Rand is the random source of the backoff jitter; *math/rand/v2.Rand
// implements it.
type Rand interface {
	// Float64 returns a number in [0, 1).
	Float64() float64
}

// The defaults of Config and Backoff, for reference.
const (
	DefaultRefreshBefore  = 30 * time.Second       // Config.RefreshBefore
	DefaultAckNoWindow    = 64                     // Config.AckEvery without a window
	DefaultAckInterval    = 100 * time.Millisecond // Config.AckInterval
	DefaultConnectTimeout = 10 * time.Second       // Config.ConnectTimeout
	DefaultWriteTimeout   = 10 * time.Second       // Config.WriteTimeout
	DefaultReadLimit      = 16 << 20               // Config.ReadLimit
	DefaultClientName     = "ferry-go/1"           // Config.ClientName
	DefaultBackoffInitial = time.Second            // Backoff.Initial
	DefaultBackoffMax     = 30 * time.Second       // Backoff.Max
	DefaultMultiplier     = 2.0                    // Backoff.Multiplier
	DefaultJitter         = 0.2                    // Backoff.Jitter
)

// withDefaults returns c with its defaults applied, or an error naming a bad
// field.
func (c Config) withDefaults() (Config, error) {
	if c.RefreshBefore == 0 {
		c.RefreshBefore = DefaultRefreshBefore
	}
	if c.Codec == nil {
		c.Codec = protocol.JSON
	}
	if protocol.CodecFor(c.Codec.Name()) == nil {
		//lint:ignore ST1005 the message starts with the Config field it is about
		return c, fmt.Errorf("Codec: unknown subprotocol %q", c.Codec.Name())
	}
	if c.Window > protocol.MaxWindow {
		//lint:ignore ST1005 the message starts with the Config field it is about
		return c, fmt.Errorf("Window: %d is more than %d", c.Window, protocol.MaxWindow)
	}
	if c.DisableAutoAck && c.Window > 0 {
		//lint:ignore ST1005 the message starts with the Config field it is about
		return c, fmt.Errorf("Window needs acks: DisableAutoAck cannot be combined with a window")
	}
	if c.AckEvery < 0 || c.AckInterval < 0 || c.ConnectTimeout < 0 || c.WriteTimeout < 0 || c.ReadLimit < 0 || c.RefreshBefore < 0 {
		return c, fmt.Errorf("AckEvery, AckInterval, ConnectTimeout, WriteTimeout, ReadLimit and RefreshBefore must not be negative")
	}
	if c.AckInterval == 0 {
		c.AckInterval = DefaultAckInterval
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.ClientName == "" {
		c.ClientName = DefaultClientName
	}
	b, err := c.Backoff.withDefaults()
	if err != nil {
		return c, err
	}
	c.Backoff = b
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	return c, nil
}

func (b Backoff) withDefaults() (Backoff, error) {
	if b.Initial < 0 || b.Max < 0 || b.Multiplier < 0 || b.MaxAttempts < 0 {
		return b, fmt.Errorf("Backoff: Initial, Max, Multiplier and MaxAttempts must not be negative")
	}
	if b.Jitter > 1 {
		return b, fmt.Errorf("Backoff.Jitter: %v is more than 1", b.Jitter)
	}
	if b.Initial == 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max == 0 {
		b.Max = max(DefaultBackoffMax, b.Initial)
	}
	if b.Max < b.Initial {
		return b, fmt.Errorf("Backoff.Max %v is less than Initial %v", b.Max, b.Initial)
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultMultiplier
	}
	if b.Multiplier < 1 {
		return b, fmt.Errorf("Backoff.Multiplier: %v is less than 1", b.Multiplier)
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = DefaultJitter
	case b.Jitter < 0:
		b.Jitter = 0
	}
	return b, nil
}

// systemClock is the real time.
type systemClock struct{}

// Now returns time.Now().
func (systemClock) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (systemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

// C is the timer's channel.
func (t sysTimer) C() <-chan time.Time { return t.t.C }

// Stop stops the timer.
func (t sysTimer) Stop() bool { return t.t.Stop() }
