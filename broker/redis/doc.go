// Package redis is Ferry's broker engine for clusters: the nodes share
// channel streams, history, idempotency keys, presence, per-user connection
// lists and a small key-value store in Redis (6.2 or later), and fan
// publications out to each other over Redis pub/sub.
//
// # Publishing
//
// One Lua script per publish (EVALSHA, with EVAL when Redis does not know
// the script) checks the idempotency key, takes the channel's next offset,
// appends the message to the channel's history list, trims the list to
// HistorySize and HistoryTTL, sets the expiries, and PUBLISHes the message
// to the channel's pub/sub channel. Because all of this happens in one
// atomic step, offsets have no gaps or duplicates under any number of
// publishers on any number of nodes, and every node receives a channel's
// publications in offset order. Concurrent calls share connections through
// rueidis' automatic pipelining (see docs/adr/003-redis-client.md).
//
// A channel's stream state (offset and epoch) expires StreamTTL after its
// last publish, or with its newest message if that lives longer. The epoch
// is random and chosen when the state is created, so when Redis loses the
// state (it restarted without persistence, or evicted the key) the next
// publish starts again at offset 1 in a new epoch, and a client resuming
// with the old epoch is told its history is incomplete.
//
// The stream state also records the run id of the Redis process that wrote
// it last. Redis persists asynchronously (RDB snapshots; an AOF fsynced
// every second), and a replica promoted by a failover lags its primary, so
// a restarted or promoted Redis may hold a stream that is behind: the
// offsets after the restored one were already handed out. The first
// publish on such a stream (the run id differs) therefore starts it over
// in a new epoch, like a lost one, instead of reusing those offsets in the
// same epoch. The history stays readable until that publish. The price: a
// Redis restart or failover starts every channel over even when nothing
// was lost, and clients resuming across it get recovered: false. Reading
// the run id costs one INFO server inside the publish script.
//
// # Subscribing
//
// Each node keeps one pub/sub connection per Redis server and subscribes it
// only to the channels it has local subscribers for, counting Subscribe and
// Unsubscribe calls. Subscribe returns after Redis confirmed the SUBSCRIBE,
// so every publication accepted after that reaches the node: a node can
// subscribe, then read history, and miss nothing at the seam. Received
// messages are handed to the broker.Handler by one goroutine per Redis
// server, in the order Redis sent them. Control messages travel on a
// pub/sub channel per node and one for all nodes.
//
// # When Redis goes away
//
// Calls fail fast with an error wrapping broker.ErrUnavailable: at once when
// the connection is refused, after Config.Timeout when Redis does not
// answer. Nothing waits without bound and nothing is queued for later. Ping
// fails too, so the node reports itself not ready. rueidis redials the
// command connections on demand; the broker redials its pub/sub connection
// with exponential backoff and, once it is back, subscribes it again to
// every channel the node had, and Ping succeeds again.
//
// What is lost: publications made while a node's pub/sub connection was
// down are not delivered live to that node (delivery between nodes is
// at-most-once). History is not lost by a connection failure, and clients
// learn of the gap from offsets and recover it from history. If Redis
// itself loses its data (a restart without persistence), history and
// positions are gone; the new epoch says so. A publish that timed out may
// or may not have happened; a retry with the same idempotency key is safe.
//
// # Sharding
//
// Config.URL may list several Redis servers separated by commas. Each
// channel lives on one of them, chosen by a jump consistent hash of the
// channel name: its stream, history, idempotency keys, presence and pub/sub
// traffic. A user's connection list is placed by the user id, a key-value
// entry by its key; control messages all go through one server. Every node
// must list the same servers in the same order. Adding a server at the end
// moves about 1/n of the channels to it; their streams start over in a new
// epoch there.
//
// # Redis keys
//
// Every key and pub/sub channel name starts with Config.Prefix and a colon
// (see names in keys.go for the layout). Deployments sharing a Redis server
// need distinct prefixes.
//
// # Locks
//
// broker.Locker keeps a lock as a key-value entry whose value is its owner
// and whose PX expiry is the lease; Lua scripts compare the owner and set,
// expire or delete in one step (lock.go).
package redis
