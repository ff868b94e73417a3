// Package nats is Ferry's broker engine on NATS JetStream (nats-server 2.9
// or later): the nodes share channel streams, history, idempotency keys,
// presence, per-user connection lists and a small key-value store in
// JetStream, and fan publications out to each other over core NATS
// subjects. docs/adr/005-nats-broker.md records why it is built this way.
//
// # Publishing
//
// Every channel's messages are kept in one JetStream stream
// (<prefix>_channels), on the subject <prefix>.ch.<channel> (the channel
// name base64url-encoded, so any name is a safe subject token). A message's
// headers carry its channel offset, epoch, the history limits it was
// published with, and the stream sequence of the channel's previous
// message. A publish reads the channel's last message (cached per node),
// writes the next offset and appends conditionally: JetStream's
// expected-last-subject-sequence check plus a message id naming the
// channel and offset, which JetStream deduplicates even between writes in
// flight (the check alone lets two through on replicated streams of
// nats-server 2.9; see slot.go). Two publishers can never both append after
// the same message: the loser reads the tail again and retries. Offsets are
// therefore 1, 2, 3... per channel without gaps under any number of
// publishers on any number of nodes. Publishes of one node to one channel
// are serialized by a local lock, so only nodes race each other.
//
// An idempotency key is reserved first, by a conditional write of its
// record in the KV bucket that only one publisher on any node can win; the
// winner appends and records the offset, the others answer with it as
// duplicates (see publishOnce for the one crash window this leaves).
//
// A new channel (no message in the stream) starts at offset 1 in a new
// random epoch, so when the stream is lost (deleted, or a server came back
// without its store) clients resuming with the old epoch are told their
// history is incomplete. History limits (size and ttl) are applied when
// reading, using those of the channel's latest message; a trim every few
// publishes removes what the size pushed out. The latest message is never
// removed by the broker: it holds the offset and epoch.
//
// # Delivery
//
// After the append, the publisher sends a copy to the core subject
// <prefix>.fan.<channel>; each node subscribes to the channels it has local
// subscribers for. Copies from several nodes can arrive out of order or be
// lost (core NATS is at-most-once): one worker per node delivers each
// channel in offset order, drops what it delivered already, and fetches a
// missing predecessor from the stream by following the messages' links.
// Subscribe returns after the server confirmed the subscription and the
// worker read the channel's position; everything after it is delivered.
//
// Control messages travel on <prefix>.ctl.all and <prefix>.ctl.node.<id>;
// one to a single node is a request that node's broker answers, so a node
// that is not listening is reported as broker.ErrNoNode.
//
// # Presence, users and KV
//
// Three JetStream key-value buckets hold presence (one entry per channel),
// user connections and the KV capability, updated by compare-and-set on
// the entry's revision. Expiry is written in the values (JetStream 2.9 has
// no per-key ttl) and the buckets drop entries not written for
// Config.MaxRecordTTL.
//
// broker.Locker's locks are entries of the KV bucket (expiry, then owner)
// taken and refreshed by the same compare-and-set on the revision read, and
// released by a delete conditional on it (lock.go). A lease can be no
// longer than Config.MaxRecordTTL.
//
// A user's connections are one key each (c.<user>.<conn>: node, Since,
// expiry) plus a head (h.<user>: the count and the 32 oldest by Since), so
// a connect, refresh or disconnect costs the same few reads and writes
// whatever the number of connections the user holds
// (brokertest.UsersScale passes, single and clustered). Expired records
// are found in write order (the user's first record in the stream expires
// first, as every refresh rewrites its record with the same ttl), and only
// when the count exceeds the limit. The order past the front is kept in
// chunks written by the last rebuild of the head from a listing of the
// user's records, so rebuilds are rare (at most one per the connections
// the previous one listed); users.go has the details and ADR 005 the
// reasons.
//
// # When NATS goes away
//
// Calls fail fast with an error wrapping broker.ErrUnavailable: nothing is
// buffered while the client reconnects, and every request is bounded by
// Config.Timeout. Ping fails, so the node reports itself not ready. The
// client reconnects by itself (to any server of the list) and restores the
// subscriptions; live copies sent meanwhile are lost for that node and
// recovered from the stream when the channel's next message shows the gap.
package nats
