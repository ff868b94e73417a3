package memory

import (
	"log/slog"
	"time"
)

// Defaults applied for zero Config and PublishOptions fields.
const (
	// DefaultSweepInterval is the default Config.SweepInterval.
	DefaultSweepInterval = time.Second
	// DefaultStreamTTL is how long a stream outlives its last publish when
	// PublishOptions.StreamTTL is 0.
	DefaultStreamTTL = 24 * time.Hour
	// DefaultIdempotencyWindow is how long an idempotency key is remembered
	// when PublishOptions.IdempotencyWindow is 0.
	DefaultIdempotencyWindow = 5 * time.Minute
)

// numShards is how many independently locked parts the broker's state is
// split into. A power of two, so a hash maps to a shard with a mask.
const numShards = 64

// Config configures a memory Broker. The zero value is ready to use: every
// field states its default.
type Config struct {
	// NodeID names this node in control messages and presence entries.
	// Default: a random id of the form "mem-<16 hex digits>".
	NodeID string
	// Logger receives the broker's few log lines (sweeper activity at debug
	// level). Default: a logger that discards everything.
	Logger *slog.Logger
	// SweepInterval is how often expired history messages, idle streams,
	// idempotency keys, presence entries, user connections and key-value
	// entries are removed. Default: DefaultSweepInterval (1s).
	SweepInterval time.Duration
	// Clock returns the current time; tests replace it to move time by
	// hand. Default: time.Now.
	Clock func() time.Time
}

func (c Config) withDefaults() Config {
	if c.NodeID == "" {
		c.NodeID = "mem-" + randomHex(8)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}
