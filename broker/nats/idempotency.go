package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// idemPoll is the pause between two reads of a key another publish holds.
const idemPoll = 5 * time.Millisecond

// reservation is the record of one idempotency key (in the KV bucket,
// under "idem.<channel>.<key>"): held while its publish runs (Offset 0),
// then the publish's result.
type reservation struct {
	Offset uint64 `json:"o,omitempty"`
	Epoch  string `json:"e,omitempty"`
	Time   int64  `json:"t"` // unix ms: when reserved, then when published
}

// publishOnce publishes p at most once per channel and key within window.
//
// The key is reserved by a conditional write of its record (see slot.go),
// which only one publisher on any node can win; the winner appends and then
// writes the result into the record, and the others wait for it and answer
// with the original offset as duplicates. A record older than window is
// free again. A reservation whose publisher died before writing the result
// is taken over after pendingLimit: if that publisher had appended, the
// message then appears twice — the one gap in this scheme, open only while
// a node crashes between two writes (docs/adr/005-nats-broker.md).
func (b *Broker) publishOnce(ctx context.Context, ch string, p broker.Publication, opts broker.PublishOptions, window time.Duration) (broker.PublishResult, error) {
	key := "idem." + token(ch) + "." + token(opts.IdempotencyKey)
	pendingLimit := 2*b.cfg.Timeout + time.Second
	for range maxPublishAttempts {
		sl, err := b.readSlot(ctx, b.names.kv, key)
		if err != nil {
			return broker.PublishResult{}, err
		}
		var r reservation
		if sl.live {
			if err := json.Unmarshal(sl.val, &r); err != nil {
				return broker.PublishResult{}, fmt.Errorf("%w: idempotency record: %v", errMalformed, err)
			}
		}
		age := time.Since(time.UnixMilli(r.Time))
		switch {
		case sl.live && r.Offset > 0 && age < window:
			return broker.PublishResult{Offset: r.Offset, Epoch: r.Epoch, Duplicate: true}, nil
		case sl.live && r.Offset == 0 && age < pendingLimit:
			// Another publish holds the key: wait for its result.
			select {
			case <-ctx.Done():
				return broker.PublishResult{}, ctx.Err()
			case <-time.After(idemPoll):
			}
			continue
		}
		val, _ := json.Marshal(reservation{Time: time.Now().UnixMilli()})
		rev, err := b.writeSlot(ctx, b.names.kv, key, sl.rev, val, false)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return broker.PublishResult{}, err
		}
		res, err := b.append(ctx, ch, p, opts)
		if err != nil {
			// Free the key so that a retry publishes (if this fails too,
			// the reservation lapses after pendingLimit).
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
			_, _ = b.writeSlot(fctx, b.names.kv, key, rev, nil, true)
			cancel()
			return broker.PublishResult{}, err
		}
		val, _ = json.Marshal(reservation{Offset: res.Offset, Epoch: res.Epoch, Time: time.Now().UnixMilli()})
		if _, err := b.writeSlot(ctx, b.names.kv, key, rev, val, false); err != nil {
			b.cfg.Logger.Warn("nats broker: idempotency result not recorded", "channel", ch, "err", err)
		}
		return res, nil
	}
	return broker.PublishResult{}, fmt.Errorf("%w: lost %d races for an idempotency key", broker.ErrUnavailable, maxPublishAttempts)
}
