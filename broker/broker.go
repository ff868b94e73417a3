// Package broker defines how Ferry nodes share channels: the Broker interface
// every engine implements (memory for one node; Redis, NATS and RabbitMQ for
// many), the guarantees it makes, and the optional capabilities an engine may
// add.
//
// A node owns its client connections; the broker owns channel streams. A
// publish goes to the broker, which gives it the channel's next offset,
// appends it to history and hands it to every node that subscribed to the
// channel, the publishing node included. Conformance is checked by one suite,
// broker/brokertest, that every engine must pass.
package broker

import (
	"context"
	"time"
)

// Publication is one message in a channel's stream.
type Publication struct {
	Channel string
	// Offset is the message's place in the channel's stream: 1 for the first
	// message, +1 for each next one, without gaps.
	Offset uint64
	// Epoch names the stream. It changes when the stream's history is lost
	// (a broker restarted without persistence), so a client never mistakes
	// a new stream for the old one.
	Epoch string
	// Data is the payload as canonical JSON.
	Data []byte
	// Priority is the delivery class: 0 normal, 1 critical, 2 droppable (the
	// values of protocol.Priority).
	Priority uint8
	// Conflate, when set, lets a newer message with the same key replace an
	// older unsent one on each connection.
	Conflate string
	// From is the publisher's user id ("" for the server API).
	From string
	// Time is when the broker accepted the message, in unix milliseconds.
	Time int64
}

// PublishOptions shape one publish.
type PublishOptions struct {
	// HistorySize is how many messages the channel keeps (0: none; offsets
	// are still assigned).
	HistorySize int
	// HistoryTTL is how long messages are kept (0: until pushed out by
	// HistorySize). The channel's stream (offset and epoch) lives at least
	// as long as its newest message, and at least StreamTTL.
	HistoryTTL time.Duration
	// StreamTTL keeps a channel's offset and epoch this long after its last
	// publish even with no history (default 24h).
	StreamTTL time.Duration
	// IdempotencyKey, when set, makes the publish happen at most once per
	// channel and key within IdempotencyWindow: a repeat returns the
	// original offset with Duplicate set.
	IdempotencyKey    string
	IdempotencyWindow time.Duration
}

// PublishResult says where a publish landed.
type PublishResult struct {
	Offset    uint64
	Epoch     string
	Duplicate bool
}

// HistoryQuery selects messages of one channel.
type HistoryQuery struct {
	// Since, when set, asks for messages after Since.Offset; if Since.Epoch
	// is not the channel's epoch the result says so (EpochChanged) and
	// returns messages from the start of what is retained. An Offset of 0
	// means "from the beginning" and matches any epoch.
	Since *Position
	// Limit caps the number of messages (0: all retained, oldest first;
	// negative: none, only the channel's position).
	Limit int
}

// Position is a place in a channel stream.
type Position struct {
	Offset uint64
	Epoch  string
}

// HistoryResult is what History returns.
type HistoryResult struct {
	// Messages after Since, oldest first, at most Limit.
	Messages []Publication
	// Offset and Epoch are the channel's latest position at the time of the
	// read. A channel that never had a message (or whose stream expired)
	// has Offset 0 and Epoch "".
	Offset uint64
	Epoch  string
	// Complete is true when every message after Since.Offset up to Offset
	// was still retained and Since.Epoch matched (Limit aside). With
	// Since.Offset 0 it means nothing was trimmed from the stream yet.
	Complete bool
}

// Handler receives what the broker delivers to this node. Its methods are
// called from the broker's goroutines; they must not block (the node hands
// the publication to its hub, which never waits on a socket).
type Handler interface {
	// HandlePublication is called once per publication on every channel
	// the node subscribed to, in offset order per channel.
	HandlePublication(p *Publication)
	// HandleControl is called for every control message addressed to this
	// node (or to all nodes).
	HandleControl(c Control)
}

// ControlKind says what a control message asks its receiving node to do.
//
// It is a string type so that the kind travels as readable text on a
// broker's wire (broker/redis encodes it as JSON) and so that an untyped
// string constant still converts; code inside Ferry names the constants below.
type ControlKind string

// The control kinds Ferry sends. The sender and the handler of each:
const (
	// ControlEvict closes connection Conn of User with Code and Reason. Sent
	// by a session's connect (internal/session) to the node holding the
	// user's oldest connection when the per-user connection limit is
	// reached; handled by the node (internal/node) holding Conn.
	ControlEvict ControlKind = "evict"
	// ControlTakeover closes connection Conn because its session was
	// resumed on another connection (possibly on another node). Sent by the
	// resuming session (internal/session resume); handled by the node
	// holding Conn.
	ControlTakeover ControlKind = "takeover"
	// ControlDisconnect closes every connection of User with Code and
	// Reason. Sent to all nodes by the server API's disconnect
	// (server.Disconnect, POST /v1/api/disconnect); handled by every node.
	ControlDisconnect ControlKind = "disconnect"
	// ControlJoin announces that User's connection Conn entered Channel.
	// Sent to all nodes by a session subscribing with presence events;
	// handled by every node, which broadcasts a join event to its local
	// subscribers of Channel.
	ControlJoin ControlKind = "join"
	// ControlLeave announces that Conn left Channel (unsubscribe or close).
	// Sent and handled like ControlJoin.
	ControlLeave ControlKind = "leave"
	// ControlRoute carries the client frames of an HTTP session (a POST
	// /v1/send) from the node that received them to the node that holds
	// the session, which processes them as if they had arrived there. Data
	// is the request as internal/transport/fallback encodes it. Sent by
	// the receiving node's fallback sessions; handled by the holding node
	// (internal/node hands it to them), which answers with ControlRouted.
	ControlRoute ControlKind = "route"
	// ControlRouted answers a ControlRoute (Data: its outcome), sent back
	// to the node that routed the frames; handled like ControlRoute.
	ControlRouted ControlKind = "routed"
)

// Control is a message between nodes (evict a connection, disconnect a
// user, route a client's frames).
type Control struct {
	// Node is the target node id; "" means every node.
	Node string
	// Kind says what to do; see the ControlKind constants.
	Kind    ControlKind
	Channel string
	User    string
	Conn    string
	Code    int
	Reason  string
	// Data is the payload of the kinds that carry one (ControlRoute,
	// ControlRouted), opaque to the broker. It must be valid UTF-8 text
	// (the engines encode a Control as JSON); a payload of bytes travels
	// base64-encoded inside it. It is a string, not a []byte, so that a
	// Control stays comparable.
	Data string
}

// Broker is the channel engine behind a node.
//
// Guarantees every implementation keeps (checked by broker/brokertest):
//   - Publish assigns offsets 1, 2, 3... per channel, atomically with the
//     history append and the idempotency check: no gap, no reorder, no
//     duplicate, also under concurrent publishers on many nodes.
//   - Once Subscribe has returned, the node receives every publication of
//     that channel published after that moment through
//     Handler.HandlePublication, in offset order, at most once (this is what
//     lets a node read history after subscribing without a gap at the seam). Delivery between nodes is at-most-once: a broker outage can
//     lose live deliveries, never history; a node that reconnects learns of
//     the gap from offsets.
//   - History returns what is retained in offset order, with the channel's
//     latest position read consistently with the messages.
//   - When a stream loses its history the epoch changes.
type Broker interface {
	// Start begins delivery to h. It is called once, before any other
	// method but Close.
	Start(ctx context.Context, h Handler) error
	// Publish appends data to ch's stream and fans it out.
	Publish(ctx context.Context, ch string, p Publication, opts PublishOptions) (PublishResult, error)
	// Subscribe makes this node receive ch's publications. Calls are
	// counted: Unsubscribe undoes one Subscribe.
	Subscribe(ctx context.Context, ch string) error
	// Unsubscribe undoes one Subscribe.
	Unsubscribe(ctx context.Context, ch string) error
	// History reads ch's retained messages.
	History(ctx context.Context, ch string, q HistoryQuery) (HistoryResult, error)
	// PublishControl sends a control message to one node or all. Sent to
	// one node that is not listening, it returns ErrNoNode.
	PublishControl(ctx context.Context, c Control) error
	// Ping reports whether the broker is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close stops delivery and releases resources; it waits for the
	// broker's goroutines.
	Close() error
}

// PresenceInfo is one connection present in a channel.
type PresenceInfo struct {
	User string
	Conn string
	Node string
}

// Presence is the optional capability to track who is in a channel across
// nodes. Entries expire after ttl unless added again (nodes refresh them).
type Presence interface {
	AddPresence(ctx context.Context, ch string, info PresenceInfo, ttl time.Duration) error
	RemovePresence(ctx context.Context, ch string, conn string) error
	Presence(ctx context.Context, ch string) ([]PresenceInfo, error)
}

// ConnRef names one connection of a user.
type ConnRef struct {
	Conn  string
	Node  string
	Since time.Time
}

// Users is the optional capability to count a user's connections across
// nodes, for the per-user connection limit.
//
// The cost of each call must not grow with the number of connections the
// user already has (a service account or a device fleet may hold tens of
// thousands under one identity): an engine keeps what the limit needs, a
// count and the order to evict in, and returns only the connections to
// evict, never the user's whole list.
type Users interface {
	// AddUserConn records conn for user (expiring after ttl unless added
	// again; ttl <= 0: until removed) and returns the user's live
	// connections beyond the keep newest by Since, oldest first: the ones
	// to evict so that at most keep remain. It may name ref itself when
	// ref is not among the newest. keep <= 0 returns none (no limit, or a
	// refresh of a known connection). Adding a known connection again
	// restarts its ttl and updates its Node; it keeps its original Since.
	AddUserConn(ctx context.Context, user string, ref ConnRef, ttl time.Duration, keep int) ([]ConnRef, error)
	// RemoveUserConn forgets conn of user; an unknown conn is not an
	// error.
	RemoveUserConn(ctx context.Context, user string, conn string) error
}

// KV is the optional capability to keep small values with expiry where any
// node can read them: session state for resumption on another node, and
// single-use tickets.
type KV interface {
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Get returns ErrNotFound when the key is missing or expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Take returns the value and deletes the key in one atomic step, so
	// that of two concurrent Takes only one gets the value; the other gets
	// ErrNotFound.
	Take(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
}

// Locker is the optional capability to hold a lease on a key across nodes:
// at most one owner holds a key at a time, on any node, until it unlocks
// or its lease lapses (a crashed holder frees the key after ttl). It is
// what keeps two nodes from writing one upload at once.
//
// Guarantees (checked by broker/brokertest):
//   - TryLock is set-if-absent: of concurrent TryLocks of one free key, on
//     any nodes, exactly one returns true.
//   - A lease lapses ttl after it was taken or last refreshed; then the key
//     is free for any owner.
//   - Refresh and Unlock act only for the owner that holds the key (compare
//     and set, compare and delete in one step): another owner's Refresh
//     returns false and its Unlock returns ErrNotHeld, and neither touches
//     the lease.
//
// Keys live in the KV key space of the engine: do not Set or Take a key
// that is used as a lock.
type Locker interface {
	// TryLock takes key for owner for ttl and reports whether it did; it
	// returns false, without waiting, when another owner holds the key.
	// Taking a key the same owner already holds renews its lease.
	TryLock(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	// Refresh extends owner's lease on key to ttl from now; false when
	// owner does not hold the key (it lapsed or another owner took it).
	Refresh(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	// Unlock frees key if owner holds it; ErrNotHeld otherwise.
	Unlock(ctx context.Context, key, owner string) error
}
