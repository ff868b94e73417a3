package memory

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// presenceEntry is a broker.PresenceInfo without its Conn (the key of the
// channel's map) and its deadline in unix nanoseconds (0: never).
type presenceEntry struct {
	user, node string
	expires    int64
}

// AddPresence records info.Conn as present in ch until ttl passes (ttl <= 0:
// until removed). Adding the same connection again replaces its entry and
// restarts its ttl.
func (b *Broker) AddPresence(ctx context.Context, ch string, info broker.PresenceInfo, ttl time.Duration) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	sh := b.shardFor(ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.presence[ch]
	if m == nil {
		m = make(map[string]presenceEntry)
		sh.presence[ch] = m
	}
	e := presenceEntry{user: info.User, node: info.Node, expires: deadlineAt(b.now(), ttl)}
	m[info.Conn] = e
	sh.presenceDue.note(e.expires)
	return nil
}

// RemovePresence forgets conn's presence in ch; an unknown conn is not an
// error.
func (b *Broker) RemovePresence(ctx context.Context, ch string, conn string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	sh := b.shardFor(ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.presence[ch]; m != nil {
		delete(m, conn)
		if len(m) == 0 {
			delete(sh.presence, ch)
		}
	}
	return nil
}

// Presence returns the live entries of ch, ordered by user then connection.
func (b *Broker) Presence(ctx context.Context, ch string) ([]broker.PresenceInfo, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	sh := b.shardFor(ch)
	sh.mu.RLock()
	now := b.now()
	m := sh.presence[ch]
	out := make([]broker.PresenceInfo, 0, len(m))
	for conn, e := range m {
		if !expiredAt(e.expires, now) {
			out = append(out, broker.PresenceInfo{User: e.user, Conn: conn, Node: e.node})
		}
	}
	sh.mu.RUnlock()
	slices.SortFunc(out, func(a, b broker.PresenceInfo) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Conn, b.Conn))
	})
	return out, nil
}
