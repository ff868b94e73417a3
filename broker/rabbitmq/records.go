package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/memory"
)

// A writer keeps presence, per-user connection lists and key-value entries
// of its shard in a memory broker, and appends every change to the
// shard's stream as it applies it (the reply waits for the confirm), so
// that a new writer replays them: they survive a writer failover like
// history does.

// nopHandler is the handler of a writer's memory broker, which never
// delivers anything (it is used only for its records).
type nopHandler struct{}

func (nopHandler) HandlePublication(*broker.Publication) {}
func (nopHandler) HandleControl(broker.Control)          {}

// newRecords returns a started memory broker for a writer's records.
func newRecords() *memory.Broker {
	m := memory.New(memory.Config{})
	_ = m.Start(context.Background(), nopHandler{}) // cannot fail on a new broker
	return m
}

// expiresAt is the unix-millisecond deadline of ttl from now (0: never).
func expiresAt(now time.Time, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return now.Add(ttl).UnixMilli()
}

// ttlLeft turns a recorded deadline back into a TTL at now; ok is false
// when it has passed.
func ttlLeft(expires int64, now time.Time) (ttl time.Duration, ok bool) {
	if expires == 0 {
		return 0, true
	}
	ttl = time.UnixMilli(expires).Sub(now)
	return ttl, ttl > 0
}

// applyRecord applies a presence, user or key-value record to the
// writer's memory broker. It is used both live (after the append) and
// when replaying the stream; the reply is what the live call answers.
func (w *writer) applyRecord(r *record, now time.Time) (*reply, error) {
	ctx := context.Background()
	m := w.records
	ttl, live := ttlLeft(r.Expires, now)
	switch r.Kind {
	case opPresenceAdd:
		if !live {
			return &reply{}, nil
		}
		return &reply{}, m.AddPresence(ctx, r.Channel, broker.PresenceInfo{User: r.User, Conn: r.Conn, Node: r.Node}, ttl)
	case opPresenceRemove:
		return &reply{}, m.RemovePresence(ctx, r.Channel, r.Conn)
	case opUserAdd:
		if !live {
			return &reply{}, nil
		}
		conns, err := m.AddUserConn(ctx, r.User, broker.ConnRef{Conn: r.Conn, Node: r.Node, Since: time.Unix(0, r.Since)}, ttl, r.Keep)
		return &reply{Conns: conns}, err
	case opUserRemove:
		return &reply{}, m.RemoveUserConn(ctx, r.User, r.Conn)
	case opKVSet:
		if !live {
			return &reply{}, m.Delete(ctx, r.Key)
		}
		return &reply{}, m.Set(ctx, r.Key, r.Val, ttl)
	case opKVDelete, opKVTake:
		return &reply{}, m.Delete(ctx, r.Key)
	}
	return &reply{Err: fmt.Sprintf("unknown record kind %q", r.Kind)}, nil
}

// record handles a request on presence, users or keys: reads are answered
// from the memory broker; changes are appended to the stream first.
func (w *writer) record(op string, r *record, now time.Time) (*reply, error) {
	ctx := context.Background()
	m := w.records
	switch op {
	case opPresenceList:
		list, err := m.Presence(ctx, r.Channel)
		return &reply{Presence: list}, err
	case opKVGet:
		val, err := m.Get(ctx, r.Key)
		if errors.Is(err, broker.ErrNotFound) {
			return &reply{NotFound: true}, nil
		}
		return &reply{Val: val}, err
	case opLock, opLockRefresh, opUnlock:
		return w.lock(op, r, now)
	case opKVTake:
		// The writer is the only one changing its shard, so Get, append
		// and Delete are one atomic Take.
		val, err := m.Get(ctx, r.Key)
		if errors.Is(err, broker.ErrNotFound) {
			return &reply{NotFound: true}, nil
		}
		if err != nil {
			return nil, err
		}
		if err := w.appendRecord(&record{Kind: opKVTake, Key: r.Key}); err != nil {
			return nil, err
		}
		if _, err := w.applyRecord(&record{Kind: opKVTake, Key: r.Key}, now); err != nil {
			return nil, err
		}
		return &reply{Val: val}, nil
	}
	r.Kind = op
	r.Expires = expiresAt(now, time.Duration(r.TTL))
	r.TTL = 0
	if err := w.appendRecord(r); err != nil {
		return nil, err
	}
	return w.applyRecord(r, now)
}

// appendRecord encodes r and appends it to the stream.
func (w *writer) appendRecord(r *record) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return w.append(body)
}

// lock decides a Locker request (the owner in r.Val, the lease in r.TTL)
// from the key's current owner and appends the outcome as a plain key-value
// set or delete, which a replay applies as it is: the decision is never
// taken again on another writer's state. The writer is the only one
// changing its shard, so the read and the append are one atomic step. A
// refused request is answered NotFound.
func (w *writer) lock(op string, r *record, now time.Time) (*reply, error) {
	cur, err := w.records.Get(context.Background(), r.Key)
	switch {
	case errors.Is(err, broker.ErrNotFound):
		cur = nil // free (missing or lapsed)
	case err != nil:
		return nil, err
	}
	held := cur != nil
	mine := held && string(cur) == string(r.Val)
	if !mine && (held || op != opLock) {
		return &reply{NotFound: true}, nil
	}
	out := &record{Kind: opKVSet, Key: r.Key, Val: r.Val, Expires: expiresAt(now, time.Duration(r.TTL))}
	if op == opUnlock {
		out = &record{Kind: opKVDelete, Key: r.Key}
	}
	if err := w.appendRecord(out); err != nil {
		return nil, err
	}
	return w.applyRecord(out, now)
}
