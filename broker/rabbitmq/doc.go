// Package rabbitmq is Ferry's broker engine on RabbitMQ (3.9 or later,
// AMQP 0.9.1): nodes share channel streams, history and idempotency keys
// through RabbitMQ streams and fan publications out to each other through
// a direct exchange. docs/adr/006-rabbitmq-broker.md explains the choices.
//
// # Writers
//
// RabbitMQ does not tell a publisher at which stream offset its message
// landed, and cannot check an idempotency key, so offsets are assigned by
// one writer per shard. Channels are spread over Config.Shards shards by a
// hash of their name. Each shard has a request queue with a single active
// consumer; every node consumes every shard's queue, and RabbitMQ hands the
// requests of a shard to one node at a time. That node's writer checks the
// idempotency key, takes the channel's next offset and appends a record to
// the shard's stream. It does so for all the requests waiting (up to 128)
// one after the other, then waits for RabbitMQ's confirms of the batch,
// fans the publications out and replies (direct reply-to). History reads go to the
// same writer, which keeps the channel's retained messages in memory, so a
// read is consistent with the offsets.
//
// When the active writer's connection ends, RabbitMQ makes another node's
// consumer active and redelivers the requests the old one had not
// acknowledged. The new writer first rebuilds the shard: it appends a
// marker to the stream and reads the stream from its start up to the
// marker, replaying every record (offsets, epochs, history bounds,
// idempotency keys and request ids). A redelivered request that the old
// writer had already appended is recognized by its id and answered, not
// applied twice.
//
// # Delivery
//
// Each node has an exclusive queue, bound on the publication exchange to
// the channels it has subscribers for (Subscribe and Unsubscribe are
// counted) and on the control exchange to its node id and to "all". One
// goroutine hands what arrives to the broker.Handler, so a channel's
// publications keep their offset order. Control messages for one node are
// published with the mandatory flag: when no queue takes them, RabbitMQ
// returns them and PublishControl reports broker.ErrNoNode.
//
// # When RabbitMQ goes away
//
// Calls fail with an error wrapping broker.ErrUnavailable while the node is
// disconnected, or after Config.Timeout when no writer answers; Ping fails
// so the node reports not ready. The broker reconnects with backoff, sets
// its queues and bindings up again and rebuilds writer state from the
// streams. Publications fanned out while a node was disconnected are not
// delivered to it; history is kept (streams are durable). A publish that
// timed out may have happened; a retry with its idempotency key is safe.
//
// # Presence, users and keys
//
// RabbitMQ has no keyed storage with expiry, so presence, per-user
// connection lists and the key-value store (session state, tickets) are
// kept by the shard writers too, each in a broker/memory instance with the
// memory broker's semantics, placed by a hash of the channel, user or key.
// Every change is appended to the shard's stream before it is applied, so
// a new writer replays them with their remaining TTLs: they survive a
// writer failover and a RabbitMQ restart. Reads are answered by the writer.
// broker.Locker's locks are key-value entries too: the writer decides a
// request from the key's current owner and appends the outcome as a plain
// set or delete, so a replay applies what was decided and never decides
// again.
//
// # Configuration that must agree
//
// Every node of a cluster must use the same Prefix and Shards. A writer
// refuses requests from a node with another shard count (the error names
// Shards), since the two would hash channels to different writers. The
// stream arguments (StreamMaxAge, StreamMaxBytes, StreamSegmentBytes) are
// fixed when a stream is first declared; RabbitMQ refuses a node that
// declares them otherwise, and that node keeps reconnecting with a
// warning naming the precondition that failed.
package rabbitmq
