// Package node is what one Ferry node does for all its connections, as
// opposed to what one connection does (internal/session):
//
//   - the channel operations under the namespace rules (Publish, History,
//     PresenceOf), shared by client frames and the server API, with broker
//     failures mapped to protocol errors (BrokerError);
//   - the namespace rules themselves (Namespaces, Rules);
//   - the registry of the node's connections (Registry), by connection id
//     and by user, and the sweep that runs the connections' periodic
//     checks once a second instead of a timer per connection, visiting
//     only those whose check is due (a timing wheel of one-second slots);
//   - what the broker delivers to the node (Node is the broker.Handler):
//     publications, encoded once and handed to the hub's local subscribers,
//     and control messages between nodes (evict, takeover, disconnect,
//     join, leave; see broker.ControlKind), dispatched here (route and
//     routed, an HTTP session's frames passed between nodes, go on to
//     Config.Routes);
//   - the node's liveness record in the broker's KV (Beat, Alive, Forget;
//     liveness.go, ADR 009), which other nodes read so as not to wait for
//     a node that is dead or frozen.
//
// # Data flow
//
//	transport -> session -> node -> hub / broker -> queue -> writer
//
// A session (internal/session) asks the node to publish through the small
// session.Node interface; the node calls the broker, which hands the
// publication back to every node with subscribers (HandlePublication); the
// hub (internal/hub) gives it to each local session, which queues it
// (internal/flow) for its writer.
//
// # Dependencies
//
// node imports broker, hub, metrics and protocol; it does not import
// session or any transport: a connection is seen only through the Conn and
// LocalConns interfaces, so the registry's maps hold the session's own
// pointer type (Registry is generic) with no interface word per connection.
//
// # Lock order
//
// Node has no lock (its fields are set by New, then only read; the time of
// the last liveness write is an atomic). A Registry
// shard's lock is never held while a connection's method runs: connections
// are collected under the shard's lock and called after it is released
// (Each, ByUser, CloseConn, CloseUser, Sweep); UserLink, called under the
// shard's lock, only returns a field's address. So:
//
//	connection's lock -> registry shard's lock   (allowed; Add, Connected, Remove, Wake)
//	registry shard's lock -> connection's lock   (never)
//
// and the registry calls that run connection methods (CloseConn, CloseUser,
// Each, Sweep) must not be made while holding a connection's lock.
package node
