package session

import (
	"context"
	"log/slog"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/hub"
	"github.com/ferry-io/ferry/internal/metrics"
	"github.com/ferry-io/ferry/protocol"
)

// Rules are a namespace's rules, as the session applies them.
type Rules struct {
	HistorySize int
	HistoryTTL  time.Duration
	Presence    bool
	JoinLeave   bool
	Publish     bool
	Subscribe   bool
	Priority    protocol.Priority
	Rate        float64
}

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

// Env is what every session of a node shares: the node's parts and
// settings. It is built once by the server.
type Env struct {
	NodeID   string
	Broker   broker.Broker
	Presence broker.Presence
	Users    broker.Users
	KV       broker.KV
	Hub      *hub.Hub
	Verifier *auth.Verifier
	// RulesFor returns the rules of a channel's namespace; false when the
	// namespace does not exist.
	RulesFor func(channel string) (Rules, bool)
	Limits   Limits
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	Registry *Registry
	Writers  *Writers
	// Control sends a control message to other nodes (evictions, join and
	// leave events).
	Control func(ctx context.Context, c broker.Control) error
	// Go starts a tracked goroutine.
	Go func(func())
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Outgoing is what the hub hands to each local subscriber: a publication
// encoded once, and its conflation key already scoped to its channel.
type Outgoing struct {
	Msg      *protocol.PreparedMessage
	Conflate string
}

// PresenceOut is a join or leave event for local subscribers that asked for
// presence events.
type PresenceOut struct {
	Event protocol.PresenceEvent
}
