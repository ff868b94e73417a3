// Package session is one client connection's state machine, independent of
// the wire: the connect handshake, subscriptions with recovery, publishes,
// acks and credit, presence, and resumption. A transport (WebSocket, SSE,
// long-poll) feeds it inbound messages and gives it a Transport to write to;
// the session never waits on that transport.
//
// What is not one connection's business is the node's (internal/node): the
// session asks it to publish, read history or presence and to send control
// messages through the small Node interface (env.go), and is held in the
// node's Registry, which sweeps every session about once a second for
// heartbeats, connect timeouts, token expiry and presence refresh (Sweep), so
// no connection needs a timer of its own.
//
// # Data flow
//
//	transport -> session -> node -> hub / broker -> queue -> writer
//
// A frame from the transport is handled here (HandleMessage); a publish
// goes to the node, which hands it to the broker. What the broker delivers,
// the node encodes once and the hub hands to Deliver; the session queues it
// in its bounded flow.Queue (priorities, conflation, credit) and schedules
// itself on the node's writer pool (flow.Writers, through the narrow
// flow.Writable interface), whose goroutines call Flush: pop what the queue
// allows, encode it as one wire message (a batch when more than one frame
// is ready) and hand it to the transport.
//
// # Contexts
//
// A frame's work (and a replay page's) runs under a context derived from
// Env.Lifetime, the node's lifetime, bounded by requestTimeout: the
// server's Shutdown cancels it once the drain is over, so work stuck on the
// broker ends. What a closed session releases and saves for resumption
// runs under its own timeout, not the lifetime: it must still happen when
// the session was closed by the shutdown.
//
// # Lock order
//
// Each session has one mutex, Session.mu, guarding its state (see the
// field comments in session.go; a subscription's fields and the
// sessionExtra are guarded by it too). Locks are taken in this order, never
// the other way round:
//
//	Session.mu -> the transport's own lock (Send, Pending while flushing;
//	              Send in Close)
//
// Session.mu is never held together with Writers.mu (the pool collects
// sessions under its lock and flushes them after releasing it; a session
// schedules itself after releasing its own), nor with a node Registry
// shard's lock (the registry calls sessions outside its locks, and the
// session registers itself outside its own).
//
// The session does not call the hub, the broker, the node or the registry
// while holding Session.mu: those calls may block on the network (broker)
// or call back into sessions (hub broadcast, registry close). Writers.mu is
// never held while a session's lock is taken: the pool collects sessions
// under its lock and flushes them after releasing it. A transport must not
// call back into the session (Closed, Kick) from inside Send or Close while
// the session holds its lock; one that might uses ClosedAsync.
//
// The few fields touched without Session.mu are atomics: slot (the
// session's place in the writer pool, flow.Slot: scheduled, written by the
// flush, read by the pool to place the session in its coalescing window)
// and pingedAt (the sweep); nextOfUser belongs to the node's registry,
// under its shard's lock.
package session
