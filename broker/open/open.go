// Package open opens the broker a configuration names by URL: "memory"
// (or "") for the in-process broker of a single node, a redis:// (or
// rediss://, redis+sentinel://, comma-separated shards) URL for Redis, a
// nats:// URL (comma-separated servers of one cluster) for NATS JetStream,
// an amqp:// or amqps:// URL for RabbitMQ (3.9 or later).
//
// It is the one place that links every engine. The ferry command uses it;
// a program that embeds a node (package server) and wants one engine only
// imports that engine's package instead (broker/memory links no Redis
// client) and passes the broker in server.Options.
package open

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/memory"
	natsbroker "github.com/ferry-io/ferry/broker/nats"
	"github.com/ferry-io/ferry/broker/rabbitmq"
	"github.com/ferry-io/ferry/broker/redis"
)

// Config is what every engine is opened with.
type Config struct {
	// NodeID is this node's id in the cluster ("": the engine makes one,
	// which the server then adopts as its own).
	NodeID string
	// Logger receives the engine's logs (nil: slog.Default()).
	Logger *slog.Logger
}

// Open returns the broker named by rawURL, connected (ctx bounds the
// connection attempt). The caller closes it (server.Server does on
// Shutdown).
func Open(ctx context.Context, rawURL string, cfg Config) (broker.Broker, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if rawURL == "" || rawURL == "memory" {
		return memory.New(memory.Config{NodeID: cfg.NodeID, Logger: log}), nil
	}
	var b broker.Broker
	var err error
	switch {
	case strings.HasPrefix(rawURL, "nats://"):
		b, err = natsbroker.New(ctx, natsbroker.Config{URL: rawURL, NodeID: cfg.NodeID, Logger: log})
	case rabbitmq.IsURL(rawURL):
		b, err = rabbitmq.New(ctx, rabbitmq.Config{URL: rawURL, NodeID: cfg.NodeID, Logger: log})
	default:
		b, err = redis.New(ctx, redis.Config{URL: rawURL, NodeID: cfg.NodeID, Logger: log})
	}
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w", Redact(rawURL), err)
	}
	return b, nil
}

// Redact hides a password in a broker URL, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
