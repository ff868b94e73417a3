// Package memory is Ferry's single-node broker: channel streams, history,
// idempotency, presence, per-user connection tracking and a small key-value
// store, all kept in this process's memory.
//
// It is the default engine when one node serves every client. Nothing
// survives a restart: a channel's stream starts again with offset 1 and a new
// epoch, which tells resuming clients that their position is gone. Run a
// shared engine (broker/redis, broker/nats) for several nodes.
//
// State is split into shards by key, each behind its own lock, so channels,
// users and keys rarely contend. A background sweeper, started by Start and
// stopped by Close, removes what expired: history messages past their TTL,
// streams idle past their StreamTTL, idempotency keys, presence entries,
// user connections and key-value entries. Expired entries are also hidden
// from reads before the sweeper reaches them.
//
// Delivery to the node's broker.Handler is synchronous with Publish: no
// goroutine or queue stands between a publisher and the handler, which keeps
// latency at a minimum and relies on the handler contract (handlers never
// block). See Broker.Publish for how per-channel order is kept under
// concurrent publishers.
package memory
