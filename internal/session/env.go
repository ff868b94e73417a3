package session

import (
	"context"
	"log/slog"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/hub"
	"github.com/ferry-io/ferry/internal/metrics"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// Limits are the per-connection limits.
type Limits struct {
	MaxSubscriptions  int
	MaxFrameBytes     int
	MaxWindow         uint32
	QueueMessages     int
	QueueBytes        int
	SlowConsumerGrace time.Duration
	BatchDelay        time.Duration
	PublishRate       float64
	PublishBurst      int
	PublishCloseAfter int
	ConnectTimeout    time.Duration
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	SessionTTL        time.Duration
	IdempotencyWindow time.Duration
	PerUser           int
	Anonymous         bool
}

// Node is what a session asks of the node it runs on: the channel
// operations under the namespace rules, and control messages to other
// nodes. *node.Node is one; it is an interface so that a test can stand in
// for one part of the node (a node that other nodes cannot reach, say).
type Node interface {
	// RulesFor returns the rules of a channel's namespace; false when the
	// namespace does not exist.
	RulesFor(channel string) (node.Rules, bool)
	// Publish publishes under the channel's namespace rules.
	Publish(ctx context.Context, rules node.Rules, a node.PublishArgs) (broker.PublishResult, error)
	// History reads a channel's history where its namespace keeps one.
	History(ctx context.Context, ch string, rules node.Rules, q broker.HistoryQuery) (broker.HistoryResult, error)
	// PresenceOf lists who is in a channel where its namespace tracks
	// presence.
	PresenceOf(ctx context.Context, ch string, rules node.Rules) ([]protocol.ClientInfo, error)
	// Control sends a control message to other nodes (evictions,
	// takeovers, join and leave events).
	Control(ctx context.Context, c broker.Control) error
	// Alive reports whether another node keeps its liveness record (see
	// node.LivenessTTL); true when it cannot tell. A resume does not wait
	// for a takeover answer from a node that is not alive.
	Alive(ctx context.Context, id string) bool
}

// Env is what every session of a node shares: the node, its parts and
// settings. It is built once by the server and read-only after.
type Env struct {
	NodeID string
	// Node carries out the channel operations and control messages.
	Node Node
	// Broker is read directly for recovery (history after a position).
	Broker   broker.Broker
	Presence broker.Presence
	Users    broker.Users
	KV       broker.KV
	Hub      *hub.Hub
	Verifier *auth.Verifier
	Limits   Limits
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// OnClosed, when set, is told of every connected session's end, once,
	// after its metrics (the admin page's recent disconnects). It must not
	// block. Default nil.
	OnClosed func(Closing)
	// Hooks are the back-end hooks and webhooks (nil: none configured;
	// the only cost then is this nil check).
	Hooks *Hooks
	// Registry holds the node's sessions.
	Registry *node.Registry[*Session]
	Writers  *flow.Writers
	// Lifetime is the node's lifetime: canceled by the server's Shutdown
	// once its connections have left (or its drain timed out), so that
	// frame handling and replays still in flight stop waiting on the
	// broker. It is the one context kept in a struct: it is not a
	// request's, but the parent every request context derives from (as
	// http.Server.BaseContext). nil means context.Background().
	Lifetime context.Context
	// Uploads is the upload store of the upload.* frames; nil answers
	// them 404 (not enabled).
	Uploads Uploads
	// Go starts a tracked goroutine.
	Go func(func())
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// requestContext is the context of one frame's (or one replay page's)
// work: bounded by requestTimeout, canceled with the node's Lifetime.
func (e *Env) requestContext() (context.Context, context.CancelFunc) {
	parent := e.Lifetime
	if parent == nil {
		parent = context.Background()
	}
	return context.WithTimeout(parent, requestTimeout)
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Closing describes a connection that ended (Env.OnClosed).
type Closing struct {
	Conn      string
	User      string
	Transport string
	Code      int
	Reason    string
}
