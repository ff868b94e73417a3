package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// AddUserConn records ref for user until ttl passes (ttl <= 0: until
// removed) and returns the user's live connections beyond the keep newest
// by ConnRef.Since, oldest first (then by Conn); keep <= 0 returns none. A
// zero ref.Since is set to Redis' current time. Adding a known connection
// again restarts its ttl and updates its Node; it keeps its original Since.
// Since is kept with millisecond precision. The cost is O(log n) in the
// user's connection count (sorted sets), never a read of the whole set.
func (b *Broker) AddUserConn(ctx context.Context, user string, ref broker.ConnRef, ttl time.Duration, keep int) ([]broker.ConnRef, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	since := "" // the script's "now"
	if !ref.Since.IsZero() {
		since = strconv.FormatInt(ref.Since.UnixMilli(), 10)
	}
	args := []string{ref.Conn, since, strconv.FormatInt(millis(ttl), 10), ref.Node, strconv.Itoa(max(keep, 0))}
	cctx, cancel := b.call(ctx)
	defer cancel()
	flat, err := addUserConnScript.Exec(cctx, b.shardFor(user).client, b.names.userKeys(user), args).AsStrSlice()
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("add connection of user %q", user), err)
	}
	if len(flat)%3 != 0 {
		return nil, fmt.Errorf("redis broker: add connection of user %q: %w: reply of %d values", user, errMalformed, len(flat))
	}
	if len(flat) == 0 {
		return nil, nil
	}
	out := make([]broker.ConnRef, 0, len(flat)/3)
	for i := 0; i < len(flat); i += 3 {
		// A sorted-set score comes back as a float's text.
		ms, err := strconv.ParseFloat(flat[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("redis broker: add connection of user %q: %w: since %q", user, errMalformed, flat[i+1])
		}
		out = append(out, broker.ConnRef{Conn: flat[i], Node: flat[i+2], Since: time.UnixMilli(int64(ms))})
	}
	return out, nil
}

// RemoveUserConn forgets conn of user; an unknown conn is not an error.
func (b *Broker) RemoveUserConn(ctx context.Context, user string, conn string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	if err := removeUserConnScript.Exec(cctx, b.shardFor(user).client, b.names.userKeys(user), []string{conn}).Error(); err != nil {
		return b.fail(ctx, fmt.Sprintf("remove connection of user %q", user), err)
	}
	return nil
}
