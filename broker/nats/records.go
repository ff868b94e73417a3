package nats

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ferry-io/ferry/broker"
)

// maxCASAttempts bounds the compare-and-set retries of one record update.
const maxCASAttempts = 100

// record is one connection in a presence or user entry. Exp is when it
// expires, in unix milliseconds: JetStream 2.9 has no per-key expiry, so
// the broker writes it in the value, ignores expired records when reading
// and drops them on the next write; the bucket's age limit
// (Config.MaxRecordTTL) removes whole entries nobody wrote for that long.
type record struct {
	User  string `json:"u,omitempty"` // presence: the connection's user
	Conn  string `json:"c,omitempty"` // users: the connection's id
	Node  string `json:"n,omitempty"`
	Since int64  `json:"s,omitempty"` // unix milliseconds
	Exp   int64  `json:"e"`
}

// recordSet is the value of a presence entry (one per channel): records
// by connection id.
type recordSet map[string]record

// expiry turns a ttl into an expiry time, refusing ttls the bucket cannot
// honour. A ttl of 0 or less means Config.MaxRecordTTL.
func (b *Broker) expiry(ttl time.Duration) (int64, error) {
	if ttl > b.cfg.MaxRecordTTL {
		return 0, fmt.Errorf("%w (%v > %v)", ErrTTLTooLong, ttl, b.cfg.MaxRecordTTL)
	}
	if ttl <= 0 {
		ttl = b.cfg.MaxRecordTTL
	}
	return time.Now().Add(ttl).UnixMilli(), nil
}

// readSet returns the live records of key and the revision they were
// read at.
func (b *Broker) readSet(ctx context.Context, bucket, key string) (recordSet, uint64, error) {
	sl, err := b.readSlot(ctx, bucket, key)
	if err != nil || !sl.live {
		return recordSet{}, sl.rev, err
	}
	set := recordSet{}
	if err := json.Unmarshal(sl.val, &set); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errMalformed, err)
	}
	now := time.Now().UnixMilli()
	for conn, r := range set {
		if r.Exp <= now {
			delete(set, conn)
		}
	}
	return set, sl.rev, nil
}

// updateSet applies change to the live records of key and writes the
// result back, atomically: a write that lost a race with another node's
// is retried on the new value. An empty result deletes the entry.
func (b *Broker) updateSet(ctx context.Context, bucket, key string, change func(recordSet)) (recordSet, error) {
	for range maxCASAttempts {
		set, rev, err := b.readSet(ctx, bucket, key)
		if err != nil {
			return nil, err
		}
		before := len(set)
		change(set)
		switch {
		case len(set) == 0 && before == 0:
			return set, nil // nothing there, nothing to write
		case len(set) == 0:
			_, err = b.writeSlot(ctx, bucket, key, rev, nil, true)
		default:
			val, merr := json.Marshal(set)
			if merr != nil {
				return nil, merr
			}
			_, err = b.writeSlot(ctx, bucket, key, rev, val, false)
		}
		if !errors.Is(err, errConflict) {
			return set, err
		}
	}
	return nil, fmt.Errorf("%w: lost %d races for %s", errConflict, maxCASAttempts, key)
}

// AddPresence records info in ch's presence until ttl passes.
func (b *Broker) AddPresence(ctx context.Context, ch string, info broker.PresenceInfo, ttl time.Duration) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	exp, err := b.expiry(ttl)
	if err != nil {
		return fmt.Errorf("nats broker: add presence %q: %w", ch, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	_, err = b.updateSet(ctx, b.names.presence, token(ch), func(s recordSet) {
		s[info.Conn] = record{User: info.User, Node: info.Node, Exp: exp}
	})
	if err != nil {
		return b.fail(fmt.Sprintf("add presence %q", ch), err)
	}
	return nil
}

// RemovePresence removes conn from ch's presence.
func (b *Broker) RemovePresence(ctx context.Context, ch string, conn string) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if _, err := b.updateSet(ctx, b.names.presence, token(ch), func(s recordSet) { delete(s, conn) }); err != nil {
		return b.fail(fmt.Sprintf("remove presence %q", ch), err)
	}
	return nil
}

// Presence lists the live entries of ch, ordered by connection id.
func (b *Broker) Presence(ctx context.Context, ch string) ([]broker.PresenceInfo, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	set, _, err := b.readSet(ctx, b.names.presence, token(ch))
	if err != nil {
		return nil, b.fail(fmt.Sprintf("presence %q", ch), err)
	}
	out := make([]broker.PresenceInfo, 0, len(set))
	for conn, r := range set {
		out = append(out, broker.PresenceInfo{User: r.User, Conn: conn, Node: r.Node})
	}
	slices.SortFunc(out, func(a, b broker.PresenceInfo) int { return cmp.Compare(a.Conn, b.Conn) })
	return out, nil
}

// A KV value is stored as its expiry (8 bytes, big-endian unix
// milliseconds) followed by the value.
const expLen = 8

// Set stores val under key until ttl passes (0 or less: Config.MaxRecordTTL).
func (b *Broker) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	exp, err := b.expiry(ttl)
	if err != nil {
		return fmt.Errorf("nats broker: set %q: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	stored := binary.BigEndian.AppendUint64(make([]byte, 0, expLen+len(val)), uint64(exp))
	msg := &nats.Msg{Subject: kvSubject(b.names.kv, token(key)), Data: append(stored, val...)}
	_, err = b.js.PublishMsg(ctx, msg)
	if streamGone(err) && ctx.Err() == nil {
		// The bucket was lost with its server's store: make it again.
		b.forgetBucket(b.names.kv)
		if _, err = b.bucket(ctx, b.names.kv); err == nil {
			_, err = b.js.PublishMsg(ctx, msg)
		}
	}
	if err != nil {
		return b.fail(fmt.Sprintf("set %q", key), err)
	}
	return nil
}

// getLive reads key; an expired value counts as missing (ErrNotFound).
func (b *Broker) getLive(ctx context.Context, key string) (slot, error) {
	sl, err := b.readSlot(ctx, b.names.kv, token(key))
	if err != nil {
		return slot{}, err
	}
	if !sl.live {
		return slot{}, broker.ErrNotFound
	}
	if len(sl.val) < expLen {
		return slot{}, fmt.Errorf("%w: value of %q", errMalformed, key)
	}
	if int64(binary.BigEndian.Uint64(sl.val)) <= time.Now().UnixMilli() {
		return slot{}, broker.ErrNotFound
	}
	sl.val = sl.val[expLen:]
	return sl, nil
}

// readKV is the live value of key for operation op (Get or Take), with the
// error worded for it.
func (b *Broker) readKV(ctx context.Context, op, key string) (slot, error) {
	sl, err := b.getLive(ctx, key)
	if errors.Is(err, broker.ErrNotFound) {
		return slot{}, fmt.Errorf("nats broker: %s %q: %w", op, key, err)
	}
	if err != nil {
		return slot{}, b.fail(fmt.Sprintf("%s %q", op, key), err)
	}
	return sl, nil
}

// Get returns the value of key, or ErrNotFound.
func (b *Broker) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	sl, err := b.readKV(ctx, "get", key)
	return sl.val, err
}

// Take returns the value of key and deletes it: the delete is conditional
// on the revision read (see slot.go), so of two concurrent Takes only one
// succeeds.
func (b *Broker) Take(ctx context.Context, key string) ([]byte, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	sl, err := b.readKV(ctx, "take", key)
	if err != nil {
		return nil, err
	}
	_, err = b.writeSlot(ctx, b.names.kv, token(key), sl.rev, nil, true)
	if errors.Is(err, errConflict) {
		// Another Take (or a Set) got there first.
		return nil, fmt.Errorf("nats broker: take %q: %w", key, broker.ErrNotFound)
	}
	if err != nil {
		return nil, b.fail(fmt.Sprintf("take %q", key), err)
	}
	return sl.val, nil
}

// Delete removes key; a missing key is not an error.
func (b *Broker) Delete(ctx context.Context, key string) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	msg := &nats.Msg{Subject: kvSubject(b.names.kv, token(key)), Header: nats.Header{}}
	msg.Header.Set(hdrKVOperation, "DEL")
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return b.fail(fmt.Sprintf("delete %q", key), err)
	}
	return nil
}
