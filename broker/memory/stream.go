package memory

import (
	"bytes"
	"context"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// stream is one channel's offset counter, epoch and retained history.
//
// The history is a queue of the most recent messages, oldest first, kept
// in hist[head:]. It is always a contiguous run of offsets ending at the
// stream's offset (or empty): each publish appends one message or, with a
// HistorySize of 0, clears the queue, and trimming removes from the front.
// So the message with offset o sits at index o - firstOffset.
type stream struct {
	offset uint64
	epoch  string
	// lastPublish is when the newest message was accepted.
	lastPublish time.Time
	// The bounds of the latest publish apply to the whole history.
	streamTTL   time.Duration
	historySize int
	historyTTL  time.Duration

	hist []histEntry
	head int
}

type histEntry struct {
	pub *broker.Publication
	// at is when the broker accepted the message (with its monotonic
	// reading, when the clock provides one).
	at time.Time
}

func newStream(prevEpoch string) *stream {
	epoch := randomHex(8)
	for epoch == prevEpoch {
		epoch = randomHex(8)
	}
	return &stream{epoch: epoch}
}

// retained returns how many messages the history holds, expired or not.
func (st *stream) retained() int { return len(st.hist) - st.head }

// live returns the retained messages that have not expired at now, oldest
// first. The slice aliases the stream's storage: use it under the lock.
func (st *stream) live(now time.Time) []histEntry {
	h := st.hist[st.head:]
	if st.historyTTL <= 0 {
		return h
	}
	// Entries are in acceptance order, so the expired ones are a prefix.
	i := 0
	for i < len(h) && now.Sub(h[i].at) >= st.historyTTL {
		i++
	}
	return h[i:]
}

// gone reports whether the stream can be forgotten at now: no message is
// left and its StreamTTL has passed since the last publish.
func (st *stream) gone(now time.Time) bool {
	return len(st.live(now)) == 0 && now.Sub(st.lastPublish) >= st.streamTTL
}

// push appends e and applies the history bounds.
func (st *stream) push(e histEntry, now time.Time) {
	if st.historySize <= 0 {
		st.clearHistory()
		return
	}
	if len(st.hist) == cap(st.hist) && st.head > 0 && st.head >= len(st.hist)/2 {
		// At least half of the storage is dead: move the live part to the
		// front instead of growing. Each compaction copies at most as many
		// entries as were dropped since the previous one.
		n := copy(st.hist, st.hist[st.head:])
		clear(st.hist[n:])
		st.hist = st.hist[:n]
		st.head = 0
	}
	st.hist = append(st.hist, e)
	st.trim(now)
}

// trim drops messages beyond historySize or older than historyTTL.
func (st *stream) trim(now time.Time) {
	for st.retained() > st.historySize {
		st.dropOldest()
	}
	if st.historyTTL > 0 {
		for st.retained() > 0 && now.Sub(st.hist[st.head].at) >= st.historyTTL {
			st.dropOldest()
		}
	}
	if st.retained() == 0 {
		st.clearHistory()
	}
}

func (st *stream) dropOldest() {
	st.hist[st.head] = histEntry{}
	st.head++
}

func (st *stream) clearHistory() {
	st.hist = nil
	st.head = 0
}

type idemKey struct {
	channel string
	key     string
}

type idemEntry struct {
	offset  uint64
	epoch   string
	expires time.Time
}

// Publish appends p to ch's stream and hands it to this node's handler when
// the node subscribed to ch.
//
// The idempotency check, the offset, the history append and the decision
// to deliver happen under the channel's shard lock, so they are atomic. The
// handler is called after the lock is released, on the publisher's
// goroutine, and before Publish returns when no other publisher of the same
// channel is delivering at that moment. Per-channel order under concurrent
// publishers is kept by letting one publisher at a time deliver for a
// channel: a publisher that finds a delivery in progress queues its
// publication for the delivering goroutine, which hands over everything
// queued, in offset order, before it returns. Publishers never wait for
// each other's handler calls.
//
// Publish copies p.Data; the caller may reuse it. Channel, Offset, Epoch and
// Time of p are set by the broker. The *broker.Publication given to the
// handler and the Data of messages returned by History are shared with the
// broker's history and must not be modified.
func (b *Broker) Publish(ctx context.Context, ch string, p broker.Publication, opts broker.PublishOptions) (broker.PublishResult, error) {
	if err := b.usable(ctx); err != nil {
		return broker.PublishResult{}, err
	}
	// Allocate outside the lock.
	pub := &broker.Publication{
		Channel:  ch,
		Data:     bytes.Clone(p.Data),
		Priority: p.Priority,
		Conflate: p.Conflate,
		From:     p.From,
	}
	streamTTL := opts.StreamTTL
	if streamTTL <= 0 {
		streamTTL = DefaultStreamTTL
	}
	ref := b.handler.Load()

	sh := b.shardFor(ch)
	sh.mu.Lock()
	now := b.now()
	var ik idemKey
	if opts.IdempotencyKey != "" {
		ik = idemKey{channel: ch, key: opts.IdempotencyKey}
		if e, ok := sh.idem[ik]; ok && !expired(e.expires, now) {
			sh.mu.Unlock()
			return broker.PublishResult{Offset: e.offset, Epoch: e.epoch, Duplicate: true}, nil
		}
	}
	st := sh.streams[ch]
	if st == nil || st.gone(now) {
		prev := ""
		if st != nil {
			prev = st.epoch
		}
		st = newStream(prev)
		sh.streams[ch] = st
	}
	st.offset++
	pub.Offset = st.offset
	pub.Epoch = st.epoch
	pub.Time = now.UnixMilli()
	// Drop what expired under the previous bounds before the new ones
	// apply, so that a longer TTL never brings back an expired message.
	st.trim(now)
	st.lastPublish = now
	st.streamTTL = streamTTL
	st.historySize = opts.HistorySize
	st.historyTTL = opts.HistoryTTL
	st.push(histEntry{pub: pub, at: now}, now)
	if opts.IdempotencyKey != "" {
		window := opts.IdempotencyWindow
		if window <= 0 {
			window = DefaultIdempotencyWindow
		}
		sh.idem[ik] = idemEntry{offset: pub.Offset, epoch: pub.Epoch, expires: now.Add(window)}
	}
	res := broker.PublishResult{Offset: pub.Offset, Epoch: pub.Epoch}

	var sub *subscription
	if s := sh.subs[ch]; ref != nil && s != nil && s.refs > 0 {
		if s.delivering {
			s.queue = append(s.queue, pub)
		} else {
			s.delivering = true
			sub = s
		}
	}
	sh.mu.Unlock()

	if sub != nil {
		b.deliver(ref.h, sh, ch, sub, pub)
	}
	return res, nil
}

// History reads ch's retained messages; see broker.HistoryQuery and
// broker.HistoryResult. The messages and the latest position are read
// under one lock, so they are consistent: the messages are contiguous and
// the last one has the returned Offset (unless Limit cut the list).
//
// Complete is true when Since is nil, when Since.Offset is 0 and nothing
// was trimmed from the stream yet, or when Since.Epoch
// is the stream's epoch and every message after Since.Offset is retained
// (Since.Offset equal to the latest offset included). It is false when the
// epochs differ (the messages then start at the oldest retained one) and
// when Since.Offset is beyond the latest offset.
func (b *Broker) History(ctx context.Context, ch string, q broker.HistoryQuery) (broker.HistoryResult, error) {
	if err := b.usable(ctx); err != nil {
		return broker.HistoryResult{}, err
	}
	sh := b.shardFor(ch)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	now := b.now()

	var res broker.HistoryResult
	var live []histEntry
	if st := sh.streams[ch]; st != nil && !st.gone(now) {
		res.Offset = st.offset
		res.Epoch = st.epoch
		live = st.live(now)
	}
	first := res.Offset + 1 // offset of the oldest retained message
	if len(live) > 0 {
		first = live[0].pub.Offset
	}

	start := 0
	switch since := q.Since; {
	case since == nil:
		res.Complete = true
	case since.Offset == 0:
		// "From the beginning", in any epoch: complete only while
		// nothing was trimmed yet.
		res.Complete = first <= 1
	case since.Epoch != res.Epoch:
		res.Complete = false
	case since.Offset > res.Offset:
		// Ahead of the stream in the same epoch: not a position this
		// stream ever had.
		res.Complete = false
		start = len(live)
	default:
		res.Complete = since.Offset+1 >= first
		if res.Complete {
			start = int(since.Offset + 1 - first)
		}
	}
	msgs := live[start:]
	if q.Limit < 0 {
		msgs = nil // only the position
	}
	if q.Limit > 0 && len(msgs) > q.Limit {
		msgs = msgs[:q.Limit]
	}
	if len(msgs) > 0 {
		res.Messages = make([]broker.Publication, len(msgs))
		for i, e := range msgs {
			res.Messages[i] = *e.pub
		}
	}
	return res, nil
}
