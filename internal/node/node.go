package node

import (
	"context"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/hub"
	"github.com/ferry-io/ferry/internal/metrics"
	"github.com/ferry-io/ferry/protocol"
)

// Config is what a node is built from. Every field but Broker and Hub may be
// left zero.
type Config struct {
	// ID is the node's id in the cluster (required).
	ID string
	// Broker is the channel engine (required). Its optional Presence
	// capability is found by type assertion.
	Broker broker.Broker
	// Hub holds the node's local subscriptions (required).
	Hub *hub.Hub
	// Namespaces are the channel rules (zero: every channel refused).
	Namespaces Namespaces
	// IdempotencyWindow is how long a publish's idempotency key is
	// remembered (0: the broker's default).
	IdempotencyWindow time.Duration
	// Metrics counts publishes and broker errors (nil: none counted).
	Metrics *metrics.Metrics
	// Local closes this node's connections for control messages (nil:
	// control messages that close connections do nothing).
	Local LocalConns
	// Routes receives the control messages that carry an HTTP session's
	// frames between nodes (broker.ControlRoute, broker.ControlRouted;
	// the fallback transport's sessions). It must not block. nil: they
	// are dropped.
	Routes func(broker.Control)
}

// LocalConns closes connections held by this node; a Registry is one.
type LocalConns interface {
	// CloseConn closes the connection conn if this node holds it.
	CloseConn(conn string, code int, reason string)
	// CloseUser closes every connection of user on this node and returns
	// how many it closed.
	CloseUser(user string, code int, reason string) int
}

// Node is what one node does for all its connections: publish, history
// and presence under the namespace rules, and the handling of what the
// broker delivers (publications to fan out, control messages from other
// nodes). Its methods are safe for concurrent use; it holds no lock of its
// own (its fields are set by New and only read after, but for the liveness
// record's last write time, an atomic).
type Node struct {
	id                string
	broker            broker.Broker
	presence          broker.Presence // nil when the broker does not track presence
	hub               *hub.Hub
	namespaces        Namespaces
	idempotencyWindow time.Duration
	metrics           *metrics.Metrics
	local             LocalConns
	routes            func(broker.Control)
	live              liveness // the node's liveness record (liveness.go)
}

// New returns the node described by cfg. It does not start the broker: the
// caller passes the node to broker.Start as its Handler.
func New(cfg Config) *Node {
	n := &Node{
		id:                cfg.ID,
		broker:            cfg.Broker,
		hub:               cfg.Hub,
		namespaces:        cfg.Namespaces,
		idempotencyWindow: cfg.IdempotencyWindow,
		metrics:           cfg.Metrics,
		local:             cfg.Local,
		routes:            cfg.Routes,
	}
	n.presence, _ = cfg.Broker.(broker.Presence)
	n.live.kv, _ = cfg.Broker.(broker.KV)
	return n
}

// ID is the node's id.
func (n *Node) ID() string { return n.id }

// RulesFor returns the rules of ch's namespace; false when ch is in no
// namespace the node serves.
func (n *Node) RulesFor(ch string) (Rules, bool) { return n.namespaces.RulesFor(ch) }

// Control sends a control message to one node or to all (see the
// broker.ControlKind constants for what each kind asks).
func (n *Node) Control(ctx context.Context, c broker.Control) error {
	return n.broker.PublishControl(ctx, c)
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

// OutgoingOf prepares a publication for the node's subscribers: encoded
// once, its conflation key scoped to its channel.
func OutgoingOf(p *broker.Publication) *Outgoing {
	o := &Outgoing{Msg: protocol.NewPreparedMessage(p.Channel, p.Offset, p.Epoch, p.Data, protocol.Priority(p.Priority), p.From)}
	if p.Conflate != "" {
		o.Conflate = p.Channel + "\x00" + p.Conflate
	}
	return o
}

// HandlePublication implements broker.Handler: encode once, fan out to the
// local subscribers.
func (n *Node) HandlePublication(p *broker.Publication) {
	n.hub.Broadcast(p.Channel, OutgoingOf(p))
}

// HandleControl implements broker.Handler: it carries out what another
// node (or this one) asked.
func (n *Node) HandleControl(c broker.Control) {
	switch c.Kind {
	case broker.ControlEvict, broker.ControlTakeover:
		if n.local != nil {
			n.local.CloseConn(c.Conn, c.Code, c.Reason)
		}
	case broker.ControlDisconnect:
		if n.local != nil {
			n.local.CloseUser(c.User, c.Code, c.Reason)
		}
	case broker.ControlJoin, broker.ControlLeave:
		ev := &PresenceOut{Event: protocol.PresenceEvent{Channel: c.Channel, User: c.User, Conn: c.Conn, Leave: c.Kind == broker.ControlLeave}}
		n.hub.Broadcast(c.Channel, ev)
	case broker.ControlRoute, broker.ControlRouted:
		if n.routes != nil {
			n.routes(c)
		}
	}
}

var _ broker.Handler = (*Node)(nil)

// Disconnect closes every connection of user, on this node at once and on
// the others through a control message. It returns how many this node
// closed.
func (n *Node) Disconnect(ctx context.Context, user string, code int, reason string) (int, error) {
	local := 0
	if n.local != nil {
		local = n.local.CloseUser(user, code, reason)
	}
	// Other nodes close theirs when they get the control message (this
	// one gets it too: closing twice is a no-op).
	if err := n.broker.PublishControl(ctx, broker.Control{Kind: broker.ControlDisconnect, User: user, Code: code, Reason: reason}); err != nil {
		return local, BrokerError("disconnect", err)
	}
	return local, nil
}
