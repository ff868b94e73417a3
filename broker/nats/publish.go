package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-io/ferry/broker"
)

// maxPublishAttempts bounds the compare-and-set retries of one publish
// (each lost race means another node's publish to the channel succeeded).
const maxPublishAttempts = 1000

// maxTails bounds the tails cached per lock shard.
const maxTails = 1024

// Publish appends p to ch's stream and fans it out.
//
// The next offset is the channel's last offset + 1, written in the message's
// headers and made atomic by a conditional append (see slot.go): it
// succeeds only if the channel's last message is still the one the offset
// was computed from, else the tail is read again and the publish retried.
// Publishes of one node to one channel are serialized by a local lock, so
// only publishes from other nodes ever race. With an idempotency key the
// publish first reserves the key (see publishOnce).
func (b *Broker) Publish(ctx context.Context, ch string, p broker.Publication, opts broker.PublishOptions) (broker.PublishResult, error) {
	if err := b.checkOpen(); err != nil {
		return broker.PublishResult{}, err
	}
	if opts.HistorySize < 0 || opts.HistoryTTL < 0 {
		return broker.PublishResult{}, fmt.Errorf("nats broker: publish %q: negative history size or ttl", ch)
	}
	window := opts.IdempotencyWindow
	if window <= 0 {
		window = DefaultIdempotencyWindow
	}
	if opts.IdempotencyKey != "" && window > b.cfg.MaxRecordTTL {
		return broker.PublishResult{}, fmt.Errorf("publish %q: %w (%v > %v)", ch, ErrWindowTooLong, window, b.cfg.MaxRecordTTL)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var res broker.PublishResult
	var err error
	if opts.IdempotencyKey != "" {
		res, err = b.publishOnce(ctx, ch, p, opts, window)
	} else {
		res, err = b.append(ctx, ch, p, opts)
	}
	if err != nil {
		return broker.PublishResult{}, b.fail(fmt.Sprintf("publish %q", ch), err)
	}
	return res, nil
}

// append is Publish without the idempotency key.
func (b *Broker) append(ctx context.Context, ch string, p broker.Publication, opts broker.PublishOptions) (broker.PublishResult, error) {
	sh := b.chanLock(ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	subj := b.names.chanSubj + token(ch)
	t, known := sh.tails[ch]
	for range maxPublishAttempts {
		stream, err := b.channelStream(ctx, false)
		if err != nil {
			return broker.PublishResult{}, err
		}
		if !known {
			t, err = b.readTail(ctx, stream, subj)
			if streamGone(err) && ctx.Err() == nil {
				if err := b.recreateStream(ctx); err != nil {
					return broker.PublishResult{}, err
				}
				continue
			}
			if err != nil {
				delete(sh.tails, ch)
				return broker.PublishResult{}, err
			}
			known = true
		}
		e := entry{pub: p, prev: t.seq, size: opts.HistorySize, ttl: opts.HistoryTTL}
		e.pub.Channel = ch
		e.pub.Offset = t.offset + 1
		e.pub.Epoch = t.epoch
		if t.seq == 0 {
			e.pub.Epoch = randomHex(8) // a new stream
		}
		e.pub.Time = time.Now().UnixMilli()
		msg := &nats.Msg{Subject: subj, Header: e.header(), Data: p.Data}
		// The id names the offset: one message per offset, even between
		// writes in flight at once.
		ack, err := b.casPublish(ctx, msg, t.seq, fmt.Sprintf("%s:%d", token(ch), e.pub.Offset))
		switch {
		case errors.Is(err, errConflict):
			known = false // another node published; read the tail again
			continue
		case streamGone(err) && ctx.Err() == nil:
			if err := b.recreateStream(ctx); err != nil {
				return broker.PublishResult{}, err
			}
			known = false
			continue
		case err != nil:
			delete(sh.tails, ch)
			return broker.PublishResult{}, err
		}
		e.seq = ack.Sequence
		t = tail{seq: e.seq, offset: e.pub.Offset, epoch: e.pub.Epoch}
		if len(sh.tails) >= maxTails {
			clear(sh.tails) // a cache: dropping it costs one read per channel
		}
		sh.tails[ch] = t
		b.fanOut(&e)
		b.trim(ctx, stream, subj, &e)
		return broker.PublishResult{Offset: e.pub.Offset, Epoch: e.pub.Epoch}, nil
	}
	delete(sh.tails, ch)
	return broker.PublishResult{}, fmt.Errorf("%w: lost %d races for the channel's tail", broker.ErrUnavailable, maxPublishAttempts)
}

// recreateStream makes the channel stream again after it was lost (deleted,
// or its server came back without its store): every channel starts over at
// offset 1 in a new epoch. Cached tails are dropped.
func (b *Broker) recreateStream(ctx context.Context) error {
	_, err := b.channelStream(ctx, true)
	return err
}

// readTail reads the channel's latest message.
func (b *Broker) readTail(ctx context.Context, stream jetstream.Stream, subj string) (tail, error) {
	m, err := b.lastMsg(ctx, stream, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return tail{}, nil
	}
	if err != nil {
		return tail{}, err
	}
	e, err := decodeEntry(m.Header, nil, m.Sequence)
	if err != nil {
		return tail{}, err
	}
	return tail{seq: m.Sequence, offset: e.pub.Offset, epoch: e.pub.Epoch}, nil
}

// fanOut sends a copy of e to the nodes subscribed to its channel. It is
// fire-and-forget (at-most-once); a node that misses it recovers the
// message from the stream when the next one shows the gap.
func (b *Broker) fanOut(e *entry) {
	h := e.header()
	h.Set(hdrSeq, fmt.Sprint(e.seq))
	msg := &nats.Msg{Subject: b.names.fanSubj + token(e.pub.Channel), Header: h, Data: e.pub.Data}
	if err := b.nc.PublishMsg(msg); err != nil {
		b.cfg.Logger.Warn("nats broker: fan-out failed", "channel", e.pub.Channel, "offset", e.pub.Offset, "err", err)
	}
}

// trim removes messages pushed out of the channel's history by its size,
// every few publishes (reads filter by size and ttl anyway, so a late trim
// only costs storage). The channel's last message always stays: it holds
// the offset and epoch.
func (b *Broker) trim(ctx context.Context, stream jetstream.Stream, subj string, e *entry) {
	keep := uint64(max(e.size, 1))
	every := max(keep/4, 16)
	if e.pub.Offset <= keep || e.pub.Offset%every != 0 {
		return
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeKeep(keep)); err != nil {
		b.cfg.Logger.Debug("nats broker: trim failed", "channel", e.pub.Channel, "err", err)
	}
}
