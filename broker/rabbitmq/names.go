package rabbitmq

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
)

// names are the exchanges and queues a broker declares, all starting with
// Config.Prefix:
//
//	<prefix>.pub             direct exchange: publications, routed by channel
//	<prefix>.ctl             direct exchange: control messages, routed by node
//	<prefix>.shard.<i>       request queue of shard i (single active consumer)
//	<prefix>.stream.<i>      stream of shard i: its channels' records
//	<prefix>.node.<id>.<r>   this node's delivery queue (exclusive, per connection)
type names struct {
	prefix string
	node   string
}

func (n names) pubExchange() string { return n.prefix + ".pub" }
func (n names) ctlExchange() string { return n.prefix + ".ctl" }

func (n names) shardQueue(i int) string  { return fmt.Sprintf("%s.shard.%d", n.prefix, i) }
func (n names) shardStream(i int) string { return fmt.Sprintf("%s.stream.%d", n.prefix, i) }

// nodeQueue is a fresh name for this node's delivery queue: a new one per
// connection, so a queue of a dead connection that RabbitMQ has not yet
// removed never blocks the new one.
func (n names) nodeQueue() string { return n.prefix + ".node." + n.node + "." + randomHex(4) }

// ctlKey is the routing key of control messages for node ("" for all).
func ctlKey(node string) string {
	if node == "" {
		return "all"
	}
	return "node." + node
}

// maxKey keeps routing keys within AMQP's 255-byte short strings.
const maxKey = 200

// routeKey is ch's routing key on the publication exchange: the name
// itself, or a digest of a long one. A digest shared by two channels only
// costs a delivery the receiving node drops (it checks the channel).
func routeKey(ch string) string {
	if len(ch) <= maxKey {
		return ch
	}
	sum := sha256.Sum256([]byte(ch))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// shardOf maps a channel to one of shards writers.
func shardOf(ch string, shards int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(ch))
	return int(h.Sum32() % uint32(shards))
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
