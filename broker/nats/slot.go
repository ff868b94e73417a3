package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Compare-and-set on JetStream subjects.
//
// JetStream's expected-last-subject-sequence check alone is not enough on
// a replicated stream of nats-server 2.9: two writes proposed before either
// is applied can both pass it (observed in this package's cluster tests:
// one offset assigned twice, sixteen winners of one Take). Every
// conditional write therefore also carries a message id derived from what
// it replaces (the key and the revision it read, or the channel and the
// offset it takes); JetStream's deduplication, which does track writes in
// flight, refuses the second. A refused write is a lost race: the caller
// reads again and retries.

// slot is the latest message of one key in a key-value bucket.
type slot struct {
	rev  uint64 // stream sequence of the latest message (0: none ever)
	val  []byte
	live bool // false when missing or deleted
}

// kvSubject is the subject JetStream KV keeps key of bucket on.
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// readSlot reads the latest message of key.
func (b *Broker) readSlot(ctx context.Context, bucket, key string) (slot, error) {
	s, err := b.bucket(ctx, bucket)
	if err != nil {
		return slot{}, err
	}
	m, err := b.lastMsg(ctx, s, kvSubject(bucket, key))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// The bucket was lost with its server's store: make it again,
		// empty.
		b.forgetBucket(bucket)
		if _, err := b.bucket(ctx, bucket); err != nil {
			return slot{}, err
		}
		return slot{}, nil
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return slot{}, nil
	}
	if err != nil {
		return slot{}, err
	}
	if op := m.Header.Get(hdrKVOperation); op == "DEL" || op == "PURGE" {
		return slot{rev: m.Sequence}, nil
	}
	return slot{rev: m.Sequence, val: m.Data, live: true}, nil
}

// writeSlot writes val to key (or deletes it) provided the key's latest
// message is still base, and returns the new revision; it returns
// errConflict when the latest message is another.
func (b *Broker) writeSlot(ctx context.Context, bucket, key string, base uint64, val []byte, del bool) (uint64, error) {
	msg := &nats.Msg{Subject: kvSubject(bucket, key), Data: val, Header: nats.Header{}}
	if del {
		msg.Header.Set(hdrKVOperation, "DEL")
	}
	ack, err := b.casPublish(ctx, msg, base, fmt.Sprintf("%s:%d", key, base))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// casPublish appends msg provided the latest message of its subject is
// base, deduplicated by id (see above). It returns the acknowledgement, or
// errConflict for a lost race.
func (b *Broker) casPublish(ctx context.Context, msg *nats.Msg, base uint64, id string) (*jetstream.PubAck, error) {
	ack, err := b.js.PublishMsg(ctx, msg,
		jetstream.WithExpectLastSequencePerSubject(base),
		jetstream.WithMsgID(id))
	if casConflict(err) || (err == nil && ack.Duplicate) {
		return nil, errConflict
	}
	return ack, err
}
