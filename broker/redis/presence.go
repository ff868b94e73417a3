package redis

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// AddPresence records info.Conn as present in ch until ttl passes (ttl <= 0:
// until removed). Adding the same connection again replaces its entry and
// restarts its ttl. Entries live on ch's Redis server and expire by Redis'
// clock.
func (b *Broker) AddPresence(ctx context.Context, ch string, info broker.PresenceInfo, ttl time.Duration) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	keys := []string{b.names.presence(ch), b.names.presenceExp(ch)}
	args := []string{info.Conn, encodePresence(info), strconv.FormatInt(millis(ttl), 10)}
	cctx, cancel := b.call(ctx)
	defer cancel()
	if err := addPresenceScript.Exec(cctx, b.shardFor(ch).client, keys, args).Error(); err != nil {
		return b.fail(ctx, fmt.Sprintf("add presence %q", ch), err)
	}
	return nil
}

// RemovePresence forgets conn's presence in ch; an unknown conn is not an
// error.
func (b *Broker) RemovePresence(ctx context.Context, ch string, conn string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	keys := []string{b.names.presence(ch), b.names.presenceExp(ch)}
	cctx, cancel := b.call(ctx)
	defer cancel()
	if err := removePresenceScript.Exec(cctx, b.shardFor(ch).client, keys, []string{conn}).Error(); err != nil {
		return b.fail(ctx, fmt.Sprintf("remove presence %q", ch), err)
	}
	return nil
}

// Presence returns the live entries of ch, ordered by user then connection.
// It removes expired entries it comes across.
func (b *Broker) Presence(ctx context.Context, ch string) ([]broker.PresenceInfo, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	keys := []string{b.names.presence(ch), b.names.presenceExp(ch)}
	cctx, cancel := b.call(ctx)
	defer cancel()
	flat, err := presenceScript.Exec(cctx, b.shardFor(ch).client, keys, nil).AsStrSlice()
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("presence %q", ch), err)
	}
	if len(flat)%2 != 0 {
		return nil, fmt.Errorf("redis broker: presence %q: %w: odd reply", ch, errMalformed)
	}
	out := make([]broker.PresenceInfo, 0, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		info, err := decodePresence(flat[i], flat[i+1])
		if err != nil {
			return nil, fmt.Errorf("redis broker: presence %q: %w", ch, err)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b broker.PresenceInfo) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Conn, b.Conn))
	})
	return out, nil
}
