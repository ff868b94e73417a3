// Package flow is the outbound queue of one client connection: what the
// session queues for the client, and what the transport's writer (WebSocket,
// SSE, long-poll alike) takes out, in batches, to put on the wire.
//
// A queue holds two kinds of items. Channel messages (Item.Msg) are
// publications fanned out to many connections; they carry a priority and an
// optional conflation key, and are subject to the bounds, the credit window
// and the rate limit. Replies (Item.Frame) are frames encoded for this
// connection alone (answers to requests, presence events, errors); they are
// never dropped, never conflated and need neither credit nor rate tokens.
//
// # Order
//
// Pop hands items out in push order (FIFO), replies and messages
// interleaved. Priorities decide only what is dropped, never the order: a
// client deduplicates by channel offset and treats a lower offset after a
// higher one as already seen, so reordering messages of one channel would
// lose them. The one exception is replies overtaking messages that credit or
// the rate limit holds back: order matters among a channel's messages, and a
// reply is not a channel message, so holding a pong or an error behind a
// window the client has not acknowledged yet would only delay it (or, for a
// client that waits for that reply before acknowledging, deadlock it).
// Messages never overtake one another, replies never overtake one another.
//
// # Bounds and drops
//
// Config.MaxMessages and Config.MaxBytes bound what is queued (Item.Size
// counts against MaxBytes). When a message is pushed into a queue that
// cannot take it:
//
//   - queued droppable messages are dropped, oldest first, until it fits;
//     then, if it is normal or critical, queued normal messages, oldest
//     first;
//   - the pushed message counts as the newest of its class: a droppable
//     message pushed when no droppable message is queued is dropped itself
//     (normal and critical ones are not dropped for it), and likewise a
//     normal message when neither droppable nor normal ones are queued.
//     When even dropping every message it may displace would not make room
//     (it is larger than all of them together), only the pushed message is
//     dropped: emptying the queue for nothing would lose more;
//   - critical messages are never dropped. When nothing droppable is left,
//     a critical message is queued over the bounds. Replies count toward the
//     bounds and are pushed exactly like critical messages.
//
// A queue may stay over its bounds for Config.Grace, counted from the first
// push that took it over and restarted whenever Pop brings it back within
// them. A push into a queue that has been over for longer, or that would take
// it over Config.HardFactor times its bounds, fails with ErrSlowConsumer and
// the session closes the connection with 4010 (slow consumer). Check tests
// the same grace period without pushing.
//
// PushResult counts what each push dropped, by priority, for metrics; the
// client learns of the gaps from the channel offsets.
//
// # Conflation
//
// A message pushed with conflation key K removes the queued, unsent message
// with key K and goes to the tail like any other message; it is counted as
// conflated, not dropped. It does not take the old message's place: the new
// message has a higher offset than every message of its channel queued after
// the old one, and putting it ahead of them would make the client, which
// keeps the highest offset seen, discard them as duplicates. With a rate
// limit or a small window, conflation is what keeps a slow client current: it
// ends up with the latest value of every key instead of a backlog of stale
// ones. Messages already handed out by Pop are never affected.
//
// # Credit and rate
//
// With a window W (Config.Window, SetWindow; from the client's connect
// frame), Pop hands out a message only while InFlight() < W, where InFlight
// is LastSeq minus the highest sequence number the client acknowledged
// (Ack). With a rate (Config.Rate, Config.Burst), Pop hands out messages
// through a token bucket (kept as a generic cell rate algorithm: a single
// timestamp), and when a token is missing it returns the time until the next
// one so the caller can schedule a wake-up. Messages held back stay queued
// and remain subject to the bounds and to conflation. Pop assigns each
// message it hands out the next session sequence number (Item.Seq).
//
// # Cost
//
// A Queue is not safe for concurrent use; the session holds its mutex around
// every call. It starts no goroutine and no timer: every call that needs the
// time takes it as an argument. There is one queue per connection, so an idle
// one is small: the Queue struct (under 100 bytes on 64-bit platforms) and
// nothing else until the first push. Items live in a slab of nodes linked in
// push order and, per class, in eviction order, so that Push, Pop, drops and
// conflation are all O(1) amortized and a queue in steady state does not
// allocate; the conflation map is made only when a key is first used. Reset,
// Shrink and Pop (after a burst) give the memory back.
//
// Batching is the caller's: Pop returns up to max ready items and the writer
// encodes them as one wire message (see protocol.Codec's BeginBatch).
//
// # The writer pool
//
// Writers is the node's pool of writer goroutines that drain the queues:
// a connection (a session) with something to send schedules itself
// (Schedule, WriteNow, Reply) and a writer calls its Flush, which pops and
// writes. The pool sees a connection only through the narrow Writable
// interface (Slot and Flush); its per-connection bookkeeping is a Slot of
// atomics kept in the connection, so scheduling costs no table lookup and
// no lock of the connection. Under load the pool gathers messages into
// fewer writes (adaptive coalescing, see Writers). Lock order: the pool's
// lock is never held while a connection's Flush runs.
package flow
