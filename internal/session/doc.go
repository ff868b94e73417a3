// Package session is one client's state machine, independent of the wire:
// the connect handshake, subscriptions with recovery, publishes, acks and
// credit, presence, and resumption. A transport (WebSocket, SSE,
// long-poll) feeds it inbound messages and gives it a Transport to write to;
// the session never waits on that transport.
//
// Data flow: the hub calls Deliver with a publication encoded once; the
// session queues it in its bounded flow.Queue (priorities, conflation,
// credit) and schedules itself on the node's Writers pool, whose goroutines
// pop what the queue allows, encode it as one wire message (a batch when
// more than one frame is ready) and hand it to the transport.
//
// The Registry holds a node's sessions and sweeps them about once a second
// for heartbeats, connect timeouts, token expiry and presence refresh, so no
// connection needs a timer of its own.
package session
