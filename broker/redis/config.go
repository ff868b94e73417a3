package redis

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// Defaults applied for zero Config and PublishOptions fields.
const (
	// DefaultURL is the Redis the broker uses when Config.URL is empty.
	DefaultURL = "redis://127.0.0.1:6379/0"
	// DefaultPrefix starts every key and pub/sub channel name the broker
	// uses when Config.Prefix is empty.
	DefaultPrefix = "ferry"
	// DefaultTimeout bounds each call to Redis when Config.Timeout is 0.
	DefaultTimeout = time.Second
	// DefaultDialTimeout bounds connecting to Redis when
	// Config.DialTimeout is 0.
	DefaultDialTimeout = time.Second
	// DefaultReconnectMin is the first pause before the subscriber
	// connection is dialed again after a failure.
	DefaultReconnectMin = 50 * time.Millisecond
	// DefaultReconnectMax caps the pause between reconnection attempts.
	DefaultReconnectMax = 2 * time.Second
	// DefaultStreamTTL is how long a channel's offset and epoch outlive
	// its last publish when PublishOptions.StreamTTL is 0.
	DefaultStreamTTL = 24 * time.Hour
	// DefaultIdempotencyWindow is how long an idempotency key is
	// remembered when PublishOptions.IdempotencyWindow is 0.
	DefaultIdempotencyWindow = 5 * time.Minute
	// DefaultDeliveryQueue is the default Config.DeliveryQueue.
	DefaultDeliveryQueue = 8192
)

// Config configures a Redis Broker. The zero value connects to
// DefaultURL; every field states its default.
type Config struct {
	// URL names the Redis server(s), in one of these forms:
	//
	//	redis://[user:password@]host[:port][/db]
	//	rediss://[user:password@]host[:port][/db]          (TLS)
	//	redis+sentinel://[user:password@]host[:port][,host[:port]...]/master[/db]
	//	rediss+sentinel://...                               (TLS to Sentinels and Redis)
	//
	// The port defaults to 6379 (26379 for Sentinels) and db to 0. The user
	// and password (percent-encoded) authenticate to Redis; with Sentinel,
	// the query parameters sentinel_user and sentinel_password
	// authenticate to the Sentinels. Several URLs separated by commas shard
	// the data over several Redis servers (see the package documentation);
	// every node must list the same servers in the same order.
	// Default: DefaultURL.
	URL string
	// NodeID names this node in control messages and presence entries. It
	// must be unique among the nodes sharing the Redis servers.
	// Default: a random id of the form "redis-<16 hex digits>".
	NodeID string
	// Logger receives the broker's log lines: connection loss and
	// recovery at warn/info level, dropped malformed messages at warn.
	// Default: a logger that discards everything.
	Logger *slog.Logger
	// Prefix starts every Redis key and pub/sub channel name the broker
	// uses, followed by a colon. Deployments that share a Redis server must
	// use different prefixes: pub/sub channels are not separated by the
	// database number. Default: DefaultPrefix ("ferry").
	Prefix string
	// Timeout bounds every call to Redis. A call that does not get its
	// answer in time fails with an error wrapping broker.ErrUnavailable.
	// Default: DefaultTimeout (1s).
	Timeout time.Duration
	// DialTimeout bounds connecting to a Redis server (or Sentinel).
	// Default: DefaultDialTimeout (1s).
	DialTimeout time.Duration
	// TLS is the client TLS configuration for rediss:// URLs; its
	// ServerName is set from the URL's host when empty. Default: the
	// system's root certificates, TLS 1.2 or later.
	TLS *tls.Config
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between attempts to restore the subscriber connection.
	// Defaults: DefaultReconnectMin (50ms) and DefaultReconnectMax (2s).
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// DeliveryQueue is how many received messages per Redis server may
	// wait for the handler. When it is full, reading from Redis pauses
	// (and Redis buffers, up to its client-output-buffer-limit for
	// pub/sub). Default: DefaultDeliveryQueue (8192).
	DeliveryQueue int
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.NodeID == "" {
		c.NodeID = "redis-" + randomHex(8)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.DeliveryQueue <= 0 {
		c.DeliveryQueue = DefaultDeliveryQueue
	}
	return c
}
