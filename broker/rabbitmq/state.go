package rabbitmq

import (
	"time"

	"github.com/ferry-io/ferry/broker"
)

// chanState is what a shard's writer knows of one channel: the offset
// counter, the epoch and the retained history. It is rebuilt from the
// shard's RabbitMQ stream when a node becomes the shard's writer, and kept
// in step by applying each record the writer appends. Only the writer's
// goroutine touches it.
type chanState struct {
	offset uint64
	epoch  string
	// last is when the newest message was accepted.
	last time.Time
	// The bounds of the newest publish apply to the whole history.
	historySize int
	historyTTL  time.Duration
	streamTTL   time.Duration
	// hist holds the retained messages, oldest first: a contiguous run of
	// offsets ending at offset (or empty).
	hist []*broker.Publication
}

// expired reports whether p is older than the history TTL at now.
func (st *chanState) expired(p *broker.Publication, now time.Time) bool {
	return st.historyTTL > 0 && now.Sub(time.UnixMilli(p.Time)) >= st.historyTTL
}

// live returns the retained messages not expired at now, oldest first.
func (st *chanState) live(now time.Time) []*broker.Publication {
	i := 0
	for i < len(st.hist) && st.expired(st.hist[i], now) {
		i++
	}
	return st.hist[i:]
}

// gone reports whether the channel's stream is over at now: no message is
// left and StreamTTL has passed since the last publish. The next publish
// then starts a new stream in a new epoch.
func (st *chanState) gone(now time.Time) bool {
	return len(st.live(now)) == 0 && now.Sub(st.last) >= st.streamTTL
}

// apply takes one accepted publication into the state: p.Offset must be
// st.offset+1 and p.Epoch st.epoch. The bounds come from the publish.
func (st *chanState) apply(p *broker.Publication, r *record) {
	now := time.UnixMilli(p.Time)
	// Drop what expired under the old bounds first, so that a longer TTL
	// never brings an expired message back.
	st.hist = st.live(now)
	st.offset = p.Offset
	st.last = now
	st.historySize = r.HistorySize
	st.historyTTL = time.Duration(r.HistoryTTL)
	st.streamTTL = time.Duration(r.StreamTTL)
	if st.historySize <= 0 {
		st.hist = nil
		return
	}
	st.hist = append(st.hist, p)
	if extra := len(st.hist) - st.historySize; extra > 0 {
		clear(st.hist[:extra])
		st.hist = st.hist[extra:]
	}
}

// read answers a history query at now, with the semantics documented on
// broker.HistoryQuery and broker.HistoryResult. A nil st is a channel with
// no stream.
func (st *chanState) read(q broker.HistoryQuery, now time.Time) broker.HistoryResult {
	var res broker.HistoryResult
	var live []*broker.Publication
	if st != nil && !st.gone(now) {
		res.Offset, res.Epoch = st.offset, st.epoch
		live = st.live(now)
	}
	first := res.Offset + 1 // the oldest retained offset
	if len(live) > 0 {
		first = live[0].Offset
	}
	lo, hi, complete := q.Window(res.Offset, res.Epoch, first, len(live))
	res.Complete = complete
	msgs := live[lo:hi]
	if len(msgs) > 0 {
		res.Messages = make([]broker.Publication, len(msgs))
		for i, p := range msgs {
			res.Messages[i] = *p
		}
	}
	return res
}
