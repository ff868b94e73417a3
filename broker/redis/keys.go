package redis

// names builds the Redis keys and pub/sub channel names of one broker.
// Every key of one channel (or user) carries the channel (or user) as a
// hash tag, "{...}", so that the keys a script touches stay in one slot
// should the data ever move to Redis Cluster.
//
//	<prefix>:m:{<channel>}          stream state (hash: offset, epoch, history TTL)
//	<prefix>:h:{<channel>}          history (list of elements, oldest first)
//	<prefix>:i:{<channel>}:<key>    idempotency key ("<offset> <epoch>")
//	<prefix>:pr:{<channel>}         presence entries (hash)
//	<prefix>:pe:{<channel>}         presence expiries (sorted set)
//	<prefix>:un:{<user>}            a user's connections: their nodes (hash)
//	<prefix>:us:{<user>}            a user's connections by since (sorted set)
//	<prefix>:ue:{<user>}            a user's connections by deadline (sorted set)
//	<prefix>:kv:<key>               a key-value entry (string)
//	<prefix>:p:<channel>            pub/sub channel of a channel's publications
//	<prefix>:ctl                    pub/sub channel of control messages for every node
//	<prefix>:ctl:<node>             pub/sub channel of control messages for one node
type names struct {
	prefix  string // "<prefix>:"
	pub     string // "<prefix>:p:"
	ctlAll  string
	ctlNode string
}

func newNames(prefix, node string) names {
	p := prefix + ":"
	return names{
		prefix:  p,
		pub:     p + "p:",
		ctlAll:  p + "ctl",
		ctlNode: p + "ctl:" + node,
	}
}

func (n names) tagged(kind, s string) string { return n.prefix + kind + ":{" + s + "}" }

func (n names) state(ch string) string    { return n.tagged("m", ch) }
func (n names) history(ch string) string  { return n.tagged("h", ch) }
func (n names) presence(ch string) string { return n.tagged("pr", ch) }
func (n names) presenceExp(ch string) string {
	return n.tagged("pe", ch)
}

// userKeys returns the three keys of a user's connections, in the order
// the user scripts take them. (Before the sorted sets, one hash "u" held
// them all; the new names keep an old node's entries out of the way.)
func (n names) userKeys(u string) []string {
	return []string{n.tagged("un", u), n.tagged("us", u), n.tagged("ue", u)}
}
func (n names) kv(key string) string { return n.prefix + "kv:" + key }
func (n names) idem(ch, key string) string {
	return n.tagged("i", ch) + ":" + key
}
func (n names) pubsub(ch string) string { return n.pub + ch }

// ctlFor returns the pub/sub channel of control messages for node ("" for
// every node).
func (n names) ctlFor(node string) string {
	if node == "" {
		return n.ctlAll
	}
	return n.ctlAll + ":" + node
}

// hashString is 64-bit FNV-1a of s followed by a finalizer that spreads
// its bits (the one of SplitMix64). It is stable across processes and
// versions, as the shard choice must be.
func hashString(s string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// jumpHash maps key to one of n buckets with the jump consistent hash of
// Lamping and Veach: when a bucket is added at the end, only about 1/n of
// the keys move, all of them to the new bucket.
func jumpHash(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}
