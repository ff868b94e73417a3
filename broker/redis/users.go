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

// AddUserConn records ref for user until ttl passes (ttl <= 0: until
// removed) and returns the user's live connections, oldest first by
// ConnRef.Since (then by Conn), ref included. A zero ref.Since is set to
// Redis' current time. Adding a known connection again restarts its ttl and
// updates its Node; it keeps its original Since. Since is kept with
// millisecond precision.
func (b *Broker) AddUserConn(ctx context.Context, user string, ref broker.ConnRef, ttl time.Duration) ([]broker.ConnRef, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	since := "" // the script's "now"
	if !ref.Since.IsZero() {
		since = strconv.FormatInt(ref.Since.UnixMilli(), 10)
	}
	keys := []string{b.names.user(user)}
	args := []string{ref.Conn, since, strconv.FormatInt(millis(ttl), 10), ref.Node}
	cctx, cancel := b.call(ctx)
	defer cancel()
	flat, err := addUserConnScript.Exec(cctx, b.shardFor(user).client, keys, args).AsStrSlice()
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("add connection of user %q", user), err)
	}
	if len(flat)%3 != 0 {
		return nil, fmt.Errorf("redis broker: add connection of user %q: %w: reply of %d values", user, errMalformed, len(flat))
	}
	out := make([]broker.ConnRef, 0, len(flat)/3)
	for i := 0; i < len(flat); i += 3 {
		ms, err := strconv.ParseInt(flat[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis broker: add connection of user %q: %w: since %q", user, errMalformed, flat[i+1])
		}
		out = append(out, broker.ConnRef{Conn: flat[i], Node: flat[i+2], Since: time.UnixMilli(ms)})
	}
	slices.SortFunc(out, func(a, b broker.ConnRef) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Conn, b.Conn))
	})
	return out, nil
}

// RemoveUserConn forgets conn of user; an unknown conn is not an error.
func (b *Broker) RemoveUserConn(ctx context.Context, user string, conn string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	client := b.shardFor(user).client
	cctx, cancel := b.call(ctx)
	defer cancel()
	if err := client.Do(cctx, client.B().Hdel().Key(b.names.user(user)).Field(conn).Build()).Error(); err != nil {
		return b.fail(ctx, fmt.Sprintf("remove connection of user %q", user), err)
	}
	return nil
}
