package memory

import (
	"log/slog"
	"time"
)

// sweepLoop removes expired state every SweepInterval until Close.
func (b *Broker) sweepLoop() {
	t := time.NewTicker(b.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.sweep()
		}
	}
}

// sweepCounts is what one sweep removed.
type sweepCounts struct {
	streams, messages, idem, presence, userConns, kv int
}

// sweep walks every shard once, holding one shard lock at a time.
func (b *Broker) sweep() sweepCounts {
	var n sweepCounts
	for i := range b.shards {
		if b.closed.Load() {
			break
		}
		b.sweepShard(&b.shards[i], &n)
	}
	if n != (sweepCounts{}) {
		b.cfg.Logger.Debug("memory broker sweep",
			slog.Int("streams", n.streams),
			slog.Int("messages", n.messages),
			slog.Int("idempotency_keys", n.idem),
			slog.Int("presence", n.presence),
			slog.Int("user_conns", n.userConns),
			slog.Int("kv", n.kv),
		)
	}
	return n
}

func (b *Broker) sweepShard(sh *shard, n *sweepCounts) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := b.now()
	for ch, st := range sh.streams {
		before := st.retained()
		st.trim(now)
		n.messages += before - st.retained()
		if st.gone(now) {
			delete(sh.streams, ch)
			n.streams++
		}
	}
	for k, e := range sh.idem {
		if expired(e.expires, now) {
			delete(sh.idem, k)
			n.idem++
		}
	}
	if sh.presenceDue.reached(now) {
		sh.presenceDue = 0
		for ch, m := range sh.presence {
			for conn, e := range m {
				if expiredAt(e.expires, now) {
					delete(m, conn)
					n.presence++
				} else {
					sh.presenceDue.note(e.expires)
				}
			}
			if len(m) == 0 {
				delete(sh.presence, ch)
			}
		}
	}
	if sh.usersDue.reached(now) {
		sh.usersDue = 0
		for user, set := range sh.users {
			n.userConns += set.prune(now)
			if set.n == 0 {
				delete(sh.users, user)
			} else {
				sh.usersDue.note(set.byDeadline.first.expires)
			}
		}
	}
	if sh.kvDue.reached(now) {
		sh.kvDue = 0
		for k, e := range sh.kv {
			if expiredAt(e.expires, now) {
				delete(sh.kv, k)
				n.kv++
			} else {
				sh.kvDue.note(e.expires)
			}
		}
	}
}
