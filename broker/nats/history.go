package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-io/ferry/broker"
)

// historyBatch is how many messages one fetch of a history read asks for.
const historyBatch = 512

// History reads ch's retained messages.
//
// It reads the channel's latest message first: its offset and epoch are the
// position, and its size and ttl say which older offsets are retained. Then
// it reads the channel's messages from the stream, in order, up to that
// latest message, through a short-lived consumer. Messages are filtered by
// the retention rules whether or not the periodic trim has removed them yet,
// so every read is a contiguous run ending at the position it reports.
func (b *Broker) History(ctx context.Context, ch string, q broker.HistoryQuery) (broker.HistoryResult, error) {
	if err := b.checkOpen(); err != nil {
		return broker.HistoryResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	stream, err := b.channelStream(ctx, false)
	if err != nil {
		return broker.HistoryResult{}, b.fail("history", err)
	}
	subj := b.names.chanSubj + token(ch)
	m, err := b.lastMsg(ctx, stream, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		// No stream: complete only for a client that knew none either.
		complete := q.Since == nil || q.Since.Offset == 0
		return broker.HistoryResult{Complete: complete}, nil
	}
	if err != nil {
		return broker.HistoryResult{}, b.fail("history", err)
	}
	last, err := decodeEntry(m.Header, m.Data, m.Sequence)
	if err != nil {
		return broker.HistoryResult{}, fmt.Errorf("nats broker: history %q: %w", ch, err)
	}
	last.pub.Channel = ch
	res := broker.HistoryResult{Offset: last.pub.Offset, Epoch: last.pub.Epoch}

	// since is the offset after which messages are wanted.
	since := uint64(0)
	if q.Since != nil && q.Since.Offset > 0 {
		if q.Since.Epoch == last.pub.Epoch {
			since = q.Since.Offset
		} else {
			since = 0 // another stream: everything retained, not complete
		}
	}
	epochOK := q.Since == nil || q.Since.Offset == 0 || q.Since.Epoch == last.pub.Epoch
	if since >= last.pub.Offset {
		// Nothing after since (or since is ahead of the stream).
		res.Complete = epochOK && since == last.pub.Offset
		return res, nil
	}
	now := time.Now()
	// first is the oldest retained offset; the scan finds it.
	first, msgs, err := b.scan(ctx, stream, subj, &last, since, q.Limit, now)
	if err != nil {
		return broker.HistoryResult{}, b.fail("history", err)
	}
	res.Messages = msgs
	res.Complete = epochOK && first <= since+1
	return res, nil
}

// readConsumer creates a short-lived consumer reading every message of
// subj in stream (no acks, in memory, one replica; the server drops it
// when left idle) and returns it with the function that deletes it.
func (b *Broker) readConsumer(ctx context.Context, stream jetstream.Stream, subj string) (jetstream.Consumer, func(), error) {
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     subj,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: 10 * b.cfg.Timeout,
	})
	if err != nil {
		return nil, nil, err
	}
	return cons, func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
		defer cancel()
		_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}, nil
}

// scan reads the channel's messages in stream order up to last and returns
// the oldest retained offset (last.Offset+1 when none is) and the retained
// messages after since, at most limit of them (0: all; negative: none).
func (b *Broker) scan(ctx context.Context, stream jetstream.Stream, subj string, last *entry, since uint64, limit int, now time.Time) (uint64, []broker.Publication, error) {
	first := last.pub.Offset + 1
	if last.size == 0 {
		return first, nil, nil // no history is kept
	}
	cons, done, err := b.readConsumer(ctx, stream, subj)
	if err != nil {
		return 0, nil, err
	}
	defer done()

	var msgs []broker.Publication
	found := false // first is known once a retained message was seen
	for {
		batch, err := cons.FetchNoWait(historyBatch)
		if err != nil {
			return 0, nil, err
		}
		n := 0
		done := false
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return 0, nil, err
			}
			if meta.Sequence.Stream > last.seq {
				done = true
				continue
			}
			e, err := decodeEntry(m.Headers(), m.Data(), meta.Sequence.Stream)
			if err != nil {
				return 0, nil, err
			}
			if meta.Sequence.Stream == last.seq {
				done = true
			}
			if e.pub.Epoch != last.pub.Epoch || !last.retained(&e, now) {
				continue
			}
			if !found {
				first, found = e.pub.Offset, true
			}
			if e.pub.Offset <= since || limit < 0 || (limit > 0 && len(msgs) >= limit) {
				continue
			}
			e.pub.Channel = last.pub.Channel
			msgs = append(msgs, e.pub)
		}
		if err := batch.Error(); err != nil {
			return 0, nil, err
		}
		// Stop at the latest message, or when the stream has nothing more
		// (the latest message was trimmed by a newer one meanwhile).
		if done || n == 0 {
			return first, msgs, nil
		}
		if found && (limit < 0 || (limit > 0 && len(msgs) >= limit)) {
			// Enough read; nothing later can change first.
			return first, msgs, nil
		}
	}
}
