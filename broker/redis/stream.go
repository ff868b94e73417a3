package redis

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/ferry-io/ferry/broker"
)

// Publish appends p to ch's stream and publishes it to every node that
// subscribed to ch, in one Lua script on ch's Redis server: the
// idempotency check, the next offset, the history append and trimming,
// and the PUBLISH happen atomically, so deliveries come in offset order.
//
// The stream starts with a new random epoch when its state does not exist
// in Redis: on the first publish, after StreamTTL of silence, and after
// Redis lost its data; and when another Redis process wrote it last (Redis
// restarted or failed over, and may have come back with an older copy). Channel, Offset, Epoch and Time of p are set by the
// broker (Time from Redis' clock).
//
// When Redis cannot be reached or does not answer within Config.Timeout,
// Publish returns an error wrapping broker.ErrUnavailable. After a timeout
// the publish may still have happened; repeating it with the same
// IdempotencyKey is safe.
func (b *Broker) Publish(ctx context.Context, ch string, p broker.Publication, opts broker.PublishOptions) (broker.PublishResult, error) {
	if err := b.usable(ctx); err != nil {
		return broker.PublishResult{}, err
	}
	streamTTL := opts.StreamTTL
	if streamTTL <= 0 {
		streamTTL = DefaultStreamTTL
	}
	window := opts.IdempotencyWindow
	if window <= 0 {
		window = DefaultIdempotencyWindow
	}
	size := max(opts.HistorySize, 0)
	histTTL := opts.HistoryTTL
	if histTTL < 0 {
		histTTL = 0
	}

	keys := make([]string, 2, 3)
	keys[0] = b.names.state(ch)
	keys[1] = b.names.history(ch)
	if opts.IdempotencyKey != "" {
		keys = append(keys, b.names.idem(ch, opts.IdempotencyKey))
	}
	body := appendBody(make([]byte, 0, 16+len(p.Conflate)+len(p.From)+len(p.Data)), &p)
	args := []string{
		string(body),
		strconv.Itoa(size),
		strconv.FormatInt(millis(histTTL), 10),
		strconv.FormatInt(millis(streamTTL), 10),
		strconv.FormatInt(millis(window), 10),
		newEpoch(),
		b.names.pubsub(ch),
	}

	sh := b.shardFor(ch)
	cctx, cancel := b.call(ctx)
	defer cancel()
	reply, err := publishScript.Exec(cctx, sh.client, keys, args).ToArray()
	if err != nil {
		return broker.PublishResult{}, b.fail(ctx, fmt.Sprintf("publish %q", ch), err)
	}
	if len(reply) != 3 {
		return broker.PublishResult{}, fmt.Errorf("redis broker: publish %q: %w: %d values in the script's reply", ch, errMalformed, len(reply))
	}
	offset, err1 := reply[0].AsInt64()
	epoch, err2 := reply[1].ToString()
	dup, err3 := reply[2].AsInt64()
	if err1 != nil || err2 != nil || err3 != nil || offset < 1 {
		return broker.PublishResult{}, fmt.Errorf("redis broker: publish %q: %w: unexpected script reply", ch, errMalformed)
	}
	return broker.PublishResult{Offset: uint64(offset), Epoch: epoch, Duplicate: dup == 1}, nil
}

// newEpoch returns a random epoch for a stream that may be created by a
// publish: 16 hex digits. It needs to differ from the epoch of an earlier
// stream of the channel, not to be secret.
func newEpoch() string {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], rand.Uint64())
	return hex.EncodeToString(buf[:])
}

// History reads ch's retained messages; see broker.HistoryQuery and
// broker.HistoryResult. The messages and the position are read by one Lua
// script, so they are consistent: the messages are contiguous and end at
// the returned Offset (unless Limit cut the list).
//
// Complete is true when Since is nil, when Since.Offset is 0 and nothing
// was trimmed from the stream yet, or when Since.Epoch is the stream's
// epoch and every message after Since.Offset is retained.
// It is false when the epochs differ (the messages then start at the oldest
// retained one), in particular after Redis lost the stream, and when
// Since.Offset is beyond the latest offset.
func (b *Broker) History(ctx context.Context, ch string, q broker.HistoryQuery) (broker.HistoryResult, error) {
	if err := b.usable(ctx); err != nil {
		return broker.HistoryResult{}, err
	}
	var since uint64
	var sinceEpoch string
	if q.Since != nil {
		since, sinceEpoch = q.Since.Offset, q.Since.Epoch
	}
	limit := q.Limit
	if limit < 0 {
		limit = -1
	}
	keys := []string{b.names.state(ch), b.names.history(ch)}
	args := []string{strconv.FormatUint(since, 10), sinceEpoch, strconv.Itoa(limit)}

	sh := b.shardFor(ch)
	cctx, cancel := b.call(ctx)
	defer cancel()
	reply, err := historyScript.Exec(cctx, sh.client, keys, args).ToArray()
	if err != nil {
		return broker.HistoryResult{}, b.fail(ctx, fmt.Sprintf("history %q", ch), err)
	}
	bad := func(why string) (broker.HistoryResult, error) {
		return broker.HistoryResult{}, fmt.Errorf("redis broker: history %q: %w: %s", ch, errMalformed, why)
	}
	if len(reply) < 3 {
		return bad("short script reply")
	}
	offset, err1 := reply[0].AsInt64()
	epoch, err2 := reply[1].ToString()
	first, err3 := reply[2].AsInt64()
	if err1 != nil || err2 != nil || err3 != nil || offset < 0 || first < 1 {
		return bad("unexpected script reply")
	}
	res := broker.HistoryResult{Offset: uint64(offset), Epoch: epoch}
	switch {
	case q.Since == nil:
		res.Complete = true
	case since == 0:
		// From the beginning, in any epoch: complete while nothing was
		// trimmed from the stream yet.
		res.Complete = first <= 1
	case sinceEpoch != epoch || since > res.Offset:
		res.Complete = false
	default:
		res.Complete = since+1 >= uint64(first)
	}
	if n := len(reply) - 3; n > 0 {
		res.Messages = make([]broker.Publication, n)
		for i, m := range reply[3:] {
			s, err := m.ToString()
			if err != nil {
				return bad("history element is not a string")
			}
			if res.Messages[i], err = decodePublication(ch, s); err != nil {
				return broker.HistoryResult{}, fmt.Errorf("redis broker: history %q: %w", ch, err)
			}
		}
	}
	return res, nil
}
