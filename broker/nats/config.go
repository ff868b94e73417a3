package nats

import (
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// Defaults applied for zero Config and PublishOptions fields.
const (
	// DefaultURL is the NATS server the broker uses when Config.URL is
	// empty.
	DefaultURL = "nats://127.0.0.1:4222"
	// DefaultPrefix starts every subject, stream and bucket name the
	// broker uses when Config.Prefix is empty.
	DefaultPrefix = "ferry"
	// DefaultTimeout bounds each request to NATS when Config.Timeout is 0.
	DefaultTimeout = 2 * time.Second
	// DefaultReplicas is the replication factor of the stream and buckets
	// when Config.Replicas is 0.
	DefaultReplicas = 1
	// DefaultIdempotencyWindow is how long an idempotency key is
	// remembered when PublishOptions.IdempotencyWindow is 0.
	DefaultIdempotencyWindow = 5 * time.Minute
	// DefaultMaxRecordTTL is the age limit of the presence, users and KV
	// buckets when Config.MaxRecordTTL is 0.
	DefaultMaxRecordTTL = 24 * time.Hour
	// DefaultDeliveryQueue is the default Config.DeliveryQueue.
	DefaultDeliveryQueue = 8192
)

// Config configures a NATS Broker. The zero value connects to DefaultURL;
// every field states its default.
type Config struct {
	// URL names the NATS servers: nats://[user:password@]host[:port], or
	// several such URLs separated by commas (servers of one cluster; the
	// client fails over between them). tls:// asks for TLS. The port
	// defaults to 4222. Default: DefaultURL.
	URL string
	// NodeID names this node in control messages and presence entries. It
	// must be unique among the nodes sharing the NATS servers.
	// Default: a random id of the form "nats-<16 hex digits>".
	NodeID string
	// Logger receives the broker's log lines: connection loss and
	// recovery at warn/info level, dropped malformed messages at warn.
	// Default: a logger that discards everything.
	Logger *slog.Logger
	// Prefix starts every subject, stream and key-value bucket name the
	// broker uses. Deployments sharing NATS servers must use different
	// prefixes. Letters, digits, '-' and '_' only.
	// Default: DefaultPrefix ("ferry").
	Prefix string
	// Timeout bounds every request to NATS. A request without an answer
	// in time fails with an error wrapping broker.ErrUnavailable.
	// Default: DefaultTimeout (2s).
	Timeout time.Duration
	// Replicas is the replication factor of the channel stream and the
	// key-value buckets (1 to 5; 3 in a 3-server cluster survives the loss
	// of one server). Used when the broker creates them; an existing
	// stream keeps its own. Default: DefaultReplicas (1).
	Replicas int
	// MaxRecordTTL caps the ttl of presence entries, user connection
	// records and KV values, and the idempotency window: the buckets drop
	// anything not written for this long, so that records of vanished
	// nodes cannot pile up. A longer ttl is refused with ErrTTLTooLong, a
	// longer window with ErrWindowTooLong. Default: DefaultMaxRecordTTL
	// (24h).
	MaxRecordTTL time.Duration
	// DeliveryQueue is how many received messages may wait for the
	// handler. When it is full, further messages are dropped by the NATS
	// client (a slow consumer) and recovered from the stream when the next
	// message of the channel shows the gap. Default: DefaultDeliveryQueue.
	DeliveryQueue int
}

var namePart = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.NodeID == "" {
		c.NodeID = "nats-" + randomHex(8)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !namePart.MatchString(c.Prefix) {
		return c, fmt.Errorf("%w: prefix %q: letters, digits, '-' and '_' only", ErrInvalidConfig, c.Prefix)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return c, fmt.Errorf("%w: replicas %d: want 1 to 5", ErrInvalidConfig, c.Replicas)
	}
	if c.MaxRecordTTL <= 0 {
		c.MaxRecordTTL = DefaultMaxRecordTTL
	}
	if c.DeliveryQueue <= 0 {
		c.DeliveryQueue = DefaultDeliveryQueue
	}
	return c, nil
}
