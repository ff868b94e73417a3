package rabbitmq

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Defaults applied for zero Config and PublishOptions fields.
const (
	// DefaultURL is the RabbitMQ the broker uses when Config.URL is empty.
	DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"
	// DefaultPrefix starts every exchange and queue name the broker uses.
	DefaultPrefix = "ferry"
	// DefaultShards is the default Config.Shards.
	DefaultShards = 16
	// DefaultTimeout bounds each call when Config.Timeout is 0.
	DefaultTimeout = 5 * time.Second
	// DefaultDialTimeout bounds connecting when Config.DialTimeout is 0.
	DefaultDialTimeout = 2 * time.Second
	// DefaultReconnectMin is the first pause before redialing after the
	// connection was lost.
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax caps the pause between reconnection attempts.
	DefaultReconnectMax = 2 * time.Second
	// DefaultStreamMaxAge is the default Config.StreamMaxAge.
	DefaultStreamMaxAge = 24 * time.Hour
	// DefaultStreamSegmentBytes is the default Config.StreamSegmentBytes.
	DefaultStreamSegmentBytes = 8 << 20
	// DefaultDeliveryQueue is the default Config.DeliveryQueue.
	DefaultDeliveryQueue = 65536
	// DefaultStreamTTL is how long a channel's offset and epoch outlive
	// its last publish when PublishOptions.StreamTTL is 0.
	DefaultStreamTTL = 24 * time.Hour
	// DefaultIdempotencyWindow is how long an idempotency key is
	// remembered when PublishOptions.IdempotencyWindow is 0.
	DefaultIdempotencyWindow = 5 * time.Minute
)

// Config configures a RabbitMQ Broker. The zero value connects to
// DefaultURL; every field states its default.
type Config struct {
	// URL is the RabbitMQ server: amqp://[user:password@]host[:port][/vhost]
	// or amqps://... (TLS). The port defaults to 5672 (5671 for amqps).
	// Default: DefaultURL.
	URL string
	// NodeID names this node in control messages. It must be unique among
	// the nodes sharing the server. Default: "rabbitmq-<16 hex digits>".
	NodeID string
	// Logger receives connection loss and recovery (warn/info) and
	// dropped malformed messages (warn). Default: discards everything.
	Logger *slog.Logger
	// Prefix starts every exchange and queue name the broker declares,
	// followed by a dot. Deployments sharing a virtual host need distinct
	// prefixes. Default: DefaultPrefix ("ferry").
	Prefix string
	// Shards is how many writer queues and streams the channels are
	// spread over (by a hash of the channel name). Every node of a
	// cluster must use the same number. Default: DefaultShards (16).
	Shards int
	// Timeout bounds every call: a publish or history read that gets no
	// answer from the shard's writer in time fails with an error wrapping
	// broker.ErrUnavailable (a publish may still have happened).
	// Default: DefaultTimeout (5s).
	Timeout time.Duration
	// DialTimeout bounds connecting to RabbitMQ. Default:
	// DefaultDialTimeout (2s).
	DialTimeout time.Duration
	// TLS is the client TLS configuration for amqps:// URLs. Default: the
	// system's root certificates.
	TLS *tls.Config
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// attempts to reconnect. Defaults: DefaultReconnectMin (100ms) and
	// DefaultReconnectMax (2s).
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// StreamMaxAge is the retention of the shard streams (x-max-age):
	// RabbitMQ drops whole segments older than this. It must exceed every
	// namespace's history TTL and the stream TTL, or positions may be lost
	// early. It is fixed when a stream is first declared.
	// Default: DefaultStreamMaxAge (24h).
	StreamMaxAge time.Duration
	// StreamMaxBytes caps each shard stream's size (x-max-length-bytes).
	// Default 0: no cap but StreamMaxAge.
	StreamMaxBytes int64
	// DeliveryQueue caps this node's delivery queue in RabbitMQ (messages
	// waiting for the handler). When the node falls that far behind, the
	// oldest are dropped. Default: DefaultDeliveryQueue (65536).
	DeliveryQueue int
	// StreamSegmentBytes is the stream segment size
	// (x-stream-max-segment-size-bytes); retention drops whole segments.
	// Default: DefaultStreamSegmentBytes (8 MiB).
	StreamSegmentBytes int64
}

func (c Config) withDefaults() Config {
	orDefault(&c.URL, DefaultURL)
	orDefault(&c.NodeID, "rabbitmq-"+randomHex(8))
	orDefault(&c.Prefix, DefaultPrefix)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	positive(&c.Shards, DefaultShards)
	positive(&c.DeliveryQueue, DefaultDeliveryQueue)
	positive(&c.Timeout, DefaultTimeout)
	positive(&c.DialTimeout, DefaultDialTimeout)
	positive(&c.ReconnectMin, DefaultReconnectMin)
	positive(&c.ReconnectMax, DefaultReconnectMax)
	c.ReconnectMax = max(c.ReconnectMax, c.ReconnectMin)
	positive(&c.StreamMaxAge, DefaultStreamMaxAge)
	positive(&c.StreamSegmentBytes, DefaultStreamSegmentBytes)
	return c
}

// orDefault sets an empty *v to def.
func orDefault(v *string, def string) {
	if *v == "" {
		*v = def
	}
}

// positive sets *v to def unless it is above zero.
func positive[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// checkURL reports whether raw is a URL this broker can dial. The error
// never repeats the password.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: cannot parse it", ErrInvalidURL)
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("%w: scheme %q, want amqp or amqps", ErrInvalidURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	return nil
}

// IsURL reports whether raw selects this broker (an amqp:// or amqps://
// URL), for the code that picks an engine from one setting.
func IsURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "amqp" || u.Scheme == "amqps")
}
